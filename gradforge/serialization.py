"""Checkpoints: ``gradforge.save`` and ``gradforge.load``, in the safetensors format, no pickle.

A checkpoint is a valid safetensors file: an 8-byte little-endian header length, a JSON
header naming every tensor (``dtype``, ``shape``, ``data_offsets``), then the raw
little-endian tensor bytes. Tensors are named by their dotted path in the saved object
(``fc1.weight``, ``state.0.momentum_buffer``), so ``safetensors.numpy.load_file`` reads a
saved ``state_dict`` as the same dict. The header's ``__metadata__`` holds, as JSON strings,

- ``gradforge.structure``: the object tree (dicts with any scalar keys, lists, tuples, plain
  values), with tensors replaced by references to their names; and
- ``gradforge.crc32``: a checksum per tensor, so corrupted bytes are detected.

Loading builds objects only from that closed set of types, so a file can never run code. A
safetensors file written by another tool loads as a ``{name: tensor}`` dict. Every field is
validated before any tensor is created: a bad file raises ``CheckpointError`` naming it and
nothing is half-loaded. Saving to a path is atomic: the bytes go to a temporary file in the
same directory, which is flushed, fsynced and renamed over the target.
"""
from __future__ import annotations

import json
import math
import os
import secrets
import struct
import zlib
from collections import OrderedDict

import numpy as np
from numpy.lib.array_utils import byte_bounds

from .backend import CPU, as_device
from .backend import cuda as cuda_backend
from .backend.device import device as Device
from .backend.dtypes import dtype as DType
from .backend.dtypes import to_dtype
from .nn.parameter import Parameter
from .tensor import Tensor

__all__ = ["CheckpointError", "load", "save"]

# safetensors dtype codes. U16/U32/U64 have no tensor dtype in gradforge; they are read
# only into NumPy arrays (e.g. ``numpy.random.get_state()`` holds uint32 keys).
_CODES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "I32": np.int32,
          "I64": np.int64, "F16": np.float16, "F32": np.float32, "F64": np.float64,
          "U16": np.uint16, "U32": np.uint32, "U64": np.uint64}
_NUMPY_ONLY = {"U16", "U32", "U64"}
_CODE_OF = {np.dtype(v): k for k, v in _CODES.items()}
_MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header
_STRUCTURE, _CRC = "gradforge.structure", "gradforge.crc32"


class CheckpointError(RuntimeError):
    """A checkpoint file is truncated, corrupted or not a safetensors file."""


