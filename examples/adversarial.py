"""Adversarial examples: a perturbation too faint to notice flips a trained network's answer.

    python examples/adversarial.py                                     # trains a CNN first
    python examples/adversarial.py --checkpoint runs/latest/best.safetensors

What it shows: the fast gradient sign method (Goodfellow et al., 2015). The gradient of the
loss with respect to the *input image* says which way each pixel should move to make the
network more wrong; stepping every pixel by a small epsilon in the direction of that
gradient's sign is enough to change the prediction of most images. It prints the test
accuracy as epsilon grows, finds for each image the smallest epsilon of the sweep that
flips its answer, and saves ``adversarial.png`` in ``--out`` for a few images the network
got right with 90% confidence or more (the faintest perturbations first, different classes
where possible): the original, the perturbation (amplified) and the result, with the
predicted classes and confidences.

Without ``--checkpoint`` it first trains the default CNN of ``train.py`` (about a minute
on a 2-core CPU); the attack itself takes a few seconds.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from _common import load_data, pyplot
from train import frozen_pretrained

import gradforge as torch
import gradforge.nn.functional as F

# Perturbation sizes in pixel units (a pixel is 0..1; 1/255 is one grey level).
EPSILONS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1)


def fgsm(model, x: torch.Tensor, y: torch.Tensor, epsilon: torch.Tensor, low: float,
         high: float) -> torch.Tensor:
    """``x + epsilon * sign(d loss / d x)``, kept inside the valid pixel range.

    Args:
        epsilon: per image, in the same (normalised) units as ``x``; shape (N,).
    """
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return (x + epsilon.view(-1, 1, 1, 1) * grad.sign()).clamp(low, high).detach()


def pick_examples(smallest: list[int], labels: list[int], confidence: list[float],
                  n: int) -> torch.Tensor:
    """Up to ``n`` flipped images: confidently classified ones (90% or more) first, the
    faintest perturbations first among them, one per class where possible."""
    order = sorted((c < 0.9, k, i) for i, (k, c) in enumerate(zip(smallest, confidence))
                   if k >= 0)
    order = [(k, i) for _, k, i in order]
    picked, classes = [], set()
    for _, i in order:
        if labels[i] not in classes and len(picked) < n:
            picked.append(i)
            classes.add(labels[i])
    picked += [i for _, i in order if i not in picked][:n - len(picked)]
    return torch.tensor(picked, dtype=torch.int64)


def main(argv=None) -> dict:
    """Attack a trained network; returns the accuracy per epsilon and the flipped examples."""
    parser = argparse.ArgumentParser(description="the fast gradient sign method")
    parser.add_argument("--checkpoint", help="best.safetensors of a train.py run "
                                             "(default: train the default CNN first)")
    parser.add_argument("--examples", type=int, default=6, help="images shown")
    parser.add_argument("--epochs", type=int, default=4,
                        help="epochs when training the network here")
    parser.add_argument("--limit", type=int,
                        help="train on, and attack, the first N images (smoke tests)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/adversarial")
    args = parser.parse_args(argv)

    model, settings, out = frozen_pretrained(args, "adversarial.py")
    device = next(model.parameters()).device
    # The images normalised exactly as the network saw them in training.
    data = load_data(settings["data_dir"], settings["limit"], device)
    low, high = -data.mean / data.std, (1 - data.mean) / data.std
    n = min(1000, args.limit or 1000)
    x, y = data.test_x[:n], data.test_y[:n]

    accuracy = {}
    with torch.no_grad():
        confidence, clean = F.softmax(model(x), dim=1).max(dim=1)
    accuracy[0.0] = (clean == y).float().mean().item()
    print(f"epsilon 0      test accuracy {100 * accuracy[0.0]:.1f}%")
    # The index in EPSILONS of the first epsilon that flips each image (-1: none does).
    smallest = torch.full((len(y),), -1, dtype=torch.int64)
    for k, eps in enumerate(EPSILONS):
        step = torch.full((len(y),), eps / data.std, device=device)
        adversarial = fgsm(model, x, y, step, low, high)
        with torch.no_grad():
            predicted = model(adversarial).argmax(dim=1)
        accuracy[eps] = (predicted == y).float().mean().item()
        flipped = ((predicted != y) & (clean == y)).cpu() & (smallest < 0)
        smallest = torch.where(flipped, torch.full_like(smallest, k), smallest)
        print(f"epsilon {eps:<6} test accuracy {100 * accuracy[eps]:.1f}%  "
              f"({eps * 255:.1f} grey levels)")

    chosen = pick_examples(smallest.tolist(), y.tolist(), confidence.tolist(), args.examples)
    if len(chosen) == 0:
        print("no image changed its prediction")
        return {"accuracy": accuracy, "examples": []}
    eps = [EPSILONS[k] for k in smallest[chosen].tolist()]
    xs, ys = x[chosen.to(device)], y[chosen.to(device)]
    adv = fgsm(model, xs, ys, torch.tensor(eps, device=device) / data.std, low, high)
    with torch.no_grad():
        p_clean = F.softmax(model(xs), dim=1).cpu()
        p_adv = F.softmax(model(adv), dim=1).cpu()
    examples = [{"epsilon": e, "label": data.classes[t],
                 "before": (data.classes[int(pc.argmax())], float(pc.max())),
                 "after": (data.classes[int(pa.argmax())], float(pa.max()))}
                for e, t, pc, pa in zip(eps, ys.tolist(), p_clean, p_adv)]
    for e in examples:
        print(f"{e['label']:>11}: {e['before'][0]} ({100 * e['before'][1]:.0f}%) -> "
              f"{e['after'][0]} ({100 * e['after'][1]:.0f}%) at epsilon {e['epsilon']}")
    pixels = (xs * data.std + data.mean).cpu().numpy()[:, 0]
    adv_pixels = (adv * data.std + data.mean).cpu().numpy()[:, 0]
    if plot(pixels, adv_pixels, examples, out / "adversarial.png"):
        print(f"saved {out / 'adversarial.png'}")
    return {"accuracy": accuracy, "examples": examples}


def plot(original, adversarial, examples: list[dict], path: Path) -> bool:
    """Three rows: original, perturbation (amplified, symmetric colours), result."""
    plt = pyplot()
    if plt is None:
        return False
    n = len(examples)
    fig, axes = plt.subplots(3, n, figsize=(2.3 * n + 0.8, 7.6), squeeze=False)
    for k, e in enumerate(examples):
        delta = adversarial[k] - original[k]
        m = max(abs(delta).max(), 1e-6)
        panels = ((original[k], "gray", 0, 1, f"{e['before'][0]} ({100 * e['before'][1]:.0f}%)"),
                  (delta, "RdBu_r", -m, m,
                   f"\u03b5 = {e['epsilon']:g} ({e['epsilon'] * 255:.1f}/255)"),
                  (adversarial[k], "gray", 0, 1, f"{e['after'][0]} ({100 * e['after'][1]:.0f}%)"))
        for row, (img, cmap, vmin, vmax, text) in enumerate(panels):
            ax = axes[row, k]
            ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(text, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, label in zip(axes[:, 0], ("original", "perturbation\n(amplified)", "adversarial")):
        ax.set_ylabel(label, fontsize=10)
    fig.suptitle("fast gradient sign method: predicted class (confidence)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


if __name__ == "__main__":
    main()
