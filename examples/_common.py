"""What the examples share: the data as tensors, augmentation, the device, progress, plots.

The examples import it by name (``from _common import load_data``): Python puts a script's
own folder on the import path, so ``python examples/<name>.py`` works from any directory.
Everything here is ordinary user code on gradforge's public API; NumPy appears only for
metrics and pictures, never in the model.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gradforge
import gradforge.nn.functional as F
from gradforge import nn

FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
DIGIT_CLASSES = tuple(str(d) for d in range(10))


class UsageError(Exception):
    """A problem with the user's arguments or files: reported in one line, no traceback."""


# -- device and data ----------------------------------------------------------------------------
def pick_device(name: str = "auto") -> gradforge.device:
    """``auto`` is cuda when a GPU is usable, else cpu; ``cuda`` without one says why."""
    if name == "auto":
        return gradforge.device("cuda" if gradforge.cuda.is_available() else "cpu")
    try:
        device = gradforge.device(name)
    except ValueError as e:
        raise UsageError(f"--device {name!r}: {e}") from None
    if device.type == "cuda" and not gradforge.cuda.is_available():
        _, why = gradforge.backend.cuda.status()
        raise UsageError(f"--device {name}: CUDA is not available: {why}")
    return device


@dataclass
class Data:
    """Train and test images as normalised float32 tensors (N, 1, 28, 28) with int64 labels."""

    train_x: gradforge.Tensor
    train_y: gradforge.Tensor
    test_x: gradforge.Tensor
    test_y: gradforge.Tensor
    classes: tuple
    source: str
    mean: float
    std: float


def load_data(data_dir: str | None = None, limit: int | None = None,
              device="cpu") -> Data:
    """Fashion-MNIST (or MNIST) as tensors on ``device``, normalised by the train statistics.

    Args:
        data_dir: a folder with the four standard IDX files (gzipped or not) of MNIST or
            Fashion-MNIST; ``None`` uses the subset of Fashion-MNIST embedded in gradforge.
        limit: keep only the first ``limit`` train and test images (smoke tests).
        device: where the tensors go (the whole set fits easily in GPU memory).
    """
    from gradforge.datasets import FashionMNIST

    if data_dir is not None and not Path(data_dir).is_dir():
        raise UsageError(f"--data-dir {data_dir}: no such directory")
    try:
        train = FashionMNIST(data_dir, train=True)
        test = FashionMNIST(data_dir, train=False)
    except (OSError, ValueError, RuntimeError) as e:
        raise UsageError(f"--data-dir {data_dir}: {_first_line(e)}") from None
    train_x, train_y = train.data[:limit], train.targets[:limit]
    test_x, test_y = test.data[:limit], test.targets[:limit]
    pixels = train_x.to(gradforge.float32) / 255
    mean, std = pixels.mean().item(), pixels.std().item()
    # MNIST and Fashion-MNIST share file names and format; the ink differs: digits cover
    # about 13% of the square on average, clothes about 29%.
    classes = DIGIT_CLASSES if data_dir is not None and mean < 0.2 else FASHION_CLASSES

    def images(x):
        return ((x.to(gradforge.float32) / 255 - mean) / std).unsqueeze(1).to(device)

    source = "embedded Fashion-MNIST subset" if data_dir is None else str(data_dir)
    return Data(images(train_x), train_y.to(gradforge.int64).to(device), images(test_x),
                test_y.to(gradforge.int64).to(device), classes, source, mean, std)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def augment(x: gradforge.Tensor, generator: gradforge.Generator, pad: int = 2) -> gradforge.Tensor:
    """Random crops (zero padding ``pad``) and horizontal flips of a batch, in one gather.

    Every image gets its own shift and flip; all images are transformed together by one
    advanced-indexing gather, so the cost does not grow with Python loops over the batch.
    The random numbers are drawn on the CPU from ``generator`` (whose state a checkpoint can
    save) and only the small index tensors move to the batch's device.

    Shape:
        x: (N, C, H, W); output: the same.
    """
    n, _, h, w = x.shape
    shift_y = gradforge.randint(-pad, pad + 1, (n, 1, 1), generator=generator)
    shift_x = gradforge.randint(-pad, pad + 1, (n, 1, 1), generator=generator)
    flip = gradforge.rand(n, 1, 1, generator=generator) < 0.5
    rows = shift_y + gradforge.arange(h).view(1, h, 1)                       # (n, h, 1)
    cols = gradforge.arange(w).view(1, 1, w)
    cols = gradforge.where(flip, w - 1 - cols, cols) + shift_x               # (n, 1, w)
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)             # (n, h, w)
    batch = gradforge.arange(n).view(n, 1, 1)
    rows, cols = rows.clamp(0, h - 1), cols.clamp(0, w - 1)
    dev = x.device
    out = x.permute(0, 2, 3, 1)[batch.to(dev), rows.to(dev), cols.to(dev)]   # (n, h, w, c)
    out = out * inside.unsqueeze(-1).to(dev, x.dtype)  # the shifted-in border is zero padding
    return out.permute(0, 3, 1, 2).contiguous()


def evaluate(model, x: gradforge.Tensor, y: gradforge.Tensor,
             batch_size: int = 500) -> tuple[float, float, np.ndarray]:
    """Mean cross-entropy, accuracy and the predicted labels of ``model`` on ``(x, y)``.

    Runs in eval mode (BatchNorm uses its running statistics) and restores the mode after.
    """
    was_training = model.training
    model.eval()
    loss_sum, predictions = 0.0, []
    with gradforge.no_grad():
        for i in range(0, x.shape[0], batch_size):
            logits = model(x[i:i + batch_size])
            loss_sum += F.cross_entropy(logits, y[i:i + batch_size], reduction="sum").item()
            predictions.append(logits.argmax(dim=1).cpu().numpy())
    model.train(was_training)
    predicted = np.concatenate(predictions)
    accuracy = float((predicted == y.cpu().numpy()).mean())
    return loss_sum / x.shape[0], accuracy, predicted


