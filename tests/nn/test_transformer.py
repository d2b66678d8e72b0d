"""The encoder layer and stack: its equations recomputed in NumPy (post-LN and pre-LN), float64
gradient checks on a tiny encoder (2 layers, 2 heads), and the invariants of the math.

Tolerances: float32 on O(1) activations through <= 2 layers rounds at ~1e-6; 1e-5 leaves margin
and a wrong term (a residual, a layer norm in the wrong place) changes outputs at O(0.1).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import erf

from scratchlm.models import bert
from scratchlm.nn import transformer
from scratchlm.nn.attention import padding_mask
from scratchlm.testing import check_grads
from tests.random_params import random_params

CFG = transformer.TransformerConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
                                    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.3)
BERT = bert.BertConfig(**{f.name: getattr(CFG, f.name) for f in dataclasses.fields(CFG)}, vocab_size=30,
                       max_position_embeddings=16)

_encoder = jax.jit(transformer.encoder, static_argnames=("config", "train"))
_apply = jax.jit(bert.apply, static_argnames=("config", "train"))


def _x_mask(seed, B=2, T=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, CFG.hidden_size)).astype(np.float32)
    keep = np.ones((B, T), bool)
    keep[-1, T - 2:] = False
    return x, keep


def _np_layer_norm(q, z):
    """Ba et al. 2016, eq. 4 with BERT's eps = 1e-12, in NumPy."""
    return q["weight"] * (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + 1e-12) + q["bias"]


