"""Random number generation: manual_seed, Generator, generator=, and saving/restoring the
RNG state reproduce the same numbers."""
import pytest

import gradforge


def draws(generator=None):
    return (gradforge.rand(5, generator=generator).tolist()
            + gradforge.randn(3, generator=generator).tolist()
            + gradforge.randint(0, 100, (4,), generator=generator).tolist()
            + gradforge.randperm(6, generator=generator).tolist())


def test_manual_seed_reproduces_the_stream():
    gradforge.manual_seed(123)
    first = draws()
    gradforge.manual_seed(123)
    assert draws() == first
    gradforge.manual_seed(124)
    assert draws() != first
    assert gradforge.initial_seed() == 124


def test_generator_is_independent_of_the_default():
    g = gradforge.Generator().manual_seed(7)
    gradforge.manual_seed(0)
    expected = draws(g)
    g.manual_seed(7)
    gradforge.rand(10)                     # draws from the default do not move g
    assert draws(g) == expected
    assert g.initial_seed() == 7 and g.device == "cpu"


def test_same_seed_generators_agree_with_the_default():
    gradforge.manual_seed(42)
    from_default = draws()
    assert draws(gradforge.Generator().manual_seed(42)) == from_default


def test_get_and_set_rng_state():
    gradforge.manual_seed(3)
    gradforge.rand(4)
    state = gradforge.get_rng_state()
    assert state.dtype is gradforge.uint8
    expected = draws()
    gradforge.rand(7)
    gradforge.set_rng_state(state)
    assert draws() == expected


def test_generator_state_round_trip():
    g = gradforge.Generator().manual_seed(11)
    gradforge.randn(3, generator=g)
    state = g.get_state()
    expected = draws(g)
    other = gradforge.Generator()
    other.set_state(state)
    assert draws(other) == expected
    assert other.initial_seed() == 11


def test_inplace_random_fills_use_the_generator():
    g = gradforge.Generator().manual_seed(9)
    a = gradforge.empty(5).uniform_(-2.0, 3.0, generator=g)
    b = gradforge.empty(5).normal_(10.0, 0.5, generator=g)
    g.manual_seed(9)
    assert gradforge.empty(5).uniform_(-2.0, 3.0, generator=g).tolist() == a.tolist()
    assert a.min().item() >= -2.0 and a.max().item() < 3.0
    assert abs(b.mean().item() - 10.0) < 1.0


def test_seed_returns_the_seed_used():
    s = gradforge.seed()
    assert gradforge.initial_seed() == s
    first = draws()
    gradforge.manual_seed(s)
    assert draws() == first


def test_seed_out_of_range_and_foreign_state_raise():
    with pytest.raises(RuntimeError, match="out of range"):
        gradforge.manual_seed(1 << 70)
    with pytest.raises(RuntimeError, match="expected 45 bytes, got 3"):
        gradforge.set_rng_state(gradforge.tensor([1, 2, 3], dtype=gradforge.uint8))


def test_generator_on_another_device_is_refused():
    if gradforge.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    g = gradforge.Generator("cuda")          # a descriptor is fine without a GPU ...
    with pytest.raises(RuntimeError, match="'cpu' device type for generator but found 'cuda'"):
        gradforge.rand(2, generator=g)        # ... but it cannot draw for a CPU tensor
