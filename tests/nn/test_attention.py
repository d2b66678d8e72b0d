"""Scaled dot-product and multi-head attention: the docstring's equation recomputed in NumPy, the
weights' invariants, the fused kernel against the plain equations, and a float64 gradient check.

Tolerances: float32 attention on O(1) inputs with at most 8 keys rounds at ~1e-7 relative per
operation, so 1e-5 absolute is round-off with margin; a wrong scale (1/d_k instead of 1/sqrt(d_k))
or a leaked masked key moves outputs by >= 1e-2.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.errors import ScratchlmError
from scratchlm.nn import attention
from scratchlm.testing import check_grads

# jitted once per shape: eager dispatch compiles each primitive separately and is slower on 2 cores
_weights = jax.jit(attention.attention_weights)
_plain = jax.jit(attention.scaled_dot_product_attention)
_fused = jax.jit(attention.fused_attention)
_mha = jax.jit(attention.multi_head_attention, static_argnames=("num_heads", "dropout_rate", "train", "fused"))

SHAPES = [(1, 1, 1, 1, 2), (2, 3, 5, 2, 4), (2, 6, 6, 3, 2), (1, 4, 8, 1, 8)]  # (B, T, S, h, d_k)


def _qkv_mask(seed, B, T, S, h, d_k):
    rng = np.random.default_rng(seed)
    Q, K, V = (rng.standard_normal((B, n, h, d_k)).astype(np.float32) for n in (T, S, S))
    keep = rng.random((B, S)) < 0.7
    keep[:, 0] = True  # at least one visible key per row, as every real sequence has [CLS]
    return Q, K, V, keep


def _numpy_attention(Q, K, V, keep):
    """softmax(Q K^T / sqrt(d_k) + M) V with M = -inf on masked keys, in float64 NumPy, head by head."""
    B, T, h, d_k = Q.shape
    out = np.zeros((B, T, h, V.shape[-1]))
    for b in range(B):
        for i in range(h):
            e = Q[b, :, i].astype(np.float64) @ K[b, :, i].T.astype(np.float64) / math.sqrt(d_k)  # [T, S]
            e = np.where(keep[b][None, :], e, -np.inf)
            A = np.exp(e - e.max(-1, keepdims=True))
            A /= A.sum(-1, keepdims=True)
            out[b, :, i] = A @ V[b, :, i]
    return out


@settings(max_examples=12)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16))
def test_weights_sum_to_one_over_visible_keys_and_are_zero_on_masked(shape, seed):
    Q, K, _, keep = _qkv_mask(seed, *shape)
    A = np.asarray(_weights(jnp.asarray(Q), jnp.asarray(K), attention.padding_mask(jnp.asarray(keep))))
    B, T, S, h, _ = shape
    assert A.shape == (B, h, T, S) and A.dtype == np.float32
    masked = np.broadcast_to(~keep[:, None, None, :], A.shape)
    assert np.all(A[masked] == 0.0)  # exactly: exp(float32 min - max) underflows to 0
    np.testing.assert_allclose(A.sum(-1), 1.0, atol=1e-6)


@settings(max_examples=12)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16))
def test_plain_attention_equals_its_equation_in_numpy(shape, seed):
    Q, K, V, keep = _qkv_mask(seed, *shape)
    out = _plain(*map(jnp.asarray, (Q, K, V)), attention.padding_mask(jnp.asarray(keep)))
    np.testing.assert_allclose(np.asarray(out), _numpy_attention(Q, K, V, keep), atol=1e-5, rtol=0)


@settings(max_examples=12)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16), causal=st.booleans())
def test_fused_attention_equals_plain(shape, seed, causal):
    B, T, S, h, d_k = shape
    Q, K, V, keep = map(jnp.asarray, _qkv_mask(seed, B, T, S, h, d_k))
    mask = attention.padding_mask(keep)
    if causal:
        mask = mask & attention.causal_mask(T, S)
        mask = mask.at[..., 0].set(True)  # keep key 0 visible: a row with no visible key has no softmax
    plain = _plain(Q, K, V, mask)
    fused = _fused(Q, K, V, mask)
    np.testing.assert_allclose(np.asarray(fused), np.asarray(plain), atol=1e-5, rtol=0)


def test_causal_mask_hides_the_future():
    Q, K, V, _ = map(jnp.asarray, _qkv_mask(0, 1, 6, 6, 2, 4))
    mask = attention.causal_mask(6)
    out = attention.scaled_dot_product_attention(Q, K, V, mask)
    out2 = attention.scaled_dot_product_attention(Q, K.at[:, 4:].set(7.0), V.at[:, 4:].set(-3.0), mask)
    np.testing.assert_array_equal(np.asarray(out[:, :4]), np.asarray(out2[:, :4]))
    assert not np.allclose(np.asarray(out[:, 4:]), np.asarray(out2[:, 4:]))


def _mha_params(key, H):
    ks = jax.random.split(key, 4)

    def lin(k):
        return {"weight": 0.5 * jax.random.normal(k, (H, H)),
                "bias": 0.1 * jax.random.normal(jax.random.fold_in(k, 1), (H,))}

    return {"self": {"query": lin(ks[0]), "key": lin(ks[1]), "value": lin(ks[2])}, "output": {"dense": lin(ks[3])}}


def test_multi_head_attention_equals_per_head_equation():
    H, h = 6, 3
    p = jax.tree.map(np.asarray, _mha_params(jax.random.key(0), H))
    x = np.random.default_rng(1).standard_normal((2, 5, H)).astype(np.float32)
    keep = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool)
    out = _mha(jax.tree.map(jnp.asarray, p), jnp.asarray(x), attention.padding_mask(jnp.asarray(keep)), num_heads=h)

    def lin(q, z):
        return z @ q["weight"].T + q["bias"]

    def split(z):  # [B, T, H] -> [B, T, h, d_k]
        return z.reshape(2, 5, h, H // h)

    heads = _numpy_attention(split(lin(p["self"]["query"], x)), split(lin(p["self"]["key"], x)),
                             split(lin(p["self"]["value"], x)), keep)
    np.testing.assert_allclose(np.asarray(out), lin(p["output"]["dense"], heads.reshape(2, 5, H)), atol=1e-5, rtol=0)


def test_fused_refuses_attention_dropout_in_training():
    p = _mha_params(jax.random.key(0), 4)
    with pytest.raises(ScratchlmError, match="fused attention has no dropout"):
        attention.multi_head_attention(p, jnp.ones((1, 3, 4)), None, num_heads=2, dropout_rate=0.1,
                                       key=jax.random.key(1), train=True, fused=True)


def test_bfloat16_inputs_keep_float32_softmax_statistics():
    Q, K, V, keep = map(jnp.asarray, _qkv_mask(0, 2, 3, 5, 2, 4))
    A = attention.attention_weights(Q.astype(jnp.bfloat16), K.astype(jnp.bfloat16), attention.padding_mask(keep))
    assert A.dtype == jnp.float32
    out = attention.scaled_dot_product_attention(*(t.astype(jnp.bfloat16) for t in (Q, K, V)),
                                                 attention.padding_mask(keep))
    assert out.dtype == jnp.bfloat16
    # bfloat16 rounds inputs and A V at 2^-8 relative; outputs are convex combinations of O(1) values
    np.testing.assert_allclose(np.asarray(out, np.float32), _numpy_attention(*map(np.asarray, (Q, K, V, keep))),
                               atol=5e-2)


def test_multi_head_attention_gradients_float64(x64):
    p = _mha_params(jax.random.key(0), 4)
    x = jax.random.normal(jax.random.key(1), (2, 3, 4))
    mask = attention.padding_mask(jnp.array([[1, 1, 1], [1, 1, 0]]))
    check_grads(lambda p, x: attention.multi_head_attention(p, x, mask, num_heads=2), (p, x))


def test_scaled_dot_product_attention_gradients_float64(x64):
    """Q, K and V each get their gradient through the masked softmax (the MHA check above reaches them only
    through the shared projections)."""
    Q, K, V, keep = _qkv_mask(3, 2, 3, 4, 2, 2)
    mask = attention.padding_mask(jnp.asarray(keep))
    check_grads(lambda Q, K, V: attention.scaled_dot_product_attention(Q, K, V, mask), (Q, K, V))


@settings(max_examples=8)
@given(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16), perm_seed=st.integers(0, 2**16))
def test_attention_is_invariant_to_the_order_of_the_keys(shape, seed, perm_seed):
    """softmax(QK^T/sqrt(d_k) + M) V sums over keys s: permuting the rows of K, V and the key mask together
    leaves every output unchanged (float32: the same terms summed in another order, ~S ulp of O(1) values)."""
    Q, K, V, keep = _qkv_mask(seed, *shape)
    perm = np.random.default_rng(perm_seed).permutation(shape[2])
    out = _plain(*map(jnp.asarray, (Q, K, V)), attention.padding_mask(jnp.asarray(keep)))
    out_p = _plain(*map(jnp.asarray, (Q, K[:, perm], V[:, perm])), attention.padding_mask(jnp.asarray(keep[:, perm])))
    np.testing.assert_allclose(np.asarray(out_p), np.asarray(out), atol=1e-6, rtol=0)


def test_against_pytorch_scaled_dot_product_attention(x64):
    """torch.nn.functional.scaled_dot_product_attention (layout [B, h, T, d], boolean mask True = attend) in
    float64: both evaluate softmax(QK^T/sqrt(d_k)) V over <= 8 keys, agreement to ~1e-15; 1e-12 catches any
    wrong scale or leaked key.  Padding and causal masks both."""
    torch = pytest.importorskip("torch")
    Q, K, V, keep = (np.asarray(a, np.float64) if a.dtype != bool else a for a in _qkv_mask(4, 2, 5, 5, 2, 3))

    def to_torch(a):  # [B, T, h, d] -> [B, h, T, d]
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 2, 1, 3)))

    for mask in (attention.padding_mask(jnp.asarray(keep)),
                 attention.padding_mask(jnp.asarray(keep)) & attention.causal_mask(5)):
        ref = torch.nn.functional.scaled_dot_product_attention(to_torch(Q), to_torch(K), to_torch(V),
                                                               attn_mask=torch.from_numpy(np.array(mask)))
        got = attention.scaled_dot_product_attention(jnp.asarray(Q), jnp.asarray(K), jnp.asarray(V), mask)
        np.testing.assert_allclose(np.asarray(got), ref.numpy().transpose(0, 2, 1, 3), rtol=1e-12, atol=1e-14)


@settings(max_examples=10)
@given(T=st.integers(1, 5), S=st.integers(1, 8), offset=st.integers(0, 6))
def test_causal_mask_with_offset_is_its_equation(T, S, offset):
    """M_ts = 0 exactly where s <= t + o, written out element by element; offset 0 is the lower triangle."""
    got = np.asarray(attention.causal_mask(T, S, offset))[0, 0]
    want = np.array([[s <= t + offset for s in range(S)] for t in range(T)])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.asarray(attention.causal_mask(T, S))[0, 0], np.tril(np.ones((T, S), bool)))


@settings(max_examples=6)
@given(seed=st.integers(0, 2**16), T0=st.integers(1, 4))
def test_attention_through_the_cache_equals_attention_over_the_whole_sequence(seed, T0):
    """Filling a cache with the first T0 positions, then one position at a time (update_kv_cache, queries
    under causal_mask(T, S, o)), gives each query exactly the keys and values the whole sequence gives it:
    outputs agree to float32 round-off of one softmax over <= 6 keys (1e-6 on O(1) values); positions not
    yet written are zeros in the cache and masked out."""
    B, S, h, d = 2, 6, 2, 3
    Q, K, V, _ = map(jnp.asarray, _qkv_mask(seed, B, S, S, h, d))
    whole = attention.scaled_dot_product_attention(Q, K, V, attention.causal_mask(S))
    cache = {"k": jnp.zeros((B, S, h, d)), "v": jnp.zeros((B, S, h, d))}
    cache = attention.update_kv_cache(cache, K[:, :T0], V[:, :T0], 0)
    outs = [attention.scaled_dot_product_attention(Q[:, :T0], cache["k"], cache["v"], attention.causal_mask(T0, S))]
    for t in range(T0, S):
        cache = attention.update_kv_cache(cache, K[:, t : t + 1], V[:, t : t + 1], jnp.int32(t))
        outs.append(attention.scaled_dot_product_attention(Q[:, t : t + 1], cache["k"], cache["v"],
                                                           attention.causal_mask(1, S, t)))
    np.testing.assert_array_equal(np.asarray(cache["k"]), np.asarray(K))  # every position written once
    np.testing.assert_allclose(np.asarray(jnp.concatenate(outs, axis=1)), np.asarray(whole), atol=1e-6, rtol=0)