def _np_layer(p, x, keep, pre_ln):
    """One encoder layer from the equations (Vaswani et al. 2017; Xiong et al. 2020), float64 NumPy."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), p)

    def lin(q, z):
        return z @ q["weight"].T + q["bias"]

    def gelu(z):
        return 0.5 * z * (1 + erf(z / np.sqrt(2)))

    ln = _np_layer_norm
    B, T, H = x.shape
    h, d = CFG.num_attention_heads, H // CFG.num_attention_heads

    def mha(z):
        a = p["attention"]
        Q, K, V = (lin(a["self"][n], z).reshape(B, T, h, d).transpose(0, 2, 1, 3) for n in ("query", "key", "value"))
        e = np.where(keep[:, None, None, :], Q @ K.transpose(0, 1, 3, 2) / np.sqrt(d), -np.inf)
        A = np.exp(e - e.max(-1, keepdims=True))
        A /= A.sum(-1, keepdims=True)
        return lin(a["output"]["dense"], (A @ V).transpose(0, 2, 1, 3).reshape(B, T, H))

    def ffn(z):
        return lin(p["output"]["dense"], gelu(lin(p["intermediate"]["dense"], z)))

    ln1, ln2 = p["attention"]["output"]["LayerNorm"], p["output"]["LayerNorm"]
    if pre_ln:
        u = x + mha(ln(ln1, x))
        return u + ffn(ln(ln2, u))
    u = ln(ln1, x + mha(x))
    return ln(ln2, u + ffn(u))


@pytest.mark.parametrize("pre_ln", [False, True])
def test_encoder_equals_its_equations_in_numpy(pre_ln):
    cfg = dataclasses.replace(CFG, pre_layer_norm=pre_ln)
    params = random_params(transformer.init_encoder, cfg)  # non-trivial biases and layer norms
    x, keep = _x_mask(0)
    out = _encoder(params, jnp.asarray(x), padding_mask(jnp.asarray(keep)), config=cfg)
    ref = x.astype(np.float64)
    for p_l in params["layer"]:
        ref = _np_layer(p_l, ref, keep, pre_ln)
    if pre_ln:
        q = jax.tree.map(np.asarray, params["LayerNorm"])
        ref = _np_layer_norm(q, ref)
    np.testing.assert_allclose(np.asarray(out), ref, atol=1e-5, rtol=0)


def test_tiny_bert_gradients_float64(x64):
    cfg = dataclasses.replace(BERT, dtype="float64", vocab_size=8, max_position_embeddings=6, hidden_size=4,
                              intermediate_size=6)
    params = random_params(bert.init, cfg)  # 2 layers, 2 heads: ~420 numbers, every one checked
    batch = {"input_ids": jnp.array([[1, 5, 3, 2], [1, 7, 2, 0]]),
             "attention_mask": jnp.array([[1, 1, 1, 1], [1, 1, 1, 0]]),
             "token_type_ids": jnp.array([[0, 0, 1, 1], [0, 0, 0, 0]])}

    def f(params):
        out = bert.apply(params, batch, config=cfg)
        return jnp.concatenate([out["last_hidden_state"].reshape(-1), out["pooler_output"].reshape(-1)])

    check_grads(f, (params,))


def test_pre_ln_encoder_gradients_float64(x64):
    """One pre-LN layer and the final layer norm (the stacking is the same code the tiny BERT check above
    runs through two layers; one layer halves the compilation)."""
    cfg = dataclasses.replace(CFG, dtype="float64", pre_layer_norm=True, hidden_size=4, intermediate_size=6,
                              num_hidden_layers=1)
    params = random_params(transformer.init_encoder, cfg)
    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    mask = padding_mask(jnp.array([[1, 1, 1], [1, 1, 0]]))
    check_grads(lambda params, x: transformer.encoder(params, x, mask, config=cfg), (params, x))


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), perm_seed=st.integers(0, 2**16))
def test_without_position_embeddings_bert_is_permutation_equivariant(seed, perm_seed):
    cfg = dataclasses.replace(BERT, position_embedding_type="none")
    params = random_params(bert.init, cfg, seed=seed % 7)
    rng = np.random.default_rng(seed)
    T = 6
    batch = {"input_ids": rng.integers(0, cfg.vocab_size, (2, T)).astype(np.int32),
             "attention_mask": (rng.random((2, T)) < 0.8).astype(np.int32),
             "token_type_ids": rng.integers(0, 2, (2, T)).astype(np.int32)}
    batch["attention_mask"][:, 0] = 1
    perm = np.random.default_rng(perm_seed).permutation(T)
    out = _apply(params, {k: jnp.asarray(v) for k, v in batch.items()}, config=cfg)["last_hidden_state"]
    out_p = _apply(params, {k: jnp.asarray(v[:, perm]) for k, v in batch.items()}, config=cfg)["last_hidden_state"]
    np.testing.assert_allclose(np.asarray(out_p), np.asarray(out)[:, perm], atol=1e-5, rtol=0)


@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), pre_ln=st.booleans())
def test_appending_padding_never_changes_real_positions(seed, pre_ln):
    """Three padding positions appended (how many does not enter the math: a masked key's weight is exactly 0;
    one length keeps it to one compilation per layer-norm placement)."""
    extra = 3
    cfg = dataclasses.replace(BERT, pre_layer_norm=pre_ln)
    params = random_params(bert.init, cfg, seed=seed % 5)
    rng = np.random.default_rng(seed)
    lengths = np.array([5, 3])
    ids = rng.integers(1, cfg.vocab_size, (2, 5)).astype(np.int32) * (np.arange(5) < lengths[:, None])
    mask = (np.arange(5) < lengths[:, None]).astype(np.int32)
    padded_ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=cfg.pad_token_id)
    padded_mask = np.pad(mask, ((0, 0), (0, extra)))
    out = _apply(params, {"input_ids": jnp.asarray(ids), "attention_mask": jnp.asarray(mask)}, config=cfg)
    padded = {"input_ids": jnp.asarray(padded_ids), "attention_mask": jnp.asarray(padded_mask)}
    out_p = _apply(params, padded, config=cfg)
    real = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(out_p["last_hidden_state"])[:, :5][real],
                               np.asarray(out["last_hidden_state"])[real], atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(out_p["pooler_output"]), np.asarray(out["pooler_output"]), atol=1e-5, rtol=0)


def test_fused_encoder_equals_plain():
    params = random_params(transformer.init_encoder, CFG)
    x, keep = _x_mask(1)
    plain = _encoder(params, jnp.asarray(x), padding_mask(jnp.asarray(keep)), config=CFG)
    fused = _encoder(params, jnp.asarray(x), padding_mask(jnp.asarray(keep)),
                     config=dataclasses.replace(CFG, fused_attention=True))
    np.testing.assert_allclose(np.asarray(fused), np.asarray(plain), atol=1e-5, rtol=0)


def test_dropout_is_keyed_and_off_at_inference():
    cfg = dataclasses.replace(CFG, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
    params = random_params(transformer.init_encoder, cfg, seed=2)
    x, keep = map(jnp.asarray, _x_mask(2))
    mask = padding_mask(keep)
    # rbg keys (the hardware generator, as pretrain() uses): threefry dropout masks compile for seconds on a CPU
    def key(seed):
        return jax.random.key(seed, impl="rbg")

    a = _encoder(params, x, mask, config=cfg, key=key(1), train=True)
    b = _encoder(params, x, mask, config=cfg, key=key(1), train=True)
    c = _encoder(params, x, mask, config=cfg, key=key(2), train=True)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(c))
    # at inference the dropout rates change nothing: equal to CFG (rates 0), whose program the tests above compiled
    np.testing.assert_array_equal(np.asarray(_encoder(params, x, mask, config=cfg)),
                                  np.asarray(_encoder(params, x, mask, config=CFG)))
    with pytest.raises(ValueError, match="needs a PRNG key"):
        transformer.encoder(params, x, mask, config=cfg, train=True)


@pytest.mark.parametrize("pre_ln", [False, True])
def test_keep_first_is_the_full_encoders_first_rows_with_their_gradients(x64, pre_ln):
    """encoder(keep_first=k) computes the last layer at the first k positions only: the full stack's first k
    rows, dropout masks included, and the same gradients of anything read from them (float64).

    Tolerance: the two differ only in the rounding of products over fewer rows, O(eps) = 1e-16 per
    operation on O(1) values through two layers; 1e-12 leaves margin, and a wrong mask or a missed
    residual moves the outputs by O(0.1)."""
    cfg = dataclasses.replace(CFG, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2, pre_layer_norm=pre_ln)
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), random_params(transformer.init_encoder, cfg, seed=5))
    x, keep = _x_mask(5, T=6)
    x, mask = jnp.asarray(x, jnp.float64), padding_mask(jnp.asarray(keep))
    key = jax.random.key(4, impl="rbg")
    c = jnp.asarray(np.random.default_rng(6).standard_normal((2, 2, cfg.hidden_size)))  # a cotangent on 2 rows

    def read(p, k):
        out = transformer.encoder(p, x, mask, config=cfg, key=key, train=True, keep_first=k)
        return out[:, :2], jnp.sum(c * out[:, :2])

    # jitted: one program each instead of op-by-op dispatch of a float64 stack and its gradient
    (rows_full, full) = jax.jit(lambda p: (read(p, None)[0], jax.value_and_grad(lambda p: read(p, None)[1])(p)))(params)
    (rows_first, first) = jax.jit(lambda p: (read(p, 2)[0], jax.value_and_grad(lambda p: read(p, 2)[1])(p)))(params)
    assert rows_first.shape == (2, 2, cfg.hidden_size)
    np.testing.assert_allclose(np.asarray(rows_first), np.asarray(rows_full), atol=1e-12, rtol=0)
    for a, b in zip(jax.tree.leaves(first[1]), jax.tree.leaves(full[1])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12, rtol=0)
    # at inference too (no masks), and through bert.apply(cls_only=True)
    np.testing.assert_allclose(
        np.asarray(transformer.encoder(params, x, mask, config=cfg, keep_first=1)),
        np.asarray(transformer.encoder(params, x, mask, config=cfg)[:, :1]), atol=1e-12, rtol=0)


def test_cls_only_gives_the_full_models_cls_state_and_pooler():
    params = random_params(bert.init, BERT, seed=3)
    ids = jnp.asarray(np.random.default_rng(3).integers(0, BERT.vocab_size, (3, 7)), jnp.int32)
    batch = {"input_ids": ids, "attention_mask": jnp.asarray(np.arange(7)[None] < np.array([[7], [4], [2]]), jnp.int32)}
    full = bert.apply(params, batch, config=BERT)
    cls = bert.apply(params, batch, config=BERT, cls_only=True)
    assert cls["last_hidden_state"].shape == (3, 1, BERT.hidden_size)
    # float32, O(1) values through 2 layers: products over fewer rows round differently at ~1e-7
    np.testing.assert_allclose(np.asarray(cls["last_hidden_state"]), np.asarray(full["last_hidden_state"][:, :1]),
                               atol=1e-5, rtol=0)
    np.testing.assert_allclose(np.asarray(cls["pooler_output"]), np.asarray(full["pooler_output"]), atol=1e-5, rtol=0)


def test_encoder_layer_equals_huggingface_bert_layer(x64):
    """One post-LN layer against ``transformers``' ``BertLayer`` with the same tensors (loaded by the names the
    params mirror), in float64 with a padding mask: both evaluate the same formulas, so they agree to ~1e-15
    relative; 1e-12 leaves margin and a wrong term is O(0.1) off.  The tiny BERT above is compared with
    HuggingFace as a whole in tests/models/test_bert.py; this pins the layer on its own."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.bert.modeling_bert import BertLayer

    cfg = dataclasses.replace(CFG, dtype="float64")
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), random_params(transformer.init_layer, cfg, seed=3))
    hf_config = transformers.BertConfig(hidden_size=cfg.hidden_size, num_attention_heads=cfg.num_attention_heads,
                                        intermediate_size=cfg.intermediate_size, hidden_act="gelu",
                                        layer_norm_eps=cfg.layer_norm_eps, hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0, attn_implementation="eager")
    layer = BertLayer(hf_config).double().eval()
    layer.load_state_dict({k: torch.from_numpy(v) for k, v in bert.flatten_params(p).items()}, strict=True)
    x, keep = _x_mask(4)
    x = x.astype(np.float64)
    additive = np.where(keep, 0.0, np.finfo(np.float64).min)[:, None, None, :]  # HuggingFace's extended mask
    with torch.no_grad():
        ref = layer(torch.from_numpy(x), attention_mask=torch.from_numpy(additive))
    ref = (ref[0] if isinstance(ref, tuple) else ref).numpy()
    got = transformer.encoder_layer(jax.tree.map(jnp.asarray, p), jnp.asarray(x), padding_mask(jnp.asarray(keep)),
                                    config=cfg)
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-12, atol=1e-12)


