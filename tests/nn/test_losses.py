"""scratchlm.nn.losses: gradient checks, the document's formulas, hypothesis properties, PyTorch."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.nn import losses as L
from scratchlm.nn.functional import sigmoid
from scratchlm.testing import check_grads

logit = st.floats(min_value=-30, max_value=30, allow_nan=False)
label = st.sampled_from([0.0, 1.0])


def test_softmax_cross_entropy_gradient_is_softmax_minus_one_hot(x64):
    # the closed form: dL/dz_ij = (softmax(z_i)_j - y_ij) / N over the N counted positions
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 7)) * 3
    labels = np.array([0, 6, -100, 3, 3])
    g = jax.grad(lambda z: L.softmax_cross_entropy(z, labels))(z)
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    expected = (p - np.eye(7)[np.where(labels >= 0, labels, 0)]) * (labels >= 0)[:, None] / 4
    np.testing.assert_allclose(g, expected, rtol=1e-12, atol=1e-14)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(2, 40), st.integers(0, 2**31 - 1), st.booleans())
def test_top1_correct_is_argmax_with_ties_counted(n, m, seed, tied):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, m)).astype(np.float32)
    if tied:  # small integer scores: exact ties are common
        z = rng.integers(0, 3, size=(n, m)).astype(np.float32)
    y = rng.integers(0, m, size=n)
    got = np.asarray(L.top1_correct(jnp.asarray(z), jnp.asarray(y)))
    np.testing.assert_array_equal(got, z[np.arange(n), y] == z.max(-1))
    if not tied:  # continuous scores: no ties, argmax's answer
        np.testing.assert_array_equal(got, z.argmax(-1) == y)


def test_bce_grads(x64):
    z = np.linspace(-4, 4, 9)
    y = np.array([0, 1, 0, 1, 1, 0, 0.3, 1, 0])
    check_grads(lambda z: L.binary_cross_entropy_with_logits(z, y), (z,))
    check_grads(lambda z: L.bce_risk(z, y), (z,))
    # soft labels strictly inside (0, 1), away from the 0 log 0 convention's switch at y in {0, 1}
    check_grads(L.binary_cross_entropy_with_logits, (z, np.linspace(0.1, 0.9, 9)))


def test_softmax_cross_entropy_grads(x64):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 4))
    labels = np.array([[0, 3, -100], [2, -100, 1]])
    w = np.array([0.5, 2.0, 1.0, 3.0])
    for reduction in ("mean", "sum", "none"):
        def f(x, reduction=reduction):
            return L.softmax_cross_entropy(x, labels, class_weights=w, reduction=reduction)

        check_grads(f, (logits,))


def test_bce_matches_the_documents_formula(x64):
    """ell = -[y log yhat + (1 - y) log(1 - yhat)] with yhat = 1/(1+e^-z), evaluated in NumPy float64."""
    z = np.array([-3.0, -0.5, 0.0, 0.7, 2.5])
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    yhat = 1.0 / (1.0 + np.exp(-z))
    ell = -(y * np.log(yhat) + (1 - y) * np.log(1 - yhat))
    np.testing.assert_allclose(L.binary_cross_entropy_with_logits(z, y), ell, rtol=1e-13)
    np.testing.assert_allclose(L.bce_risk(z, y), ell.mean(), rtol=1e-13)


def test_bce_hand_example():
    """z = 0 gives yhat = 1/2 and ell = log 2 whatever the label."""
    ell = L.binary_cross_entropy_with_logits(jnp.zeros(2), jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(ell, np.log(2.0), rtol=1e-7)


@given(logit, label)
def test_bce_nonnegative_and_gradient_is_sigma_minus_y(z, y):
    z = jnp.float32(z)
    ell = L.binary_cross_entropy_with_logits(z, jnp.float32(y))
    assert np.isfinite(ell) and ell >= 0
    if abs(z) < 15:  # log1p(e^-|z|) > 0 in float32 there; beyond, a right guess rounds to 0
        assert ell > 0
    g = jax.grad(L.binary_cross_entropy_with_logits)(z, jnp.float32(y))
    np.testing.assert_allclose(g, sigmoid(z) - y, atol=2e-7)  # two roundings of values <= 1


def test_bce_is_zero_only_for_a_perfect_prediction():
    z = jnp.array([jnp.inf, -jnp.inf, jnp.inf, -jnp.inf])
    y = jnp.array([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(L.binary_cross_entropy_with_logits(z, y), [0.0, 0.0, jnp.inf, jnp.inf])


def test_bce_no_overflow_at_large_logits():
    ell = L.binary_cross_entropy_with_logits(jnp.array([1e4, -1e4]), jnp.array([0.0, 1.0]))
    np.testing.assert_allclose(ell, [1e4, 1e4], rtol=1e-7)


@given(st.lists(st.floats(-20, 20), min_size=3, max_size=3), st.integers(0, 2), st.floats(0.1, 5.0))
def test_weighted_ce_with_equal_weights(v, k, w):
    """w_j = 1 for all j is plain CE; w_j = c scales the document's 1/N mean by c."""
    logits = jnp.asarray([v, v[::-1]], jnp.float32)
    labels = jnp.array([k, (k + 1) % 3])
    plain = L.softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(L.softmax_cross_entropy(logits, labels, class_weights=jnp.ones(3)), plain, rtol=1e-6)
    scaled = L.softmax_cross_entropy(logits, labels, class_weights=jnp.full(3, w))
    np.testing.assert_allclose(scaled, w * plain, rtol=1e-5, atol=1e-6)


