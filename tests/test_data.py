"""gradforge.utils.data in the main process: datasets, samplers, collation, len, RNG contract."""
import collections
import math

import numpy as np
import pytest

import gradforge
from gradforge.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    random_split,
)

Point = collections.namedtuple("Point", "x y")


class Squares(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return i * i


class Stream(IterableDataset):
    def __init__(self, n, with_len=True):
        self.n, self.with_len = n, with_len

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self):
        if not self.with_len:
            raise TypeError("no len")
        return self.n


def _tensor_dataset(n=10):
    return TensorDataset(gradforge.arange(2 * n).reshape(n, 2).float(), gradforge.arange(n))


# -- datasets ---------------------------------------------------------------------------------
def test_tensor_dataset_items_and_len():
    ds = _tensor_dataset()
    x, y = ds[3]
    assert x.tolist() == [6.0, 7.0] and y.item() == 3 and len(ds) == 10
    rows = ds.__getitems__([4, 1])
    assert [r[1].item() for r in rows] == [4, 1]
    assert rows[0][0].tolist() == [8.0, 9.0]


def test_tensor_dataset_size_mismatch_names_shapes():
    with pytest.raises(ValueError, match=r"\[3, 2\].*\[4\]"):
        TensorDataset(gradforge.zeros(3, 2), gradforge.zeros(4))


def test_subset_and_concat():
    sq = Squares(5)
    sub = Subset(sq, [4, 0, 2])
    assert [sub[i] for i in range(3)] == [16, 0, 4] and len(sub) == 3
    assert sub.__getitems__([0, 2]) == [16, 4]
    cat = ConcatDataset([sq, Squares(3)])
    assert len(cat) == 8 and cat.cumulative_sizes == [5, 8]
    assert [cat[i] for i in range(8)] == [0, 1, 4, 9, 16, 0, 1, 4]
    assert cat[-1] == 4 and cat[-8] == 0
    assert len(sq + Squares(2)) == 7
    with pytest.raises(ValueError, match="exceed dataset length 8"):
        cat[-9]
    with pytest.raises(IndexError):
        cat[8]
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])
    with pytest.raises(TypeError, match="IterableDataset"):
        ConcatDataset([Stream(3)])


@pytest.mark.parametrize("lengths", [[3, 7], [0.3, 0.7], [0.5, 0.25, 0.25], [0.33, 0.33, 0.34],
                                     [1 / 3] * 3, [0.1] * 10])
def test_random_split_lengths_match_torch(lengths):
    torch = pytest.importorskip("torch")
    n = 11 if len(lengths) == 3 else 10
    ours = [len(s) for s in random_split(Squares(n), lengths)]
    theirs = [len(s) for s in torch.utils.data.random_split(range(n), lengths)]
    assert ours == theirs


def test_random_split_partitions_and_is_reproducible():
    g1 = gradforge.Generator().manual_seed(42)
    a, b = random_split(Squares(10), [0.3, 0.7], generator=g1)
    assert sorted(a.indices + b.indices) == list(range(10))
    g2 = gradforge.Generator().manual_seed(42)
    a2, _ = random_split(Squares(10), [3, 7], generator=g2)
    assert a2.indices == a.indices


def test_random_split_bad_lengths():
    with pytest.raises(ValueError, match=r"Sum of input lengths \(9\).*\(10\)"):
        random_split(Squares(10), [4, 5])
    with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
        random_split(Squares(10), [1.5, -0.5])


# -- samplers -----------------------------------------------------------------------------------
def test_sequential_and_batch_sampler_match_torch():
    torch = pytest.importorskip("torch")
    for bs in (1, 3, 4, 10, 11):
        for drop in (False, True):
            ours = BatchSampler(SequentialSampler(range(10)), bs, drop)
            theirs = torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(range(10)),
                                                   bs, drop)
            assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_batch_sampler_bad_arguments():
    with pytest.raises(ValueError, match="batch_size=0"):
        BatchSampler(range(3), 0, False)
    with pytest.raises(ValueError, match="batch_size=True"):
        BatchSampler(range(3), True, False)
    with pytest.raises(ValueError, match="drop_last=1"):
        BatchSampler(range(3), 2, 1)


