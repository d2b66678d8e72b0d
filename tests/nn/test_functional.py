"""scratchlm.nn.functional: float64 gradient checks, hypothesis properties, PyTorch as the peer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.nn import functional as F
from scratchlm.testing import check_grads

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, width=32)
vectors = st.lists(st.floats(min_value=-50, max_value=50, allow_nan=False, width=32), min_size=1, max_size=8)

X = np.linspace(-6.0, 6.0, 13)  # crosses 0, where sigmoid and log_sigmoid switch branch


# ---------------------------------------------------------------- gradient checks (float64)


@pytest.mark.parametrize("fn", [F.sigmoid, F.log_sigmoid, F.gelu, lambda x: F.gelu(x, approximate=True)])
def test_elementwise_grads(x64, fn):
    check_grads(fn, (X,))


def test_softmax_grads(x64):
    x = np.random.default_rng(0).normal(size=(3, 5))
    check_grads(F.softmax, (x,))
    check_grads(F.log_softmax, (x,))
    check_grads(lambda x: F.log_softmax(x, axis=0), (x,))


def test_layer_norm_grads(x64):
    rng = np.random.default_rng(1)
    x, gamma, beta = rng.normal(size=(2, 6)), rng.normal(size=6), rng.normal(size=6)
    check_grads(lambda x, g, b: F.layer_norm(x, g, b, eps=1e-5), (x, gamma, beta))


def test_dropout_grads(x64):
    key = jax.random.key(0)
    check_grads(lambda x: F.dropout(x, 0.3, key=key, train=True), (np.arange(1.0, 9.0),))


# ---------------------------------------------------------------- properties


@given(finite)
def test_sigmoid_symmetry_and_range(x):
    """sigma(-x) = 1 - sigma(x), sigma in (0, 1) (up to float32 rounding at |x| large), never NaN."""
    s, s_neg = float(F.sigmoid(jnp.float32(x))), float(F.sigmoid(jnp.float32(-x)))
    assert np.isfinite(s) and 0.0 <= s <= 1.0
    assert abs(s_neg - (1.0 - s)) <= 2 * np.finfo(np.float32).eps  # one rounding in each of the two sides
    if abs(x) < 15:  # beyond |x| ~ 17 the float32 sigmoid rounds to exactly 1
        assert 0.0 < s < 1.0
    assert np.isfinite(float(F.log_sigmoid(jnp.float32(x))))
    assert np.isfinite(float(jax.grad(F.sigmoid)(jnp.float32(x))))


def test_sigmoid_extremes_have_no_nan():
    x = jnp.array([-1e4, -100.0, 0.0, 100.0, 1e4, -jnp.inf, jnp.inf])
    assert np.all(np.isfinite(F.sigmoid(x))) and np.all(np.isfinite(jax.vmap(jax.grad(F.sigmoid))(x)))
    np.testing.assert_array_equal(np.asarray(F.sigmoid(x))[[0, 2, 4]], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(F.log_sigmoid(x)[:5], [-1e4, -100.0, -np.log(2.0), 0.0, 0.0], rtol=1e-7)


@given(vectors, st.floats(min_value=-100, max_value=100, width=32))
def test_softmax_sums_to_one_and_is_shift_invariant(v, c):
    x = jnp.asarray(v, jnp.float32)
    p = F.softmax(x)
    assert np.all(p >= 0)
    # float32: each of up to 8 terms carries ~1 ulp, the sum a few more
    np.testing.assert_allclose(float(jnp.sum(p)), 1.0, atol=1e-6 * len(v))
    # Shifting by c rounds x + c once (|x + c| <= 150, ulp ~1.5e-5): p moves by at most ~p * 1.5e-5.
    np.testing.assert_allclose(F.softmax(x + c), p, atol=3e-5)
    np.testing.assert_allclose(jnp.exp(F.log_softmax(x)), p, rtol=1e-5, atol=1e-7)


@given(st.floats(min_value=0.05, max_value=0.9), st.integers(0, 2**31 - 1))
@settings(max_examples=10)
def test_dropout_mask_and_scale(rate, seed):
    x = jnp.ones((4000,))
    y = F.dropout(x, rate, key=jax.random.key(seed), train=True)
    kept = np.asarray(y) != 0
    q = F.keep_threshold(rate) / 2**16  # the keep probability: 1 - rate on a grid of 2^-16
    assert abs(q - (1.0 - rate)) <= 2**-17
    np.testing.assert_allclose(np.asarray(y)[kept], 1.0 / q, rtol=1e-6)
    # the kept fraction is Binomial(4000, q)/4000: 6 standard deviations is at most 0.048
    assert abs(kept.mean() - q) < 6 * np.sqrt(q * (1 - q) / 4000)
    np.testing.assert_array_equal(F.dropout(x, rate, key=None, train=False), x)


def test_dropout_rejects_bad_rate_and_missing_key():
    with pytest.raises(ValueError, match="rate"):
        F.dropout(jnp.ones(3), 1.0, key=jax.random.key(0), train=True)
    with pytest.raises(ValueError, match="key"):
        F.dropout(jnp.ones(3), 0.1, key=None, train=True)


def test_layer_norm_normalises(x64):
    x = np.random.default_rng(2).normal(3.0, 5.0, size=(4, 16))
    y = F.layer_norm(x, jnp.ones(16), jnp.zeros(16), eps=0.0)
    np.testing.assert_allclose(np.mean(y, -1), 0.0, atol=1e-13)
    np.testing.assert_allclose(np.var(y, -1), 1.0, rtol=1e-12)


def test_layer_norm_rejects_bad_shapes():
    with pytest.raises(ValueError, match="gamma"):
        F.layer_norm(jnp.ones((2, 4)), jnp.ones(3), jnp.zeros(3))


def test_jit_matches_eager():
    x = jnp.linspace(-5, 5, 11)
    for fn in (F.sigmoid, F.log_sigmoid, F.softmax, F.log_softmax, F.gelu):
        np.testing.assert_array_equal(jax.jit(fn)(x), fn(x))


# ---------------------------------------------------------------- the peer: PyTorch, float64


def test_against_pytorch(x64):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.normal(0, 4, size=(3, 7))
    t = torch.from_numpy(x)
    # both sides are float64 evaluations of the same formula: agreement to ~1e-15 relative
    tol = dict(rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(F.sigmoid(x), torch.sigmoid(t).numpy(), **tol)
    np.testing.assert_allclose(F.log_sigmoid(x), torch.nn.functional.logsigmoid(t).numpy(), **tol)
    np.testing.assert_allclose(F.softmax(x), torch.softmax(t, -1).numpy(), **tol)
    np.testing.assert_allclose(F.log_softmax(x), torch.log_softmax(t, -1).numpy(), **tol)
    np.testing.assert_allclose(F.gelu(x), torch.nn.functional.gelu(t).numpy(), **tol)
    np.testing.assert_allclose(F.gelu(x, approximate=True), torch.nn.functional.gelu(t, approximate="tanh").numpy(), **tol)
    g, b = rng.normal(size=7), rng.normal(size=7)
    ref = torch.nn.functional.layer_norm(t, (7,), torch.from_numpy(g), torch.from_numpy(b), eps=1e-12)
    np.testing.assert_allclose(F.layer_norm(x, g, b), ref.numpy(), **tol)


@pytest.mark.parametrize("shape", [(200_001,), (400, 501)])
def test_dropout_bits_are_independent_halves(shape):
    """Two mask entries share one 32-bit word (its low and high halves: entries j and j + ceil(H/2) of a
    row of length H): over 2·10^5 entries at p = 1/2 the two halves' keep decisions are uncorrelated
    and each is kept half the time, for odd lengths too."""
    kept = np.asarray(F.dropout(jnp.ones(shape), 0.5, key=jax.random.key(3), train=True)) != 0
    H = shape[-1]
    low, high = kept[..., : H // 2].ravel(), kept[..., (H + 1) // 2:].ravel()  # one word each
    sd = np.sqrt(0.25 / low.size)
    assert abs(low.mean() - 0.5) < 6 * sd and abs(high.mean() - 0.5) < 6 * sd
    assert abs(np.corrcoef(low, high)[0, 1]) < 6 / np.sqrt(low.size)
    assert kept.shape == shape


def test_dropout_of_a_scalar_and_of_rows():
    """A 0-d input and the rows of a [B, H] input: the rows' masks differ (each row has its own words)."""
    y = F.dropout(jnp.float32(2.0), 0.5, key=jax.random.key(0), train=True)
    assert y.shape == () and float(y) in (0.0, 2.0 / (F.keep_threshold(0.5) / 2**16))
    rows = np.asarray(F.dropout(jnp.ones((8, 64)), 0.5, key=jax.random.key(1), train=True)) != 0
    assert len({r.tobytes() for r in rows}) == 8