@given(st.sampled_from([1, 3]), st.integers(0, 2**31 - 1))
@settings(max_examples=6)
def test_padding_never_changes_the_loss(n_pad, seed):
    rng = np.random.default_rng(seed)
    logits = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 4, size=5))
    padded_logits = jnp.concatenate([logits, jnp.asarray(rng.normal(0, 100, size=(n_pad, 4)), jnp.float32)])
    padded_labels = jnp.concatenate([labels, jnp.full(n_pad, -100)])
    # each real position's loss is bit-for-bit the same, and a padded one is exactly 0
    per_position = np.asarray(_ce_jit(padded_logits, padded_labels, "none"))
    np.testing.assert_array_equal(per_position[:5], _ce_jit(logits, labels, "none"))
    np.testing.assert_array_equal(per_position[5:], 0.0)
    # the totals add the same terms, but XLA may add them in another order once the number of
    # positions changes (it fuses the sum into the softmax's reductions): equal within the
    # worst-case error of a reordered float32 sum of n terms, n eps sum |x_i|
    bound = len(per_position) * np.finfo(np.float32).eps * np.abs(per_position).sum()
    for reduction, scale in (("sum", 1.0), ("mean", 1 / 5)):
        a = _ce_jit(logits, labels, reduction)
        b = _ce_jit(padded_logits, padded_labels, reduction)
        np.testing.assert_allclose(a, b, rtol=0, atol=bound * scale)
    g = _ce_grad_jit(padded_logits, padded_labels)
    np.testing.assert_array_equal(g[5:], 0.0)


# compiled once per shape rather than dispatched op by op for every example
_ce_jit = jax.jit(lambda x, y, r: L.softmax_cross_entropy(x, y, reduction=r), static_argnums=2)
_ce_grad_jit = jax.jit(jax.grad(lambda x, y: L.softmax_cross_entropy(x, y)))


def test_class_weighted_ce_matches_the_documents_formula(x64):
    """L = -(1/N) sum_i sum_j w_j y_ij log P(y_j|x_i), with one-hot y, computed in NumPy."""
    rng = np.random.default_rng(4)
    logits, labels, w = rng.normal(size=(6, 3)), np.array([0, 2, 1, 1, 0, 2]), np.array([0.2, 1.0, 3.0])
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    y = np.eye(3)[labels]
    expected = -(w * y * log_p).sum() / 6
    np.testing.assert_allclose(L.softmax_cross_entropy(logits, labels, class_weights=w), expected, rtol=1e-13)


