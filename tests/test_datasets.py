"""gradforge.datasets: the IDX reader, MNIST/FashionMNIST, the embedded subset, transforms."""
import gzip
from pathlib import Path

import numpy as np
import pytest

import gradforge
from gradforge.datasets import (
    EMBEDDED_DIR,
    MNIST,
    FashionMNIST,
    IDXFormatError,
    read_idx,
    write_idx,
)
from gradforge.datasets.transforms import Compose, Lambda, Normalize, ToTensor
from gradforge.utils.data import DataLoader

FULL = Path("/work/shared/data/fashion-mnist")
needs_full = pytest.mark.skipif(not (FULL / "train-images-idx3-ubyte.gz").is_file(),
                                reason=f"full Fashion-MNIST files not found in {FULL}")


def _fake_mnist(root, n_train=12, n_test=5, gz=True):
    """Random digits in the four standard files (images uint8 N x 28 x 28, labels 0..9)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(root / f"{split}-images-idx3-ubyte{suffix}", images, compress=gz)
        write_idx(root / f"{split}-labels-idx1-ubyte{suffix}", labels, compress=gz)
        out[split] = (images, labels)
    return out


# -- IDX ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, dtype, compress):
    a = (np.random.default_rng(1).standard_normal((3, 4, 5)) * 100).astype(dtype)
    write_idx(tmp_path / "a.idx", a, compress=compress)
    b = read_idx(tmp_path / "a.idx")
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


def test_idx_header_is_big_endian(tmp_path):
    write_idx(tmp_path / "l", np.arange(3, dtype=np.uint8), compress=False)
    assert (tmp_path / "l").read_bytes() == bytes.fromhex("00000801 00000003 000102")


@pytest.mark.parametrize("payload,message", [
    (b"", "not an IDX file"),
    (b"hello world", r"not an IDX file \(magic number 0x68656c6c"),
    (bytes.fromhex("00000703") + b"\0" * 12, "unknown IDX element type 0x07"),
    (bytes.fromhex("00000803 00000002"), r"truncated IDX header \(8 bytes, 16 needed"),
    (bytes.fromhex("00000801 00000004 010203"), (r"truncated: shape \[4\] of uint8 needs 4 "
                                                 r"bytes after the header, found 3")),
    (bytes.fromhex("00000801 00000002 010203"), "longer than its header says"),
])
def test_idx_errors_name_the_file(tmp_path, payload, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(payload)
    with pytest.raises(IDXFormatError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_idx_truncated_gzip(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(5000, dtype=np.int32))
    raw = (tmp_path / "a.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(IDXFormatError, match=r"cut.gz: broken gzip stream"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "short.gz").write_bytes(gzip.compress(bytes.fromhex("00000801 00000009 00")))
    with pytest.raises(IDXFormatError, match="short.gz: IDX data is truncated"):
        read_idx(tmp_path / "short.gz")


# -- MNIST from files -------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_standard_files(tmp_path, gz):
    ref = _fake_mnist(tmp_path, gz=gz)
    train, test = MNIST(tmp_path), MNIST(str(tmp_path), train=False)
    assert len(train) == 12 and len(test) == 5
    assert train.data.dtype == gradforge.uint8 and train.data.shape == (12, 28, 28)
    assert train.targets.dtype == gradforge.int64
    assert train.targets.tolist() == ref["train"][1].tolist()
    image, label = test[3]
    assert isinstance(label, int) and label == int(ref["t10k"][1][3])
    assert image.shape == (1, 28, 28) and image.dtype == gradforge.float32
    assert 0.0 <= image.min().item() and image.max().item() <= 1.0
    images, labels = train.tensors()
    assert images.shape == (12, 1, 28, 28) and labels.tolist() == train.targets.tolist()
    assert np.array_equal(images.numpy()[7], train[7][0].numpy())


def test_pixels_match_torchvision_to_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    ref = _fake_mnist(tmp_path)
    ours = MNIST(tmp_path)[2][0].numpy()
    theirs = torch.from_numpy(ref["train"][0][2]).unsqueeze(0).float().div(255).numpy()
    assert np.array_equal(ours, theirs)


def test_torchvision_layout_and_transforms(tmp_path):
    _fake_mnist(tmp_path / "FashionMNIST" / "raw")
    ds = FashionMNIST(tmp_path, transform=Lambda(lambda x: x * 2),
                      target_transform=lambda y: y + 100)
    image, label = ds[0]
    assert label >= 100 and image.max().item() <= 2.0
    assert ds.classes[9] == "Ankle boot" and ds.class_to_idx["Bag"] == 8


def test_mnist_file_errors(tmp_path):
    with pytest.raises(ValueError, match="MNIST needs root="):
        MNIST()
    with pytest.raises(FileNotFoundError, match="no train-images-idx3-ubyte"):
        MNIST(tmp_path)
    ref = _fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", ref["t10k"][1][:4])
    with pytest.raises(IDXFormatError, match=r"holds 5 images but .* holds 4 labels"):
        MNIST(tmp_path, train=False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(5, 10, np.uint8))
    with pytest.raises(IDXFormatError, match="label 10 is out of range"):
        MNIST(tmp_path, train=False)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", ref["train"][1])
    with pytest.raises(IDXFormatError, match=r"train-images-idx3-ubyte.gz: expected magic "
                                             r"0x00000803"):
        MNIST(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((12, 28, 27), np.uint8))
    with pytest.raises(IDXFormatError, match="expected 28x28 images, found 28x27"):
        MNIST(tmp_path)


# -- the embedded subset ------------------------------------------------------------------------
def test_embedded_subset_is_class_balanced():
    train, test = FashionMNIST(), FashionMNIST(train=False)
    assert len(train) == 10_000 and len(test) == 2_000
    assert np.bincount(train.targets.numpy()).tolist() == [1000] * 10
    assert np.bincount(test.targets.numpy()).tolist() == [200] * 10
    # The file order is kept, so even a short prefix mixes the classes.
    assert len(set(train.targets[:50].tolist())) == 10
    assert abs(train.data.numpy().mean() / 255 - 0.286) < 0.01


def test_embedded_data_ships_with_its_licence_and_is_small():
    notice = (EMBEDDED_DIR / "LICENSE-fashion-mnist").read_text()
    assert "Copyright (c) 2017 Zalando SE" in notice and "MIT" in notice
    assert "Zalando SE" in gradforge.datasets.__doc__
    assert sum(p.stat().st_size for p in EMBEDDED_DIR.iterdir()) < 5.5e6


@needs_full
def test_embedded_images_are_real_fashion_mnist():
    for train in (True, False):
        full = FashionMNIST(FULL, train=train)
        sub = FashionMNIST(train=train)
        index = {row.tobytes(): int(label) for row, label in
                 zip(full.data.numpy(), full.targets.numpy())}
        for row, label in zip(sub.data.numpy(), sub.targets.numpy()):
            assert index[row.tobytes()] == label


@needs_full
def test_full_files():
    train, test = FashionMNIST(FULL), FashionMNIST(FULL, train=False)
    assert len(train) == 60_000 and len(test) == 10_000
    assert np.bincount(train.targets.numpy()).tolist() == [6000] * 10
    assert round(train.data.numpy().mean() / 255, 4) == 0.2860


def test_loader_over_a_dataset():
    ds = FashionMNIST(transform=Compose([ToTensor(), Normalize((0.2860,), (0.3530,))]))
    x, y = next(iter(DataLoader(ds, batch_size=16, shuffle=True)))
    assert x.shape == (16, 1, 28, 28) and x.dtype == gradforge.float32
    assert y.shape == (16,) and y.dtype == gradforge.int64


# -- transforms ---------------------------------------------------------------------------------
def test_to_tensor():
    hw = np.arange(6, dtype=np.uint8).reshape(2, 3)
    t = ToTensor()(hw)
    assert t.shape == (1, 2, 3) and t.dtype == gradforge.float32
    assert np.array_equal(t.numpy()[0], hw.astype(np.float32) / np.float32(255))
    hwc = np.random.default_rng(0).random((4, 5, 3)).astype(np.float32)
    assert np.array_equal(ToTensor()(hwc).numpy(), hwc.transpose(2, 0, 1))
    f = gradforge.rand(1, 2, 2)
    assert ToTensor()(f) is f
    assert ToTensor()(gradforge.tensor([[255]], dtype=gradforge.uint8)).tolist() == [[1.0]]
    with pytest.raises(ValueError, match=r"2 or 3 dimensional, got 1 dimensions \(shape \(4,\)"):
        ToTensor()(np.zeros(4))
    with pytest.raises(TypeError, match="list"):
        ToTensor()([1, 2])


def test_normalize():
    x = gradforge.rand(3, 4, 4, dtype=gradforge.float64)
    mean, std = (0.1, 0.2, 0.3), (0.5, 1.0, 2.0)
    out = Normalize(mean, std)(x)
    expected = (x.numpy() - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    assert np.allclose(out.numpy(), expected, rtol=0, atol=1e-15)
    batch = gradforge.rand(2, 1, 2, 2)
    same = Normalize(0.5, 0.25, inplace=True)(batch)
    assert same is batch
    with pytest.raises(ValueError, match="std evaluated to zero"):
        Normalize((0.0,), (0.0,))
    with pytest.raises(ValueError, match=r"\(\.\.\., C, H, W\), got shape \[4, 4\]"):
        Normalize(0.5, 0.5)(gradforge.rand(4, 4))
    with pytest.raises(TypeError, match="int64"):
        Normalize(0.5, 0.5)(gradforge.zeros(1, 2, 2, dtype=gradforge.int64))
