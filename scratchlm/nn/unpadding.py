r"""Unpadded batches: a padded batch's real tokens in one row, and back (the "remove padding" of ByteTransformer).

A batch of B texts padded to T positions spends every position-wise operation (the projections
:math:`W^Q, W^K, W^V, W^O`, the feed-forward network, the layer norms, dropout) on padding as well as
on text.  Those operations treat each position alone, so they can run on the :math:`N` real tokens
laid end to end, ``[1, N, H]``, and only attention, the one operation that mixes positions, needs the
``[B, T]`` grid (Zhai et al. 2023, "ByteTransformer: a high-performance Transformer boosted for
variable-length inputs", IPDPS 2023; FlashAttention's ``bert_padding.unpad_input`` / ``pad_input``, Dao et
al. 2022).  On the polarity sentences (27.7 tokens on average, batches of 16) a batch padded to its
longest text holds 1.83 positions per real token; unpadded, rounded up to a multiple of 128, 1.15.

The layout is two index arrays, built on the host (:func:`scratchlm.data.batching.unpad_layout`):

- ``token_index`` [N]: the grid position :math:`bT + t` of each row of the unpadded array.  The first
  token of every text leads, in text order (rows :math:`0..B-1`), so a head that reads only ``[CLS]``
  reads the leading block; the other real tokens follow; rows past the real tokens (filling N up to a
  bucket, so few shapes compile) hold :math:`BT`, which reads zero.
- ``grid_index`` [B, T]: the unpadded row of each grid position, :math:`N` (zero) for padding.

As matrices, :func:`pad` is :math:`P \in \{0,1\}^{BT \times N}` with :math:`P_{(b,t),n} = 1` when row
:math:`n` is position :math:`(b,t)`, and :func:`unpad` is :math:`P^\top`: each real token sits at one
grid position, and padding and filler rows meet nothing.  Each is therefore the other's transpose, and
each one's gradient is the other one, a gather instead of the scatter-add automatic differentiation
would write.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


@jax.custom_vjp
def take_rows(x: jax.Array, index: jax.Array, inverse: jax.Array) -> jax.Array:
    r"""Rows ``index`` of ``x`` (``len(x)`` reads zero): :math:`y = Sx`, :math:`S_{ij} = [\mathrm{index}_i = j]`.

    ``inverse`` is the map the other way (``inverse[j]`` the i with ``index[i] = j``, ``len(index)``
    where none), which makes :math:`S^\top` a gather too: the gradient is ``take_rows(ȳ, inverse, index)``.
    Valid when no row is read twice, as in :func:`pad` and :func:`unpad`.

    Args: x [M, ...]; index int [K] in [0, M]; inverse int [M] in [0, K].  Returns [K, ...].
    """
    return jnp.take(x, index, axis=0, mode="fill", fill_value=0)  # past the end: a gather reads 0, nothing copied


def _take_rows_fwd(x, index, inverse):
    return take_rows(x, index, inverse), (index, inverse)


def _take_rows_bwd(residuals, g):
    index, inverse = residuals
    return take_rows(g, inverse, index), None, None


take_rows.defvjp(_take_rows_fwd, _take_rows_bwd)


def pad(x: jax.Array, layout: dict) -> jax.Array:
    r"""Unpadded ``[1, N, ...]`` to the grid ``[B, T, ...]``, zero at padding: :math:`y = P x`.

    Args: x [1, N, ...]; layout {"token_index": [N], "grid_index": [B, T]}.  Returns [B, T, ...].
    """
    B, T = layout["grid_index"].shape
    y = take_rows(x[0], layout["grid_index"].reshape(B * T), layout["token_index"])
    return y.reshape(B, T, *x.shape[2:])


def unpad(x: jax.Array, layout: dict) -> jax.Array:
    r"""The grid ``[B, T, ...]`` to unpadded ``[1, N, ...]`` (filler rows zero): :math:`y = P^\top x`.

    Args: x [B, T, ...]; layout as :func:`pad`'s.  Returns [1, N, ...].
    """
    B, T = x.shape[:2]
    return take_rows(x.reshape(B * T, *x.shape[2:]), layout["token_index"], layout["grid_index"].reshape(B * T))[None]


__all__ = ["pad", "take_rows", "unpad"]
