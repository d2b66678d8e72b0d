"""Unpadded batches (scratchlm.nn.unpadding, data.batching.unpad_layout): pad and unpad are each other's
transpose, and BERT run on the real tokens only is the padded BERT's function of them, with its gradients."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.data.batching import unpad_layout
from scratchlm.models import bert
from scratchlm.nn import unpadding
from scratchlm.testing import check_grads
from tests.random_params import random_params

BERT = bert.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=12,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=0.3,
                       max_position_embeddings=16)


def _mask(lengths, T):
    return (np.arange(T)[None] < np.asarray(lengths)[:, None]).astype(np.int32)


@st.composite
def _batches(draw):
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, 7))
    lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    extra = draw(st.integers(0, 5))  # filler rows past the real tokens
    return _mask(lengths, T), sum(lengths) + extra


@settings(max_examples=15, deadline=None)
@given(_batches(), st.integers(0, 2**31 - 1))
def test_pad_and_unpad_are_transposes_and_inverses_on_real_tokens(batch, seed):
    """<pad(x), y> = <x, unpad(y)> for every x, y (P and P^T); pad(unpad(y)) keeps y at real positions and zeroes
    padding; unpad(pad(x)) keeps x's real rows and zeroes filler rows.  Exact: a gather moves values unchanged,
    and the inner products sum the same N nonzero terms in float64 (so 1e-12 bounds their reordering)."""
    mask, N = batch
    layout = {k: jnp.asarray(v) for k, v in unpad_layout(mask, N).items()}
    B, T = mask.shape
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.standard_normal((1, N, 3)))
        y = jnp.asarray(rng.standard_normal((B, T, 3)))
        sides = _identities(x, y, layout)
        real_rows = (np.arange(N) < mask.sum())[None, :, None]
        np.testing.assert_allclose(float(sides[0]), float(sides[1]), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(np.asarray(sides[2]), np.asarray(y) * mask[..., None])
        np.testing.assert_array_equal(np.asarray(sides[3]), np.asarray(x) * real_rows)


@jax.jit
def _identities(x, y, layout):  # one program per shape, not one per operation
    pad, unpad = unpadding.pad, unpadding.unpad
    return (jnp.sum(pad(x, layout) * y), jnp.sum(x * unpad(y, layout)), pad(unpad(y, layout), layout),
            unpad(pad(x, layout), layout))


@settings(max_examples=30, deadline=None)
@given(_batches())
def test_layout_puts_each_texts_first_token_first_and_its_indices_are_inverse(batch):
    mask, N = batch
    layout = unpad_layout(mask, N)
    B, T = mask.shape
    token, grid = layout["token_index"], layout["grid_index"].reshape(-1)
    assert token.shape == (N,) and token.dtype == np.int32 and grid.dtype == np.int32
    np.testing.assert_array_equal(token[:B], np.arange(B) * T)  # row b is text b's first token
    real = int(mask.sum())
    np.testing.assert_array_equal(grid[token[:real]], np.arange(real))  # each a map back of the other
    assert (token[real:] == B * T).all() and (grid[~mask.reshape(-1).astype(bool)] == N).all()
    assert sorted(token[:real]) == list(np.flatnonzero(mask.reshape(-1)))


def test_layout_refuses_left_padding_empty_rows_and_too_few_rows():
    with pytest.raises(ValueError, match="right padding"):
        unpad_layout(np.array([[0, 1, 1]]))
    with pytest.raises(ValueError, match="at least one real token"):
        unpad_layout(np.array([[1, 1], [0, 0]]))
    with pytest.raises(ValueError, match="do not fit"):
        unpad_layout(np.array([[1, 1], [1, 0]]), rows=2)
    assert unpad_layout(np.array([[1, 1], [1, 0]]))["token_index"].shape == (32,)  # a multiple of 32 by default


def test_the_gather_gradients_are_autodiffs_scatter_adds(x64):
    """take_rows' custom VJP (a gather by the inverse map) against the gradient JAX derives for the plain gather (a
    scatter-add), and the float64 finite-difference check of pad and unpad."""
    mask = _mask([3, 1, 2], 4)
    layout = {k: jnp.asarray(v) for k, v in unpad_layout(mask, 8).items()}
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 8, 2)))
    y = jnp.asarray(np.random.default_rng(1).standard_normal((3, 4, 2)))

    def plain(a, index):
        return jnp.concatenate([a, jnp.zeros((1, *a.shape[1:]), a.dtype)])[index]

    g_pad = jax.grad(lambda a: jnp.sum(jnp.sin(unpadding.pad(a, layout))))(x)
    g_ref = jax.grad(lambda a: jnp.sum(jnp.sin(plain(a[0], layout["grid_index"].reshape(-1)))))(x)
    np.testing.assert_array_equal(np.asarray(g_pad), np.asarray(g_ref))
    g_unpad = jax.grad(lambda a: jnp.sum(jnp.sin(unpadding.unpad(a, layout))))(y)
    g_ref = jax.grad(lambda a: jnp.sum(jnp.sin(plain(a.reshape(12, 2), layout["token_index"]))))(y)
    np.testing.assert_array_equal(np.asarray(g_unpad), np.asarray(g_ref))
    check_grads(lambda a: unpadding.pad(a, layout), (x,))
    check_grads(lambda a: unpadding.unpad(a, layout), (y,))


def _batch(seed, lengths=(7, 4, 2, 5), T=8):
    rng = np.random.default_rng(seed)
    mask = _mask(lengths, T)
    return {"input_ids": jnp.asarray(rng.integers(1, BERT.vocab_size, mask.shape) * mask, jnp.int32),
            "attention_mask": jnp.asarray(mask),
            "token_type_ids": jnp.asarray(rng.integers(0, 2, mask.shape) * mask, jnp.int32)}


@pytest.mark.parametrize("pre_ln", [False, True])
def test_unpadded_bert_is_the_padded_bert_with_the_same_gradients(x64, pre_ln):
    """Every real position's last hidden state, the pooler, and the gradient of every parameter, unpadded against
    padded, full and [CLS]-only, float64 without dropout.  Tolerance: the two compute each real row by the same
    operations and differ only in the summation order of the weight gradients (sums over rows of different
    counts), O(eps) = 1e-16 per term on O(1) values; 1e-12 leaves margin, and a wrong position or a token seeing
    another text's keys moves the outputs by O(0.1)."""
    cfg = dataclasses.replace(BERT, pre_layer_norm=pre_ln, dtype="float64")
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), random_params(bert.init, cfg, seed=2))
    batch = _batch(3)
    unpadded = {**batch, "layout": {k: jnp.asarray(v) for k, v in unpad_layout(batch["attention_mask"], 24).items()}}
    real = np.asarray(batch["attention_mask"], bool)
    c = jnp.asarray(np.random.default_rng(4).standard_normal((4, cfg.hidden_size)))

    @jax.jit
    def run(p, b):  # both paths' outputs, and every parameter's gradient of something read from both
        def read(p):
            full, cls = (bert.apply(p, b, config=cfg, cls_only=cls_only) for cls_only in (False, True))
            return sum(jnp.sum(c * o["pooler_output"]) + jnp.sum(o["last_hidden_state"][:, 0] ** 2)
                       for o in (full, cls)), (full, cls)
        return jax.grad(read, has_aux=True)(p)

    (g, outs), (g_ref, refs) = run(params, unpadded), run(params, batch)
    for out, ref, keep in zip(outs, refs, (real, real[:, :1])):
        h, h_ref = np.asarray(out["last_hidden_state"]), np.asarray(ref["last_hidden_state"])
        assert h.shape == h_ref.shape
        np.testing.assert_allclose(h[keep], h_ref[keep], atol=1e-12, rtol=0)
        np.testing.assert_array_equal(h[~keep], 0.0)  # padding positions of an unpadded run are zero
        np.testing.assert_allclose(np.asarray(out["pooler_output"]), np.asarray(ref["pooler_output"]), atol=1e-12)
    for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12, rtol=0)


