r"""objective.py: the closed-form gradients against autodiff (float64), the loss against its equation in
NumPy, and properties that follow from the math (hypothesis).

Tolerances.  In float64 (:math:`\epsilon = 2^{-52} \approx 2.2\times10^{-16}`) a closed-form gradient
and autodiff's evaluate the same terms through different sequences of a few dozen operations (dot
products of length ``D``, a sigmoid, a sum over ``K + 1`` outputs) on values of order one: they
agree to :math:`(D + K + 4)\,\epsilon` times the largest term, below ``1e-13`` for the sizes here;
we allow ``1e-12`` relative and ``1e-13`` absolute.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings.word2vec import objective

RTOL, ATOL = 1e-12, 1e-13  # see the module docstring


def _example(seed, D=7, K=4, J=5, dtype=jnp.float64):
    k = jax.random.split(jax.random.key(seed), 5)
    v_context = jax.random.normal(k[0], (J, D), dtype)
    u_o = jax.random.normal(k[1], (D,), dtype)
    u_neg = jax.random.normal(k[2], (K, D), dtype)
    context_mask = jax.random.bernoulli(k[3], 0.6, (J,)).at[0].set(True)  # at least one real slot
    noise_mask = jax.random.bernoulli(k[4], 0.7, (K,))
    return v_context, context_mask, u_o, u_neg, noise_mask


@pytest.mark.parametrize("masked", [False, True])
def test_negative_sampling_grads_equal_autodiff(x64, masked):
    v_context, _, u_o, u_neg, noise_mask = _example(0)
    v_c, n = v_context[0], (noise_mask if masked else None)
    auto = jax.jit(jax.grad(objective.negative_sampling_loss, argnums=(0, 1, 2)))(v_c, u_o, u_neg, n)
    closed = jax.jit(objective.negative_sampling_grads)(v_c, u_o, u_neg, n)
    for a, c in zip(auto, closed):
        np.testing.assert_allclose(c, a, rtol=RTOL, atol=ATOL)
    if masked:  # a dropped noise word gets no gradient
        assert not np.any(closed[2][~np.asarray(noise_mask)])


def test_cbow_grads_are_autodiff_with_the_c_tools_context_rule(x64):
    r"""Output vectors: exactly :math:`\partial\ell/\partial u`.  Context vectors: the C tool adds the full
    :math:`\partial\ell/\partial h` to each, which is :math:`|C|` times the exact gradient
    :math:`\partial\ell/\partial v_{c_j} = \frac{1}{|C|}\partial\ell/\partial h`; masked slots get nothing."""
    v_context, context_mask, u_o, u_neg, noise_mask = _example(1)
    context_mask = context_mask.at[1].set(False).at[3].set(True)  # both a real average and a masked slot
    auto = jax.jit(jax.grad(objective.cbow_loss, argnums=(0, 2, 3)))(v_context, context_mask, u_o, u_neg, noise_mask)
    d_context, d_o, d_neg = jax.jit(objective.cbow_grads)(v_context, context_mask, u_o, u_neg, noise_mask)
    size = float(np.sum(context_mask))
    np.testing.assert_allclose(d_context, size * auto[0], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(d_o, auto[1], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(d_neg, auto[2], rtol=RTOL, atol=ATOL)
    assert not np.any(d_context[~np.asarray(context_mask)])


def test_loss_equals_its_equation_in_numpy():
    r"""float32 against the docstring's formula in float64.  Each score :math:`s = u^\top v_c` carries an
    error of at most :math:`D u \sum_d |u_d v_d|` (:math:`u = 2^{-24}`), and :math:`|d\log\sigma(s)/ds| \le 1`,
    so the loss is off by at most :math:`(K+1)(D u \max_k \sum_d |u_{kd} v_d| + 4u)` plus the rounding of
    the inputs themselves to float32 (the same bound again)."""
    rng = np.random.default_rng(1)
    D, K = 5, 3
    v_c, u_o, u_neg = rng.standard_normal(D), rng.standard_normal(D), rng.standard_normal((K, D))
    noise_mask = np.array([True, False, True])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    expected = -np.log(sig(u_o @ v_c)) - np.sum(noise_mask * np.log(sig(-(u_neg @ v_c))))
    got = objective.negative_sampling_loss(*(jnp.asarray(x, jnp.float32) for x in (v_c, u_o, u_neg)),
                                           jnp.asarray(noise_mask))
    u = 2.0**-24
    worst = max(np.abs(u_o) @ np.abs(v_c), *(np.abs(u_neg) @ np.abs(v_c)))
    assert abs(float(got) - expected) <= 2 * (K + 1) * (D * u * worst + 4 * u)


# ----------------------------------------------------------------------------- properties (hypothesis)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), scale=st.floats(0.01, 3.0))
def test_properties_of_the_negative_sampling_objective(seed, scale):
    """The loss is a sum of :math:`-\\log\\sigma(\\cdot) > 0` terms; the noise words are a set (permuting them
    permutes their gradients and changes nothing else); :math:`\\partial\\ell/\\partial u_o = (\\sigma - 1) v_c`
    points against :math:`v_c` and is shorter; a small step against the gradient lowers the loss."""
    with jax.enable_x64(True):  # float64 inside each example (hypothesis reruns the body, not a fixture)
        v_context, _, u_o, u_neg, noise_mask = _example(seed)
        v_c, u_o, u_neg = scale * v_context[0], scale * u_o, scale * u_neg
        loss = objective.negative_sampling_loss(v_c, u_o, u_neg, noise_mask)
        assert float(loss) > 0
        g_c, g_o, g_neg = objective.negative_sampling_grads(v_c, u_o, u_neg, noise_mask)

        perm = np.random.default_rng(seed).permutation(u_neg.shape[0])
        p_loss = objective.negative_sampling_loss(v_c, u_o, u_neg[perm], noise_mask[perm])
        p_c, p_o, p_neg = objective.negative_sampling_grads(v_c, u_o, u_neg[perm], noise_mask[perm])
        np.testing.assert_allclose(p_loss, loss, rtol=RTOL)
        np.testing.assert_allclose(p_c, g_c, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(p_neg, g_neg[perm], rtol=RTOL, atol=ATOL)

        assert float(g_o @ v_c) <= 0 and float(jnp.linalg.norm(g_o)) < float(jnp.linalg.norm(v_c))

        # Taylor: l(theta - eta g) <= l - eta |g|^2 + eta^2 H |g|^2 / 2, H bounding the second derivative along
        # any unit direction.  Each of the K + 1 terms is f(s), |f'| <= 1, |f''| <= 1/4, s = u.v bilinear with
        # |ds| <= |u| + |v| and |d^2 s| <= 2 per unit step: H <= (K + 1)(|u|_max + |v|_max)^2 / 4 + 2(K + 1).
        # With eta = 1e-3 / (1 + H) the loss falls by at least eta |g|^2 / 2; float64 round-off of the two
        # losses (64 eps |l|) is far below that.
        grads = (g_c, g_o, g_neg)
        sq = sum(float(jnp.sum(g * g)) for g in grads)
        norm = max(float(jnp.linalg.norm(x)) for x in (v_c, u_o, *u_neg))
        K1 = u_neg.shape[0] + 1
        eta = 1e-3 / (1 + K1 * (2 * norm) ** 2 / 4 + 2 * K1)
        stepped = objective.negative_sampling_loss(v_c - eta * g_c, u_o - eta * g_o, u_neg - eta * g_neg, noise_mask)
        assert float(stepped) <= float(loss) - 0.5 * eta * sq + 64 * np.finfo(np.float64).eps * float(loss)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_cbow_with_one_context_word_is_the_skipgram_pair_and_ignores_masked_slots(seed):
    """:math:`h` of one real slot is that slot's vector: CBOW's loss and gradients are then the pair's;
    what masked slots hold changes nothing."""
    with jax.enable_x64(True):
        v_context, context_mask, u_o, u_neg, noise_mask = _example(seed)
        one = jnp.zeros_like(context_mask).at[2].set(True)
        np.testing.assert_allclose(objective.cbow_loss(v_context, one, u_o, u_neg, noise_mask),
                                   objective.negative_sampling_loss(v_context[2], u_o, u_neg, noise_mask), rtol=RTOL)
        d_context, d_o, d_neg = objective.cbow_grads(v_context, one, u_o, u_neg, noise_mask)
        p_c, p_o, p_neg = objective.negative_sampling_grads(v_context[2], u_o, u_neg, noise_mask)
        for got, want in ((d_context[2], p_c), (d_o, p_o), (d_neg, p_neg)):
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)

        scrambled = jnp.where(context_mask[:, None], v_context, 1e3)  # garbage in the masked slots
        np.testing.assert_allclose(objective.cbow_loss(scrambled, context_mask, u_o, u_neg, noise_mask),
                                   objective.cbow_loss(v_context, context_mask, u_o, u_neg, noise_mask), rtol=RTOL)
