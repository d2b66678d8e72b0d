"""Cross-entropy losses computed from logits, so that no probability is ever rounded to 0 or 1.

Sources: design document 004 §4.1–4.2 (binary cross-entropy and its empirical risk) and 001 §4.2
(class-weighted cross-entropy; the document drops the minus sign, the loss here is the negative
log-likelihood as in every textbook and in PyTorch).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from scratchlm.nn.functional import log_sigmoid, log_softmax


def binary_cross_entropy_with_logits(z: jax.Array, y: jax.Array) -> jax.Array:
    r"""Binary cross-entropy of a logit against a label, per element (design document 004 §4.1).

    .. math::  \ell(\hat y, y) = -\left[y \log \hat y + (1 - y) \log(1 - \hat y)\right],
               \qquad \hat y = \sigma(z)

    computed as :math:`-[y \log\sigma(z) + (1-y)\log\sigma(-z)]` since
    :math:`1 - \sigma(z) = \sigma(-z)`, so neither log ever sees a rounded 0.  Its derivative is
    :math:`\partial\ell/\partial z = \sigma(z) - y`.  The convention :math:`0 \cdot \log 0 = 0` makes
    a perfect prediction (:math:`z = \pm\infty` on the right side) cost exactly 0.

    Args: z [...] logits; y [...] labels in [0, 1] (soft labels allowed).  Returns [...] losses >= 0.
    """
    y = jnp.asarray(y, dtype=z.dtype)
    pos = jnp.where(y == 0, 0.0, y * log_sigmoid(z))
    neg = jnp.where(y == 1, 0.0, (1.0 - y) * log_sigmoid(-z))
    return -(pos + neg)


def bce_risk(z: jax.Array, y: jax.Array) -> jax.Array:
    r"""Empirical risk of the binary cross-entropy over N samples (design document 004 §4.1).

    .. math::  \mathcal{L}(\theta) = -\frac{1}{N}\sum_{i=1}^{N}
               \left[y_i \log M_\theta(x_i) + (1 - y_i) \log(1 - M_\theta(x_i))\right],
               \qquad M_\theta(x_i) = \sigma(z_i)

    Args: z [N] logits; y [N] labels.  Returns a scalar.
    """
    return jnp.mean(binary_cross_entropy_with_logits(z, y))


def softmax_cross_entropy(
    logits: jax.Array,
    labels: jax.Array,
    *,
    class_weights: jax.Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> jax.Array:
    r"""Class-weighted softmax cross-entropy with an ignored label (design document 001 §4.2).

    .. math::  L = -\frac{1}{N} \sum_{i=1}^{N} \sum_{j=1}^{M} w_j\, y_{ij} \log P(y_j \mid x_i),
               \qquad P(\cdot \mid x_i) = \mathrm{softmax}(\text{logits}_i)

    with :math:`y_{ij}` the one-hot label and :math:`w_j = 1` when no weights are given.  Positions
    whose label equals ``ignore_index`` (padding, HuggingFace's -100 for non-first sub-tokens) add
    nothing and are not counted in :math:`N`.  The document prints the sum without its minus sign;
    the loss is the negative log-likelihood.  ``reduction="mean"`` divides by :math:`N` as the
    document does (PyTorch's weighted mean divides by :math:`\sum_i w_{y_i}` instead; the two agree
    when all weights are 1).

    Args: logits [..., M]; labels [...] integer classes or ``ignore_index``; class_weights [M];
    reduction "mean" | "sum" | "none" ("none" returns [...] with 0 at ignored positions).
    """
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"softmax_cross_entropy: logits {logits.shape} need labels of shape {logits.shape[:-1]}, "
                         f"got {labels.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    keep = labels != ignore_index
    safe = jnp.where(keep, labels, 0)  # any valid class; its loss is masked out below
    # log P(y_i | x_i) picked as the sum over j with the one-hot y_ij, as the equation has it (exact:
    # one term is non-zero).  Its gradient is a select fused into the softmax's; picking it with
    # take_along_axis differentiates to a scatter into a zero [..., M] buffer (an MLM head's loss and
    # gradient were 2.4x slower on XLA:CPU that way)
    y = jnp.arange(logits.shape[-1]) == safe[..., None]  # [..., M] one-hot
    log_p = jnp.sum(jnp.where(y, log_softmax(logits), 0.0), axis=-1)  # [...]
    w = 1.0 if class_weights is None else jnp.asarray(class_weights, logits.dtype)[safe]
    per_position = jnp.where(keep, -w * log_p, 0.0)
    if reduction == "none":
        return per_position
    total = jnp.sum(per_position)
    if reduction == "sum":
        return total
    return total / jnp.maximum(jnp.sum(keep), 1)


def linear_cross_entropy(h: jax.Array, W: jax.Array, labels: jax.Array, *, ignore_index: int = -100,
                         chunk_size: int = 4096) -> jax.Array:
    r"""Mean softmax cross-entropy of the logits :math:`z_i = W h_i`, computed a chunk of rows at a time so the
    [N, V] logits never exist whole: :func:`softmax_cross_entropy` of ``h @ W.T``, fused with the linear layer.

    .. math::  \mathcal{L} = -\frac{1}{N} \sum_{i:\, y_i \ne \text{ignore}}
               \Big(z_{i y_i} - \log \sum_{v=1}^{V} e^{z_{iv}}\Big), \qquad z_i = W h_i

    with the gradient of the softmax regression (Bishop 2006, eq. 4.109):

    .. math::  \frac{\partial \mathcal{L}}{\partial z_i} = \frac{1}{N}\big(\mathrm{softmax}(z_i) - e_{y_i}\big),
               \qquad \frac{\partial \mathcal{L}}{\partial h_i} = W^\top \frac{\partial \mathcal{L}}{\partial z_i},
               \qquad \frac{\partial \mathcal{L}}{\partial W}
               = \sum_i \frac{\partial \mathcal{L}}{\partial z_i}\, h_i^\top

    Why: a language model's head makes logits of N tokens by V words, 3.3 GB in float32 for GPT-2 at 16
    sequences of 1,024 tokens, and autodiff writes and reads them several times; on an H100 the head's loss
    and gradient took 26 of a 61 ms step (``benchmarks/notes/2026-12-05-round10.md``).  Here each chunk's
    logits are made, reduced to their log-sum-exp, turned into :math:`\partial \mathcal{L}/\partial z` and
    multiplied into both gradients in one pass when differentiated (the gradient computed with the loss, as
    Liger-Kernel's fused linear cross-entropy does; the backward pass only scales it), and into the loss
    alone otherwise.  The logits and their statistics are float32 or wider; ``dz`` is cast to ``h``'s dtype
    before its two products, as a bfloat16 linear layer's gradient is.  Reverse mode only (a custom VJP):
    ``jax.jvp`` and ``jax.jacfwd`` of it raise; use ``softmax_cross_entropy(h @ W.T, labels)`` for those.

    Args: h [..., H]; W [V, H] in ``h``'s dtype; labels [...] integer classes or ``ignore_index``;
    chunk_size rows per chunk (the rows are split into equal chunks of at most this many).  Returns a
    scalar; 0 when every label is ignored, as :func:`softmax_cross_entropy`.
    """
    if labels.shape != h.shape[:-1]:
        raise ValueError(f"linear_cross_entropy: h {h.shape} needs labels of shape {h.shape[:-1]}, "
                         f"got {labels.shape}")
    if W.ndim != 2 or W.shape[1] != h.shape[-1]:
        raise ValueError(f"linear_cross_entropy: W must be [V, {h.shape[-1]}], got {W.shape}")
    H = h.shape[-1]
    h2, y = h.reshape(-1, H), labels.reshape(-1).astype(jnp.int32)
    N = h2.shape[0]
    n = max(1, -(-N // chunk_size))
    C = -(-N // n)
    h2 = jnp.pad(h2, ((0, n * C - N), (0, 0)))
    y = jnp.pad(y, (0, n * C - N), constant_values=ignore_index)
    total = _linear_nll_sum(h2.reshape(n, C, H), W, y.reshape(n, C), ignore_index)
    return total / jnp.maximum(jnp.sum(y != ignore_index), 1)


def _linear_nll_chunk(h, W, y, ignore_index):
    """One chunk: the logits [C, V] (float32 or wider), their log-sum-exp, the one-hot labels, the kept rows
    and the summed negative log-likelihood."""
    z = jnp.einsum("ch,vh->cv", h, W, preferred_element_type=jnp.promote_types(h.dtype, jnp.float32))
    m = jnp.max(z, axis=-1, keepdims=True)
    lse = m[:, 0] + jnp.log(jnp.sum(jnp.exp(z - m), axis=-1))
    keep = y != ignore_index
    onehot = jnp.arange(W.shape[0]) == jnp.where(keep, y, 0)[:, None]
    z_y = jnp.sum(jnp.where(onehot, z, 0.0), axis=-1)  # the select, not a gather (softmax_cross_entropy's reason)
    return z, lse, onehot, keep, jnp.sum(jnp.where(keep, lse - z_y, 0.0))


def _over_chunks(body, carry, xs):
    """``lax.scan`` over the leading axis, or the body called once when there is one chunk (a CPU's usual
    case: no loop for XLA to keep)."""
    if xs[0].shape[0] == 1:
        carry, out = body(carry, jax.tree.map(lambda x: x[0], xs))
        return carry, jax.tree.map(lambda x: x[None], out)
    return jax.lax.scan(body, carry, xs)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _linear_nll_sum(h, W, y, ignore_index):
    """The summed negative log-likelihood over chunks h [n, C, H], y [n, C]."""
    acc = jnp.promote_types(h.dtype, jnp.float32)

    def body(total, xs):
        return total + _linear_nll_chunk(xs[0], W, xs[1], ignore_index)[-1], None

    return _over_chunks(body, jnp.zeros((), acc), (h, y))[0]


def _linear_nll_sum_fwd(h, W, y, ignore_index):
    acc = jnp.promote_types(h.dtype, jnp.float32)

    def body(carry, xs):
        total, dW = carry
        h_c, y_c = xs
        z, lse, onehot, keep, nll = _linear_nll_chunk(h_c, W, y_c, ignore_index)
        dz = jnp.where(keep[:, None], jnp.exp(z - lse[:, None]) - onehot, 0.0).astype(h.dtype)  # softmax - e_y
        dh = jnp.einsum("cv,vh->ch", dz, W, preferred_element_type=acc)
        dW = dW + jnp.einsum("cv,ch->vh", dz, h_c, preferred_element_type=acc)
        return (total + nll, dW), dh

    (total, dW), dh = _over_chunks(body, (jnp.zeros((), acc), jnp.zeros(W.shape, acc)), (h, y))
    # kept wide until scaled by the incoming cotangent, so each gradient is rounded to its dtype once;
    # the empty arrays carry the primal dtypes to the backward rule
    return total, (dh, dW, jnp.zeros((0,), h.dtype), jnp.zeros((0,), W.dtype))


def _linear_nll_sum_bwd(ignore_index, residuals, g):
    dh, dW, h_type, W_type = residuals
    return (g * dh).astype(h_type.dtype), (g * dW).astype(W_type.dtype), None


_linear_nll_sum.defvjp(_linear_nll_sum_fwd, _linear_nll_sum_bwd)


def top1_correct(logits: jax.Array, labels: jax.Array) -> jax.Array:
    r"""Whether each label is the top-scoring class: :math:`z_{i,y_i} \ge \max_j z_{ij}`.

    The same as ``argmax(logits) == labels`` except on exact ties, which count as correct here
    (argmax takes the first).  Why not argmax: on XLA:CPU its (value, index) reduction over an MLM
    head's [B, K, V] logits took 2.8 ms of a 100 ms training step; the maximum is one plain reduction
    (the same one log-softmax takes, so XLA computes it once).

    Args: logits [..., M]; labels [...] integer classes in [0, M).  Returns [...] bool.
    """
    z_y = jnp.take_along_axis(logits, labels[..., None].astype(jnp.int32), axis=-1)[..., 0]
    return z_y >= jnp.max(logits, axis=-1)
