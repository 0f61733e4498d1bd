"""Train a network on Fashion-MNIST from one command, and save what it learned.

    python examples/train.py                            # small CNN, embedded data subset
    python examples/train.py --model resnet --augment --epochs 15
    python examples/train.py --data-dir /usr/share/datasets/fashion-mnist --epochs 10
    python examples/train.py --resume runs/latest/last.safetensors   # continue a stopped run

By default a small convolutional network (conv-BN-ReLU-max-pool blocks, then fully
connected) trains on the Fashion-MNIST subset embedded in gradforge, on the GPU when there
is one, else on the CPU: a few epochs, about a minute on a 2-core CPU. Each epoch shows a
progress bar (running loss, images/s) and ends with a summary line. The run directory
(``--out``; by default ``runs/<date-time>``, also reachable as ``runs/latest``) receives:

    best.safetensors   the checkpoint of the epoch with the best test accuracy
    last.safetensors   the latest state: end of an epoch, or where Ctrl-C stopped the run
    metrics.json       the settings and the metrics of every epoch
    curves.png, confusion.png, filters.png             (when matplotlib is installed)

Ctrl-C finishes the current step, saves ``last.safetensors`` and exits; ``--resume`` then
continues exactly as if the run had not stopped: same weights, optimizer and scheduler
state, random generators and data order. ``python examples/train.py --help`` lists the
options. Scripts can call ``main([...])`` with the same arguments.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
from _common import (
    Data,
    Progress,
    UsageError,
    augment,
    evaluate,
    load_data,
    pick_device,
    save_run_plots,
)
from lenet_fashion_mnist import LeNet5
from mlp_fashion_mnist import mlp
from resnet_fashion_mnist import ResNet

import gradforge
import gradforge.nn.functional as F
from gradforge import nn
from gradforge.utils.data import DataLoader, TensorDataset

MODELS = ("mlp", "lenet", "cnn", "resnet")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("onecycle", "cosine", "step", "none")
# Settings of a run. Options left out on the command line take these values; a resumed run
# takes them from its checkpoint instead.
DEFAULTS = {"model": "cnn", "data_dir": None, "epochs": 5, "batch_size": 128, "lr": None,
            "optimizer": "adamw", "scheduler": "onecycle", "augment": False, "seed": 0,
            "limit": None}
DEFAULT_LR = {"sgd": 0.05, "adam": 3e-3, "adamw": 3e-3}
WEIGHT_DECAY = {"sgd": 5e-4, "adam": 0.0, "adamw": 0.01}
# Only these may accompany --resume: the rest would make the continuation differ.
RESUME_OVERRIDES = ("epochs",)


# -- models -------------------------------------------------------------------------------------
def cnn(width: int = 24) -> nn.Module:
    """Two conv-BN-ReLU-max-pool blocks (28 -> 14 -> 7 pixels), then fully connected."""
    def block(c_in: int, c_out: int) -> list:
        # No conv bias: the BatchNorm that follows subtracts the mean and adds its own shift.
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, width), *block(width, 2 * width), nn.Flatten(),
                         nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def build_model(name: str) -> nn.Module:
    """The network called ``name`` (one of ``MODELS``), freshly initialised."""
    builders = {"mlp": mlp, "lenet": LeNet5, "cnn": cnn, "resnet": ResNet}
    return builders[name]()


def build_optimizer(settings: dict, model: nn.Module):
    name, lr = settings["optimizer"], settings["lr"]
    params, wd = model.parameters(), WEIGHT_DECAY[name]
    if name == "sgd":
        return gradforge.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)
    if name == "adam":
        return gradforge.optim.Adam(params, lr=lr, weight_decay=wd)
    return gradforge.optim.AdamW(params, lr=lr, weight_decay=wd)


def build_scheduler(settings: dict, optimizer, steps_per_epoch: int):
    """A learning-rate schedule over the whole run, stepped after every batch (or None)."""
    total = settings["epochs"] * steps_per_epoch
    sched = gradforge.optim.lr_scheduler
    if settings["scheduler"] == "onecycle":
        return sched.OneCycleLR(optimizer, max_lr=settings["lr"], total_steps=total)
    if settings["scheduler"] == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=total)
    if settings["scheduler"] == "step":
        return sched.MultiStepLR(optimizer, [total // 2, total * 3 // 4], gamma=0.1)
    return None


# -- command line -------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit status 2 (no usage dump)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") \
                from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value
    return parse


def parse_args(argv=None) -> argparse.Namespace:
    p = _Parser(prog="train.py", description=__doc__.split("\n\n")[0],
                epilog="Defaults: " + ", ".join(f"{k}={v}" for k, v in DEFAULTS.items()))
    p.add_argument("--model", choices=MODELS, help="the network (default: cnn)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="folder with the four IDX files of MNIST or Fashion-MNIST "
                        "(default: the subset embedded in gradforge)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--epochs", type=_positive(int))
    p.add_argument("--batch-size", type=_positive(int))
    p.add_argument("--lr", type=_positive(float),
                   help="peak learning rate (default: 0.05 for sgd, 0.003 for adam/adamw)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="default: adamw")
    p.add_argument("--scheduler", choices=SCHEDULERS,
                   help="learning-rate schedule, stepped every batch (default: onecycle)")
    p.add_argument("--augment", action="store_const", const=True,
                   help="random crops (2-pixel padding) and horizontal flips")
    p.add_argument("--seed", type=int, help="seeds weights, data order and augmentation")
    p.add_argument("--limit", type=_positive(int), metavar="N",
                   help="use only the first N train and N test images (smoke tests)")
    p.add_argument("--out", metavar="DIR",
                   help="run directory (default: runs/<date-time>, linked as runs/latest)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT (its last.safetensors)")
    return p.parse_args(argv)


def settings_of(args: argparse.Namespace, checkpoint: dict | None) -> dict:
    """The run's settings: the checkpoint's when resuming, else the command line's."""
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    if checkpoint is None:
        settings = {**DEFAULTS, **given}
    else:
        extra = sorted(f"--{k.replace('_', '-')}" for k in given if k not in RESUME_OVERRIDES)
        if extra:
            raise UsageError(f"--resume continues a run with its own settings; remove "
                             f"{', '.join(extra)} (only --epochs, --device and --out may change)")
        settings = {**json.loads(checkpoint["settings"]), **given}
    if settings["lr"] is None:
        settings["lr"] = DEFAULT_LR[settings["optimizer"]]
    return settings


