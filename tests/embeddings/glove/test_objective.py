"""GloVe's equations (scratchlm/embeddings/glove/objective.py): f, the residual, J and its closed-form gradient.

Each equation is computed independently here (NumPy, from the docstring's formula) or differentiated by
``jax.grad``, in float64.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings.glove import kernels, objective
from scratchlm.embeddings.glove.config import GloveConfig
from scratchlm.testing import check_closed_form_grad, check_grads

X_MAX, ALPHA = 10.0, 0.75


def f_numpy(x, x_max=X_MAX, alpha=ALPHA):
    """Eq. 9 of the paper, transcribed independently."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x < x_max, (x / x_max) ** alpha, 1.0)


# XLA on CPU flushes subnormal floats to zero (NumPy does not): counts are >= 1/window or 0, never subnormal
counts = st.floats(0, 1e4, allow_subnormal=False)


@settings(max_examples=40)
@given(x=counts, y=counts, x_max=st.floats(0.5, 200), alpha=st.floats(0.05, 1.5))
def test_weighting_properties(x, y, x_max, alpha):
    """f(0) = 0, non-decreasing, 1 from x_max on, continuous at x_max; equal to eq. 9 in NumPy.

    In float64 the power is exp(alpha log u), correct to a few ulps: monotonicity and the NumPy
    comparison are asserted to 1e-14 relative."""
    def f(v):
        with jax.enable_x64(True):
            return float(objective.weighting(jnp.float64(v), x_max=x_max, alpha=alpha))

    assert f(0.0) == 0.0
    lo, hi = min(x, y), max(x, y)
    assert f(lo) <= f(hi) + 1e-14 * f(hi)
    if hi >= x_max:
        assert f(hi) == 1.0
    assert f(x_max * (1 - 1e-10)) == pytest.approx(1.0, abs=1e-9)  # (1 - e)^alpha = 1 - alpha e + ...
    assert f(x) == pytest.approx(float(f_numpy(x, x_max, alpha)), rel=1e-14, abs=0)


def small_problem(seed=0, V=7, N=40, D=5):
    """Random params (float64) and non-zeros with repeated rows, i == j entries, and counts both sides of x_max."""
    rng = np.random.default_rng(seed)
    config = GloveConfig(dim=D)
    params = {k: np.asarray(v, np.float64) * 50 for k, v in kernels.init(jax.random.key(seed), V, config).items()}
    i, j = rng.integers(0, V, N), rng.integers(0, V, N)
    i[:3] = j[:3]
    x = np.exp(rng.uniform(-1, 4, N))  # 0.37 .. 55
    return params, i, j, x


def test_loss_equals_the_equation_in_numpy(x64):
    params, i, j, x = small_problem()
    W, b, Wt, bt = (params[k] for k in ("W", "b", "W_tilde", "b_tilde"))
    expected = sum(f_numpy(x[n]) * (W[i[n]] @ Wt[j[n]] + b[i[n]] + bt[j[n]] - np.log(x[n])) ** 2
                   for n in range(len(x)))
    got = objective.loss({k: jnp.asarray(v) for k, v in params.items()}, i, j, jnp.asarray(x), x_max=X_MAX,
                         alpha=ALPHA)
    assert float(got) == pytest.approx(expected, rel=1e-12)  # 40 float64 terms: ~40 u relative at most


@settings(max_examples=20)
@given(seed=st.integers(0, 2**31 - 1), D=st.integers(1, 6), x=st.floats(0.05, 200.0))
def test_entry_gradients_equal_autodiff_of_the_entry_cost(seed, D, x):
    """One entry: the closed-form dJ_ij/dw_i = 2 f delta w~_j (and w~_j, b_i, b~_j) equals jax.grad of
    J_ij = f delta^2, and the returned cost is J_ij.  float64; each side is a handful of operations on
    O(1) numbers, so they agree to a few ulps: rtol 1e-12."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        w_i, w_tilde_j = rng.normal(size=D), rng.normal(size=D)
        b_i, b_tilde_j = rng.normal(), rng.normal()
        log_x, f = np.log(x), float(f_numpy(x))
        cost, grads = objective.entry_gradients(w_i, b_i, w_tilde_j, b_tilde_j, log_x, f)
        auto = jax.grad(objective.entry_cost, argnums=(0, 1, 2, 3))(w_i, b_i, w_tilde_j, b_tilde_j, log_x, f)
        assert float(cost) == pytest.approx(f * (w_i @ w_tilde_j + b_i + b_tilde_j - log_x) ** 2, rel=1e-12)
        for name, g in zip(("W", "b", "W_tilde", "b_tilde"), auto):
            np.testing.assert_allclose(grads[name], g, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("jit", [False, True])
def test_closed_form_gradients_equal_autodiff(jit):
    """dJ/dw_i = 2 sum_j f delta w~_j, and likewise for w~_j, b_i, b~_j: :func:`objective.gradients` (the
    per-entry closed forms summed per row) equals autodiff of J, float64 (check_closed_form_grad, rtol 1e-9)."""
    params, i, j, x = small_problem()
    loss = lambda p: objective.loss(p, i, j, x, x_max=X_MAX, alpha=ALPHA)  # noqa: E731
    grads = lambda p: objective.gradients(p, i, j, x, x_max=X_MAX, alpha=ALPHA)  # noqa: E731
    if jit:
        loss, grads = jax.jit(loss), jax.jit(grads)
    check_closed_form_grad(loss, grads, (params,))


def test_loss_gradient_against_finite_differences():
    params, i, j, x = small_problem(seed=1, V=4, N=12, D=3)
    check_grads(lambda p: objective.loss(p, i, j, x, x_max=X_MAX, alpha=ALPHA), (params,))


@settings(max_examples=15)
@given(scale=st.floats(0.1, 10.0), seed=st.integers(0, 1000))
def test_loss_is_zero_at_an_exact_fit_and_nonnegative(scale, seed):
    """J >= 0 (a weighted sum of squares, f >= 0); J = 0 and grad J = 0 where every residual vanishes:
    b~_j set to log X_ij - w_i.w~_j - b_i for a problem with one entry per context word."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(seed)
        V, D = 5, 3
        W, Wt, b = rng.normal(size=(V, D)) * scale, rng.normal(size=(V, D)), rng.normal(size=V)
        i, j = rng.integers(0, V, V), np.arange(V)  # each j once
        x = np.exp(rng.uniform(-1, 4, V))
        params = {"W": W, "b": b, "W_tilde": Wt, "b_tilde": rng.normal(size=V)}
        assert float(objective.loss(params, i, j, x, x_max=X_MAX, alpha=ALPHA)) >= 0
        params["b_tilde"] = np.log(x) - np.sum(W[i] * Wt[j], axis=1) - b[i]
        # delta is the float64 rounding of ~D + 3 terms of magnitude <= 10^3 (|w_i.w~_j| <= 10 * 3 * 4^2
        # at most here): |delta| <= (D + 3) u 10^3 ~ 1e-12, J <= sum f delta^2 ~ 1e-23, and
        # |grad| <= 2 |delta| max|w| <= 2e-12 * 40 ~ 1e-10
        assert float(objective.loss(params, i, j, x, x_max=X_MAX, alpha=ALPHA)) == pytest.approx(0, abs=1e-20)
        for g in objective.gradients(params, i, j, x, x_max=X_MAX, alpha=ALPHA).values():
            np.testing.assert_allclose(g, 0, atol=1e-9)
