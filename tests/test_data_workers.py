"""DataLoader with num_workers > 0: real processes, order, seeding, errors, persistence."""
import os

import numpy as np
import pytest

import gradforge
from gradforge.utils.data import (
    DataLoader,
    Dataset,
    IterableDataset,
    TensorDataset,
    get_worker_info,
)


class Squares(Dataset):
    def __len__(self):
        return 13

    def __getitem__(self, i):
        return i * i


class WhoAmI(Dataset):
    """Each sample says which process made it and what that process's RNGs give."""

    def __len__(self):
        return 8

    def __getitem__(self, i):
        info = get_worker_info()
        return {"pid": os.getpid(), "id": info.id, "seed": info.seed,
                "rand": gradforge.rand(()).item(), "np": np.random.random_sample()}


class Range(IterableDataset):
    def __init__(self, n, shard=True):
        self.n, self.shard = n, shard

    def __iter__(self):
        info = get_worker_info()
        if info is None or not self.shard:
            return iter(range(self.n))
        return iter(range(info.id, self.n, info.num_workers))


class FailsAt(Dataset):
    def __init__(self, bad, exit_hard=False):
        self.bad, self.exit_hard = bad, exit_hard

    def __len__(self):
        return 6

    def __getitem__(self, i):
        if i == self.bad:
            if self.exit_hard:
                os._exit(3)
            raise ValueError(f"sample {i} is corrupt")
        return i


def test_workers_match_single_process_order():
    ds = TensorDataset(gradforge.arange(26).reshape(13, 2).float(), gradforge.arange(13))
    gradforge.manual_seed(7)
    ref = [(x.tolist(), y.tolist()) for x, y in DataLoader(ds, batch_size=3, shuffle=True)]
    gradforge.manual_seed(7)
    got = [(x.tolist(), y.tolist())
           for x, y in DataLoader(ds, batch_size=3, shuffle=True, num_workers=2)]
    assert got == ref
    assert gradforge.Tensor is type(DataLoader(ds, batch_size=2, num_workers=1).__iter__()
                                    .__next__()[0])


def test_workers_are_processes_seeded_from_the_base_seed():
    gradforge.manual_seed(0)
    batches = list(DataLoader(WhoAmI(), batch_size=2, num_workers=2))
    pids = {int(p) for b in batches for p in b["pid"].tolist()}
    assert len(pids) == 2 and os.getpid() not in pids
    # Batches go round-robin: worker 0, 1, 0, 1; seeds are base_seed + worker id.
    assert [b["id"].tolist() for b in batches] == [[0, 0], [1, 1], [0, 0], [1, 1]]
    seeds = [b["seed"][0].item() for b in batches]
    assert seeds[1] == seeds[0] + 1 and seeds[2] == seeds[0]
    gradforge.manual_seed(0)
    base = gradforge.randint(0, (1 << 63) - 1, ()).item()
    assert seeds[0] == base
    # Each worker's generators are seeded differently, and reproducibly.
    r = [b["rand"].tolist() for b in batches]
    assert r[0] != r[1]
    gradforge.manual_seed(0)
    again = list(DataLoader(WhoAmI(), batch_size=2, num_workers=2))
    assert [b["rand"].tolist() for b in again] == r
    assert [b["np"].tolist() for b in again] == [b["np"].tolist() for b in batches]


def test_get_worker_info_is_none_in_main_process():
    assert get_worker_info() is None


def test_iterable_dataset_order_matches_torch():
    torch = pytest.importorskip("torch")

    class TorchRange(torch.utils.data.IterableDataset):
        def __init__(self, n, shard):
            self.n, self.shard = n, shard

        def __iter__(self):
            info = torch.utils.data.get_worker_info()
            if not self.shard:
                return iter(range(self.n))
            return iter(range(info.id, self.n, info.num_workers))

    for n, shard, bs, drop in ((11, True, 2, False), (11, True, 2, True), (5, False, 2, False),
                               (3, True, 4, False)):
        ours = [b.tolist() for b in DataLoader(Range(n, shard), batch_size=bs, drop_last=drop,
                                               num_workers=2)]
        theirs = [b.tolist() for b in torch.utils.data.DataLoader(
            TorchRange(n, shard), batch_size=bs, drop_last=drop, num_workers=2)]
        assert ours == theirs, (n, shard, bs, drop)


def test_worker_exception_is_raised_in_main_process():
    loader = DataLoader(FailsAt(4), batch_size=2, num_workers=2)
    it = iter(loader)
    assert next(it).tolist() == [0, 1] and next(it).tolist() == [2, 3]
    with pytest.raises(ValueError, match=r"(?s)in DataLoader worker process 0.*sample 4 is "
                                         r"corrupt"):
        next(it)


def test_dead_worker_is_reported():
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+.*exited "
                                           r"unexpectedly"):
        list(DataLoader(FailsAt(1, exit_hard=True), batch_size=1, num_workers=2))


def test_worker_init_fn_runs_in_each_worker():
    def init(worker_id):
        np.random.seed(100 + worker_id)

    class NpDraw(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.random.randint(0, 1 << 30)

    got = [b.item() for b in DataLoader(NpDraw(), num_workers=2, worker_init_fn=init)]
    assert got == [np.random.RandomState(100 + w).randint(0, 1 << 30) for w in (0, 1)]


def test_persistent_workers_keep_processes_between_epochs():
    class Pid(Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return (i, os.getpid())

    loader = DataLoader(Pid(), batch_size=2, num_workers=2, persistent_workers=True)
    e1, e2 = list(loader), list(loader)
    assert [b[0].tolist() for b in e1] == [b[0].tolist() for b in e2] == [[0, 1], [2, 3]]
    assert {b[1][0].item() for b in e1} == {b[1][0].item() for b in e2}
    # An abandoned epoch does not leak into the next one.
    it = iter(loader)
    next(it)
    assert [b[0].tolist() for b in loader] == [[0, 1], [2, 3]]
    iterable = DataLoader(Range(5), batch_size=2, num_workers=2, persistent_workers=True)
    for _ in range(2):
        assert sorted(v for b in iterable for v in b.tolist()) == list(range(5))


def test_spawn_context():
    out = [b.tolist() for b in DataLoader(Squares(), batch_size=5, num_workers=2,
                                          multiprocessing_context="spawn")]
    assert out == [[0, 1, 4, 9, 16], [25, 36, 49, 64, 81], [100, 121, 144]]


def test_timeout():
    class Slow(Dataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):
            import time
            time.sleep(30)

    loader = DataLoader(Slow(), num_workers=1, timeout=0.2)
    with pytest.raises(RuntimeError, match="timed out after 0.2 seconds"):
        next(iter(loader))


def test_unpicklable_dataset_with_spawn_fails_cleanly():
    class Local(Dataset):  # defined in a function: spawn cannot pickle it
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return i

    import multiprocessing
    before = set(multiprocessing.active_children())
    with pytest.raises(AttributeError, match="Can't pickle local object"):
        next(iter(DataLoader(Local(), num_workers=2, multiprocessing_context="spawn")))
    assert set(multiprocessing.active_children()) <= before  # no worker left behind


def test_prefetch_factor_must_be_positive():
    with pytest.raises(ValueError, match="prefetch_factor option should be positive, got 0"):
        DataLoader(Squares(), num_workers=1, prefetch_factor=0)
    loader = DataLoader(Squares(), batch_size=4, num_workers=2, prefetch_factor=1)
    assert [v for b in loader for v in b.tolist()] == [i * i for i in range(13)]
