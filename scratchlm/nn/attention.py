"""Scaled dot-product and multi-head attention (Vaswani et al. 2017, §3.2), written as the equations.

Tensors keep the layout ``[B, T, h, d_k]`` (batch, position, head, head feature) throughout: it is
the layout ``jax.nn.dot_product_attention`` and cuDNN's flash attention take, so the plain and the
fused paths share every line except the attention itself.

Masks are boolean, ``True`` where a query may attend to a key, broadcastable to ``[B, h, T, S]``;
:func:`padding_mask` builds one from HuggingFace's ``attention_mask`` ``[B, S]``.

Mixed precision: the projections run in the dtype of ``x`` (bfloat16 on request), while the scores
:math:`QK^\\top/\\sqrt{d_k}` and the softmax statistics are always float32 (``preferred_element_type``),
because bfloat16's 8-bit mantissa loses the small differences between large logits.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from scratchlm.errors import ScratchlmError
from scratchlm.nn.functional import dropout, softmax
from scratchlm.nn.unpadding import pad, unpad


def dense(p: dict, x: jax.Array) -> jax.Array:
    r"""Affine map with PyTorch's weight layout, so HuggingFace tensors load without a transpose.

    .. math::  y = x W^\top + b, \qquad W \in \mathbb{R}^{d_{out} \times d_{in}}

    The weight is cast to the dtype of ``x`` (float32 parameters, bfloat16 compute on request).  A layer
    without a ``bias`` (GPT-2's ``score``, ``nn.Linear(..., bias=False)``) has :math:`b = 0`.

    Args: p {"weight": [d_out, d_in], "bias": [d_out] (optional)}; x [..., d_in].  Returns [..., d_out].
    """
    y = jnp.einsum("...i,oi->...o", x, p["weight"].astype(x.dtype))
    return y + p["bias"].astype(x.dtype) if "bias" in p else y


def padding_mask(attention_mask: jax.Array) -> jax.Array:
    """``[B, S]`` 1/0 attention mask (HuggingFace's convention) -> boolean ``[B, 1, 1, S]`` key mask."""
    return (attention_mask > 0)[:, None, None, :]


def causal_mask(T: int, S: int | None = None, offset: int | jax.Array = 0) -> jax.Array:
    r"""Boolean ``[1, 1, T, S]`` causal mask of a decoder (Vaswani et al. 2017, §3.2.3; Radford et al. 2018, §3.1).

    .. math::  M_{ts} = \begin{cases} 0 & s \le t + o \\ -\infty & s > t + o \end{cases}

    ``True`` where :math:`M_{ts} = 0`: query :math:`t` (absolute position :math:`t + o`) sees the keys
    at or before itself and none after, so the prediction at :math:`t` depends only on
    :math:`x_{\le t}`.  The offset :math:`o` is the number of keys already in a key/value cache
    before the first query (0 for a whole sequence); it may be a traced value, so one compilation
    serves every decoding step.

    Args: T queries; S keys (default T); offset o.  Returns bool [1, 1, T, S].
    """
    S = T if S is None else S
    t = jnp.arange(T)[:, None] + offset
    s = jnp.arange(S)[None, :]
    return (s <= t)[None, None]


def update_kv_cache(cache: dict, K: jax.Array, V: jax.Array, index: int | jax.Array) -> dict:
    r"""Write the keys and values of new positions into a static-shape key/value cache.

    .. math::  K^{cache}_{[:,\, o:o+T]} \leftarrow K, \qquad V^{cache}_{[:,\, o:o+T]} \leftarrow V

    so that attention at step :math:`t` reads :math:`K_{\le t}` and :math:`V_{\le t}` without
    recomputing them: each position's key and value depend only on its own input (causal
    self-attention), so the cached rows equal those a full recomputation would give.  The cache has
    the fixed length :math:`S` of the longest sequence, so one compiled step serves every position
    (the offset :math:`o` is traced); positions not yet written are hidden by :func:`causal_mask`.

    Args: cache {"k": [B, S, h, d_k], "v": [B, S, h, d_v]}; K [B, T, h, d_k]; V [B, T, h, d_v];
    index o, the first position written.  Returns the updated cache (same shapes and dtypes).
    """
    start = (0, index, 0, 0)
    return {"k": jax.lax.dynamic_update_slice(cache["k"], K.astype(cache["k"].dtype), start),
            "v": jax.lax.dynamic_update_slice(cache["v"], V.astype(cache["v"].dtype), start)}


def attention_weights(Q: jax.Array, K: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    r"""Attention weights of scaled dot-product attention (Vaswani et al. 2017, eq. 1), in float32.

    .. math::  A = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}} + M\right), \qquad
               M_{ts} = \begin{cases} 0 & \text{key } s \text{ visible to query } t \\
                                      -\infty & \text{otherwise} \end{cases}

    :math:`-\infty` is the dtype's minimum, so masked weights are exactly 0 and a row whose keys are
    all masked stays finite (uniform) instead of NaN; HuggingFace adds the same minimum.

    Args: Q [B, T, h, d_k]; K [B, S, h, d_k]; mask bool, broadcastable to [B, h, T, S].
    Returns A [B, h, T, S] float32 (float64 for float64 inputs), each row summing to 1 over the visible keys.
    """
    d_k = Q.shape[-1]
    # scores in float32 whatever the compute dtype: the softmax statistics need the mantissa
    stats_dtype = jnp.promote_types(Q.dtype, jnp.float32)  # float64 stays float64 (gradient checks)
    scores = jnp.einsum("bthd,bshd->bhts", Q, K, preferred_element_type=stats_dtype) / math.sqrt(d_k)
    if mask is not None:
        scores = jnp.where(mask, scores, jnp.finfo(stats_dtype).min)
    return softmax(scores, axis=-1)


def scaled_dot_product_attention(Q: jax.Array, K: jax.Array, V: jax.Array, mask: jax.Array | None = None, *,
                                 dropout_rate: float = 0.0, key: jax.Array | None = None,
                                 train: bool = False, dropout_shape: tuple[int, ...] | None = None) -> jax.Array:
    r"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1), with dropout on the weights as BERT does.

    .. math::  \mathrm{Attention}(Q, K, V) = \mathrm{dropout}(A)\, V, \qquad
               A = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}} + M\right)

    Args: Q [B, T, h, d_k]; K [B, S, h, d_k]; V [B, S, h, d_v]; mask bool broadcastable to
    [B, h, T, S]; dropout_rate the drop probability of attention weights (training only); dropout_shape
    the weights' shape when Q holds only the first T of more queries (:func:`dropout`'s ``of_shape``).
    Returns [B, T, h, d_v] in the dtype of V.
    """
    A = attention_weights(Q, K, mask)  # [B, h, T, S] float32
    A = dropout(A, dropout_rate, key=key, train=train, of_shape=dropout_shape)
    return jnp.einsum("bhts,bshd->bthd", A.astype(V.dtype), V)


def fused_attention(Q: jax.Array, K: jax.Array, V: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    r"""The same :math:`\mathrm{softmax}(QK^\top/\sqrt{d_k} + M)\,V` through ``jax.nn.dot_product_attention``.

    On a CUDA GPU with bfloat16/float16 inputs it asks for cuDNN's flash attention (Dao et al. 2022),
    which never materialises the ``[B, h, T, S]`` score matrix; jax 0.10's ``implementation=None``
    still means XLA, so cuDNN is requested by name and XLA's fused einsum path is the fallback
    (float32, CPU, or a shape cuDNN rejects).  A padding mask is broadcast to ``[B, 1, T, S]``, the
    bias shape cuDNN accepts, so any padding side is handled.  It has no dropout on the weights.

    Args: Q [B, T, h, d_k]; K, V [B, S, h, d_k]; mask bool broadcastable to [B, h, T, S].
    Returns [B, T, h, d_k] in the dtype of Q.
    """
    B, T, h, _ = Q.shape
    S = K.shape[1]
    if mask is not None:
        mask = jnp.broadcast_to(mask, (B, mask.shape[1], T, S))
    if jax.default_backend() == "gpu" and Q.dtype in (jnp.bfloat16, jnp.float16):
        try:
            return jax.nn.dot_product_attention(Q, K, V, mask=mask, implementation="cudnn")
        except (NotImplementedError, ValueError, RuntimeError):
            pass  # cuDNN rejected the shape/version: XLA below computes the same function
    return jax.nn.dot_product_attention(Q, K, V, mask=mask, implementation="xla")


def multi_head_attention(p: dict, x: jax.Array, mask: jax.Array | None = None, *, num_heads: int,
                         dropout_rate: float = 0.0, key: jax.Array | None = None, train: bool = False,
                         fused: bool = False, queries: int | None = None, layout: dict | None = None) -> jax.Array:
    r"""Multi-head self-attention (Vaswani et al. 2017, §3.2.2).

    .. math::  \mathrm{MultiHead}(X) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\, W^O,
               \qquad \mathrm{head}_i = \mathrm{Attention}(X W_i^Q, X W_i^K, X W_i^V)

    The :math:`h` projections :math:`W_i^Q` are the column blocks of one ``[H, H]`` matrix, as in
    HuggingFace's BERT, whose parameter names this mirrors: ``p["self"]["query"|"key"|"value"]`` and
    :math:`W^O` = ``p["output"]["dense"]`` (the residual and layer norm around it live in
    :mod:`scratchlm.nn.transformer`).

    Args: p the ``attention`` subtree of one encoder layer; x [B, T, H]; mask bool broadcastable to
    [B, h, T, T]; fused selects :func:`fused_attention` (which has no attention dropout, so it
    refuses ``dropout_rate > 0`` when training, a setting
    the user chose: :class:`ScratchlmError`).  ``queries``: only the first ``queries`` positions attend
    (every position is still a key and a value), as when only the ``[CLS]`` output is read; the result is
    then [B, queries, H], the first rows of the full result, with the same dropout masks.
    Returns [B, T, H] in the dtype of x.

    ``layout`` (:mod:`scratchlm.nn.unpadding`): x is unpadded, [1, N, H], the real tokens of a
    [B, T] grid end to end; the projections run on those N rows, and Q, K and V go to the grid
    (:func:`~scratchlm.nn.unpadding.pad`) only for the attention itself, whose result comes back
    (:func:`~scratchlm.nn.unpadding.unpad`) before :math:`W^O`.  ``mask`` is then the grid's.
    ``queries`` must be B or None there: the leading B rows, each text's first token.  Returns
    [1, N, H] ([1, B, H] with ``queries``).
    """
    if x.shape[-1] % num_heads:
        raise ValueError(f"hidden size {x.shape[-1]} is not divisible by num_heads={num_heads}")
    if layout is not None:
        return _unpadded_attention(p, x, mask, layout, num_heads=num_heads, dropout_rate=dropout_rate, key=key,
                                   train=train, fused=fused, queries=queries)
    B, T, H = x.shape
    d_k = H // num_heads
    n = T if queries is None else queries
    Q = dense(p["self"]["query"], x[:, :n]).reshape(B, n, num_heads, d_k)  # [B, T, H] -> [B, T, h, d_k]
    K = dense(p["self"]["key"], x).reshape(B, T, num_heads, d_k)
    V = dense(p["self"]["value"], x).reshape(B, T, num_heads, d_k)
    if n != T and mask is not None and mask.ndim == 4 and mask.shape[2] == T:
        mask = mask[:, :, :n]  # a mask with a query axis (causal): the kept queries' rows
    heads = _attention(Q, K, V, mask, dropout_rate=dropout_rate, key=key, train=train, fused=fused)
    return dense(p["output"]["dense"], heads.reshape(B, n, H))  # concat heads: [B, T, h, d_k] -> [B, T, H]


def _attention(Q, K, V, mask, *, dropout_rate, key, train, fused):
    """Eq. 1 on [B, T_q, h, d_k] queries of [B, T, h, d_k] keys: the plain or the fused path; the dropout
    masks are those of all T queries' weights, restricted to the first T_q."""
    if fused:
        if train and dropout_rate > 0.0:
            raise ScratchlmError("fused attention has no dropout on the attention weights: set "
                                 "attention_probs_dropout_prob=0 or use the plain path (fused_attention=False)")
        return fused_attention(Q, K, V, mask)
    (B, n, h, _), T = Q.shape, K.shape[1]
    return scaled_dot_product_attention(Q, K, V, mask, dropout_rate=dropout_rate, key=key, train=train,
                                        dropout_shape=None if n == T else (B, h, T, T))


