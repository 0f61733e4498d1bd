"""What do the filters of a trained network respond to? Gradient ascent on the input image.

    python examples/visualize_filters.py                                   # trains a CNN first
    python examples/visualize_filters.py --checkpoint runs/latest/best.safetensors

What it shows: autograd computes gradients with respect to *any* tensor, not only weights.
Starting from faint noise, the input image itself is optimised (the weights stay frozen) to
maximise the mean activation of one filter; the result is the pattern that filter looks
for. First-layer filters find edges and stripes at one scale; deeper filters respond to
larger, compound shapes. All filters of a layer are optimised at once, one image each, as a
single batch. Saves ``max_response.png`` (one row per layer) in ``--out``.

Without ``--checkpoint`` it first trains the default CNN of ``train.py`` (about a minute on
a 2-core CPU); the visualisation itself takes a few seconds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import load_data, save_image_grid
from train import frozen_pretrained

import gradforge as torch
import gradforge.nn.functional as F
from gradforge import nn


def max_response(model: nn.Module, layer: nn.Module, filters: list[int], steps: int = 100,
                 lr: float = 0.05, blur: float = 0.3, low: float = -1.0, high: float = 3.0,
                 seed: int = 0) -> torch.Tensor:
    """Inputs (one per filter) that maximise the mean rectified output of ``layer``'s ``filters``.

    Args:
        steps, lr: gradient-ascent steps, and the length of each (relative to the image).
        blur: how much of a 3x3 box blur is mixed in after each step. Plain gradient ascent
            finds pixel-level noise that excites a filter as much as any real shape does;
            the blur keeps only patterns a few pixels wide, which are readable.
        low, high: the valid range of a (normalised) pixel; the image is kept inside it.

    Shape:
        output (len(filters), 1, 28, 28).
    """
    captured = {}
    handle = layer.register_forward_hook(lambda module, inputs, output:
                                         captured.__setitem__("out", output))
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    x = (0.1 * torch.randn(len(filters), 1, 28, 28, generator=generator)).to(device)
    x.requires_grad_(True)
    rows, channels = torch.arange(len(filters)), torch.tensor(filters)
    try:
        for _ in range(steps):
            model(x)
            # Image b maximises filter filters[b]: one objective per image, summed. The
            # rectified response, since a filter detects a pattern where it is positive (the
            # plain mean of an edge filter, whose weights sum to about 0, barely moves).
            activation = F.relu(captured["out"][rows.to(device), channels.to(device)])
            objective = activation.mean(dim=(1, 2)).sum()
            (grad,) = torch.autograd.grad(objective, x)
            with torch.no_grad():
                # Normalised steps: each image moves at the same pace whatever its gradient's
                # scale (which differs by orders of magnitude between layers).
                scale = grad.flatten(1).norm(dim=1).view(-1, 1, 1, 1) + 1e-12
                x += lr * 28 * grad / scale
                if blur:
                    x.copy_((1 - blur) * x + blur * F.avg_pool2d(x, 3, 1, 1,
                                                                 count_include_pad=False))
                x.clamp_(low, high)
    finally:
        handle.remove()
    return x.detach()


def stretch(image):
    """Pixels (0..1) stretched to the full grey range; a flat image keeps its true grey."""
    low, high = image.min(), image.max()
    return (image - low) / (high - low) if high - low > 0.05 else image


def main(argv=None) -> Path | None:
    """Optimise inputs for several filters of every conv layer; returns the PNG's path."""
    parser = argparse.ArgumentParser(description="maximum-response inputs of conv filters")
    parser.add_argument("--checkpoint", help="best.safetensors of a train.py run "
                                             "(default: train the default CNN first)")
    parser.add_argument("--filters", type=int, default=8, help="filters per layer")
    parser.add_argument("--steps", type=int, default=100, help="gradient-ascent steps")
    parser.add_argument("--epochs", type=int, default=4,
                        help="epochs when training the network here")
    parser.add_argument("--limit", type=int, help="train on the first N images (smoke tests)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/visualize_filters")
    args = parser.parse_args(argv)

    model, settings, out = frozen_pretrained(args, "visualize_filters.py")
    convs = [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise SystemExit(f"visualize_filters.py: the {settings['model']} model has no "
                         "convolutional layer; train a cnn, lenet or resnet")
    # The valid pixel range, in the normalised units the network was trained on.
    data = load_data(settings["data_dir"], settings["limit"])
    low, high = -data.mean / data.std, (1 - data.mean) / data.std
    # At most four layers, spread from the first to the last; one row of the grid each.
    picks = sorted({round(i * (len(convs) - 1) / 3) for i in range(4)})
    images, titles = [], []
    for i in picks:
        name, conv = convs[i]
        label = f"conv {i + 1}/{len(convs)}"
        filters = list(range(min(args.filters, conv.out_channels)))
        x = max_response(model, conv, filters, args.steps, low=low, high=high)
        pad = args.filters - len(filters)
        images += [stretch(img) for img in (x[:, 0] * data.std + data.mean).cpu().numpy()]
        images += [None] * pad
        titles += [f"{label} #{f}" for f in filters] + [""] * pad
        print(f"{label} ({name}): {conv.out_channels} filters {tuple(conv.kernel_size)}, "
              f"optimised {len(filters)} inputs", flush=True)
    path = out / "max_response.png"
    if save_image_grid(images, path, titles, ncols=args.filters, value_range=(0, 1),
                       title=f"inputs that maximise each filter ({settings['model']}; "
                             "contrast stretched per image)"):
        print(f"saved {path}")
        return path
    print("matplotlib is not installed: nothing saved")
    return None


if __name__ == "__main__":
    main()