# -- saving ---------------------------------------------------------------------------------
class _Encoder:
    """Turns an object tree into JSON, collecting its tensors and arrays under unique names."""

    def __init__(self):
        self.arrays: dict = {}  # name -> little-endian contiguous host array
        self._names: dict = {}  # id(tensor) -> name, so a tensor saved twice is stored once
        self._keep: list = []  # keeps the tensors alive, so their ids stay unique
        self._host: list = []  # (ref, array) of each CPU tensor, to find views of one another

    def _add(self, obj, host: np.ndarray, path: list) -> str:
        name = self._names.get(id(obj))
        if name is not None:
            return name
        if np.dtype(host.dtype) not in _CODE_OF:
            raise TypeError(f"gradforge.save: array at {_where(path)} has unsupported dtype "
                            f"{host.dtype}")
        base = ".".join(path) or "tensor"
        name, n = base, 1
        while name in self.arrays or name == "__metadata__":
            n += 1
            name = f"{base}#{n}"
        little = host.dtype.newbyteorder("<")
        self.arrays[name] = np.asarray(host, dtype=little, order="C")
        self._names[id(obj)] = name
        self._keep.append(obj)
        return name

    def encode(self, obj, path: list):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"$": "float", "v": repr(obj)}
        if isinstance(obj, Tensor):
            host = obj._device.backend.to_host(obj._data)
            new = id(obj) not in self._names
            ref = {"$": "tensor", "key": self._add(obj, host, path), "device": str(obj.device)}
            if new and host is obj._data:
                self._host.append((ref, host))
            if obj.requires_grad:
                ref["requires_grad"] = True
            if isinstance(obj, Parameter):
                ref["parameter"] = True
            return ref
        if isinstance(obj, np.ndarray):
            return {"$": "ndarray", "key": self._add(obj, obj, path)}
        if isinstance(obj, np.generic):
            return self.encode(obj.item(), path)
        if isinstance(obj, (list, tuple)):
            tag = "list" if isinstance(obj, list) else "tuple"
            return {"$": tag, "v": [self.encode(v, [*path, str(i)]) for i, v in enumerate(obj)]}
        if isinstance(obj, dict):
            items = [[self._key(k, path), self.encode(v, [*path, str(k)])]
                     for k, v in obj.items()]
            return {"$": "odict" if isinstance(obj, OrderedDict) else "dict", "v": items}
        if isinstance(obj, DType):
            return {"$": "dtype", "v": obj.name}
        if isinstance(obj, Device):
            return {"$": "device", "v": str(obj)}
        raise TypeError(f"gradforge.save: cannot save {type(obj).__name__} at {_where(path)}; "
                        "checkpoints hold tensors, NumPy arrays, dicts, lists, tuples, numbers, "
                        "strings, bools, None, dtypes and devices")

    def link_views(self) -> None:
        """Mark each CPU tensor whose memory lies inside another saved tensor's as its view.

        torch keeps tensors that share storage sharing it after ``load``. Every tensor keeps
        its own bytes (the file stays a plain safetensors file); the ``view`` entry says how
        to rebuild it over a C-contiguous base: byte offset and strides.
        """
        groups: dict = {}
        for ref, a in self._host:
            root = a
            while isinstance(root.base, np.ndarray):
                root = root.base
            groups.setdefault(id(root), []).append((ref, a, byte_bounds(a)))
        for members in groups.values():
            # Largest first: a base is decided before the tensors inside it, and never a view.
            members.sort(key=lambda m: m[2][0] - m[2][1])
            for i, (ref, a, (lo, hi)) in enumerate(members):
                for base_ref, b, (blo, bhi) in members[:i]:
                    if (b.flags.c_contiguous and "view" not in base_ref and a.size
                            and blo <= lo and hi <= bhi):
                        start = a.__array_interface__["data"][0] - blo
                        ref["view"] = {"of": base_ref, "offset": start,
                                       "strides": list(a.strides)}
                        break

    def _key(self, key, path: list):
        if isinstance(key, (Tensor, np.ndarray, list, dict)):
            raise TypeError(f"gradforge.save: dict key of type {type(key).__name__} at "
                            f"{_where(path)} is not supported")
        return self.encode(key, path)


def _where(path: list) -> str:
    return "the top level" if not path else repr(".".join(path))


