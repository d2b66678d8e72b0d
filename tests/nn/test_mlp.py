"""scratchlm.nn.mlp: gradient checks, the document's closed-form gradients, properties, PyTorch, overfitting XOR."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.errors import ScratchlmError
from scratchlm.nn import mlp
from scratchlm.nn.functional import sigmoid
from scratchlm.nn.losses import bce_risk
from scratchlm.testing import check_closed_form_grad, check_grads

CONFIG = mlp.MLPConfig(sizes=(3, 4, 5, 1))


def small_problem():
    params = mlp.init(jax.random.key(0), CONFIG)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 3))
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    return params, x, y


# ---------------------------------------------------------------- gradient checks (float64)


def test_mlp_grads(x64):
    params, x, y = small_problem()
    # params and inputs in one call; the sigmoid output layer is covered by the closed-form tests below
    check_grads(lambda p, x: bce_risk(mlp.apply(p, x, logits=True)[:, 0], y), (params, x))


def test_word_embedding_grads(x64):
    config = mlp.WordEmbeddingConfig(vocab_size=5, input_dim=3, output_dim=2)
    params = mlp.word_embedding_init(jax.random.key(1), config)
    w = np.array([[0, 4, 4], [2, 1, 0]])
    check_grads(lambda p: mlp.word_embedding(p, w), (params,))


# ---------------------------------------------------------------- the document's closed forms


def test_bce_gradient_formula_of_the_document(x64):
    r"""004 §4.2: dL/dtheta_k = -(1/N) sum_i (y_i/M(x_i) - (1-y_i)/(1-M(x_i))) dM(x_i)/dtheta_k, M = sigmoid MLP."""
    params, x, y = small_problem()

    def risk(p):
        return bce_risk(mlp.apply(p, x, logits=True)[:, 0], y)

    def documents_gradient(p):
        M = mlp.apply(p, x)[:, 0]  # [N]
        dM = jax.jacrev(lambda p: mlp.apply(p, x)[:, 0])(p)  # each leaf [N, *leaf.shape]
        coeff = -(y / M - (1 - y) / (1 - M)) / len(y)  # [N]
        return jax.tree.map(lambda j: jnp.tensordot(coeff, j, axes=1), dM)

    check_closed_form_grad(risk, jax.jit(documents_gradient), (params,))


def test_backpropagation_layer_by_layer(x64):
    r"""delta_L = (sigma(z_L) - y)/N for BCE on the sigmoid output; delta_l = (W_{l+1}^T delta_{l+1}) * sigma'(z_l);
    dL/dW_l = delta_l output_{l-1}^T, dL/db_l = delta_l (summed over examples).  Written in NumPy, per the equations."""
    params, x, y = small_problem()

    def risk(p):
        return bce_risk(mlp.apply(p, x, logits=True)[:, 0], y)

    def backprop(p):
        Ws = [np.asarray(layer["W"]) for layer in p["layers"]]
        bs = [np.asarray(layer["b"]) for layer in p["layers"]]
        outputs, zs = [np.asarray(x)], []
        for W, b in zip(Ws, bs):
            zs.append(outputs[-1] @ W.T + b)
            outputs.append(1 / (1 + np.exp(-zs[-1])))
        delta = (outputs[-1] - y[:, None]) / len(y)  # [N, d_L]
        grads = [None] * len(Ws)
        for l in reversed(range(len(Ws))):
            grads[l] = {"W": delta.T @ outputs[l], "b": delta.sum(0)}
            if l:
                s = outputs[l]  # sigma(z_{l}) of the layer below, in 0-based indexing
                delta = (delta @ Ws[l]) * s * (1 - s)
        return {"layers": grads}

    check_closed_form_grad(risk, backprop, (params,))


# ---------------------------------------------------------------- properties


def test_glorot_bound_and_variance():
    """U[-a, a] with a = sqrt(6/(300+200)) has variance a^2/3 = 2/500; the sample variance of 60,000
    draws has relative standard deviation sqrt(0.8/60000) = 0.37%, so 3% is > 8 sigma."""
    W = np.asarray(mlp.glorot_uniform(jax.random.key(3), 200, 300))
    assert W.shape == (200, 300) and np.abs(W).max() <= np.sqrt(6 / 500)
    assert W.var() == pytest.approx(2 / 500, rel=0.03)


@given(st.lists(st.integers(1, 6), min_size=2, max_size=4), st.integers(0, 1000))
@settings(max_examples=3)  # every new shape compiles: ~1 s an example on a busy 2-core machine
def test_shapes_range_and_vmap(sizes, seed):
    config = mlp.MLPConfig(sizes=tuple(sizes))

    @jax.jit
    def outputs(key):
        params = mlp.init(key, config)
        x = jax.random.normal(jax.random.fold_in(key, 1), (3, sizes[0]))  # |z| small: float32 sigma stays in (0, 1)
        per_example = jax.vmap(lambda v: mlp.apply(params, v))(x)
        return mlp.apply(params, x), per_example, sigmoid(mlp.apply(params, x, logits=True))

    out, per_example, from_logits = outputs(jax.random.key(seed))
    assert out.shape == (3, sizes[-1])
    assert np.all((out > 0) & (out < 1))
    np.testing.assert_allclose(per_example, out, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(from_logits, out, rtol=1e-6, atol=1e-7)


def test_jit_matches_eager():
    params, x, _ = small_problem()
    np.testing.assert_allclose(jax.jit(mlp.apply)(params, x), mlp.apply(params, x), rtol=1e-6, atol=1e-7)


def test_word_embedding_is_the_documents_formula():
    config = mlp.WordEmbeddingConfig(vocab_size=4, input_dim=3, output_dim=2)
    params = mlp.word_embedding_init(jax.random.key(2), config)
    v, W, b = (np.asarray(params[k], np.float64) for k in ("v", "W", "b"))
    want = 1 / (1 + np.exp(-(v[2] @ W.T + b)))
    np.testing.assert_allclose(mlp.word_embedding(params, jnp.array(2)), want, rtol=1e-6)
    assert mlp.word_embedding(params, jnp.array([[0, 1, 3]])).shape == (1, 3, 2)


def test_bad_shapes_are_reported():
    params = mlp.init(jax.random.key(0), CONFIG)
    with pytest.raises(ValueError, match=r"inputs \[\.\.\., 3\]"):
        mlp.apply(params, jnp.ones((2, 4)))
    with pytest.raises(ScratchlmError, match="sizes"):
        mlp.MLPConfig(sizes=(3,))


def test_dtypes_survive_float64_and_bfloat16(x64):
    params = mlp.init(jax.random.key(0), CONFIG)
    for dtype in (jnp.float64, jnp.bfloat16):
        p = jax.tree.map(lambda a, dtype=dtype: a.astype(dtype), params)
        assert jax.eval_shape(mlp.apply, p, jnp.ones((2, 3), dtype)).dtype == dtype  # traced, not run: no compile


# ---------------------------------------------------------------- the peer: PyTorch


def test_matches_a_torch_sigmoid_mlp(x64):
    torch = pytest.importorskip("torch")
    params, x, _ = small_problem()
    layers = []
    for layer in params["layers"]:
        lin = torch.nn.Linear(*layer["W"].shape[::-1]).double()
        lin.weight.data = torch.from_numpy(np.asarray(layer["W"], np.float64))
        lin.bias.data = torch.from_numpy(np.asarray(layer["b"], np.float64))
        layers += [lin, torch.nn.Sigmoid()]
    want = torch.nn.Sequential(*layers)(torch.from_numpy(x)).detach().numpy()
    got = mlp.apply(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params), jnp.asarray(x))
    np.testing.assert_allclose(got, want, rtol=1e-13)


# ---------------------------------------------------------------- it learns, through the shared loop


def test_overfits_xor_through_the_loop():
    """XOR is not linearly separable: a [2, 8, 1] sigmoid MLP must use its hidden layer to reach 4/4."""
    from scratchlm.training.loop import LoopConfig, init_train_state, make_optimizer, make_train_step, train

    x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = jnp.array([0.0, 1.0, 1.0, 0.0])

    def loss_fn(params, batch, key):
        z = mlp.apply(params, batch[0], logits=True)[:, 0]
        return bce_risk(z, batch[1]), {}

    tx = make_optimizer(name="adam", learning_rate=0.1, total_steps=300, schedule="constant")
    state = init_train_state(mlp.init(jax.random.key(0), mlp.MLPConfig(sizes=(2, 8, 1))), tx, jax.random.key(1))
    result = train(state, make_train_step(loss_fn, tx), lambda t: (x, y), config=LoopConfig(steps=300, log_every=0))
    predictions = mlp.apply(result.state.params, x)[:, 0]
    np.testing.assert_array_equal(predictions > 0.5, y > 0.5)
    assert float(bce_risk(mlp.apply(result.state.params, x, logits=True)[:, 0], y)) < 0.1