def test_stored_gradient_is_the_identity_both_ways(x64):
    """``stored_gradient`` changes only where XLA keeps the residual gradient: its value and its gradient
    are the identity's, exactly (a conditional whose branches both return the cotangent), and it
    differentiates twice like the identity, so it composes with ``jax.grad`` like any other function."""
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 5)))
    w = jnp.asarray(np.random.default_rng(1).standard_normal((3, 5)))
    f = lambda x: jnp.sum(jnp.sin(transformer.stored_gradient(x)) * w)  # noqa: E731
    np.testing.assert_array_equal(transformer.stored_gradient(x), x)
    np.testing.assert_array_equal(jax.jit(jax.grad(f))(x), jnp.cos(x) * w)
    check_grads(f, (x,))
    hessian_vector = jax.grad(lambda x: jnp.sum(jax.grad(f)(x) * w))(x)  # d/dx of cos(x) w . w
    np.testing.assert_allclose(hessian_vector, -jnp.sin(x) * w * w, rtol=1e-12)


def test_stored_gradient_is_a_conditional_in_the_cpu_backward_pass():
    """On CPU the cotangent passes through a conditional (XLA never fuses one, and strips
    ``optimization_barrier`` before fusing), so the pre-LN stack's residual gradient is computed once
    per layer instead of once per consumer; the forward pass holds no conditional."""
    x = jnp.ones((2, 4))
    backward = jax.jit(jax.grad(lambda x: jnp.sum(transformer.stored_gradient(x) ** 2)))
    forward = jax.jit(lambda x: jnp.sum(transformer.stored_gradient(x) ** 2))
    assert " conditional(" in backward.lower(x).compile().as_text()
    assert " conditional(" not in forward.lower(x).compile().as_text()
