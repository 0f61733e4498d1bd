"""gradforge.save / gradforge.load: safetensors files, round trips, interop, atomicity, errors."""
import collections
import io
import json
import math
import os
import struct

import numpy as np
import pytest
from oracle import DEVICES

import gradforge
from gradforge.serialization import CheckpointError, load, save

ALL_DTYPES = [gradforge.bool, gradforge.uint8, gradforge.int8, gradforge.int16, gradforge.int32,
              gradforge.int64, gradforge.float16, gradforge.float32, gradforge.float64]


def _read(path):
    """(header dict, data bytes) of a safetensors file."""
    raw = path.read_bytes()
    (n,) = struct.unpack_from("<Q", raw)
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _write(path, header, data):
    head = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(head)) + head + data)


def _same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, gradforge.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.device == b.device
        assert a.requires_grad == b.requires_grad
        assert np.array_equal(a.detach().cpu().numpy(), b.detach().cpu().numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: d.name)
def test_tensor_round_trip_every_dtype(tmp_path, dtype):
    x = (gradforge.randn(3, 5, dtype=gradforge.float64) * 50).to(dtype)
    save(x, tmp_path / "x.st")
    _same(x, load(tmp_path / "x.st"))


def test_awkward_tensors(tmp_path):
    obj = {"scalar": gradforge.tensor(3.5), "empty": gradforge.zeros(0, 4),
           "view": gradforge.arange(12).reshape(3, 4).t(),
           "param": gradforge.ones(2, 2, requires_grad=True)}
    save(obj, tmp_path / "a.st")
    out = load(tmp_path / "a.st")
    _same({**obj, "view": obj["view"].contiguous()}, out)
    assert out["param"].is_leaf and out["param"].requires_grad
    out["view"].add_(1)  # loaded tensors are writable
    assert out["view"][0, 0].item() == 1


def test_training_checkpoint_round_trip(tmp_path):
    model = collections.OrderedDict([("fc.weight", gradforge.randn(4, 3)),
                                     ("fc.bias", gradforge.zeros(4)),
                                     ("bn.num_batches_tracked", gradforge.tensor(7))])
    optim = {"state": {0: {"momentum_buffer": gradforge.randn(4, 3)},
                       1: {"step": gradforge.tensor(3.0), "exp_avg": gradforge.zeros(4)}},
             "param_groups": [{"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "params": [0, 1],
                               "foreach": None, "maximize": False, "nesterov": True}]}
    sched = {"best": float("inf"), "mode_worse": float("-inf"), "nan": float("nan"),
             "_last_lr": [0.1], "last_epoch": 2, "huge": 1 << 80, "mode": "min"}
    ckpt = {"model": model, "optimizer": optim, "scheduler": sched, "epoch": 5,
            "rng": gradforge.get_rng_state(), "np_rng": np.random.get_state(),
            "dtype": gradforge.float16, "device": gradforge.device("cpu"),
            "keys": {(1, "a"): "tuple key", 2.5: "float key", None: "none", True: "bool"},
            "np_scalar": np.float64(0.25), "empty": {}, "nested": [[], ()]}
    save(ckpt, tmp_path / "ckpt.st")
    out = load(tmp_path / "ckpt.st")
    expected = dict(ckpt, np_scalar=0.25)
    _same(expected, out)
    assert isinstance(out["model"], collections.OrderedDict)
    assert list(out["optimizer"]["state"]) == [0, 1]  # integer keys stay integers


def test_shared_tensor_saved_once_and_stays_shared(tmp_path):
    w = gradforge.randn(3, 3)
    save({"a": w, "b": [w]}, tmp_path / "s.st")
    header, _ = _read(tmp_path / "s.st")
    assert set(header) == {"a", "__metadata__"}
    out = load(tmp_path / "s.st")
    assert out["a"] is out["b"][0]


def test_views_stay_views_of_one_another(tmp_path):
    # As in torch: tensors sharing memory share it after load, whichever comes first.
    a = gradforge.arange(12.0).reshape(3, 4)
    save({"col": a[:, 2], "base": a, "t": a.t(), "row": a[1], "every3": a.reshape(-1)[::3],
          "other": gradforge.ones(2)}, tmp_path / "v.st")
    header, _ = _read(tmp_path / "v.st")
    assert sorted(header) == ["__metadata__", "base", "col", "every3", "other", "row", "t"]
    out = load(tmp_path / "v.st")
    assert out["t"].tolist() == a.t().tolist() and out["every3"].tolist() == [0, 3, 6, 9]
    version = out["row"]._version
    out["base"][1, 2] = 99.0
    assert out["col"].tolist() == [2.0, 99.0, 10.0] and out["row"].tolist() == [4, 5, 99, 7]
    assert out["t"][2].tolist() == [2.0, 99.0, 10.0] and out["every3"].tolist() == [0, 3, 99, 9]
    assert out["row"]._version > version  # in-place changes are seen through every view
    out["t"].mul_(0)
    assert out["base"].sum().item() == 0 and out["other"].tolist() == [1.0, 1.0]
    # A map_location that makes new tensors leaves them unshared, with the right values.
    doubled = load(tmp_path / "v.st", map_location=lambda t, loc: t * 2)
    doubled["base"].zero_()
    assert doubled["row"].tolist() == [8.0, 10.0, 12.0, 14.0]


