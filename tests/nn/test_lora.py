"""LoRA (scratchlm/nn/lora.py): PEFT's initialisation, the zero start, merge/unmerge, the activation form,
float64 gradients with their closed form, dropout on the adapter's input, and the trainable mask."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.errors import ScratchlmError
from scratchlm.models import bert
from scratchlm.nn import lora
from scratchlm.nn.attention import dense
from scratchlm.testing import check_closed_form_grad, check_grads
from tests.random_params import random_params

TINY = bert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=24, max_position_embeddings=20, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
U = 2.0**-24  # float32 unit round-off
_apply = jax.jit(bert.apply, static_argnames=("config", "train"))


def _batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, TINY.vocab_size, (3, 7)).astype(np.int32)
    return {"input_ids": jnp.asarray(ids), "attention_mask": jnp.ones_like(ids)}


def _layer(rng, d=6, k=5, r=3, dtype=np.float32):
    """One dense layer {W_0 [d, k], b [d]} and its adapter {A [r, k], B [d, r]}, all non-zero."""
    p = {"weight": rng.standard_normal((d, k)).astype(dtype), "bias": rng.standard_normal(d).astype(dtype)}
    a = {"lora_A": rng.standard_normal((r, k)).astype(dtype), "lora_B": rng.standard_normal((d, r)).astype(dtype)}
    return p, a


def test_init_is_peft_kaiming_uniform_and_zero_b():
    """PEFT: kaiming_uniform_(A, a=sqrt(5)), B = 0.  torch's own bound gain * sqrt(3 / fan_in) with the
    leaky-ReLU gain sqrt(2 / (1 + 5)) is 1/sqrt(k); 8 x 384 uniform draws reach within 1% of it at both ends
    (each end missed with probability 0.995^3072 < 1e-6)."""
    torch = pytest.importorskip("torch")
    params = {"a": {"query": {"weight": jnp.zeros((384, 384)), "bias": jnp.zeros(384)},
                    "key": {"weight": jnp.zeros((384, 384)), "bias": jnp.zeros(384)}}}
    adapters = lora.init(jax.random.key(0), params, lora.LoraConfig(r=8, target_modules=("query",)))
    assert list(adapters) == ["a.query"]
    A, B = np.asarray(adapters["a.query"]["lora_A"]), np.asarray(adapters["a.query"]["lora_B"])
    assert A.shape == (8, 384) and B.shape == (384, 8) and not B.any()
    bound = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5)) * math.sqrt(3 / 384)
    assert bound == pytest.approx(1 / math.sqrt(384), rel=1e-12)
    assert A.max() <= bound and A.min() >= -bound and A.max() > 0.99 * bound and A.min() < -0.99 * bound


def test_targets_follow_peft_matching_and_name_what_exists():
    params = random_params(bert.init, TINY)
    chosen = lora.targets(params, lora.LoraConfig(target_modules=("value", "attention.output.dense")))
    assert sorted(chosen) == ["encoder.layer.0.attention.output.dense", "encoder.layer.0.attention.self.value",
                              "encoder.layer.1.attention.output.dense", "encoder.layer.1.attention.self.value"]
    # "dense" ends four kinds of module: attention output, intermediate, output, and the pooler
    assert len(lora.targets(params, lora.LoraConfig(target_modules=("dense",)))) == 2 * 3 + 1
    with pytest.raises(ScratchlmError, match="querry matched no dense layer.*query"):
        lora.targets(params, lora.LoraConfig(target_modules=("querry",)))


@pytest.mark.parametrize("field, value", [("r", 0), ("lora_alpha", 0.0), ("target_modules", ()),
                                          ("target_modules", "query"), ("lora_dropout", 1.0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ScratchlmError):
        lora.LoraConfig(**{field: value})


@pytest.mark.parametrize("jit", [False, True])
def test_zero_b_gives_the_base_model_bit_for_bit(jit):
    """B = 0 at the start: W + (alpha/r) 0 A = W exactly (adding zero is exact), so every output is the base
    model's, bit for bit, with or without jit."""
    params = random_params(bert.init, TINY)
    config = lora.LoraConfig(r=4, lora_alpha=32.0, target_modules=("query", "key", "value", "dense"))
    adapters = lora.init(jax.random.key(1), params, config)
    adapt = jax.jit(lora.adapt, static_argnames=("config",)) if jit else lora.adapt
    adapted = adapt(params, adapters, config)
    for a, b in zip(jax.tree.leaves(adapted), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    base, out = _apply(params, _batch(), config=TINY), _apply(adapted, _batch(), config=TINY)
    np.testing.assert_array_equal(np.asarray(out["pooler_output"]), np.asarray(base["pooler_output"]))
    wrapped = jax.jit(lora.wrap(bert.apply, config), static_argnames=("config", "train"))
    out = wrapped({**params, lora.ADAPTERS: adapters}, _batch(), config=TINY)
    np.testing.assert_array_equal(np.asarray(out["last_hidden_state"]), np.asarray(base["last_hidden_state"]))


def test_wrap_trains_through_the_model_apply_with_adapter_dropout():
    """wrap(bert.apply) on params carrying adapters: gradients reach A and B (B's first: A's is s B^T G^T X = 0
    at B = 0), and lora_dropout changes training outputs only where B != 0 (with B = 0 the dropped update is 0)."""
    params = random_params(bert.init, TINY)
    config = lora.LoraConfig(r=2, lora_dropout=0.5)
    adapters = lora.init(jax.random.key(1), params, config)
    apply = lora.wrap(bert.apply, config)

    @jax.jit(static_argnums=2)
    def pooled(p, key, train):
        return apply(p, _batch(), config=TINY, key=key, train=train)["pooler_output"]

    full = {**params, lora.ADAPTERS: adapters}
    np.testing.assert_array_equal(np.asarray(pooled(full, jax.random.key(0), True)),
                                  np.asarray(pooled(full, None, False)))
    g = jax.grad(lambda a: jnp.sum(pooled({**params, lora.ADAPTERS: a}, None, False) ** 2))(adapters)
    assert all(np.asarray(x["lora_B"]).any() and not np.asarray(x["lora_A"]).any() for x in g.values())
    rng = np.random.default_rng(0)
    moved = {**params, lora.ADAPTERS: {m: {**a, "lora_B": jnp.asarray(rng.standard_normal(a["lora_B"].shape),
                                                                        jnp.float32)} for m, a in adapters.items()}}
    assert not np.allclose(pooled(moved, jax.random.key(0), True), pooled(moved, None, False))


@settings(max_examples=20)
@given(st.integers(0, 2**16), st.integers(1, 4))
def test_merged_layer_equals_the_activation_form(seed, r):
    r"""dense(x; W_0 + s B A) = x W_0^T + s (x A^T) B^T + b.  Each side sums at most k + r products; Higham's
    gamma_n bound per output is (k + r + 2) u (|x| |W_0|^T + s |x| |A|^T |B|^T + |b|), doubled for the two
    sides."""
    rng = np.random.default_rng(seed)
    p, a = _layer(rng, r=r)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    s = 2.5
    config = lora.LoraConfig(r=r, lora_alpha=s * r, target_modules=("m",))
    merged = lora.merge({"m": p}, {"m": a}, config)["m"]
    got, ref = np.asarray(dense(merged, jnp.asarray(x))), np.asarray(lora.lora_dense(p, a, jnp.asarray(x), scaling=s))
    bound = 2 * (5 + r + 2) * U * (np.abs(x) @ np.abs(p["weight"]).T + s * np.abs(x) @ np.abs(a["lora_A"]).T
                                   @ np.abs(a["lora_B"]).T + np.abs(p["bias"]))
    assert np.all(np.abs(got - ref) <= bound)
    # and the equation itself, in float64 NumPy from the docstring's formula
    W = p["weight"].astype(np.float64) + s * a["lora_B"].astype(np.float64) @ a["lora_A"].astype(np.float64)
    np.testing.assert_allclose(np.asarray(merged["weight"]), W, rtol=0, atol=float(8 * U * np.abs(W).max() + 1e-7))


@settings(max_examples=20)
@given(st.integers(0, 2**16), st.floats(0.1, 64.0))
def test_unmerge_undoes_merge(seed, alpha):
    r"""unmerge(merge(W)) = fl(fl(W + D) - D) with the same D = fl(s B A) both times; two roundings give
    |result - W| <= u (2|W| + |D|) to first order (1.01 covers the second-order term)."""
    rng = np.random.default_rng(seed)
    p, a = _layer(rng)
    config = lora.LoraConfig(r=3, lora_alpha=alpha, target_modules=("m",))
    back = lora.unmerge(lora.merge({"m": p}, {"m": a}, config), {"m": a}, config)["m"]
    D = np.abs(np.asarray(lora.delta(a, config.scaling)))
    assert np.all(np.abs(np.asarray(back["weight"]) - p["weight"]) <= 1.01 * U * (2 * np.abs(p["weight"]) + D))
    np.testing.assert_array_equal(np.asarray(back["bias"]), p["bias"])  # biases are never touched


def test_adapted_dense_layer_gradients_float64(x64):
    """Central differences on the activation form and on the weight-space form (dense of adapt), with respect
    to W_0, b, A, B and x."""
    rng = np.random.default_rng(0)
    p, a = _layer(rng, dtype=np.float64)
    x = rng.standard_normal((2, 5))
    config = lora.LoraConfig(r=3, lora_alpha=4.0, target_modules=("m",))
    check_grads(lambda p, a, x: lora.lora_dense(p, a, x, scaling=config.scaling), (p, a, x))
    check_grads(lambda p, a, x: dense(lora.adapt({"m": p}, {"m": a}, config)["m"], x), (p, a, x))


def test_adapter_gradients_equal_their_closed_form(x64):
    r"""With G = dL/dh [N, d] and X [N, k]: dL/dW' = G^T X, so dL/dA = s B^T G^T X and dL/dB = s G^T X A^T
    (the chain rule through W' = W_0 + s B A).  L = sum(C * h) makes G = C."""
    rng = np.random.default_rng(1)
    p, a = _layer(rng, dtype=np.float64)
    X, C = rng.standard_normal((4, 5)), rng.standard_normal((4, 6))
    s = 4.0 / 3

    def L(a):
        return jnp.sum(C * lora.lora_dense(p, a, X, scaling=s))

    def closed_form(a):
        GX = C.T @ X  # dL/dW' [d, k]
        return {"lora_A": s * a["lora_B"].T @ GX, "lora_B": s * GX @ a["lora_A"].T}

    check_closed_form_grad(L, closed_form, (a,))
    # at the start (B = 0) only B receives a gradient: A's is s 0^T G^T X = 0
    start = {"lora_A": a["lora_A"], "lora_B": np.zeros_like(a["lora_B"])}
    g = jax.grad(L)(start)
    assert not np.asarray(g["lora_A"]).any() and np.asarray(g["lora_B"]).any()


def test_adapt_dropout_drops_columns_of_a():
    """Training with lora_dropout p: W' - W_0 = s B (A diag(m) / (1 - p)) with one mask m over A's k input
    columns (the input-dropout of the module docstring).  So every column j of the difference is either 0 or
    s B A[:, j] / keep, and the layer equals the activation form on m * x / keep."""
    rng = np.random.default_rng(2)
    p, a = _layer(rng, k=64)
    config = lora.LoraConfig(r=3, lora_alpha=3.0, lora_dropout=0.5, target_modules=("m",))
    W = np.asarray(lora.adapt({"m": p}, {"m": a}, config, key=jax.random.key(0), train=True)["m"]["weight"])
    full = np.asarray(lora.delta(a, config.scaling))
    diff = W - p["weight"]
    dropped = np.all(np.abs(diff) <= 4 * U * np.abs(p["weight"]), axis=0)  # 0 up to W's rounding
    assert 10 < dropped.sum() < 54  # about half of 64 (binomial: 32 +- 4)
    kept = ~dropped
    scale = diff[:, kept] / full[:, kept]
    keep = 1 / np.median(scale)
    assert keep == pytest.approx(0.5, abs=1e-4)  # the dropout's keep probability (2^-17 from 1 - p)
    m = kept / keep
    x = rng.standard_normal((3, 64)).astype(np.float32)
    ref = np.asarray(dense(p, jnp.asarray(x)) + config.scaling * (x * m) @ a["lora_A"].T @ a["lora_B"].T)
    got = np.asarray(dense({"weight": W, "bias": p["bias"]}, jnp.asarray(x)))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)  # sums of 64 products of O(1): ~64 u * 10
    # evaluation ignores the rate: the merged weights
    evaluated = lora.adapt({"m": p}, {"m": a}, config, train=False)["m"]["weight"]
    merged = lora.merge({"m": p}, {"m": a}, config)["m"]["weight"]
    np.testing.assert_array_equal(np.asarray(evaluated), np.asarray(merged))