# -- progress -----------------------------------------------------------------------------------
class Progress:
    """One epoch's progress: a tqdm bar on a terminal (when installed), else a few plain lines.

    ``update(images, loss)`` takes a callable for the running loss, so the loss is read from
    the device (a synchronisation on a GPU) only when it is shown.
    """

    def __init__(self, total: int, desc: str, stream=None):
        self.total, self.desc = total, desc
        self.stream = stream if stream is not None else sys.stdout
        self.done, self.images = 0, 0
        self.start = self._last_shown = time.perf_counter()
        self._bar = None
        if self.stream.isatty():
            try:
                from tqdm import tqdm
            except ImportError:
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(total=total, desc=desc, unit="batch", leave=False,
                                 file=self.stream, dynamic_ncols=True)
        # Plain output: a line at each quarter of the epoch, or every 10 s on long epochs.
        self._marks = {math.ceil(total * k / 4) for k in (1, 2, 3)}

    @property
    def rate(self) -> float:
        """Images per second so far."""
        return self.images / max(time.perf_counter() - self.start, 1e-9)

    def update(self, images: int, loss) -> None:
        self.done += 1
        self.images += images
        now = time.perf_counter()
        if self._bar is not None:
            if now - self._last_shown > 0.2 or self.done == self.total:
                self._bar.set_postfix_str(f"loss {loss():.4f}, {self.rate:.0f} img/s",
                                          refresh=False)
                self._last_shown = now
            self._bar.update()
        elif self.done in self._marks or now - self._last_shown > 10:
            width = len(str(self.total))
            print(f"{self.desc} [{self.done:>{width}}/{self.total}] loss {loss():.4f} "
                  f"{self.rate:.0f} img/s", file=self.stream, flush=True)
            self._last_shown = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- pictures -----------------------------------------------------------------------------------
def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_image_grid(images, path, titles=None, ncols: int | None = None,
                    title: str | None = None, cmap: str = "gray", symmetric: bool = False,
                    value_range: tuple | None = None) -> bool:
    """Save images (K, H, W) as one PNG grid; each image scaled to its own range by default.

    Args:
        images: an array (K, H, W) or a list of 2-D arrays; a None leaves its cell empty.
        symmetric: scale each image to ``[-m, m]`` with ``m`` its largest magnitude (for
            weights and perturbations, so that zero is always the same colour).
        value_range: ``(low, high)`` shared by all images (pixels: the same grey means the
            same value everywhere).

    Returns:
        False when matplotlib is not installed (nothing is written).
    """
    plt = pyplot()
    if plt is None:
        return False
    k = len(images)
    ncols = ncols or math.ceil(math.sqrt(k))
    nrows = math.ceil(k / ncols)
    size = 1.3 if titles is None else 1.8
    row = size if titles is None else size + 0.3   # room for the titles
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, row * nrows + 0.6),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= k or images[i] is None:
            ax.axis("off")
            continue
        # A thin frame, and no ticks: a uniform image still shows where it is.
        ax.set_xticks([])
        ax.set_yticks([])
        img = images[i]
        if symmetric:
            m = float(np.abs(img).max()) or 1.0
            ax.imshow(img, cmap=cmap, vmin=-m, vmax=m)
        elif value_range is not None:
            ax.imshow(img, cmap=cmap, vmin=value_range[0], vmax=value_range[1])
        else:
            ax.imshow(img, cmap=cmap)
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def save_run_plots(history: list[dict], best: dict, classes, model, title: str,
                   out: Path) -> list[str]:
    """A training run in pictures: ``curves.png`` (loss and accuracy per epoch),
    ``confusion.png`` (the best epoch's confusion matrix), ``filters.png`` (the first layer).

    Args:
        history: one dict per epoch with ``epoch``, ``train_loss``, ``test_loss``,
            ``test_acc``; best: ``epoch``, ``test_acc`` and ``confusion`` (a k x k list).

    Returns:
        The names of the files written (none without matplotlib).
    """
    plt = pyplot()
    if plt is None or not history:
        return []
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["test_loss"] for h in history], "o-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_loss.legend()
    ax_acc.plot(epochs, [100 * h["test_acc"] for h in history], "o-", color="C2")
    ax_acc.set(xlabel="epoch", ylabel="%", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)
    plt.close(fig)

    confusion = np.array(best["confusion"])
    k = len(classes)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            if confusion[i, j]:
                ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set(xlabel="predicted", ylabel="true",
           title=f"confusion matrix, epoch {best['epoch']} "
                 f"(test accuracy {100 * best['test_acc']:.1f}%)")
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=120)
    plt.close(fig)

    names = ["curves.png", "confusion.png"]
    if save_first_layer(model, out / "filters.png"):
        names.append("filters.png")
    return names


def save_first_layer(model: nn.Module, path: Path) -> bool:
    """The first layer's weights as images: conv kernels, or a Linear layer's input weights."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            w = module.weight.detach().cpu().numpy()
            return save_image_grid(w[:, 0], path, symmetric=True, cmap="RdBu_r",
                                   title=f"first layer: {w.shape[0]} conv filters "
                                         f"{w.shape[2]}x{w.shape[3]} (red +, blue -)")
        if isinstance(module, nn.Linear):
            w = module.weight.detach().cpu().numpy()[:64]
            return save_image_grid(w.reshape(-1, 28, 28), path, symmetric=True, cmap="RdBu_r",
                                   title=f"first layer: input weights of {len(w)} units "
                                         "(red +, blue -)")
    return False