def test_random_sampler_permutation_and_epochs():
    s = RandomSampler(range(10))
    e1, e2 = list(s), list(s)
    assert sorted(e1) == sorted(e2) == list(range(10))
    assert e1 != e2  # a new permutation each epoch
    gradforge.manual_seed(0)
    assert list(s) == e1 and list(s) == e2  # reproducible from the global seed


def test_random_sampler_consumes_one_global_draw_per_epoch():
    gradforge.manual_seed(3)
    list(RandomSampler(range(100)))
    after_epoch = gradforge.randint(0, 1 << 30, (4,)).tolist()
    gradforge.manual_seed(3)
    gradforge.randint(0, (1 << 63) - 1, ())  # the one seed the sampler drew
    assert gradforge.randint(0, 1 << 30, (4,)).tolist() == after_epoch


def test_random_sampler_num_samples_and_replacement():
    s = RandomSampler(range(4), num_samples=10)
    out = list(s)
    assert len(out) == 10 == len(s)
    assert sorted(out[:4]) == sorted(out[4:8]) == [0, 1, 2, 3]
    g = gradforge.Generator().manual_seed(1)
    r = list(RandomSampler(range(3), replacement=True, num_samples=70, generator=g))
    assert len(r) == 70 and set(r) == {0, 1, 2}
    with pytest.raises(ValueError, match="num_samples=0"):
        RandomSampler(range(3), num_samples=0)
    with pytest.raises(ValueError, match="num_samples=0"):
        RandomSampler([])
    with pytest.raises(TypeError, match="replacement=1"):
        RandomSampler(range(3), replacement=1)


def test_random_sampler_with_generator_does_not_touch_global_rng():
    gradforge.manual_seed(5)
    before = gradforge.get_rng_state()
    g = gradforge.Generator().manual_seed(7)
    first = list(RandomSampler(range(20), generator=g))
    assert gradforge.get_rng_state().tolist() == before.tolist()
    g.manual_seed(7)
    assert list(RandomSampler(range(20), generator=g)) == first


def test_subset_and_weighted_samplers():
    out = list(SubsetRandomSampler([10, 20, 30]))
    assert sorted(out) == [10, 20, 30]
    w = list(WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], 200))
    assert set(w) == {1, 3} and 100 < w.count(3) < 190
    with pytest.raises(ValueError, match="1d"):
        WeightedRandomSampler([[1.0, 2.0]], 2)


# -- collation ----------------------------------------------------------------------------------
def _as_plain(x, lib):
    """Nested structure -> comparable Python values with dtypes and container types."""
    if isinstance(x, (gradforge.Tensor, lib.Tensor)):
        return ("tensor", str(x.dtype).split(".")[-1], tuple(x.shape), x.tolist())
    if isinstance(x, dict):
        return {k: _as_plain(v, lib) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return (type(x).__name__, [_as_plain(v, lib) for v in x])
    return x


COLLATE_CASES = {
    "ints": [1, 2, 3],
    "bools": [True, False],
    "floats": [1.5, 2.0],
    "strings": ["a", "b"],
    "np_arrays": [np.ones((2, 3), np.float32), np.zeros((2, 3), np.float32)],
    "np_int_scalars": [np.int32(3), np.int32(4)],
    "np_float_scalars": [np.float64(1.5), np.float64(2.5)],
    "np_0d": [np.array(1.5), np.array(2.5)],
    "tuples": [(1, 2.0, "x"), (3, 4.0, "y")],
    "lists": [[1, 2], [3, 4]],
    "dicts": [{"a": 1, "b": [1.0, 2.0]}, {"a": 2, "b": [3.0, 4.0]}],
    "nested": [({"k": np.arange(3)}, 1), ({"k": np.arange(3)}, 2)],
}


@pytest.mark.parametrize("case", sorted(COLLATE_CASES))
def test_default_collate_matches_torch(case):
    torch = pytest.importorskip("torch")
    batch = COLLATE_CASES[case]
    ours = _as_plain(default_collate(batch), gradforge)
    theirs = _as_plain(torch.utils.data.default_collate(batch), torch)
    assert ours == theirs


def test_default_collate_tensors_and_named_tuples():
    a, b = gradforge.tensor([1.0, 2.0]), gradforge.tensor([3.0, 4.0])
    out = default_collate([a, b])
    assert out.tolist() == [[1.0, 2.0], [3.0, 4.0]] and out.dtype == gradforge.float32
    pts = default_collate([Point(1, a), Point(2, b)])
    assert isinstance(pts, Point) and pts.x.tolist() == [1, 2]
    assert pts.y.shape == (2, 2)


def test_default_collate_keeps_the_graph_for_grad_tensors():
    a = gradforge.tensor([1.0, 2.0], requires_grad=True)
    out = default_collate([a, a * 2])
    out.sum().backward()
    assert a.grad.tolist() == [3.0, 3.0]


def test_default_collate_errors():
    with pytest.raises(RuntimeError, match=r"\[2\] at entry 0 and \[3\] at entry 1"):
        default_collate([gradforge.zeros(2), gradforge.zeros(3)])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="found <class 'object'>"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="found <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])


def test_default_convert():
    out = default_convert({"a": np.arange(3), "b": (np.float32(2.0), "s"), "c": 5})
    assert isinstance(out["a"], gradforge.Tensor) and out["a"].tolist() == [0, 1, 2]
    assert isinstance(out["b"], list) and out["b"][0].dtype == gradforge.float32
    assert out["b"][1] == "s" and out["c"] == 5


# -- DataLoader -------------------------------------------------------------------------------
def test_loader_batches_in_order():
    loader = DataLoader(_tensor_dataset(), batch_size=4)
    batches = list(loader)
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].shape == (4, 2) and batches[0][0].dtype == gradforge.float32
    assert isinstance(batches[0], list)  # tuples collate to a list, as in torch