def test_softmax_cross_entropy_checks_shapes():
    with pytest.raises(ValueError, match="labels of shape"):
        L.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((3,), jnp.int32))


def test_all_padding_gives_zero_not_nan():
    assert float(L.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.array([-100, -100]))) == 0.0


def test_against_pytorch(x64):
    """Binary and softmax cross-entropy against PyTorch in float64, under every reduction.

    Both sides evaluate the same float64 formula (a log-sum-exp over 4 classes, one product, a sum
    of at most 7 terms): agreement to a few ulps, ~1e-15 relative; rtol 1e-12 leaves three orders
    of margin, while a wrong weight, a counted ignored position or a wrong denominator moves the
    value by more than 10% with these weights (sum_i w_{y_i} / N = 11.5 / 5 = 2.3 here).
    """
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(5)
    z, y = rng.normal(0, 3, size=10), rng.integers(0, 2, size=10).astype(float)
    ref = F.binary_cross_entropy_with_logits(torch.from_numpy(z), torch.from_numpy(y), reduction="none")
    np.testing.assert_allclose(L.binary_cross_entropy_with_logits(z, y), ref.numpy(), rtol=1e-12)
    logits, labels = rng.normal(size=(7, 4)), np.array([0, 3, -100, 2, 1, -100, 3])
    w = np.array([1.0, 2.0, 0.5, 4.0])
    t_logits, t_labels = torch.from_numpy(logits), torch.from_numpy(labels)
    for weight in (None, w):
        t_weight = None if weight is None else torch.from_numpy(weight)
        for reduction in ("none", "sum", "mean"):
            ref = F.cross_entropy(t_logits, t_labels, weight=t_weight, ignore_index=-100, reduction=reduction).numpy()
            got = L.softmax_cross_entropy(logits, labels, class_weights=weight, reduction=reduction)
            if reduction == "mean" and weight is not None:
                # PyTorch's weighted mean divides by sum_i w_{y_i} over the counted positions; the
                # document's (ours) by their number N: ours = PyTorch's * sum_i w_{y_i} / N
                counted = labels != -100
                ref = ref * w[labels[counted]].sum() / counted.sum()
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0, err_msg=f"weight={weight}, {reduction}")


# --- linear_cross_entropy: the head and the loss fused, chunk by chunk ---------------------------------

def _linear_case(rng, n, v, hdim, ignored):
    h = rng.normal(size=(n, hdim))
    W = rng.normal(size=(v, hdim))
    y = rng.integers(0, v, size=n)
    y[rng.random(n) < ignored] = -100
    return h, W, y


# (rows, words, width, chunk_size): one chunk; chunks with padded rows; a row a chunk; one row
_LINEAR_SHAPES = [(12, 7, 3, 64), (23, 13, 4, 5), (6, 5, 2, 1), (1, 2, 1, 8)]


@functools.cache
def _fused_and_plain(chunk):
    def fused(h, W, y):
        return L.linear_cross_entropy(h, W, y, chunk_size=chunk)

    def plain(h, W, y):
        return L.softmax_cross_entropy(h @ W.T, y)

    return tuple(jax.jit(jax.value_and_grad(f, (0, 1))) for f in (fused, plain))


