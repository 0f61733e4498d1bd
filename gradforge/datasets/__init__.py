"""``gradforge.datasets``: MNIST and Fashion-MNIST from IDX files, and a few transforms.

``FashionMNIST()`` with no folder loads a class-balanced subset of Fashion-MNIST embedded in
the package (10,000 train / 2,000 test images). Fashion-MNIST is Copyright 2017 Zalando SE,
released under the MIT licence; its notice ships with the data in
``gradforge/datasets/data/LICENSE-fashion-mnist``.
"""
from . import transforms
from .idx import IDXFormatError, read_idx, write_idx
from .mnist import EMBEDDED_DIR, MNIST, FashionMNIST

__all__ = ["EMBEDDED_DIR", "MNIST", "FashionMNIST", "IDXFormatError", "read_idx", "transforms",
           "write_idx"]