def test_loader_shuffle_reproducible_and_new_each_epoch():
    ds = Squares(12)
    gradforge.manual_seed(1)
    loader = DataLoader(ds, batch_size=5, shuffle=True)
    e1 = [b.tolist() for b in loader]
    e2 = [b.tolist() for b in loader]
    assert e1 != e2
    assert sorted(v for b in e1 for v in b) == sorted(i * i for i in range(12))
    gradforge.manual_seed(1)
    assert [b.tolist() for b in loader] == e1 and [b.tolist() for b in loader] == e2


def test_loader_rng_state_replays_an_epoch():
    loader = DataLoader(Squares(9), batch_size=4, shuffle=True)
    list(loader)
    state = gradforge.get_rng_state()
    expected = [b.tolist() for b in loader]
    gradforge.set_rng_state(state)
    assert [b.tolist() for b in loader] == expected


def test_loader_draws_base_seed_like_torch():
    # Each iter() draws one base seed, shuffling draws one more (torch's contract); the
    # global stream after two shuffled epochs is the stream after four seed draws.
    gradforge.manual_seed(11)
    for _ in DataLoader(Squares(4), shuffle=True):
        pass
    for _ in DataLoader(Squares(4), shuffle=True):
        pass
    got = gradforge.rand(3).tolist()
    gradforge.manual_seed(11)
    for _ in range(4):
        gradforge.randint(0, (1 << 63) - 1, ())
    assert gradforge.rand(3).tolist() == got
    gradforge.manual_seed(11)
    list(DataLoader(Squares(4)))  # no shuffle: the base seed only
    gradforge.randint(0, (1 << 63) - 1, ())
    after = gradforge.rand(3).tolist()
    gradforge.manual_seed(11)
    for _ in range(2):
        gradforge.randint(0, (1 << 63) - 1, ())
    assert gradforge.rand(3).tolist() == after


def test_loader_generator_argument():
    g = gradforge.Generator().manual_seed(3)
    gradforge.manual_seed(0)
    state = gradforge.get_rng_state().tolist()
    first = [b.tolist() for b in DataLoader(Squares(8), batch_size=3, shuffle=True,
                                            generator=g)]
    assert gradforge.get_rng_state().tolist() == state
    g.manual_seed(3)
    again = [b.tolist() for b in DataLoader(Squares(8), batch_size=3, shuffle=True,
                                            generator=g)]
    assert again == first