# -- checkpoints --------------------------------------------------------------------------------
class Run:
    """Everything a run needs to continue exactly: the position, the metrics, the RNG states."""

    def __init__(self, settings: dict, model, optimizer, scheduler, data_rng, device):
        self.settings, self.model, self.optimizer, self.scheduler = (settings, model, optimizer,
                                                                     scheduler)
        self.data_rng = data_rng  # augmentation draws (the data order is reseeded per epoch)
        self.device = device
        self.epoch, self.batch = 0, 0  # the next batch to train
        self.partial = {"loss": 0.0, "images": 0, "seconds": 0.0}  # the epoch so far
        self.history: list[dict] = []
        self.best: dict = {"test_acc": -1.0}

    def state(self) -> dict:
        """The checkpoint: tensors (weights, optimizer state, RNGs) and plain values."""
        # The global generators serve layers that draw during training (dropout), on the
        # CPU or on the GPU.
        rng = (gradforge.cuda.get_rng_state(self.device) if self.device.type == "cuda"
               else gradforge.get_rng_state())
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else {},
                "rng": rng, "rng_device": self.device.type,
                "data_rng": self.data_rng.get_state(), "epoch": self.epoch, "batch": self.batch,
                # Plain values as JSON text: they round-trip exactly, whatever their shape.
                "settings": json.dumps(self.settings), "partial": json.dumps(self.partial),
                "history": json.dumps(self.history), "best": json.dumps(self.best)}

    def restore(self, ckpt: dict) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        # On another kind of device the random streams differ anyway: keep the fresh seed.
        if ckpt["rng_device"] == self.device.type == "cuda":
            gradforge.cuda.set_rng_state(ckpt["rng"], self.device)
        elif ckpt["rng_device"] == self.device.type:
            gradforge.set_rng_state(ckpt["rng"])
        self.data_rng.set_state(ckpt["data_rng"])
        self.epoch, self.batch = int(ckpt["epoch"]), int(ckpt["batch"])
        self.partial = json.loads(ckpt["partial"])
        self.history = json.loads(ckpt["history"])
        self.best = json.loads(ckpt["best"])


def load_checkpoint(path: str, device) -> dict:
    if not Path(path).is_file():
        raise UsageError(f"--resume {path}: no such file")
    try:
        return gradforge.load(path, map_location=device)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise UsageError(f"--resume {path}: {str(e).splitlines()[0]}") from None


def load_model(path: str, device="cpu") -> tuple[nn.Module, dict]:
    """The trained network saved by this script (``best.safetensors``), in eval mode.

    Returns:
        ``(model, settings)``: the settings say how it was trained (model name, data ...).
    """
    checkpoint = load_checkpoint(path, device)
    settings = json.loads(checkpoint["settings"])
    model = build_model(settings["model"]).to(device)
    model.load_state_dict(checkpoint["model"])
    return model.eval(), settings