def _serialize(obj) -> tuple[bytes, list]:
    """The header bytes (length prefix included) and the arrays to write after it, in order."""
    enc = _Encoder()
    structure = enc.encode(obj, [])
    enc.link_views()
    # Larger items first keeps every tensor aligned to its item size (the header is padded
    # to 8 bytes), as the safetensors writer does.
    order = sorted(enc.arrays, key=lambda k: (-enc.arrays[k].dtype.itemsize, k))
    header, crcs, offset = {}, {}, 0
    for name in order:
        a = enc.arrays[name]
        header[name] = {"dtype": _CODE_OF[np.dtype(a.dtype.newbyteorder("="))],
                        "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        crcs[name] = zlib.crc32(_bytes_of(a))
        offset += a.nbytes
    header["__metadata__"] = {"format": "gradforge", _STRUCTURE: _dumps(structure),
                              _CRC: _dumps(crcs)}
    head = _dumps(header).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head, [enc.arrays[k] for k in order]


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def _bytes_of(a: np.ndarray) -> memoryview:
    return memoryview(a.reshape(-1)).cast("B")


def save(obj, f) -> None:
    """Save tensors and nested dicts/lists/tuples of tensors and plain values to ``f``.

    Args:
        obj: a tensor, a ``state_dict``, an optimizer ``state_dict``, a training checkpoint
            dict (RNG states included) ... Tensors on a GPU are saved from host copies.
        f: a path (written atomically: a crash mid-save leaves the old file intact) or a
            binary file object with ``write``.
    """
    head, arrays = _serialize(obj)
    if not isinstance(f, (str, os.PathLike)):
        _write(f, head, arrays)
        return
    # NOTE: like open() in torch.save, a symlink is written through, not replaced.
    path = os.path.realpath(os.fspath(f))
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            _write(fh, head, arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(folder)


def _write(fh, head: bytes, arrays: list) -> None:
    fh.write(head)
    for a in arrays:
        fh.write(_bytes_of(a))


def _fsync_dir(folder: str) -> None:
    # Makes the rename itself durable. Directories cannot be opened on Windows: skip there.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- loading --------------------------------------------------------------------------------
def _read_all(f) -> tuple[bytearray, str]:
    if isinstance(f, (str, os.PathLike)):
        path = os.fspath(f)
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            # A bytearray, so the loaded tensors are writable views of one buffer.
            buf = bytearray(size)
            n = fh.readinto(buf)
        return buf[:n] if n != size else buf, path
    return bytearray(f.read()), getattr(f, "name", "<file object>")


def _parse(buf: bytearray, name: str) -> tuple[dict, dict]:
    """Validate the whole file; return ``({tensor name: array}, metadata)``."""
    def fail(why: str):
        raise CheckpointError(f"cannot load checkpoint {name!r}: {why}")

    if len(buf) < 8:
        fail(f"the file has {len(buf)} bytes, too short for a safetensors header "
             "(truncated, or not a checkpoint)")
    (n,) = struct.unpack_from("<Q", buf)
    if n > min(len(buf) - 8, _MAX_HEADER):
        fail(f"header length {n} exceeds the file size of {len(buf)} bytes (truncated, or "
             "not a safetensors file)")
    try:
        header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    except (ValueError, RecursionError) as e:  # bad JSON or UTF-8, or absurdly deep nesting
        fail(f"the header is not valid JSON ({e}); the file is corrupted or not a "
             "safetensors file")
    if not isinstance(header, dict):
        fail("the header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        fail("__metadata__ must map strings to strings")
    data_start, data_len = 8 + n, len(buf) - 8 - n
    spans = []
    for key, info in header.items():
        if not (isinstance(info, dict) and isinstance(info.get("shape"), list)
                and isinstance(info.get("data_offsets"), list)
                and len(info["data_offsets"]) == 2):
            fail(f"tensor {key!r} has a malformed entry {info!r}")
        code, shape, (start, end) = info.get("dtype"), info["shape"], info["data_offsets"]
        if code not in _CODES:
            fail(f"tensor {key!r} has unsupported dtype {code!r} (supported: "
                 f"{', '.join(_CODES)})")
        if not all(type(v) is int and v >= 0 for v in (*shape, start, end)):
            fail(f"tensor {key!r} has a bad shape {shape} or offsets {[start, end]}")
        if not start <= end <= data_len:
            fail(f"offsets [{start}, {end}] of tensor {key!r} are out of range: the data "
                 f"section has {data_len} bytes (truncated file?)")
        size = math.prod(shape) * np.dtype(_CODES[code]).itemsize
        if end - start != size:
            fail(f"tensor {key!r} of shape {shape} and dtype {code} needs {size} bytes but "
                 f"its offsets span {end - start}")
        spans.append((start, end, key))
    spans.sort()
    pos, prev = 0, None
    for start, end, key in spans:
        if start < pos:
            fail(f"tensors {prev!r} and {key!r} overlap")
        if start > pos:
            fail(f"{start - pos} unused bytes before tensor {key!r}")
        pos, prev = end, key
    if pos != data_len:
        fail(f"{data_len - pos} bytes after the last tensor (the file is corrupted)")
    crcs = _json_meta(meta, _CRC, fail) if _CRC in meta else None
    if crcs is not None and not isinstance(crcs, dict):
        fail(f"metadata {_CRC!r} is not a JSON object")
    arrays = {}
    for start, end, key in spans:
        view = memoryview(buf)[data_start + start:data_start + end]
        if crcs is not None and crcs.get(key) != zlib.crc32(view):
            fail(f"tensor {key!r} fails its checksum (the file is corrupted)")
        dt = np.dtype(_CODES[header[key]["dtype"]]).newbyteorder("<")
        a = np.frombuffer(buf, dtype=dt, count=(end - start) // dt.itemsize,
                          offset=data_start + start).reshape(header[key]["shape"])
        if not a.dtype.isnative or not a.flags.aligned:
            a = a.astype(a.dtype.newbyteorder("="))  # a copy: native order, aligned
        arrays[key] = a
    return arrays, meta


def _json_meta(meta: dict, key: str, fail):
    try:
        return json.loads(meta[key])
    except (ValueError, RecursionError) as e:
        fail(f"metadata {key!r} is not valid JSON ({e})")


class _Decoder:
    """Rebuilds the object tree from its JSON, accepting only the types ``save`` writes."""

    def __init__(self, arrays: dict, fail, place):
        self.arrays, self.fail, self.place = arrays, fail, place
        self.used: dict = {}  # name -> the object built, so shared tensors stay shared
        self.loaded: dict = {}  # name -> the host array a tensor was built on

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, dict):
            tag, value = node.get("$"), node.get("v")
            if tag in ("list", "tuple") and isinstance(value, list):
                items = [self.decode(v) for v in value]
                return items if tag == "list" else tuple(items)
            if tag in ("dict", "odict") and isinstance(value, list):
                return (OrderedDict if tag == "odict" else dict)(self._pair(p) for p in value)
            if tag in ("tensor", "ndarray"):
                return self._array(node, tag)
            if tag == "float" and value in ("nan", "inf", "-inf"):
                return float(value)
            if tag == "dtype" and isinstance(value, str):
                return self._named(to_dtype, value, "dtype")
            if tag == "device" and isinstance(value, str):
                return self._named(Device, value, "device")
        self.fail(f"unknown entry {json.dumps(node)[:80]} in the saved structure")

    def _named(self, make, name: str, what: str):
        try:
            return make(name)
        except (TypeError, ValueError) as e:
            self.fail(f"bad {what} {name!r} in the saved structure ({e})")

    def _pair(self, pair):
        if not (isinstance(pair, list) and len(pair) == 2):
            self.fail(f"malformed dict item {json.dumps(pair)[:80]} in the saved structure")
        key = self.decode(pair[0])
        try:
            hash(key)
        except TypeError:
            self.fail(f"a dict key in the saved structure is a {type(key).__name__}")
        return key, self.decode(pair[1])

    def _array(self, node: dict, tag: str):
        key = node.get("key")
        if not isinstance(key, str) or key not in self.arrays:
            self.fail(f"the structure refers to a missing tensor {key!r}")
        if key in self.used:
            return self.used[key]
        a = self.arrays[key]
        if tag == "ndarray":
            out = a
        else:
            code = _CODE_OF[a.dtype.newbyteorder("=")]
            if code in _NUMPY_ONLY:
                self.fail(f"tensor {key!r} has dtype {code}, which gradforge tensors do not "
                          "support")
            location = str(self._named(Device, str(node.get("device", "cpu")), "device"))
            host = self._view(node, a) if "view" in node else Tensor._make(a, CPU)
            self.loaded[key] = host._data
            out = self.place(host, location)
            grad = bool(node.get("requires_grad")) and out.is_floating_point()
            if node.get("parameter") is True:
                # torch.load gives back Parameters, so assigning one to a module registers it.
                out = Parameter(out, requires_grad=grad)
            elif grad:
                out.requires_grad = True
        self.used[key] = out
        return out


    def _view(self, node: dict, a: np.ndarray) -> Tensor:
        """``a`` rebuilt over the memory of the tensor it was a view of when saved.

        The base is loaded first. Sharing needs it left on the CPU by ``map_location``;
        otherwise the tensor gets its own copy of its (identical) bytes.
        """
        view = node["view"]
        if not (isinstance(view, dict) and isinstance(view.get("of"), dict)
                and view["of"].get("$") == "tensor" and type(view.get("offset")) is int
                and isinstance(view.get("strides"), list) and len(view["strides"]) == a.ndim
                and all(type(s) is int for s in view["strides"])):
            self.fail(f"tensor {node.get('key')!r} has a malformed view entry")
        base = self._array(view["of"], "tensor")
        if node.get("key") in self.used:  # loading its base loaded the tensor itself
            self.fail(f"tensor {node.get('key')!r} is saved as a view of itself")
        buf = self.loaded[view["of"]["key"]]
        if not (isinstance(base, Tensor) and base._data is buf):
            return Tensor._make(a, CPU)
        try:
            # NOTE: ndarray() checks that the view stays inside the base's memory, so a
            # corrupted entry cannot reach outside it.
            shared = np.ndarray(a.shape, a.dtype, buffer=buf, offset=view["offset"],
                                strides=view["strides"])
        except (TypeError, ValueError, BufferError) as e:
            self.fail(f"tensor {node.get('key')!r} has a bad view entry ({e})")
        if shared.tobytes() != a.tobytes():
            self.fail(f"tensor {node.get('key')!r} differs from the view it was saved as")
        return Tensor._make(shared, CPU, vc=base._vc)


def _placer(map_location):
    """``place(cpu_tensor, saved_location) -> tensor`` as torch's ``map_location`` defines it."""
    def to(t: Tensor, target) -> Tensor:
        dev = as_device(target)
        if dev.type == "cuda" and not cuda_backend.is_available():
            raise RuntimeError(
                "Attempting to deserialize a tensor on a CUDA device but CUDA is not "
                f"available ({cuda_backend.status()[1]}). On a CPU-only machine, use "
                "gradforge.load with map_location='cpu'.")
        return t if dev == CPU else t.to(dev)

    def place(t: Tensor, location: str) -> Tensor:
        if map_location is None:
            return to(t, location)
        if callable(map_location):
            out = map_location(t, location)
            return to(t, location) if out is None else out
        if isinstance(map_location, dict):
            return to(t, map_location.get(location, location))
        return to(t, map_location)
    return place


def load(f, map_location=None, *, weights_only: bool = True):
    """Load an object saved with ``gradforge.save`` (or any safetensors file).

    Args:
        f: a path or a binary file object with ``read``.
        map_location: where tensors go (default: the device they were saved from): a device
            or its name, a dict mapping saved locations to new ones (``{"cuda:1":
            "cuda:0"}``), or ``fn(tensor, location)`` returning the tensor to use (``None``
            keeps the default).
        weights_only: accepted for torch compatibility; loading never runs code anyway.

    Raises:
        CheckpointError: the file is truncated, corrupted, or not a safetensors file.
    """
    buf, name = _read_all(f)

    def fail(why: str):
        raise CheckpointError(f"cannot load checkpoint {name!r}: {why}")

    arrays, meta = _parse(buf, name)
    decoder = _Decoder(arrays, fail, _placer(map_location))
    if _STRUCTURE not in meta:
        # A plain safetensors file from another writer: its tensors by name.
        return {key: decoder._array({"key": key}, "tensor") for key in arrays}
    structure = _json_meta(meta, _STRUCTURE, fail)
    try:
        obj = decoder.decode(structure)
    except RecursionError:
        fail("the saved structure is nested too deeply")
    unused = set(arrays) - set(decoder.used)
    if unused:
        fail(f"tensors {sorted(unused)[:5]} are not referenced by the saved structure")
    return obj