@pytest.mark.parametrize("n,bs,drop", [(10, 3, False), (10, 3, True), (9, 3, False),
                                       (2, 5, False), (2, 5, True), (7, None, False)])
def test_len_matches_torch(n, bs, drop):
    torch = pytest.importorskip("torch")

    class TorchStream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(n))

        def __len__(self):
            return n

    for ours_ds, theirs_ds in ((Squares(n), list(range(n))), (Stream(n), TorchStream())):
        ours = DataLoader(ours_ds, batch_size=bs, drop_last=drop)
        theirs = torch.utils.data.DataLoader(theirs_ds, batch_size=bs, drop_last=drop)
        assert len(ours) == len(theirs)
        if not isinstance(ours_ds, IterableDataset):
            assert len(list(ours)) == len(ours)


def test_iterable_dataset_batches():
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3)] == [[0, 1, 2], [3, 4, 5],
                                                                        [6]]
    assert [b.tolist() for b in DataLoader(Stream(7), batch_size=3, drop_last=True)] == \
        [[0, 1, 2], [3, 4, 5]]
    assert list(DataLoader(Stream(3), batch_size=None)) == [0, 1, 2]
    with pytest.raises(TypeError, match="no len"):
        len(DataLoader(Stream(3, with_len=False)))


def test_batch_size_none_and_batch_sampler():
    out = list(DataLoader({"a": np.arange(2)} and [np.arange(2), np.arange(3)], batch_size=None))
    assert [t.tolist() for t in out] == [[0, 1], [0, 1, 2]]
    bsamp = [[0, 2], [1]]
    loader = DataLoader(Squares(3), batch_sampler=bsamp)
    assert [b.tolist() for b in loader] == [[0, 4], [1]] and len(loader) == 2


def test_custom_collate_and_sampler():
    loader = DataLoader(Squares(5), batch_size=2, sampler=[4, 3, 2, 1, 0], collate_fn=sum)
    assert list(loader) == [16 + 9, 4 + 1, 0]


def test_loader_pin_memory_is_accepted():
    out = list(DataLoader(_tensor_dataset(4), batch_size=2, pin_memory=True))
    assert out[1][1].tolist() == [2, 3] and out[1][0].device == gradforge.device("cpu")


def test_loader_bad_options():
    ds = Squares(4)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0, 1], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_sampler=[[0]], batch_size=2)
    with pytest.raises(ValueError, match="drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="expected unspecified shuffle option"):
        DataLoader(Stream(3), shuffle=True)
    with pytest.raises(ValueError, match="expected unspecified sampler option"):
        DataLoader(Stream(3), sampler=[0])
    with pytest.raises(ValueError, match="num_workers option should be non-negative"):
        DataLoader(ds, num_workers=-1)
    with pytest.raises(ValueError, match="prefetch_factor"):
        DataLoader(ds, prefetch_factor=2)
    with pytest.raises(ValueError, match="persistent_workers option needs num_workers > 0"):
        DataLoader(ds, persistent_workers=True)
    loader = DataLoader(ds)
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        loader.batch_size = 3
    loader.num_workers = 0  # not frozen, as in torch


def test_loader_index_error_propagates():
    class Broken(Squares):
        def __getitem__(self, i):
            raise KeyError(f"missing {i}")

    with pytest.raises(KeyError, match="missing 0"):
        next(iter(DataLoader(Broken(3))))


def test_epoch_len_consistent_with_math():
    for n in range(1, 12):
        for bs in range(1, 5):
            assert len(DataLoader(Squares(n), batch_size=bs)) == math.ceil(n / bs)


@pytest.mark.cuda
def test_pin_memory_pins_batches_when_a_gpu_is_present():
    from gradforge.backend import cuda as cuda_backend
    x, y = next(iter(DataLoader(_tensor_dataset(4), batch_size=2, pin_memory=True)))
    assert cuda_backend.is_pinned(x._data) and cuda_backend.is_pinned(y._data)
    assert x.device == gradforge.device("cpu") and x.tolist() == [[0.0, 1.0], [2.0, 3.0]]
    plain, _ = next(iter(DataLoader(_tensor_dataset(4), batch_size=2)))
    assert not cuda_backend.is_pinned(plain._data)