def test_parameters_load_as_parameters(tmp_path):
    frozen = gradforge.nn.Parameter(gradforge.ones(2), requires_grad=False)
    save({"w": gradforge.nn.Parameter(gradforge.ones(3)), "frozen": frozen,
          "t": gradforge.ones(1, requires_grad=True)}, tmp_path / "p.st")
    out = load(tmp_path / "p.st")
    assert type(out["w"]) is gradforge.nn.Parameter and out["w"].requires_grad
    assert type(out["frozen"]) is gradforge.nn.Parameter and not out["frozen"].requires_grad
    assert type(out["t"]) is gradforge.Tensor and out["t"].requires_grad
    module = gradforge.nn.Module()
    module.w = out["w"]  # registers, as a loaded torch Parameter does
    assert [name for name, _ in module.named_parameters()] == ["w"]


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_save_writes_through_a_symlink(tmp_path):
    # torch.save opens the path, so a "latest" link keeps pointing at the updated file.
    save([1], tmp_path / "ckpt_1.st")
    os.symlink(tmp_path / "ckpt_1.st", tmp_path / "latest.st")
    save([2], tmp_path / "latest.st")
    assert (tmp_path / "latest.st").is_symlink() and load(tmp_path / "ckpt_1.st") == [2]
    assert sorted(os.listdir(tmp_path)) == ["ckpt_1.st", "latest.st"]


def test_file_is_safetensors_readable_by_the_safetensors_package(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    sd = {"fc1.weight": gradforge.randn(5, 3), "fc1.bias": gradforge.randn(5).double(),
          "mask": gradforge.tensor([True, False]),
          "idx": gradforge.arange(4, dtype=gradforge.int16)}
    save(sd, tmp_path / "m.safetensors")
    theirs = safetensors_numpy.load_file(str(tmp_path / "m.safetensors"))
    assert set(theirs) == set(sd)
    for k, v in sd.items():
        assert theirs[k].dtype == v.numpy().dtype and np.array_equal(theirs[k], v.numpy())
    from safetensors import safe_open
    with safe_open(str(tmp_path / "m.safetensors"), "np") as fh:
        assert fh.metadata()["format"] == "gradforge"


def test_nested_names_in_the_file(tmp_path):
    save({"state": {0: {"buf": gradforge.ones(1)}}, "x": [gradforge.ones(1)]}, tmp_path / "n")
    header, _ = _read(tmp_path / "n")
    assert sorted(k for k in header if k != "__metadata__") == ["state.0.buf", "x.0"]


def test_loads_a_file_written_by_safetensors(tmp_path):
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], np.int64),
              "h": np.ones(3, np.float16)}
    safetensors_numpy.save_file(arrays, str(tmp_path / "ext.safetensors"))
    out = load(tmp_path / "ext.safetensors")
    assert set(out) == set(arrays)
    for k, v in arrays.items():
        assert isinstance(out[k], gradforge.Tensor) and np.array_equal(out[k].numpy(), v)
        assert out[k].numpy().dtype == v.dtype


def test_readable_by_torch_safetensors(tmp_path):
    pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    x = gradforge.randn(2, 3)
    save({"x": x}, tmp_path / "t.st")
    assert safetensors_torch.load_file(str(tmp_path / "t.st"))["x"].numpy().tolist() == x.tolist()


def test_file_objects():
    buf = io.BytesIO()
    save({"a": gradforge.arange(3), "b": "text"}, buf)
    buf.seek(0)
    out = load(buf)
    assert out["a"].tolist() == [0, 1, 2] and out["b"] == "text"


def test_unsupported_objects_name_their_path(tmp_path):
    with pytest.raises(TypeError, match=r"cannot save object at 'a.b'"):
        save({"a": {"b": object()}}, tmp_path / "x")
    with pytest.raises(TypeError, match="dict key of type Tensor"):
        save({gradforge.ones(1): 1}, tmp_path / "x")
    assert not os.listdir(tmp_path)


