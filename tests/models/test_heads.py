"""scratchlm.models.heads: the linear and logistic heads by hand, their inits, predictions and losses."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.errors import ScratchlmError
from scratchlm.models import heads


def test_linear_head_is_xWt_plus_b_for_sequences_and_tokens():
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    head = {"weight": jnp.asarray(W), "bias": jnp.asarray(b)}
    want = x.astype(np.float64) @ W.T.astype(np.float64) + b  # float32 dot of 4 terms: within 1e-6 relative
    np.testing.assert_allclose(heads.linear(head, jnp.asarray(x)), want, rtol=1e-5, atol=1e-6)  # tokens [B, T, C]
    np.testing.assert_allclose(heads.linear(head, jnp.asarray(x[:, 0])), want[:, 0], rtol=1e-5, atol=1e-6)
    # dropout only while training, inverted: at rate 0.5 each kept feature is doubled
    z = heads.linear({"weight": jnp.eye(4), "bias": jnp.zeros(4)}, jnp.ones((1, 4)), rate=0.5,
                     key=jax.random.key(0), train=True)
    assert set(np.asarray(z).ravel().tolist()) <= {0.0, 2.0}


def test_inits_and_logistic_head():
    u = heads.init_uniform(jax.random.key(1), 16, 3)
    assert u["weight"].shape == (3, 16) and u["bias"].shape == (3,)
    assert float(jnp.abs(u["weight"]).max()) <= 0.25 and float(jnp.abs(u["bias"]).max()) <= 0.25  # 1/sqrt(16)
    n = heads.init_normal(jax.random.key(1), 16, 3, 0.02)
    assert not n["bias"].any() and 0.01 < float(jnp.std(n["weight"])) < 0.03
    log = heads.init_logistic(4)
    assert float(heads.logistic(log, jnp.ones((2, 4)))[0]) == 0.0  # zero head: sigma(0) = 1/2
    h = jnp.array([[1.0, 2.0], [0.5, -1.0]])
    np.testing.assert_allclose(heads.logistic({"w": jnp.array([2.0, -1.0]), "b": jnp.array(0.5)}, h), [0.5, 2.5])
    assert heads.outputs("sigmoid", 2) == 1 and heads.outputs("softmax", 5) == 5


def test_predict():
    np.testing.assert_array_equal(heads.predict(np.array([[0.3], [-0.1]]), "sigmoid"), [1, 0])
    np.testing.assert_array_equal(heads.predict(np.array([[0.3, 0.9], [2.0, -1.0]]), "softmax"), [1, 0])


def test_a_saved_sigmoid_head_read_as_sigmoid_is_refused():
    # save_pretrained writes a binary sigmoid head w as the softmax rows (0, w); read back as a sigmoid head,
    # its first logit is the constant 0: both readers refuse it and say what it is
    head = heads.softmax_rows({"weight": np.ones((1, 4)), "bias": np.ones(1)}, ["neg", "pos"])
    z = heads.linear(head, jnp.ones((3, 4)))
    for read in (lambda: heads.predict(z, "sigmoid"), lambda: heads.loss(z, jnp.ones(3), kind="sigmoid")):
        with pytest.raises(ScratchlmError, match="kind='softmax'"):
            read()
    np.testing.assert_array_equal(heads.predict(z, "softmax"), [1, 1, 1])  # softmax(0, 5)_1 = sigma(5)


def test_losses_by_hand():
    """Softmax with an IGNORE position: -(log softmax(z_0)[1] + log softmax(z_2)[0]) / 2 over the 2 kept rows,
    class weights (2, 1): -(1 * log p_0[1] + 2 * log p_2[0]) / 2 (divided by N, not by the weights' sum);
    sigmoid with row weights (1, 0, 1): (softplus(-2) + softplus(-1)) / 2 for z = (2, 5, -1), y = (1, 0, 0);
    unweighted, the mean over all three."""
    z = jnp.array([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    y = jnp.array([1, -100, 0])
    log_p = np.log(np.exp(np.asarray(z)) / np.exp(np.asarray(z)).sum(1, keepdims=True))
    ell, m = heads.loss(z, y, kind="softmax")
    assert float(ell) == pytest.approx(-(log_p[0, 1] + log_p[2, 0]) / 2, rel=1e-6) and float(m["accuracy"]) == 1.0
    ell, _ = heads.loss(z, y, kind="softmax", class_weights=(2.0, 1.0))
    assert float(ell) == pytest.approx(-(log_p[0, 1] + 2 * log_p[2, 0]) / 2, rel=1e-6)
    zs, ys, w = jnp.array([[2.0], [5.0], [-1.0]]), jnp.array([1.0, 0.0, 0.0]), jnp.array([1.0, 0.0, 1.0])
    ell, m = heads.loss(zs, ys, kind="sigmoid", weights=w)
    assert float(ell) == pytest.approx((np.log1p(np.exp(-2.0)) + np.log1p(np.exp(-1.0))) / 2, rel=1e-6)
    assert float(m["accuracy"]) == 1.0  # the weighted rows only: both right
    ell, m = heads.loss(zs, ys, kind="sigmoid")
    want = (np.log1p(np.exp(-2.0)) + np.log1p(np.exp(5.0)) + np.log1p(np.exp(-1.0))) / 3
    assert float(ell) == pytest.approx(want, rel=1e-6) and float(m["accuracy"]) == pytest.approx(2 / 3)
