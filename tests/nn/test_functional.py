"""scratchlm.nn.functional: float64 gradient checks, hypothesis properties, PyTorch as the peer."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.errors import ScratchlmError
from scratchlm.nn import functional as F
from scratchlm.testing import check_closed_form_grad, check_grads

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


@settings(max_examples=25, deadline=None)
@given(full=st.lists(st.integers(1, 7), min_size=1, max_size=3), data=st.data())
def test_dropout_of_shape_is_the_full_masks_leading_block(full, data):
    """A leading block of x dropped out with of_shape=x.shape gets exactly the entries the whole x's dropout
    gives there (what encoder(keep_first=...) relies on to draw the same masks as the full model)."""
    block = tuple(data.draw(st.integers(1, n)) for n in full)
    x = jnp.asarray(np.random.default_rng(len(full)).standard_normal(full), jnp.float32)
    key = jax.random.key(7, impl="rbg")
    whole = np.asarray(F.dropout(x, 0.3, key=key, train=True))
    index = tuple(slice(0, n) for n in block)
    part = np.asarray(F.dropout(x[index], 0.3, key=key, train=True, of_shape=tuple(full)))
    np.testing.assert_array_equal(part, whole[index])


def test_dropout_of_shape_must_hold_x():
    with pytest.raises(ValueError, match="not a leading block"):
        F.dropout(jnp.ones((2, 5)), 0.1, key=jax.random.key(0), train=True, of_shape=(2, 4))
    with pytest.raises(ValueError, match="not a leading block"):
        F.dropout(jnp.ones((2, 5)), 0.1, key=jax.random.key(0), train=True, of_shape=(10,))


# ---------------------------------------------------------------- closed-form gradients (float64)


def test_sigmoid_and_log_sigmoid_closed_form_grads(x64):
    """sigma'(x) = sigma(x)(1 - sigma(x)); (log sigma)'(x) = sigma(-x): the docstrings' derivatives, in NumPy."""
    c = np.random.default_rng(4).normal(size=X.shape)  # a random cotangent: every element weighs in

    def s(x):
        return 1 / (1 + np.exp(-x))

    check_closed_form_grad(lambda x: jnp.sum(c * F.sigmoid(x)), lambda x: c * s(x) * (1 - s(x)), (X,))
    check_closed_form_grad(lambda x: jnp.sum(c * F.log_sigmoid(x)), lambda x: c * s(-x), (X,))


def test_gelu_closed_form_grads(x64):
    r"""Hendrycks & Gimpel 2016: d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density; the tanh
    form's derivative by the chain rule, with u = sqrt(2/pi)(x + 0.044715 x^3):
    0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) sqrt(2/pi)(1 + 3 * 0.044715 x^2)."""
    from scipy.special import erf

    c = np.random.default_rng(5).normal(size=X.shape)

    def Phi(x):  # the standard normal CDF
        return 0.5 * (1 + erf(x / np.sqrt(2)))

    def phi(x):  # its density
        return np.exp(-x * x / 2) / np.sqrt(2 * np.pi)

    check_closed_form_grad(lambda x: jnp.sum(c * F.gelu(x)), lambda x: c * (Phi(x) + x * phi(x)), (X,))

    def tanh_form(x):
        k = np.sqrt(2 / np.pi)
        t = np.tanh(k * (x + 0.044715 * x**3))
        return c * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x))

    check_closed_form_grad(lambda x: jnp.sum(c * F.gelu(x, approximate=True)), tanh_form, (X,))