def _unpadded_attention(p, x, mask, layout, *, num_heads, dropout_rate, key, train, fused, queries):
    """:func:`multi_head_attention` on unpadded x [1, N, H]: projections over the N rows, attention on the grid."""
    _, N, H = x.shape
    B, T = layout["grid_index"].shape
    if queries not in (None, B):
        raise ValueError(f"unpadded attention computes every token or each text's first (queries={B}), got {queries}")
    d_k = H // num_heads
    K = pad(dense(p["self"]["key"], x), layout).reshape(B, T, num_heads, d_k)
    V = pad(dense(p["self"]["value"], x), layout).reshape(B, T, num_heads, d_k)
    if queries is None:
        Q = pad(dense(p["self"]["query"], x), layout).reshape(B, T, num_heads, d_k)
    else:  # row b of the leading block is text b's first token, grid position (b, 0)
        Q = dense(p["self"]["query"], x[:, :B]).reshape(B, 1, num_heads, d_k)
        if mask is not None and mask.ndim == 4 and mask.shape[2] == T:
            mask = mask[:, :, :1]
    heads = _attention(Q, K, V, mask, dropout_rate=dropout_rate, key=key, train=train, fused=fused)
    heads = unpad(heads.reshape(B, T, H), layout) if queries is None else heads.reshape(1, B, H)
    return dense(p["output"]["dense"], heads)