def pretrained(checkpoint: str | None, out: Path, epochs: int, limit: int | None,
               device: str) -> tuple[nn.Module, dict]:
    """``load_model(checkpoint)``, or a default CNN trained now for ``epochs`` in ``out``."""
    if checkpoint is None:
        argv = ["--epochs", str(epochs), "--out", str(out), "--device", str(device)]
        if limit is not None:
            argv += ["--limit", str(limit)]
        print(f"no --checkpoint given: training the default network first ({' '.join(argv)})")
        if main(argv) != 0:
            raise UsageError("training the network failed")
        checkpoint = str(out / "best.safetensors")
    return load_model(checkpoint, pick_device(device))


def frozen_pretrained(args: argparse.Namespace, prog: str) -> tuple[nn.Module, dict, Path]:
    """For the examples that study a trained network: ``--out`` created, the network from
    ``--checkpoint`` (or trained now) with its parameters frozen, or a one-line error."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        model, settings = pretrained(args.checkpoint, out / "network", args.epochs, args.limit,
                                     args.device)
    except UsageError as e:
        raise SystemExit(f"{prog}: error: {e}") from None
    model.requires_grad_(False)   # gradients flow to the input only
    return model, settings, out


def run_directory(args: argparse.Namespace) -> Path:
    """``--out``, the resumed run's folder, or a new ``runs/<date-time>`` linked as latest."""
    if args.out:
        out = Path(args.out)
    elif args.resume:
        out = Path(args.resume).parent
    else:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("runs") / stamp
        for n in itertools.count(2):
            if not out.exists():
                break
            out = Path("runs") / f"{stamp}-{n}"
        out.mkdir(parents=True)
        latest, tmp = Path("runs") / "latest", Path("runs") / f".latest-{os.getpid()}"
        try:
            os.symlink(out.name, tmp)
            os.replace(tmp, latest)
        except OSError:
            pass  # no symlinks on this file system: runs/<date-time> is still there
    out.mkdir(parents=True, exist_ok=True)
    return out


class StopOnInterrupt:
    """Ctrl-C asks the loop to stop after the current step; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: saving a checkpoint after this step (press again to quit now)",
              file=sys.stderr, flush=True)

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:
            pass  # not the main thread: Ctrl-C cannot reach us here anyway
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


# -- training -----------------------------------------------------------------------------------
def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's data order: a function of the run's seed and the epoch only,
    so a resumed run rebuilds the order of the epoch it stopped in."""
    return int(np.random.SeedSequence([seed & (2**64 - 1), epoch]).generate_state(1, np.uint64)[0])


def train_epoch(run: Run, data: Data, stop: StopOnInterrupt) -> bool:
    """Train from batch ``run.batch`` to the end of epoch ``run.epoch``.

    Returns:
        False when Ctrl-C stopped the epoch early (the position is in ``run``).
    """
    s, model, optimizer, scheduler = run.settings, run.model, run.optimizer, run.scheduler
    order = gradforge.Generator().manual_seed(epoch_seed(s["seed"], run.epoch))
    loader = DataLoader(TensorDataset(data.train_x, data.train_y), batch_size=s["batch_size"],
                        shuffle=True, generator=order)
    progress = Progress(len(loader), f"epoch {run.epoch + 1}/{s['epochs']}")
    images = run.partial["images"]
    loss_sum = gradforge.tensor(run.partial["loss"], device=data.train_x.device)
    start = time.perf_counter() - run.partial["seconds"]
    model.train()
    try:
        for x, y in itertools.islice(loader, run.batch, None):
            if s["augment"]:
                x = augment(x, run.data_rng)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            run.batch += 1
            images += len(y)
            # Summed on the device; read (a GPU sync) only when the progress bar shows it.
            loss_sum += loss.detach() * len(y)
            progress.update(len(y), lambda total=loss_sum, n=images: total.item() / n)
            if stop.requested:
                break
    finally:
        progress.close()
        run.partial = {"loss": loss_sum.item(), "images": images,
                       "seconds": time.perf_counter() - start}
    return run.batch == len(loader) and not stop.requested