# -- atomicity ----------------------------------------------------------------------------------
def test_crash_mid_save_leaves_the_old_file(tmp_path, monkeypatch):
    import gradforge.serialization as ser
    path = tmp_path / "ckpt.st"
    save({"w": gradforge.ones(1000)}, path)
    before = path.read_bytes()

    def write_half(fh, head, arrays):
        fh.write(head)
        fh.write(ser._bytes_of(arrays[0])[:100])
        raise OSError("disk full")

    monkeypatch.setattr(ser, "_write", write_half)
    with pytest.raises(OSError, match="disk full"):
        save({"w": gradforge.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.st"]  # the temporary file is gone
    monkeypatch.undo()
    assert load(path)["w"].sum().item() == 1000


def test_crash_in_fsync_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.st"
    save([1, 2], path)

    def boom(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="I/O error"):
        save([3, 4], path)
    monkeypatch.undo()
    assert load(path) == [1, 2] and os.listdir(tmp_path) == ["ckpt.st"]


# -- corrupted files ----------------------------------------------------------------------------
@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.st"
    save({"a": gradforge.arange(10, dtype=gradforge.float32), "b": gradforge.ones(3, 2)}, path)
    return path


@pytest.mark.parametrize("keep", [0, 5, 8, 20, -1, -13])
def test_truncated_file(good, keep, tmp_path):
    raw = good.read_bytes()
    bad = tmp_path / "bad.st"
    bad.write_bytes(raw[:keep] if keep >= 0 else raw[:len(raw) + keep])
    with pytest.raises(CheckpointError, match=rf"'{bad}'.*(too short|exceeds|out of range)"):
        load(bad)


def _edit(good, tmp_path, fn):
    header, data = _read(good)
    data = bytearray(data)
    fn(header, data)  # edits the header and the data in place
    bad = tmp_path / "bad.st"
    _write(bad, header, bytes(data))
    return bad


def test_flipped_byte_fails_checksum(good, tmp_path):
    def flip(header, data):
        data[5] ^= 0x40

    with pytest.raises(CheckpointError, match="fails its checksum"):
        load(_edit(good, tmp_path, flip))


def test_not_a_safetensors_file(tmp_path):
    p = tmp_path / "junk.bin"
    p.write_bytes(struct.pack("<Q", 4) + b"\x00\xffab")
    with pytest.raises(CheckpointError, match=r"junk.bin.*not valid JSON"):
        load(p)
    p.write_bytes(b"\x80" * 64)
    with pytest.raises(CheckpointError, match="exceeds the file size"):
        load(p)
    _write(p, [1, 2], b"")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        load(p)


@pytest.mark.parametrize("edit,message", [
    (lambda h, d: h["a"].update(data_offsets=[0, 10_000]), "out of range"),
    (lambda h, d: h["a"].update(dtype="BF16"), "unsupported dtype 'BF16'"),
    (lambda h, d: h["a"].update(shape=[3]), r"needs 12 bytes but its offsets span 40"),
    (lambda h, d: h["a"].update(shape=[-1]), "bad shape"),
    (lambda h, d: h["a"].update(data_offsets=[0]), "malformed"),
    (lambda h, d: h["b"].update(data_offsets=[0, 24]) or h["a"].update(data_offsets=[16, 56]),
     "overlap"),
    (lambda h, d: d.extend(b"trailing"), "8 bytes after the last tensor"),
    (lambda h, d: h["__metadata__"].update({"gradforge.structure": "{"}), "not valid JSON"),
    (lambda h, d: h["__metadata__"].update({"gradforge.structure": '{"$":"pickle","v":1}'}),
     "unknown entry"),
    (lambda h, d: h["__metadata__"].update(
        {"gradforge.structure": '{"$":"tensor","key":"zzz"}'}), "missing tensor 'zzz'"),
    (lambda h, d: h["__metadata__"].update({"gradforge.structure": '{"$":"list","v":[]}'}),
     "not referenced"),
    (lambda h, d: h.update(__metadata__={"x": 1}), "strings to strings"),
    (lambda h, d: h["__metadata__"].update({"gradforge.structure": (
        '{"$":"dict","v":[[{"$":"dict","v":[]},1]]}')}), "dict key .* is a dict"),
    (lambda h, d: h["__metadata__"].update({"gradforge.structure": '{"$":"dtype","v":"int3"}'}),
     "bad dtype 'int3'"),
    (lambda h, d: h["__metadata__"].update({"gradforge.crc32": "[1, 2]"}),
     "'gradforge.crc32' is not a JSON object"),
    (lambda h, d: h["__metadata__"].update({"gradforge.structure": '{"$":"tensor","key":[1]}'}),
     r"missing tensor \[1\]"),
    (lambda h, d: h["__metadata__"].update({"gradforge.structure": "[" * 100_000}),
     "not valid JSON"),
    (lambda h, d: h["__metadata__"].update({"gradforge.structure": (
        '{"$":"list","v":[{"$":"tensor","key":"a","device":"tpu"},'
        '{"$":"tensor","key":"b"}]}')}), "bad device 'tpu'"),
])
def test_bad_header_fields(good, tmp_path, edit, message):
    bad = _edit(good, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as info:
        load(bad)
    assert str(bad) in str(info.value)


def test_deeply_nested_header_is_a_checkpoint_error(tmp_path):
    p = tmp_path / "deep.st"
    head = b"[" * 100_000 + b"]" * 100_000
    p.write_bytes(struct.pack("<Q", len(head)) + head)
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load(p)


@pytest.mark.parametrize("edit,message", [
    (lambda v: v.update(offset=10**6), "bad view entry"),
    (lambda v: v.update(strides=[-4]), "differs from the view it was saved as"),
    (lambda v: v.update(strides=["4"]), "malformed view entry"),
    (lambda v: v.update(of={"$": "tensor", "key": "row"}), "view of itself"),
    (lambda v: v.update(of={"$": "tensor", "key": "nope"}), "missing tensor 'nope'"),
])
def test_bad_view_entries(tmp_path, edit, message):
    a = gradforge.arange(12.0).reshape(3, 4)
    save({"base": a, "row": a[1]}, tmp_path / "v.st")

    def corrupt(header, data):
        structure = json.loads(header["__metadata__"]["gradforge.structure"])
        edit(structure["v"][1][1]["view"])
        header["__metadata__"]["gradforge.structure"] = json.dumps(structure)

    with pytest.raises(CheckpointError, match=message):
        load(_edit(tmp_path / "v.st", tmp_path, corrupt))


def test_nothing_is_built_before_validation(good, tmp_path):
    calls = []

    def spy(t, location):
        calls.append(location)
        return t

    def flip_last(header, data):
        data[-1] ^= 1

    with pytest.raises(CheckpointError):
        load(_edit(good, tmp_path, flip_last), map_location=spy)
    assert calls == []


# -- devices ------------------------------------------------------------------------------------
def test_map_location_forms(good):
    calls = []

    def fn(t, location):
        calls.append(location)
        return t * 2 if location == "cpu" else None

    assert load(good, map_location=fn)["a"].tolist() == [2.0 * i for i in range(10)]
    assert calls == ["cpu", "cpu"]
    assert load(good, map_location=lambda t, loc: None)["b"].tolist() == [[1.0, 1.0]] * 3
    for loc in ("cpu", gradforge.device("cpu"), {"cpu": "cpu"}, {"cuda:0": "cpu"}):
        assert load(good, map_location=loc)["a"].device == gradforge.device("cpu")


def test_cuda_checkpoint_without_cuda_needs_map_location(good, tmp_path, monkeypatch):
    from gradforge.backend import cuda as cuda_backend
    # A machine without CUDA, even where the tests run on the simulated device.
    monkeypatch.setattr(cuda_backend, "is_available", lambda: False)
    monkeypatch.setattr(cuda_backend, "status", lambda: (False, "no NVIDIA driver"))

    def to_cuda(header, data):
        s = json.loads(header["__metadata__"]["gradforge.structure"])
        for _, ref in s["v"]:
            ref["device"] = "cuda:0"
        header["__metadata__"]["gradforge.structure"] = json.dumps(s)

    bad = _edit(good, tmp_path, to_cuda)
    with pytest.raises(RuntimeError, match=r"not available \(no NVIDIA driver\).*"
                                            r"map_location='cpu'"):
        load(bad)
    assert load(bad, map_location="cpu")["a"].device == gradforge.device("cpu")
    assert load(bad, map_location={"cuda:0": "cpu"})["b"].shape == (3, 2)


@pytest.mark.parametrize("device", DEVICES)
def test_device_round_trip(tmp_path, device):
    x = gradforge.randn(4, 3, device=device)
    save({"x": x}, tmp_path / "d.st")
    assert load(tmp_path / "d.st")["x"].device == x.device
    y = load(tmp_path / "d.st", map_location="cpu")["x"]
    assert y.device == gradforge.device("cpu") and y.tolist() == x.tolist()
    z = load(tmp_path / "d.st", map_location=device)["x"]
    assert z.device == x.device
