"""The IDX file format of MNIST and Fashion-MNIST: reading (raw or gzipped) and writing.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, then ``ndim`` big-endian
uint32 dimensions, then the elements, big-endian, in C order. Type codes: 0x08 uint8,
0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np

__all__ = ["IDXFormatError", "read_idx", "write_idx"]

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("="): code for code, dt in _TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file (wrong magic, truncated, bad gzip stream)."""


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        # BadGzipFile is an OSError; a cut-off stream raises EOFError.
        raise IDXFormatError(f"{path}: broken gzip stream ({e}); the file is truncated or "
                             "corrupted") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """The array stored in an IDX file (gzipped or raw, detected from its first bytes).

    Raises:
        IDXFormatError: naming the file, for a wrong magic number, an unknown type code, or
            a size that does not match the dimensions (a truncated file).
    """
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[:2] != b"\x00\x00":
        raise IDXFormatError(f"{path}: not an IDX file (magic number "
                             f"0x{raw[:4].hex() or 'empty'} does not start with 0x0000)")
    code, ndim = raw[2], raw[3]
    if code not in _TYPES:
        raise IDXFormatError(f"{path}: unknown IDX element type 0x{code:02x} in magic number "
                             f"0x{raw[:4].hex()}")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise IDXFormatError(f"{path}: truncated IDX header ({len(raw)} bytes, {head} needed "
                             f"for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, offset=4))
    dt = _TYPES[code]
    need = math.prod(shape) * dt.itemsize
    if len(raw) - head != need:
        state = "truncated" if len(raw) - head < need else "longer than its header says"
        raise IDXFormatError(f"{path}: IDX data is {state}: shape {list(shape)} of "
                             f"{dt.newbyteorder('=').name} needs {need} bytes after the "
                             f"header, found {len(raw) - head}")
    return np.frombuffer(raw, dt, offset=head).reshape(shape).astype(dt.newbyteorder("="))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool = True) -> None:
    """Write ``array`` as an IDX file, gzipped (reproducibly: no timestamp) by default."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"IDX cannot store dtype {array.dtype}")
    if array.ndim > 255:
        raise ValueError(f"IDX stores at most 255 dimensions, got {array.ndim}")
    head = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    body = head + np.ascontiguousarray(array, _TYPES[code]).tobytes()
    with open(path, "wb") as fh:
        if compress:
            with gzip.GzipFile(fileobj=fh, mode="wb", compresslevel=9, mtime=0) as gz:
                gz.write(body)
        else:
            fh.write(body)
