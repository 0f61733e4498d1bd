"""A training run resumed from a gradforge.save checkpoint continues bit for bit.

The checkpoint holds the model, the optimizer (with its per-parameter state), the learning
rate scheduler and the global RNG state, which drives both the DataLoader's shuffling and
dropout. Resuming must reproduce the losses and the final weights of the uninterrupted run
exactly, at an epoch boundary and in the middle of an epoch.
"""
import numpy as np
import pytest

import gradforge
from gradforge import nn
from gradforge.utils.data import DataLoader, TensorDataset

EPOCHS = 4


def _setup(seed, optimizer="adam"):
    gradforge.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    if optimizer == "adam":
        opt = gradforge.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    else:
        opt = gradforge.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    sched = gradforge.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    return model, opt, sched


def _data():
    g = gradforge.Generator().manual_seed(123)
    x = gradforge.randn(50, 6, generator=g)
    y = gradforge.randint(0, 3, (50,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)


def _step(model, opt, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def _uninterrupted(optimizer):
    model, opt, sched = _setup(0, optimizer)
    loader = _data()
    gradforge.manual_seed(1)
    losses = []
    for _ in range(EPOCHS):
        losses += [_step(model, opt, x, y) for x, y in loader]
        sched.step()
    return losses, model, sched.get_last_lr()


def _assert_same_weights(a, b):
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert np.array_equal(p.numpy(), q.numpy()), name


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_resume_at_epoch_boundary_is_bit_for_bit(tmp_path, optimizer):
    ref_losses, ref_model, ref_lr = _uninterrupted(optimizer)

    model, opt, sched = _setup(0, optimizer)
    loader = _data()
    gradforge.manual_seed(1)
    losses = []
    for _ in range(2):
        losses += [_step(model, opt, x, y) for x, y in loader]
        sched.step()
    gradforge.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "rng": gradforge.get_rng_state(),
                    "epoch": 2}, tmp_path / "ckpt.safetensors")
    del model, opt, sched

    gradforge.manual_seed(999)  # a different process state: everything must come from the file
    model, opt, sched = _setup(7, optimizer)
    ckpt = gradforge.load(tmp_path / "ckpt.safetensors")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    gradforge.set_rng_state(ckpt["rng"])
    for _ in range(ckpt["epoch"], EPOCHS):
        losses += [_step(model, opt, x, y) for x, y in loader]
        sched.step()

    assert losses == ref_losses
    assert sched.get_last_lr() == ref_lr
    _assert_same_weights(model, ref_model)


def test_resume_mid_epoch_is_bit_for_bit(tmp_path):
    ref_losses, ref_model, ref_lr = _uninterrupted("sgd")
    model, opt, sched = _setup(0, "sgd")
    loader = _data()
    gradforge.manual_seed(1)
    losses = []
    losses += [_step(model, opt, x, y) for x, y in loader]
    sched.step()
    # Epoch 2 is interrupted after 3 of its 7 batches. The loader draws its shuffling seeds
    # when the epoch starts, so the checkpoint keeps the RNG state of that moment too.
    epoch_rng = gradforge.get_rng_state()
    for i, (x, y) in enumerate(loader):
        losses.append(_step(model, opt, x, y))
        if i == 2:
            break
    gradforge.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(), "epoch_rng": epoch_rng,
                    "rng": gradforge.get_rng_state(), "epoch": 1, "batches_done": 3},
                   tmp_path / "mid.safetensors")

    model, opt, sched = _setup(5, "sgd")
    ckpt = gradforge.load(tmp_path / "mid.safetensors")
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    gradforge.set_rng_state(ckpt["epoch_rng"])
    batches = iter(loader)  # the same permutation as the interrupted epoch
    for _ in range(ckpt["batches_done"]):
        next(batches)
    gradforge.set_rng_state(ckpt["rng"])
    losses += [_step(model, opt, x, y) for x, y in batches]
    sched.step()
    for _ in range(ckpt["epoch"] + 1, EPOCHS):
        losses += [_step(model, opt, x, y) for x, y in loader]
        sched.step()

    assert losses == ref_losses and sched.get_last_lr() == ref_lr
    _assert_same_weights(model, ref_model)