def test_softmax_closed_form_jacobian(x64):
    """d softmax(x)_j / d x_i = p_j (delta_ij - p_i), so the gradient of c . softmax(x) is p * (c - c . p)."""
    rng = np.random.default_rng(6)
    x, c = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))

    def closed_form(x):
        p = np.exp(x - x.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        return p * (c - (c * p).sum(-1, keepdims=True))

    check_closed_form_grad(lambda x: jnp.sum(c * F.softmax(x)), closed_form, (x,))


def test_layer_norm_closed_form_grads(x64):
    r"""With x_hat = (x - mu)/s, s = sqrt(sigma^2 + eps) and g = gamma * dL/dy, the chain rule through mu and
    sigma^2 (Ba et al. 2016 do not print it; it is the standard one) gives
    dL/dx = (g - mean(g) - x_hat mean(g x_hat)) / s,  dL/dgamma = sum over rows of dL/dy x_hat,
    dL/dbeta = sum over rows of dL/dy."""
    rng = np.random.default_rng(7)
    x, gamma, beta, c = rng.normal(size=(3, 6)), rng.normal(size=6), rng.normal(size=6), rng.normal(size=(3, 6))
    eps = 1e-5

    def closed_form(x, gamma, beta):
        mu, s = x.mean(-1, keepdims=True), np.sqrt(x.var(-1, keepdims=True) + eps)
        x_hat, g = (x - mu) / s, c * gamma
        d_x = (g - g.mean(-1, keepdims=True) - x_hat * (g * x_hat).mean(-1, keepdims=True)) / s
        return d_x, (c * x_hat).sum(0), c.sum(0)

    def f(x, gamma, beta):
        return jnp.sum(c * F.layer_norm(x, gamma, beta, eps=eps))

    for argnums in (0, 1, 2):
        check_closed_form_grad(f, lambda *a, i=argnums: closed_form(*a)[i], (x, gamma, beta), argnums=argnums)


def test_dropout_closed_form_grad(x64):
    """y = m x / q with m the kept mask: dy/dx = m / q, read off the forward output (y / x, x non-zero)."""
    x = np.arange(1.0, 41.0)
    key = jax.random.key(2)
    y = np.asarray(F.dropout(jnp.asarray(x), 0.3, key=key, train=True))
    q = F.keep_threshold(0.3) / 2**16
    assert set(np.round(y / x * q, 12)) == {0.0, 1.0}  # the mask, exactly 0 or 1
    check_closed_form_grad(lambda x: jnp.sum(F.dropout(x, 0.3, key=key, train=True)), lambda x: y / x, (x,))


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
    grad = np.asarray(jax.vmap(jax.grad(F.sigmoid))(x))
    assert np.all(np.isfinite(F.sigmoid(x))) and np.all(np.isfinite(grad))
    # sigma'(x) = sigma(x)(1 - sigma(x)): 1/4 at 0, exactly 0 where sigma rounds to 0 or 1, and at +-100
    # e^-100 (1 - e^-100) ~ 3.7e-44, a float32 subnormal that XLA:CPU flushes to 0 (either is right)
    np.testing.assert_array_equal(grad[[0, 2, 4, 5, 6]], [0.0, 0.25, 0.0, 0.0, 0.0])
    assert np.all((grad[[1, 3]] >= 0) & (grad[[1, 3]] <= 1e-43))
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
    with pytest.raises(ScratchlmError, match="rate"):
        F.dropout(jnp.ones(3), 1.0, key=jax.random.key(0), train=True)
    with pytest.raises(ValueError, match="key"):
        F.dropout(jnp.ones(3), 0.1, key=None, train=True)


def test_layer_norm_normalises(x64):
    x = np.random.default_rng(2).normal(3.0, 5.0, size=(4, 16))
    y = F.layer_norm(x, jnp.ones(16), jnp.zeros(16), eps=0.0)
    np.testing.assert_allclose(np.mean(y, -1), 0.0, atol=1e-13)
    np.testing.assert_allclose(np.var(y, -1), 1.0, rtol=1e-12)


@given(finite)
def test_gelu_odd_part_is_the_identity(x):
    """Phi(x) + Phi(-x) = 1, so GELU(x) - GELU(-x) = x Phi(x) + x Phi(-x) = x, for both forms (tanh is odd too).
    float32: |GELU(x)| <= |x|, each side rounds a few times at eps |x| each: 8 eps |x| bounds the difference,
    plus 8 subnormal steps for x below float32's normal range (there a rounding is absolute, 2^-149)."""
    x32 = jnp.float32(x)
    tiny = 8 * np.finfo(np.float32).smallest_subnormal
    for approximate in (False, True):
        odd = float(F.gelu(x32, approximate) - F.gelu(-x32, approximate))
        assert abs(odd - float(x32)) <= 8 * np.finfo(np.float32).eps * abs(float(x32)) + tiny, (x, approximate)


@settings(max_examples=20)
@given(st.lists(st.floats(-10, 10), min_size=2, max_size=8), st.floats(0.1, 10.0), st.floats(-100, 100))
def test_layer_norm_ignores_shift_and_positive_scale(v, a, b):
    """LN(a x + b) = LN(x) for a > 0 when eps = 0 (mu shifts by b, sigma scales by a): float64, so the
    round-off of computing x - mu is ~|b| ulp over a sigma; rows with sigma < 1e-3 are skipped (there the
    division amplifies it without bound)."""
    x = np.asarray(v)
    if x.std() < 1e-3:
        return
    with jax.enable_x64(True):
        H = len(v)
        gamma, beta = np.linspace(0.5, 2.0, H), np.linspace(-1.0, 1.0, H)
        y = np.asarray(F.layer_norm(jnp.asarray(x), jnp.asarray(gamma), jnp.asarray(beta), eps=0.0))
        y_ab = np.asarray(F.layer_norm(jnp.asarray(a * x + b), jnp.asarray(gamma), jnp.asarray(beta), eps=0.0))
    bound = 64 * np.finfo(np.float64).eps * (1 + abs(b) / (a * x.std())) * np.abs(gamma).max() * np.sqrt(H)
    np.testing.assert_allclose(y_ab, y, rtol=0, atol=bound)


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
    np.testing.assert_allclose(F.gelu(x, approximate=True), torch.nn.functional.gelu(t, approximate="tanh").numpy(),
                               **tol)
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


# ---------------------------------------------------------------- matmul: the product with its backward written out


def test_matmul_grads_and_closed_form(x64):
    """y = xW: autodiff of the written-out backward pass against finite differences, and against the
    docstring's x_bar = y_bar W^T, W_bar = x^T y_bar evaluated in NumPy, over the rows of every leading axis."""
    rng = np.random.default_rng(5)
    x, W, c = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5)), rng.normal(size=(2, 3, 5))
    f = lambda x, W: jnp.sum(c * F.matmul(x, W))  # noqa: E731
    check_grads(f, (x, W))
    check_closed_form_grad(f, lambda x, W: c @ W.T, (x, W), argnums=0)
    check_closed_form_grad(f, lambda x, W: x.reshape(-1, 4).T @ c.reshape(-1, 5), (x, W), argnums=1)


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 6), st.integers(1, 6), st.integers(0, 99))
def test_matmul_equals_the_plain_product_both_ways(B, T, d_in, d_out, seed):
    """Any shape: the value and the gradients are the plain einsum's and autodiff's of it, the same float64
    sums (of d_in <= 6 products for y, of B·T <= 20 for the gradients) in another order:
    |error| <= n·eps·sum|terms| ~ 5e-15 of the summed magnitudes, so 1e-13 of them is a wide bound."""
    rng = np.random.default_rng(seed)
    x, W, c = rng.normal(size=(B, T, d_in)), rng.normal(size=(d_in, d_out)), rng.normal(size=(B, T, d_out))
    with jax.enable_x64(True):
        magnitudes = np.abs(x) @ np.abs(W)
        np.testing.assert_array_less(np.abs(F.matmul(x, W) - x @ W), 1e-13 * magnitudes + 1e-300)
        ours = jax.grad(lambda x, W: jnp.sum(c * F.matmul(x, W)), (0, 1))(x, W)
        plain = jax.grad(lambda x, W: jnp.sum(c * jnp.einsum("bti,io->bto", x, W)), (0, 1))(x, W)
        for got, want, s in zip(ours, plain, (np.abs(c) @ np.abs(W).T, np.einsum("bti,bto->io", np.abs(x), np.abs(c)))):
            np.testing.assert_array_less(np.abs(got - want), 1e-13 * s + 1e-300)


def test_matmul_weight_gradient_is_a_plain_product_on_cpu():
    """The reason the function exists: autodiff's W_bar contracts both operands' leading axis (an Eigen dot
    on XLA:CPU); matmul's contracts the left operand's last axis (YNNPACK's form), its left operand stored
    through a conditional on CPU."""
    x, W = jnp.ones((8, 16)), jnp.ones((16, 32))  # arguments: a constant x would fold the conditional away
    ours = jax.jit(jax.grad(lambda W, x: jnp.sum(F.matmul(x, W) ** 2))).lower(W, x).compile().as_text()
    plain = jax.jit(jax.grad(lambda W, x: jnp.sum((x @ W) ** 2))).lower(W, x).compile().as_text()
    assert "lhs_contracting_dims={0}" in plain
    assert "lhs_contracting_dims={0}" not in ours and " conditional(" in ours


def test_matmul_of_no_rows():
    x, W = jnp.zeros((0, 3)), jnp.ones((3, 2))
    assert F.matmul(x, W).shape == (0, 2)
    np.testing.assert_array_equal(jax.grad(lambda W: jnp.sum(F.matmul(x, W)))(W), np.zeros((3, 2)))