def finish_epoch(run: Run, data: Data, device) -> bool:
    """Evaluate, record the epoch's metrics and move on; True when it is the best so far."""
    test_loss, test_acc, predicted = evaluate(run.model, data.test_x, data.test_y)
    p = run.partial
    entry = {"epoch": run.epoch + 1, "train_loss": p["loss"] / max(p["images"], 1),
             "test_loss": test_loss, "test_acc": test_acc,
             "images_per_s": p["images"] / max(p["seconds"], 1e-9),
             "train_seconds": p["seconds"], "lr": run.optimizer.param_groups[0]["lr"]}
    run.history.append(entry)
    is_best = test_acc > run.best["test_acc"]
    if is_best:
        labels = data.test_y.cpu().numpy()
        k = len(data.classes)
        confusion = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
        run.best = {"epoch": run.epoch + 1, "test_acc": test_acc, "test_loss": test_loss,
                    "confusion": confusion.tolist()}
    run.epoch, run.batch = run.epoch + 1, 0
    run.partial = {"loss": 0.0, "images": 0, "seconds": 0.0}
    print(f"epoch {entry['epoch']}/{run.settings['epochs']}  "
          f"train loss {entry['train_loss']:.4f}  test loss {test_loss:.4f}  "
          f"test acc {100 * test_acc:.2f}%  {entry['images_per_s']:.0f} img/s  {device}  "
          f"{entry['train_seconds']:.1f} s" + ("  *best" if is_best else ""), flush=True)
    return is_best


def main(argv=None) -> int:
    """Run the job; returns the exit status (0 done, 2 bad arguments, 130 interrupted)."""
    args = parse_args(argv)
    try:
        return train(args)
    except UsageError as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def train(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    checkpoint = load_checkpoint(args.resume, device) if args.resume else None
    s = settings_of(args, checkpoint)
    gradforge.manual_seed(s["seed"])
    data = load_data(s["data_dir"], s["limit"], device)
    model = build_model(s["model"]).to(device)
    optimizer = build_optimizer(s, model)
    steps_per_epoch = math.ceil(data.train_x.shape[0] / s["batch_size"])
    scheduler = build_scheduler(s, optimizer, steps_per_epoch)
    run = Run(s, model, optimizer, scheduler, gradforge.Generator().manual_seed(s["seed"]),
              device)
    if checkpoint is not None:
        planned = json.loads(checkpoint["settings"])["epochs"]
        if s["epochs"] != planned and s["scheduler"] != "none":
            raise UsageError(f"--epochs: the {s['scheduler']} schedule of this run was planned "
                             f"for {planned} epochs; resume without --epochs (or train with "
                             "--scheduler none to extend runs)")
        run.restore(checkpoint)
        if run.epoch >= s["epochs"]:
            print(f"{args.resume}: this run already finished its {s['epochs']} epochs")
            return 0
    out = run_directory(args)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"gradforge {gradforge.__version__}: {s['model']} ({n_params:,} parameters) on "
          f"{device}, {s['optimizer']} lr {s['lr']:g} ({s['scheduler']}), batch "
          f"{s['batch_size']}, {s['epochs']} epochs{', augmented' if s['augment'] else ''}")
    print(f"data: {data.source}, {data.train_x.shape[0]:,} train / {data.test_x.shape[0]:,} "
          f"test images; saving to {out}" +
          (f"; resuming at epoch {run.epoch + 1}, batch {run.batch}" if checkpoint else ""),
          flush=True)
    with StopOnInterrupt() as stop:
        while run.epoch < s["epochs"]:
            if not train_epoch(run, data, stop):
                gradforge.save(run.state(), out / "last.safetensors")
                write_metrics(run, data, device, out)
                print(f"stopped in epoch {run.epoch + 1} after batch {run.batch}; saved "
                      f"{out / 'last.safetensors'}\ncontinue with: python examples/train.py "
                      f"--resume {out / 'last.safetensors'}", flush=True)
                return 130
            is_best = finish_epoch(run, data, device)
            gradforge.save(run.state(), out / "last.safetensors")
            if is_best:
                gradforge.save(run.state(), out / "best.safetensors")
            write_metrics(run, data, device, out)
    plots = save_run_plots(run.history, run.best, data.classes, model,
                           f"{s['model']} on {data.source}", out)
    best = run.best
    print(f"best test accuracy {100 * best['test_acc']:.2f}% (epoch {best['epoch']}); "
          f"saved {', '.join(['best.safetensors', 'metrics.json'] + plots)} in {out}")
    return 0


# -- reports ------------------------------------------------------------------------------------
def write_metrics(run: Run, data: Data, device, out: Path) -> None:
    n_params = sum(p.numel() for p in run.model.parameters())
    metrics = {"settings": run.settings, "device": str(device), "parameters": n_params,
               "gradforge": gradforge.__version__,
               "data": {"source": data.source, "train": data.train_x.shape[0],
                        "test": data.test_x.shape[0], "classes": list(data.classes)},
               "epochs": run.history, "best": run.best}
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1) + "\n")
    os.replace(tmp, out / "metrics.json")


if __name__ == "__main__":
    sys.exit(main())