@settings(max_examples=24, deadline=None)
@given(st.sampled_from(_LINEAR_SHAPES), st.sampled_from([0.0, 0.3, 1.0]), st.integers(0, 2**31 - 1))
def test_linear_cross_entropy_equals_the_unfused_head_and_loss(shape, ignored, seed):
    # the same sums in another order (chunks, one-pass statistics): float64 rounding, ~(V + H) eps of the
    # O(1)-O(10) terms, far under 1e-12
    n, v, hdim, chunk = shape
    with jax.enable_x64(True):
        h, W, y = _linear_case(np.random.default_rng(seed), n, v, hdim, ignored)
        fused, plain = _fused_and_plain(chunk)
        (loss, grads), (want, want_grads) = fused(h, W, y), plain(h, W, y)
        np.testing.assert_allclose(loss, want, rtol=0, atol=1e-12)
        for got, expected in zip(grads, want_grads):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_linear_cross_entropy_gradient_is_the_softmax_regressions(x64):
    # the closed form: dz_i = (softmax(z_i) - e_{y_i}) / N, dh = dz W, dW = dz^T h, over three chunks
    h, W, y = _linear_case(np.random.default_rng(2), 11, 9, 4, 0.3)
    dh, dW = jax.grad(lambda h, W: L.linear_cross_entropy(h, W, y, chunk_size=4), (0, 1))(h, W)
    z = h @ W.T
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    keep = y >= 0
    dz = (p - np.eye(9)[np.where(keep, y, 0)]) * keep[:, None] / keep.sum()
    np.testing.assert_allclose(dh, dz @ W, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dW, dz.T @ h, rtol=1e-12, atol=1e-14)
    check_grads(lambda h, W: L.linear_cross_entropy(h, W, y, chunk_size=4), (h, W))


def test_linear_cross_entropy_in_bfloat16_is_the_float64_head_rounded_once():
    # bf16 inputs, float32 logits: the loss is the float64 loss of the same (rounded) inputs up to float32
    # sums of H exact products and V exponentials, ~(H + V) 2^-24 relative.  The gradient's dz is rounded to
    # bf16 (unit roundoff u = 2^-8) before its products, which sum in float32, and the result is rounded
    # once, so each element of dh lies within u (sum_v |dz_v W_v| + |dh|) of the exact one (dW likewise),
    # plus float32's share.
    rng = np.random.default_rng(3)
    h, W, y = (jnp.asarray(a, jnp.bfloat16) if a.dtype.kind == "f" else a
               for a in _linear_case(rng, 64, 50, 16, 0.1))
    loss, (dh, dW) = jax.value_and_grad(lambda h, W: L.linear_cross_entropy(h, W, y, chunk_size=24), (0, 1))(h, W)
    h64, W64 = np.asarray(h, np.float64), np.asarray(W, np.float64)
    z = h64 @ W64.T
    lse = np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1)) + z.max(-1)
    keep = y >= 0
    N = keep.sum()
    want = np.sum((lse - z[np.arange(64), np.where(keep, y, 0)]) * keep) / N
    assert abs(float(loss) - want) <= (16 + 50) * 2.0**-24 * np.abs(z).max() * 4
    dz = (np.exp(z - lse[:, None]) - np.eye(50)[np.where(keep, y, 0)]) * keep[:, None] / N
    u, f32 = 2.0**-8, (16 + 50) * 2.0**-24
    bound_h = u * (np.abs(dz) @ np.abs(W64) + np.abs(dz @ W64)) + f32 * (np.abs(dz) @ np.abs(W64))
    bound_W = u * (np.abs(dz).T @ np.abs(h64) + np.abs(dz.T @ h64)) + f32 * (np.abs(dz).T @ np.abs(h64))
    assert np.all(np.abs(np.asarray(dh, np.float64) - dz @ W64) <= bound_h + 1e-30)
    assert np.all(np.abs(np.asarray(dW, np.float64) - dz.T @ h64) <= bound_W + 1e-30)


def test_linear_cross_entropy_all_ignored_and_shapes():
    h, W = jnp.ones((3, 4)), jnp.ones((5, 4))
    y = jnp.full((3,), -100)
    loss, grads = jax.value_and_grad(lambda h, W: L.linear_cross_entropy(h, W, y), (0, 1))(h, W)
    assert float(loss) == 0.0 and all(np.all(np.asarray(g) == 0) for g in grads)
    with pytest.raises(ValueError, match="labels of shape"):
        L.linear_cross_entropy(h, W, jnp.zeros((4,), jnp.int32))
    with pytest.raises(ValueError, match="W must be"):
        L.linear_cross_entropy(h, jnp.ones((5, 3)), y)