def test_lora_dense_dropout_acts_on_the_adapter_input_only():
    """PEFT's per-element form: with the adapter zeroed (B = 0) dropout changes nothing, since it never
    touches W_0 x; with B != 0 it changes the output in training and not in evaluation."""
    rng = np.random.default_rng(3)
    p, a = _layer(rng)
    x = jnp.asarray(rng.standard_normal((4, 5)).astype(np.float32))
    zero = {"lora_A": a["lora_A"], "lora_B": np.zeros_like(a["lora_B"])}
    kw = {"scaling": 1.0, "rate": 0.5, "key": jax.random.key(0)}
    np.testing.assert_array_equal(np.asarray(lora.lora_dense(p, zero, x, train=True, **kw)), np.asarray(dense(p, x)))
    assert not np.allclose(lora.lora_dense(p, a, x, train=True, **kw), lora.lora_dense(p, a, x, train=False, **kw))
    np.testing.assert_array_equal(np.asarray(lora.lora_dense(p, a, x, train=False, **kw)),
                                  np.asarray(lora.lora_dense(p, a, x, scaling=1.0)))


def test_trainable_mask_marks_adapters_and_saved_modules_only():
    params = random_params(bert.init, TINY)
    params["classifier"] = random_params(bert.init_sequence_classifier, TINY, 2, seed=1)
    params[lora.ADAPTERS] = lora.init(jax.random.key(0), params, lora.LoraConfig(r=2))
    mask = lora.trainable_mask(params, modules_to_save=("classifier",))
    marked = {jax.tree_util.keystr(p): t for p, t in jax.tree_util.tree_leaves_with_path(mask)}
    trained = sorted(k for k, t in marked.items() if t)
    assert len(trained) == 2 * 2 * 2 + 2  # 2 layers x {query, value} x {A, B}, classifier weight and bias
    assert all(k.startswith("['lora']") or k.startswith("['classifier']") for k in trained)
    assert not any(mask["pooler"]["dense"].values())