def test_unpadded_cls_only_is_the_unpadded_full_models_cls_with_dropout(x64):
    """With dropout on, [CLS]-only draws the masks the full unpadded model draws at the kept rows (dropout's
    ``of_shape`` over the leading block of unpadded rows, which are the texts' first tokens): the same [CLS]
    states.  Tolerance as above."""
    cfg = dataclasses.replace(BERT, hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.2, dtype="float64")
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), random_params(bert.init, cfg, seed=6))
    batch = _batch(7)
    batch["layout"] = {k: jnp.asarray(v) for k, v in unpad_layout(batch["attention_mask"]).items()}
    key = jax.random.key(1, impl="rbg")
    apply = jax.jit(bert.apply, static_argnames=("config", "train", "cls_only"))
    full = apply(params, batch, config=cfg, key=key, train=True)
    cls = apply(params, batch, config=cfg, key=key, train=True, cls_only=True)
    np.testing.assert_allclose(np.asarray(cls["last_hidden_state"]), np.asarray(full["last_hidden_state"][:, :1]),
                               atol=1e-12, rtol=0)
    np.testing.assert_allclose(np.asarray(cls["pooler_output"]), np.asarray(full["pooler_output"]), atol=1e-12)
    again = apply(params, batch, config=cfg, key=jax.random.key(2, impl="rbg"), train=True)
    assert np.abs(np.asarray(again["pooler_output"]) - np.asarray(full["pooler_output"])).max() > 1e-3  # keyed


def test_a_layout_of_the_wrong_grid_is_refused():
    batch = _batch(0)
    batch["layout"] = unpad_layout(np.asarray(batch["attention_mask"])[:, :6])
    with pytest.raises(bert.ScratchlmError, match="layout grid_index"):
        bert.apply(random_params(bert.init, BERT, seed=0), batch, config=BERT)


def test_unpadded_fused_attention_equals_the_padded_plain_path():
    """The fused kernel's path (``jax.nn.dot_product_attention``; cuDNN's flash attention on a GPU in bfloat16)
    through the unpadded layers, against the padded plain equations (float32: O(1) values through two layers,
    rounding at ~1e-7; a wrong position moves them by O(0.1))."""
    cfg = dataclasses.replace(BERT, fused_attention=True)
    params = random_params(bert.init, cfg, seed=8)
    batch = _batch(9)
    unpadded = {**batch, "layout": {k: jnp.asarray(v) for k, v in unpad_layout(batch["attention_mask"]).items()}}
    apply = jax.jit(bert.apply, static_argnames=("config",))
    out, ref = apply(params, unpadded, config=cfg), apply(params, batch, config=BERT)
    real = np.asarray(batch["attention_mask"], bool)
    np.testing.assert_allclose(np.asarray(out["last_hidden_state"])[real], np.asarray(ref["last_hidden_state"])[real],
                               atol=1e-5, rtol=0)
