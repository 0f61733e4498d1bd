"""MNIST and Fashion-MNIST from their standard IDX files, as torchvision names them.

``FashionMNIST()`` without a folder reads the subset of Fashion-MNIST embedded in gradforge
(``gradforge/datasets/data``): 10,000 training and 2,000 test images, class-balanced, drawn
from the original files by ``python -m gradforge.datasets.make_embedded``. Fashion-MNIST is
Copyright 2017 Zalando SE and distributed under the MIT licence; the notice ships next to
the data (``data/LICENSE-fashion-mnist``).
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..backend import CPU
from ..tensor import Tensor
from ..utils.data import Dataset
from .idx import IDXFormatError, read_idx

__all__ = ["EMBEDDED_DIR", "MNIST", "FashionMNIST"]

EMBEDDED_DIR = Path(__file__).parent / "data"
_SPLITS = {True: "train", False: "t10k"}
_IMAGE_MAGIC, _LABEL_MAGIC = 0x00000803, 0x00000801


def _find(root: Path, name: str, kind: str) -> Path:
    """``root/name[.gz]``, also under torchvision's ``root/<Dataset>/raw`` layout."""
    places = [root, root / kind / "raw", root / kind]
    for place in places:
        for candidate in (place / name, place / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(
        f"{kind}: no {name} or {name}.gz in {', '.join(str(p) for p in places)}. gradforge does "
        "not download datasets; on Debian, `apt-get install dataset-fashion-mnist` puts "
        "Fashion-MNIST in /usr/share/datasets/fashion-mnist")


class MNIST(Dataset):
    """Handwritten digits (28x28 grey images, 10 classes) read from the standard IDX files.

    Args:
        root: a folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
            ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or gzipped
            (``.gz``); torchvision's ``root/MNIST/raw`` layout works too.
        train: the training split (else the test split).
        transform: applied to each image tensor (float32, 1x28x28, values in [0, 1]).
        target_transform: applied to each label (an int).
        download: accepted for torchvision compatibility; nothing is downloaded, so the
            files must already be there.

    Attributes:
        data: all images, uint8 (N, 28, 28), as torchvision has them.
        targets: all labels, int64 (N,).
    """

    classes: ClassVar[list[str]] = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
                                    "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False):
        if root is None:
            root = self._default_root()
        self.root = Path(root)
        self.train = train
        self.transform = transform
        self.target_transform = target_transform
        kind, split = type(self).__name__, _SPLITS[bool(train)]
        images_file = _find(self.root, f"{split}-images-idx3-ubyte", kind)
        labels_file = _find(self.root, f"{split}-labels-idx1-ubyte", kind)
        images = _read_checked(images_file, _IMAGE_MAGIC, 3)
        labels = _read_checked(labels_file, _LABEL_MAGIC, 1)
        if len(images) != len(labels):
            raise IDXFormatError(f"{images_file} holds {len(images)} images but {labels_file} "
                                 f"holds {len(labels)} labels")
        if labels.size and labels.max() >= len(self.classes):
            raise IDXFormatError(f"{labels_file}: label {int(labels.max())} is out of range "
                                 f"for {len(self.classes)} classes")
        self.data = Tensor._make(images, CPU)
        self.targets = Tensor._make(labels.astype(np.int64), CPU)

    @classmethod
    def _default_root(cls) -> Path:
        raise ValueError(f"{cls.__name__} needs root=: a folder with the IDX files (only "
                         "FashionMNIST has an embedded default)")

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int):
        # NOTE: divided by 255 in float32 exactly like torchvision's ToTensor, so pixels
        # match torch bit for bit.
        image = Tensor._make(self.data._data[index][None].astype(np.float32) / np.float32(255),
                             CPU)
        target = int(self.targets._data[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def tensors(self) -> tuple[Tensor, Tensor]:
        """The whole split at once: images float32 (N, 1, 28, 28) in [0, 1], labels int64.

        The fast path for training loops that batch by slicing; no transform is applied.
        """
        images = self.data._data[:, None].astype(np.float32) / np.float32(255)
        return Tensor._make(images, CPU), Tensor._make(self.targets._data.copy(), CPU)

    def __repr__(self) -> str:
        split = "Train" if self.train else "Test"
        return (f"Dataset {type(self).__name__}\n    Number of datapoints: {len(self)}\n"
                f"    Root location: {self.root}\n    Split: {split}")


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST (28x28 grey images of clothing, 10 classes).

    Same files and arguments as ``MNIST``; with ``root=None`` it reads the class-balanced
    subset embedded in gradforge (10,000 train / 2,000 test images; Copyright 2017 Zalando
    SE, MIT licence).
    """

    classes: ClassVar[list[str]] = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

    @classmethod
    def _default_root(cls) -> Path:
        return EMBEDDED_DIR


def _read_checked(path: Path, magic: int, ndim: int) -> np.ndarray:
    array = read_idx(path)
    if array.dtype != np.uint8 or array.ndim != ndim:
        found = f"{array.dtype} with {array.ndim} dimensions"
        raise IDXFormatError(f"{path}: expected magic 0x{magic:08x} (uint8, {ndim} "
                             f"dimension{'s' if ndim > 1 else ''}), found {found}")
    if ndim == 3 and array.shape[1:] != (28, 28):
        raise IDXFormatError(f"{path}: expected 28x28 images, found {array.shape[1]}x"
                             f"{array.shape[2]}")
    return array
