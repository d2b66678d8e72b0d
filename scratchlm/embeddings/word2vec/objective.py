r"""Word2Vec's objective for ONE example: the negative-sampling loss and its closed-form gradient.

These are the equations; :mod:`scratchlm.embeddings.word2vec.kernels` holds their fast batched form
(gathered rows, one product per step, gradients scattered back into the tables), each kernel tested
equal to ``jax.vmap`` of the functions here, scattered as it scatters.

Symbols as in Mikolov et al. (2013b, eq. 4) and Rong (2014, §2): :math:`v_c` the input vector of
the input word (skip-gram: a context word, CBOW: the mean :math:`h` of the context vectors),
:math:`u_o` the output vector of the word to predict, :math:`u_k` (:math:`k = 1..K`) the output
vectors of the noise words :math:`w_k \sim P_n`.  ``noise_mask`` [K] drops a noise term, as the C
tool does for a noise word equal to the word to predict (``if (target == word) continue``); by
default every term counts, as in the paper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _noise_weights(u_neg: jax.Array, noise_mask: jax.Array | None) -> jax.Array:
    return jnp.ones(u_neg.shape[0], u_neg.dtype) if noise_mask is None else noise_mask.astype(u_neg.dtype)


def negative_sampling_loss(v_c: jax.Array, u_o: jax.Array, u_neg: jax.Array,
                           noise_mask: jax.Array | None = None) -> jax.Array:
    r"""Negative-sampling loss of one pair (Mikolov et al. 2013b, eq. 4, negated).

    .. math::  \ell = -\log\sigma(u_o^\top v_c) - \sum_{k=1}^{K} n_k \log\sigma(-u_k^\top v_c)

    with :math:`n_k = 1` (the paper) unless ``noise_mask`` says otherwise (the C tool's skip).

    Args: v_c [D] input vector; u_o [D] output vector of the true word; u_neg [K, D] noise vectors;
    noise_mask [K] bool (default: all True).
    """
    n = _noise_weights(u_neg, noise_mask)
    return -jax.nn.log_sigmoid(u_o @ v_c) - jnp.sum(n * jax.nn.log_sigmoid(-(u_neg @ v_c)))


def negative_sampling_grads(v_c: jax.Array, u_o: jax.Array, u_neg: jax.Array, noise_mask: jax.Array | None = None):
    r"""The closed-form gradient of :func:`negative_sampling_loss` (Rong 2014, §3.2).

    .. math::
        \frac{\partial\ell}{\partial v_c} = (\sigma(u_o^\top v_c) - 1)\,u_o
            + \sum_k n_k\,\sigma(u_k^\top v_c)\,u_k,\quad
        \frac{\partial\ell}{\partial u_o} = (\sigma(u_o^\top v_c) - 1)\,v_c,\quad
        \frac{\partial\ell}{\partial u_k} = n_k\,\sigma(u_k^\top v_c)\,v_c

    The skip-gram kernels apply this to every (context word, centre word) pair of a step.
    Returns: (d v_c [D], d u_o [D], d u_neg [K, D]).
    """
    g_o = jax.nn.sigmoid(u_o @ v_c) - 1.0
    g_k = _noise_weights(u_neg, noise_mask) * jax.nn.sigmoid(u_neg @ v_c)  # [K]
    return g_o * u_o + g_k @ u_neg, g_o * v_c, g_k[:, None] * v_c[None, :]


def cbow_hidden(v_context: jax.Array, context_mask: jax.Array) -> jax.Array:
    r"""CBOW's hidden vector, the mean of the context words' input vectors (Rong 2014, §1.2):
    :math:`h = \frac{1}{|C|}\sum_{j \in C} v_{c_j}`, :math:`C` the real slots of ``context_mask``.

    Args: v_context [J, D]; context_mask [J] bool, at least one True.
    """
    m = context_mask.astype(v_context.dtype)
    return (m @ v_context) / jnp.sum(m)


def cbow_loss(v_context: jax.Array, context_mask: jax.Array, u_o: jax.Array, u_neg: jax.Array,
              noise_mask: jax.Array | None = None) -> jax.Array:
    r"""CBOW's negative-sampling loss for one centre word: :func:`negative_sampling_loss` at :math:`v_c = h`
    (:func:`cbow_hidden`), the mean context predicting the centre word :math:`o` (Mikolov et al. 2013a;
    gensim ``cbow_mean=1``).

    .. math::  \ell = -\log\sigma(u_o^\top h) - \sum_{k=1}^{K} n_k \log\sigma(-u_k^\top h)

    Args: v_context [J, D]; context_mask [J] bool (at least one True); u_o [D]; u_neg [K, D]; noise_mask [K].
    """
    return negative_sampling_loss(cbow_hidden(v_context, context_mask), u_o, u_neg, noise_mask)


def cbow_grads(v_context: jax.Array, context_mask: jax.Array, u_o: jax.Array, u_neg: jax.Array,
               noise_mask: jax.Array | None = None):
    r"""The gradients CBOW applies for one centre word: exact for the output vectors, the C tool's rule for
    the context vectors.

    .. math::
        \frac{\partial\ell}{\partial h} = (\sigma(u_o^\top h) - 1)\,u_o + \sum_k n_k\,\sigma(u_k^\top h)\,u_k,\qquad
        \Delta_{v_{c_j}} = [j \in C]\,\frac{\partial\ell}{\partial h}

    and :math:`\partial\ell/\partial u_o`, :math:`\partial\ell/\partial u_k` as in
    :func:`negative_sampling_grads` at :math:`v_c = h`.  The exact gradient of :func:`cbow_loss` with
    respect to a context vector is :math:`\frac{1}{|C|}\,\partial\ell/\partial h`; the C tool and gensim
    add the full :math:`\partial\ell/\partial h` to every context vector (``neu1e``), and so do we:
    :math:`\Delta_{v_{c_j}} = |C|\,\partial\ell/\partial v_{c_j}` (tested against autodiff).

    Returns: (Δ v_context [J, D] (zero on masked slots), d u_o [D], d u_neg [K, D]).
    """
    d_h, d_o, d_neg = negative_sampling_grads(cbow_hidden(v_context, context_mask), u_o, u_neg, noise_mask)
    return jnp.where(context_mask[:, None], d_h[None, :], 0.0), d_o, d_neg
