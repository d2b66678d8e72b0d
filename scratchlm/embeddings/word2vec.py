r"""Word2Vec: skip-gram and CBOW with negative sampling (Mikolov et al. 2013a, 2013b), as the C tool trains them.

Two tables: input vectors ``v`` [V, D] (the word vectors kept at the end) and output vectors ``u``
[V, D], initialised as the C tool does: ``v`` uniform in :math:`\pm 0.5/D`, ``u`` zero.  One pair
(input word ``c``, output word ``o``) with ``K`` noise words :math:`w_k \sim P_n` costs

.. math::  \ell = -\log\sigma(u_o^\top v_c) - \sum_{k=1}^{K} \log\sigma(-u_{w_k}^\top v_c)

and plain SGD with a rate decaying linearly from ``alpha`` to ``min_alpha`` over all words of all
epochs.  What follows the C tool / gensim, and where we choose otherwise:

- **Pair orientation (skip-gram).** The C tool, for a centre word and a context word, trains the
  *context* word's input vector against the *centre* word's output vector and its noise words (the
  paper's pair, swapped).  We do the same: :math:`v_c` is the context word, :math:`u_o` the centre.
- **Negatives.** The C tool draws ``K`` noise words per (centre, context) pair.  We draw ``K`` per
  centre word and share them across that centre's context words: each pair still sees ``K``
  independent draws from :math:`P_n` (the expected update is unchanged), and the output rows are
  gathered once per centre instead of once per pair (2·window times fewer output-row gathers and
  scatters).  A noise word equal to the target is skipped, as in the C tool.  With ``noise_share``
  S > 1 (the command's CPU default, 8), S centres of one window group, dealt at random, share one set of
  ``K`` draws (:func:`skipgram_shared_update`): the expectation is still unchanged and each pair
  still sees ``K`` draws from :math:`P_n`, while the noise rows are gathered and scattered once per
  set and scored by one [S·J, D]·[D, K] product.  On the 2 CPU cores a step is 1.3x faster at S = 8
  and the scores stay within seed noise (``benchmarks/RESULTS.md``).  CBOW takes the same option
  (:func:`cbow_block_update`), its sets taken across the step's runs so that a set's centres come
  from unrelated sentences; at S = 32 (the command's CPU default for CBOW) a whole CPU run is 1.7x
  faster and scores as per-centre draws in both seeds tried.  Sets of *consecutive* centres, whose
  mean contexts nearly coincide, cost .009 of analogy accuracy at S = 32.
- **CBOW** averages the context vectors, :math:`h = \frac{1}{|C|}\sum_{j\in C} v_j`, and (as the C
  tool and gensim do) adds the full error :math:`-\alpha\,\partial\ell/\partial h` to *every*
  context vector rather than the :math:`1/|C|` share the exact gradient would give.
- **Sigmoid.** Exact :math:`\sigma` in float32 instead of the C tool's 1000-entry table clipped at
  ±6 (the table is a scalar-CPU speed trick; the difference is below its resolution).
- **Batching.** gensim applies each pair's update at once (Hogwild across threads).  We compute
  ``batch_size`` centre words' updates from the same parameters and apply them by scatter-add of
  the gradient rows (never a dense [V, D] gradient).  The centres of one step are spread evenly
  over the epoch (positions ``t, t+S, t+2S, …``) so that one step's rows come from unrelated
  sentences.  A word occurring ``m`` times in one step receives the sum of its ``m`` row updates,
  as sequential SGD would apply them (without the saturation of σ in between).  At ``batch_size``
  384 (skip-gram) and 1024 (CBOW), the command's CPU defaults, this matches gensim's quality on the
  Wikipedia sample (``benchmarks/word2vec.py``, 15 epochs; 2026-11-23 on the 2 CPU cores, the CPU
  default noise sets: skip-gram 19.5 and 21.2 s, compilation included, against gensim's 21.7 and
  24.5 s with ``workers=2`` in the same runs, 1.11-1.15x its words/s, analogy 0.031 (seeds 0-2:
  0.031-0.034) / gensim 0.037-0.038, WordSim-353 0.474 / 0.43, SimLex-999 0.226 / 0.21; at 512
  skip-gram analogy falls to 0.027-0.030; CBOW 9.2 s against 8.3 s, 0.90x, scores at or above
  gensim's).  The small batched products of a
  step, not its gathers and scatters, take most of its time on XLA:CPU.  For the much larger batches
  an accelerator wants, ``normalize_duplicates=True`` divides each row's summed update by
  :math:`\sqrt m`, damping the frequent words' rows that large batches hit many times; a large batch
  also needs a corpus large enough to leave many steps an epoch (:func:`accelerator_batch`).  On an
  H100 (2026-11-23), the sample repeated 100 times: skip-gram 29.8 M words/s at B = 16,384, CBOW 47.2 M, scores as B = 512.
- **CBOW in runs.** A CBOW step takes its centres in runs of ``run_length`` consecutive words
  (the runs spread evenly over the epoch as above).  The windows of a run overlap, so the run's input
  rows are gathered once as one block of ``run_length + 2·window`` rows, each mean context is a
  masked sum of shifted slices of that block, and each block row is scattered back once with the sum
  of the updates of the centres whose window holds it: about 1 + 2·window/run_length rows gathered
  and scattered per centre instead of 2·window (:func:`cbow_block_update`; the same arithmetic as
  :func:`cbow_update` for the same centres).
- **Skip-gram by window.** A step's centres are dealt at random into ``window`` groups of equal size,
  group ``b`` taking reduced window ``b`` (:func:`sampling.window_groups`): each centre's ``b`` is
  still uniform on ``1..window``, and each group is computed at its own width ``2b``
  (:func:`skipgram_groups_update`), 6 context slots per centre on average at ``window`` 5 instead
  of 10 masked ones.
- Pair generation, subsampling and negative sampling happen on the device inside the jitted step
  (see :mod:`scratchlm.embeddings.sampling`); ``steps_per_call`` steps run in one ``lax.fori_loop``
  per dispatch, so Python never feeds the device pair by pair.  The ids, masks and draws of all the
  dispatch's steps are built first, as arrays, and the loop runs only the updates.
- **Reproducibility.** Every random draw comes from ``jax.random`` keys folded from one seed (the
  epoch, then the step), so a run is bit-reproducible on a given device and backend — which gensim
  and the C tool are not with more than one thread.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.embeddings import sampling
from scratchlm.embeddings.formats import WordVectors
from scratchlm.errors import NonFiniteLossError, ScratchlmError


@dataclass(frozen=True)
class Word2VecConfig:
    model: str = "skipgram"  # or "cbow"
    dim: int = 100  # the C tool's and gensim's default size
    window: int = 5  # maximum reduced window (gensim default)
    negative: int = 5  # K noise words (Mikolov et al. 2013b: 5-20 for small data)
    min_count: int = 5  # gensim default
    sample: float = 1e-3  # subsampling threshold t (the C tool's and gensim's default)
    epochs: int = 5  # gensim default
    alpha: float = 0.025  # gensim's default for both models
    min_alpha: float = 1e-4  # gensim default
    batch_size: int = 512  # centre words per step (CPU: moderate; GPU: 16k+ with normalize_duplicates)
    steps_per_call: int = 256  # jitted steps per dispatch
    normalize_duplicates: bool = False  # divide a row's summed update by sqrt(#occurrences in the step)
    # CBOW: a step's centres come in runs of this many consecutive words (gcd with batch_size), whose
    # windows share one gathered block of input rows (see cbow_block_update); 1 = fully spread centres
    run_length: int = 32
    # this many centres share one set of K noise words (skip-gram: of one window group, dealt at random;
    # CBOW: one position of several runs); 1 = K draws per centre
    noise_share: int = 1

    def __post_init__(self):
        if self.model not in ("skipgram", "cbow"):
            raise ScratchlmError(f"model must be 'skipgram' or 'cbow', got {self.model!r}")
        for name in ("dim", "window", "negative", "min_count", "epochs", "batch_size", "steps_per_call", "run_length",
                     "noise_share"):
            if getattr(self, name) <= 0:
                raise ScratchlmError(f"{name} must be positive, got {getattr(self, name)}")
        if self.model == "cbow" and self.batch_size % self.noise_share:
            raise ScratchlmError(f"CBOW: noise_share={self.noise_share} must divide batch_size={self.batch_size}")
        if self.sample < 0 or self.alpha <= 0 or self.min_alpha < 0:
            raise ScratchlmError("sample and min_alpha must be >= 0 and alpha > 0")


def init(key: jax.Array, vocab_size: int, config: Word2VecConfig) -> dict[str, jax.Array]:
    r"""``{"v": U(-0.5/D, 0.5/D) [V, D], "u": 0 [V, D]}``, the C tool's initialisation."""
    D = config.dim
    v = jax.random.uniform(key, (vocab_size, D), jnp.float32, -0.5 / D, 0.5 / D)
    return {"v": v, "u": jnp.zeros((vocab_size, D), jnp.float32)}


# ----------------------------------------------------------------------------- the loss, for one pair


def negative_sampling_loss(v_c: jax.Array, u_o: jax.Array, u_neg: jax.Array) -> jax.Array:
    r"""Negative-sampling loss of one pair (Mikolov et al. 2013b, eq. 4, negated).

    .. math::  \ell = -\log\sigma(u_o^\top v_c) - \sum_{k=1}^{K} \log\sigma(-u_k^\top v_c)

    Args: v_c [D] input vector; u_o [D] output vector of the true word; u_neg [K, D] noise vectors.
    """
    return -jax.nn.log_sigmoid(u_o @ v_c) - jnp.sum(jax.nn.log_sigmoid(-(u_neg @ v_c)))


def negative_sampling_grads(v_c: jax.Array, u_o: jax.Array, u_neg: jax.Array):
    r"""The closed-form gradient of :func:`negative_sampling_loss`, which the training step applies.

    .. math::
        \frac{\partial\ell}{\partial v_c} = (\sigma(u_o^\top v_c) - 1)\,u_o + \sum_k \sigma(u_k^\top v_c)\,u_k,\quad
        \frac{\partial\ell}{\partial u_o} = (\sigma(u_o^\top v_c) - 1)\,v_c,\quad
        \frac{\partial\ell}{\partial u_k} = \sigma(u_k^\top v_c)\,v_c

    Returns: (d v_c [D], d u_o [D], d u_neg [K, D]).
    """
    g_o = jax.nn.sigmoid(u_o @ v_c) - 1.0
    g_k = jax.nn.sigmoid(u_neg @ v_c)  # [K]
    return g_o * u_o + g_k @ u_neg, g_o * v_c, g_k[:, None] * v_c[None, :]


# ----------------------------------------------------------------------------- batched sparse updates


def _log_sigmoid(x):
    r""":math:`\log\sigma(x) = \min(x, 0) - \log(1 + e^{-|x|})`, stable; on XLA:CPU 10x faster than
    ``jax.nn.log_sigmoid`` (whose ``logaddexp`` form adds NaN and infinity handling per element)."""
    return jnp.minimum(x, 0.0) - jnp.log1p(jnp.exp(-jnp.abs(x)))


def _masked_log_sigmoid_sum(z, mask):
    r""":math:`\sum m \log\sigma(z)` over arrays of any shape.

    Both are flattened behind a barrier first: fused with the masks' broadcasts and the step's
    slicing, XLA:CPU evaluates the exp and log1p one element at a time (about 50 ns each, a fifth of
    a skip-gram step); over flat arrays they vectorize.
    """
    z, mask = jax.lax.optimization_barrier((z.reshape(-1), jnp.broadcast_to(mask, z.shape).reshape(-1)))
    return jnp.sum(jnp.where(mask, _log_sigmoid(z), 0.0))


def _rows(table, ids):
    """table[ids]; ids are valid by construction, and skipping XLA's bounds handling halves a CPU gather."""
    return table.at[ids].get(mode="promise_in_bounds")


def _scatter(table, rows, grads, alpha, normalize_duplicates, uses=None):
    """table[rows] -= alpha · grads (duplicates summed); optionally each row's sum / sqrt(multiplicity).

    The multiplicity counts every entry of ``rows``, or sums ``uses`` (same shape) where given.
    """
    rows, grads = rows.reshape(-1), grads.reshape(-1, table.shape[1])
    if normalize_duplicates:
        counted = 1.0 if uses is None else uses.reshape(-1).astype(jnp.float32)
        m = jnp.maximum(jnp.zeros(table.shape[0], jnp.float32).at[rows].add(counted), 1.0)
        grads = grads * jax.lax.rsqrt(m[rows])[:, None]
    return table.at[rows].add(-alpha * grads, mode="promise_in_bounds")


def _skipgram_grads(v_c, u_out, context_mask, out_mask):
    """Row gradients of :func:`skipgram_update`: (d_v [B, J, D], d_u [B, K+1, D], summed loss) of gathered rows."""
    s = jnp.einsum("bjd,bkd->bjk", v_c, u_out)  # [B, J, K+1]
    y = jnp.zeros(u_out.shape[1], s.dtype).at[0].set(1.0)
    weight = context_mask[:, :, None] & out_mask[:, None, :]
    g = jnp.where(weight, jax.nn.sigmoid(s) - y, 0.0)
    loss = -_masked_log_sigmoid_sum(jnp.where(y > 0, s, -s), weight)
    d_v = jnp.einsum("bjk,bkd->bjd", g, u_out)  # [B, J, D]
    # g transposed in memory first (the barrier keeps XLA from folding the transpose back into the dot):
    # XLA:CPU runs "bkj,bjd" (contraction over the minor dim) as a fast small matmul, "bjk,bjd" as a
    # loop 3x slower
    d_u = jnp.einsum("bkj,bjd->bkd", jax.lax.optimization_barrier(g.transpose(0, 2, 1)), v_c)  # [B, K+1, D]
    return d_v, d_u, loss


def _shared_noise_grads(v_c, u_t, u_n, context_mask, noise_ok):
    """Row gradients when the S centres of a set share their K noise words.

    v_c [G, S, J, D] the input vectors (skip-gram: each centre's J context rows; CBOW: its mean
    context, J = 1), u_t [G, S, D] the centres' output rows, u_n [G, K, D] the set's noise rows,
    context_mask [G, S, J], noise_ok [G, S, K] (the noise word is not that centre's word).
    Returns (d_v [G, S, J, D], d_t [G, S, D], d_n [G, K, D], summed loss).
    """
    G, S, J, D = v_c.shape
    K = u_n.shape[1]
    V = v_c.reshape(G, S * J, D)  # the set's S·J pairs against its K noise rows: one [S·J, D]·[D, K] product
    # a product, not a sum of elementwise products: XLA:CPU's library fusion of that row sum ran 10x slower
    # over CBOW's [G, S, 1, D] (0.95 of a 2.3 ms step at S = 32)
    s_pos = jnp.einsum("gsjd,gsd->gsj", v_c, u_t)  # [G, S, J]
    s_neg = jnp.einsum("gpd,gkd->gpk", V, u_n).reshape(G, S, J, K)
    w_neg = context_mask[..., None] & noise_ok[:, :, None, :]
    g_pos = jnp.where(context_mask, jax.nn.sigmoid(s_pos) - 1.0, 0.0)
    g_neg = jnp.where(w_neg, jax.nn.sigmoid(s_neg), 0.0)
    loss = -(_masked_log_sigmoid_sum(s_pos, context_mask) + _masked_log_sigmoid_sum(-s_neg, w_neg))
    g_neg = g_neg.reshape(G, S * J, K)
    d_v = g_pos[..., None] * u_t[:, :, None, :] + jnp.einsum("gpk,gkd->gpd", g_neg, u_n).reshape(G, S, J, D)
    d_t = jnp.sum(g_pos[..., None] * v_c, axis=2)  # [G, S, D]
    d_n = jnp.einsum("gkp,gpd->gkd", jax.lax.optimization_barrier(g_neg.transpose(0, 2, 1)), V)  # [G, K, D]
    return d_v, d_t, d_n, loss


def skipgram_shared_update(params, groups, target, noise, alpha, *, share, normalize_duplicates=False):
    r""":func:`skipgram_groups_update` where each set of ``share`` consecutive centres of a group shares one
    set of ``K`` noise words (``noise`` [B / share, K], set ``s`` for target rows ``s·share ..``).

    For centre ``i`` of set :math:`s(i)`, with output word :math:`o_i`, context words :math:`c_{ij}` and
    the set's noise words :math:`w_{s(i)k}`:

    .. math::
        g^{+}_{ij} = \big(\sigma(u_{o_i}^\top v_{c_{ij}}) - 1\big)\,m_{ij},\qquad
        g^{-}_{ijk} = \sigma(u_{w_{s(i)k}}^\top v_{c_{ij}})\,m_{ij}\,[w_{s(i)k} \ne o_i]

        v_{c_{ij}} \mathrel{-}= \alpha\big(g^{+}_{ij} u_{o_i} + \textstyle\sum_k g^{-}_{ijk} u_{w_{s(i)k}}\big),\quad
        u_{o_i} \mathrel{-}= \alpha \textstyle\sum_j g^{+}_{ij} v_{c_{ij}},\quad
        u_{w_{sk}} \mathrel{-}= \alpha \textstyle\sum_{i \in s}\sum_j g^{-}_{ijk} v_{c_{ij}}

    The same update rule per pair as :func:`skipgram_update`; only the draws are shared, so each pair
    still sees ``K`` independent draws from :math:`P_n` and the expected update is unchanged, while
    the noise rows are gathered and scattered once per set and the products against them are
    [share·J, D]·[D, K] matrices instead of [J, D]·[D, K+1] ones.  Each group's row count must divide
    by ``share``.  With ``normalize_duplicates`` a shared noise row counts ``share`` uses, as the
    ``share`` per-centre draws it stands for would.  The same numbers as :func:`skipgram_groups_update`
    given each centre its set's noise words (tested).  Returns (params, summed loss, number of pairs).
    """
    v, u = params["v"], params["u"]
    D = v.shape[1]
    rows, uses, d_v, u_rows, u_uses, d_u, loss, start = [], [], [], [], [], [], 0.0, 0
    for context, context_mask in groups:
        C, J = context.shape
        if C % share:
            raise ValueError(f"skipgram_shared_update: a group of {C} centres does not split into sets of {share}")
        G = C // share
        stop = start + C
        t = target[start:stop]
        n = noise[start // share:stop // share]  # [G, K]
        noise_ok = n[:, None, :] != t.reshape(G, share)[:, :, None]
        d_v_g, d_t, d_n, loss_g = _shared_noise_grads(
            _rows(v, context).reshape(G, share, J, D), _rows(u, t).reshape(G, share, D), _rows(u, n),
            context_mask.reshape(G, share, J), noise_ok)
        rows.append(context.reshape(-1))
        uses.append(context_mask.reshape(-1))
        d_v.append(d_v_g.reshape(-1, D))
        u_rows += [t, n.reshape(-1)]
        u_uses += [jnp.ones(t.shape, jnp.int32), jnp.full(n.size, share, jnp.int32)]  # a set's draw stands for share
        d_u += [d_t.reshape(-1, D), d_n.reshape(-1, D)]
        loss, start = loss + loss_g, stop
    uses = jnp.concatenate(uses)
    params = {"v": _scatter(v, jnp.concatenate(rows), jnp.concatenate(d_v), alpha, normalize_duplicates, uses=uses),
              "u": _scatter(u, jnp.concatenate(u_rows), jnp.concatenate(d_u), alpha, normalize_duplicates,
                            uses=jnp.concatenate(u_uses))}
    return params, loss, jnp.sum(uses)


def skipgram_groups_update(params, groups, target, noise, alpha, *, normalize_duplicates=False):
    r""":func:`skipgram_update` for centres split into groups of different context widths: one SGD step.

    ``groups`` is a sequence of (context [B_g, J_g], context_mask [B_g, J_g]), the centres of group
    ``g`` being rows :math:`\sum_{h<g} B_h \dots` of ``target`` [B] and ``noise`` [B, K].  The same
    arithmetic as :func:`skipgram_update` on the groups' slots padded to one width with masked slots,
    without computing the padding: the training step groups centres by their reduced window ``b``
    (``J_g = 2b``, :func:`scratchlm.embeddings.sampling.window_groups`), 6 slots per centre on
    average at ``window`` 5 instead of 10.  With ``normalize_duplicates`` an input row's multiplicity
    counts its real context uses (as :func:`cbow_update` does), so padding never counts.
    Returns (params, summed loss, number of pairs).
    """
    v, u = params["v"], params["u"]
    out = jnp.concatenate([target[:, None], noise], axis=1)  # [B, K+1]
    out_mask = jnp.concatenate([jnp.ones_like(target[:, None], bool), noise != target[:, None]], axis=1)
    u_out = _rows(u, out)  # [B, K+1, D]
    rows, uses, d_v, d_u, loss, start = [], [], [], [], 0.0, 0
    for context, context_mask in groups:
        stop = start + context.shape[0]
        d_v_g, d_u_g, loss_g = _skipgram_grads(_rows(v, context), u_out[start:stop], context_mask, out_mask[start:stop])
        rows.append(context.reshape(-1))
        uses.append(context_mask.reshape(-1))
        d_v.append(d_v_g.reshape(-1, v.shape[1]))
        d_u.append(d_u_g)
        loss, start = loss + loss_g, stop
    uses = jnp.concatenate(uses)
    params = {"v": _scatter(v, jnp.concatenate(rows), jnp.concatenate(d_v), alpha, normalize_duplicates, uses=uses),
              "u": _scatter(u, out, jnp.concatenate(d_u), alpha, normalize_duplicates)}
    return params, loss, jnp.sum(uses)


def skipgram_update(params, context, context_mask, target, noise, alpha, *, normalize_duplicates=False):
    r"""One batched skip-gram SGD step, the closed form of :func:`negative_sampling_grads` summed over pairs.

    For centre ``i`` with output words :math:`o_i` (the centre word, C orientation) and noise words
    :math:`w_{ik}`, and its context words :math:`c_{ij}` (real where ``context_mask``):

    .. math::
        g_{ijk} = \big(\sigma(u_{ik}^\top v_{c_{ij}}) - y_k\big)\,m_{ij}\,n_{ik},\quad y_0 = 1,\ y_{k>0} = 0

        v_{c_{ij}} \mathrel{-}= \alpha \sum_k g_{ijk}\,u_{ik},\qquad u_{ik} \mathrel{-}= \alpha \sum_j g_{ijk}\,v_{c_{ij}}

    where :math:`u_{i0} = u_{o_i}`, :math:`u_{ik} = u_{w_{ik}}`, and :math:`n_{ik} = 0` for a noise word
    equal to the target.  Args: context [B, J] ids; context_mask [B, J]; target [B]; noise [B, K].
    Returns (params, summed loss, number of pairs).
    """
    return skipgram_groups_update(params, [(context, context_mask)], target, noise, alpha,
                                  normalize_duplicates=normalize_duplicates)


def cbow_update(params, context, context_mask, target, noise, alpha, *, normalize_duplicates=False):
    r"""One batched CBOW SGD step: the mean context vector predicts the centre word (gensim ``cbow_mean=1``).

    .. math::
        h_i = \frac{1}{|C_i|}\sum_{j \in C_i} v_{c_{ij}},\quad
        g_{ik} = \big(\sigma(u_{ik}^\top h_i) - y_k\big)\,n_{ik}

        u_{ik} \mathrel{-}= \alpha\, g_{ik}\, h_i,\qquad
        v_{c_{ij}} \mathrel{-}= \alpha \sum_k g_{ik}\, u_{ik}\quad (j \in C_i;\ \text{the C tool's rule, no } 1/|C_i|)

    Centres without a context word are skipped.  Args and returns as :func:`skipgram_update`.
    """
    v, u = params["v"], params["u"]
    out = jnp.concatenate([target[:, None], noise], axis=1)  # [B, K+1]
    count = jnp.sum(context_mask, axis=1)  # [B]
    out_mask = jnp.concatenate([jnp.ones_like(target[:, None], bool), noise != target[:, None]], axis=1) & (count > 0)[:, None]
    v_c = _rows(v, context)  # [B, J, D]
    h = jnp.einsum("bj,bjd->bd", context_mask.astype(v.dtype), v_c) / jnp.maximum(count, 1)[:, None]  # [B, D]
    u_out = _rows(u, out)  # [B, K+1, D]
    s = jnp.einsum("bd,bkd->bk", h, u_out)  # [B, K+1]
    y = jnp.zeros(out.shape[1], s.dtype).at[0].set(1.0)
    g = jnp.where(out_mask, jax.nn.sigmoid(s) - y, 0.0)
    loss = -_masked_log_sigmoid_sum(jnp.where(y > 0, s, -s), out_mask)
    d_h = jnp.einsum("bk,bkd->bd", g, u_out)  # [B, D]
    d_v = jnp.where(context_mask[:, :, None], d_h[:, None, :], 0.0)  # [B, J, D]
    d_u = g[:, :, None] * h[:, None, :]  # [B, K+1, D]
    params = {"v": _scatter(v, context, d_v, alpha, normalize_duplicates, uses=context_mask),
              "u": _scatter(u, out, d_u, alpha, normalize_duplicates)}
    return params, loss, jnp.sum(count > 0)


def _shifted(x, offset, window, run):
    """``x[:, W + offset : W + offset + run]`` of a block ``x`` [G, run + 2W, ...]: each centre's slot at ``offset``."""
    return jax.lax.slice_in_dim(x, window + offset, window + offset + run, axis=1)


def _unshifted_sum(xs, offsets, window):
    """The adjoint of :func:`_shifted`, summed: each ``x`` [G, run, ...] of ``xs`` added at block rows
    ``W + offset ..`` of a zero block [G, run + 2W, ...].

    Slice adds into one buffer: a sum of zero-padded copies is evaluated by XLA:CPU as one fusion
    that tests every pad at every element, which took half of a CBOW step (2.3 of 5.1 ms at B = 1,024).
    """
    xs = list(xs)
    shape = list(xs[0].shape)
    run = shape[1]
    shape[1] += 2 * window
    total = jnp.zeros(shape, xs[0].dtype)
    for x, offset in zip(xs, offsets):
        total = total.at[:, window + offset:window + offset + run].add(x)
    return total


def cbow_block_update(params, block, context_mask, target, noise, alpha, *, normalize_duplicates=False):
    r""":func:`cbow_update` for runs of consecutive centres that share one block of input rows.

    Run ``g`` holds centres at positions :math:`p_g, \dots, p_g + L - 1`; ``block[g, r]`` is the word
    at position :math:`p_g - W + r` (:math:`0 \le r < L + 2W`), so slot ``j`` (offset
    :math:`o_j \in \{-W..-1, 1..W\}`) of centre ``l`` is block row :math:`l + W + o_j`.  With
    :math:`m_{glj}` = ``context_mask``:

    .. math::
        h_{gl} = \frac{1}{|C_{gl}|}\sum_j m_{glj}\, v_{\text{block}[g,\,l+W+o_j]},\qquad
        \Delta v_{\text{block}[g,r]} = -\alpha \sum_{j} m_{g,\,r-W-o_j,\,j}\; \partial\ell/\partial h_{g,\,r-W-o_j}

    and the output rows as in :func:`cbow_update`.  A word at several block rows or runs gets the sum
    of their updates, exactly as :func:`cbow_update` sums its slots.  With ``normalize_duplicates`` a
    row's summed update is divided by :math:`\sqrt{m}`, ``m`` its number of real context uses in the
    step (as :func:`cbow_update` counts them).

    ``noise`` [G·L / S, K] instead of [G, L, K]: each set of S centres shares one set of K noise
    words, as :func:`skipgram_shared_update` does for skip-gram (the same numbers as giving each centre
    its set's words; a shared row counts S uses for ``normalize_duplicates``).  The sets are taken
    across runs: centre ``l`` of run ``g`` is centre ``l·G + g`` in position-major order, and set ``n``
    holds centres ``n·S .. n·S + S - 1`` of that order (for S ≤ G, one position of S runs).

    Args: block [G, L + 2W] ids; context_mask [G, L, 2W]; target [G, L]; noise [G, L, K] or [G·L / S, K].
    Returns (params, summed loss, number of centres with a context).
    """
    v, u = params["v"], params["u"]
    G, L, J = context_mask.shape
    W, D = J // 2, v.shape[1]
    offsets = [*range(-W, 0), *range(1, W + 1)]  # slot order of sampling.context_positions
    maskf = context_mask.astype(v.dtype)
    count = jnp.sum(maskf, axis=2)  # [G, L]
    v_block = _rows(v, block)  # [G, L + 2W, D]
    h = sum(maskf[:, :, j, None] * _shifted(v_block, o, W, L) for j, o in enumerate(offsets))
    h = (h / jnp.maximum(count, 1.0)[..., None]).reshape(G * L, D)
    if noise.ndim == 3:  # K noise words per centre
        target, noise = target.reshape(G * L), noise.reshape(G * L, -1)
        out = jnp.concatenate([target[:, None], noise], axis=1)  # [B, K+1]
        out_mask = jnp.concatenate([jnp.ones_like(target[:, None], bool), noise != target[:, None]], axis=1) & (count.reshape(-1) > 0)[:, None]
        u_out = _rows(u, out)  # [B, K+1, D]
        s = jnp.einsum("bd,bkd->bk", h, u_out)  # [B, K+1]
        y = jnp.zeros(out.shape[1], s.dtype).at[0].set(1.0)
        g = jnp.where(out_mask, jax.nn.sigmoid(s) - y, 0.0)
        loss = -_masked_log_sigmoid_sum(jnp.where(y > 0, s, -s), out_mask)
        d_h = jnp.einsum("bk,bkd->bd", g, u_out).reshape(G, L, D)
        u_rows, d_u, u_uses = out, g[:, :, None] * h[:, None, :], None  # d_u [B, K+1, D]
    else:  # sets of `share` centres, taken across runs, share K noise words
        N = noise.shape[0]
        share = G * L // N
        # centres in position-major order (position l of every run, then l + 1, ...): a set holds the
        # same position of `share` runs, centres from unrelated sentences.  Consecutive centres, whose
        # mean contexts nearly coincide, would push a shared noise row `share` times the same way at
        # once (analogy accuracy fell from .026-.029 to .018 at share 32 that way)
        across = lambda x: jnp.swapaxes(x, 0, 1).reshape(N, share, *x.shape[2:])
        t = across(target)
        # skip-gram's shared-noise arithmetic with one input vector per centre, its mean context
        d_h, d_t, d_n, loss = _shared_noise_grads(
            across(h.reshape(G, L, 1, D)), _rows(u, t), _rows(u, noise), across(count > 0)[..., None],
            noise[:, None, :] != t[..., None])
        d_h = jnp.swapaxes(d_h.reshape(L, G, D), 0, 1)
        u_rows = jnp.concatenate([t.reshape(-1), noise.reshape(-1)])
        d_u = jnp.concatenate([d_t.reshape(-1, D), d_n.reshape(-1, D)])
        u_uses = jnp.concatenate([jnp.ones(t.size, jnp.int32), jnp.full(noise.size, share, jnp.int32)])
    # each block row collects d_h of every centre whose window holds it: the adjoint of the shifts above
    d_block = _unshifted_sum((maskf[:, :, j, None] * d_h for j in range(J)), offsets, W)  # [G, L + 2W, D]
    if normalize_duplicates:
        uses = _unshifted_sum((maskf[:, :, j] for j in range(J)), offsets, W).reshape(-1)  # [G (L + 2W)]
        m = jnp.maximum(jnp.zeros(v.shape[0], jnp.float32).at[block.reshape(-1)].add(uses.astype(jnp.float32)), 1.0)
        d_block = d_block * jax.lax.rsqrt(m)[block][..., None].astype(v.dtype)
    params = {"v": v.at[block.reshape(-1)].add(-alpha * d_block.reshape(-1, D), mode="promise_in_bounds"),
              "u": _scatter(u, u_rows, d_u, alpha, normalize_duplicates, uses=u_uses)}
    return params, loss, jnp.sum(count > 0)


def cbow_run_length(config: Word2VecConfig) -> int:
    """Consecutive centres per run in a CBOW step: ``gcd(batch_size, run_length)``, so runs tile the batch."""
    return math.gcd(config.batch_size, config.run_length)


def accelerator_batch(counts: np.ndarray, sample: float, *, cap: int = 16_384, floor: int = 512,
                      min_steps: int = 256) -> int:
    """Centre words per step on an accelerator: the largest power of two up to ``cap`` that still
    leaves ``min_steps`` steps in an epoch of the expected subsampled corpus, and at least ``floor``.

    A batch computes all its updates from the same parameters, so an epoch of few large steps trains
    less than the same words in many small ones.  Measured on an H100 (``benchmarks/RESULTS.md``): on the
    452 k-token Wikipedia sample (about 330 k tokens kept an epoch) B = 1,024 scores as gensim does and
    B = 4,096 (about 80 steps an epoch) falls far short (WordSim-353 .28 against .44), while on the
    sample repeated 100 times B = 16,384 scores as B = 512 does at 3.8x its words/s.  ``counts`` are
    the vocabulary's word counts, ``sample`` the subsampling threshold (:func:`sampling.keep_probability`).
    """
    counts = np.asarray(counts, dtype=np.float64)
    kept = float(np.sum(counts * sampling.keep_probability(counts, sample)))
    batch = cap
    while batch > floor and kept / batch < min_steps:
        batch //= 2
    return max(batch, floor)


# ----------------------------------------------------------------------------- training on the device


@dataclass(frozen=True)
class Corpus:
    """What lives on the device: ``ids`` [N] int32, ``sentence`` [N] int32, ``p_keep`` [V], noise ``table`` [T]."""

    ids: jax.Array
    sentence: jax.Array
    p_keep: jax.Array
    table: jax.Array


def make_corpus(ids: np.ndarray, sentence: np.ndarray, counts: np.ndarray, sample: float) -> Corpus:
    return Corpus(jnp.asarray(ids, jnp.int32), jnp.asarray(sentence, jnp.int32),
                  jnp.asarray(sampling.keep_probability(counts, sample)), jnp.asarray(sampling.noise_table(counts)))


@jax.jit
def epoch_tokens(key, epoch, ids, sentence, p_keep):
    """Epoch ``epoch``'s subsampled, compacted corpus (see :func:`sampling.subsample`) and the key of its
    steps: ``(kept_ids, kept_sentence, n_kept, step_key)``, both keys split from ``fold_in(key, epoch)``.

    The keys are derived here rather than by eager calls, each of which XLA:CPU compiles as a program
    of its own (0.3-0.4 s of a command's start for ``fold_in`` and ``split``)."""
    k_keep, k_steps = jax.random.split(jax.random.fold_in(key, epoch))
    return (*sampling.subsample(k_keep, ids, sentence, p_keep), k_steps)


@partial(jax.jit, static_argnames=("config", "mesh"), donate_argnums=(0,))
def run_steps(params, kept_ids, kept_sentence, n_kept, table, key, epoch, t_start, t_stop, steps_in_epoch, *, config,
              mesh=None):
    """Steps ``t_start .. t_stop-1`` (at most ``config.steps_per_call``) of one epoch in one dispatch;
    returns (params, summed loss, pairs).

    Step ``t`` takes centres at positions ``t + j·S`` (``j < batch_size``, ``S`` = steps in the epoch)
    of the compacted corpus (CBOW: runs ``t + g·S`` of ``L`` consecutive positions ``(t + g·S)·L + l``);
    its learning rate is the linear decay at progress ``(epoch + t/S)/epochs``.  Skip-gram groups the
    step's centres by reduced window (:func:`sampling.window_groups`) and computes each group at its
    own width (:func:`skipgram_groups_update`).

    With a ``mesh`` the tables are split by rows over its ``model`` axis and the step's centres over
    ``data`` (:func:`scratchlm.parallel.make_sharded_word2vec_update`; CBOW through :func:`cbow_update`,
    the same arithmetic for the same centres); the batch is drawn as on one device.
    """
    B, W, K = config.batch_size, config.window, config.negative
    L = cbow_run_length(config)  # CBOW: G runs of L consecutive centres
    G = B // L
    last = kept_ids.shape[0] - 1

    share = config.noise_share
    C = -(-B // (W * share)) * share  # skip-gram: centres per window group, sets of `share` centres

    n_window = W * C if config.model == "skipgram" else B  # random words for the windows, then the noise
    n_sets = n_window // share  # one noise set per `share` rows of the step

    def batch(t):  # step t's ids and masks, from fold_in(key, t) alone: a resumed run repeats them
        # all the step's random words in one threefry call (each call is a loop of its own to compile)
        words = sampling.random_words(jax.random.fold_in(key, t), (n_window + n_sets * K,))
        w_window, w_noise = words[:n_window], words[n_window:].reshape(n_sets, K)
        block = None
        if config.model == "skipgram":
            cells = sampling.window_groups(w_window, B, W, share)  # [W, C]: row b-1 holds the centres of window b
            # centre j of the step sits at t + j·S; an empty cell gets position N >= n_kept, never a centre
            centre = jnp.where(cells < B, t + cells * steps_in_epoch, last + 1).reshape(W * C)
            b = jnp.repeat(jnp.arange(1, W + 1, dtype=jnp.int32), C)
        else:
            run = t + jnp.arange(G, dtype=jnp.int32) * steps_in_epoch  # [G]: the step's runs, spread over the epoch
            centre = (run[:, None] * L + jnp.arange(L, dtype=jnp.int32)).reshape(B)  # [B]
            b = sampling.reduced_windows(w_window, (B,), W)
            block = kept_ids[jnp.clip(run[:, None] * L - W + jnp.arange(L + 2 * W, dtype=jnp.int32), 0, last)]
        position, mask = sampling.context_positions(centre, b, kept_sentence, n_kept, W)  # [rows, 2W]
        noise = sampling.draw_negatives(w_noise, table, (n_sets, K))  # one set per `share` rows
        return kept_ids[position], mask, kept_ids[jnp.clip(centre, 0, last)], noise, block

    # every step's batch made at once, outside the loop, as arrays: XLA:CPU's threefry loop costs per
    # call, not per number, and inside the loop XLA would fuse the masks' arithmetic into each consumer
    # and redo it per element of [rows, 2W, D]
    batches = jax.vmap(batch)(t_start + jnp.arange(config.steps_per_call))

    def skipgram_step(params, context, mask, target, noise, alpha):
        if mesh is None:  # group b: its rows, and its slots at offsets -b..-1, 1..b (columns W-b .. W+b-1)
            groups = [(context[(b - 1) * C:b * C, W - b:W + b], mask[(b - 1) * C:b * C, W - b:W + b])
                      for b in range(1, W + 1)]
            if share > 1:
                return skipgram_shared_update(params, groups, target, noise, alpha, share=share,
                                              normalize_duplicates=config.normalize_duplicates)
            return skipgram_groups_update(params, groups, target, noise, alpha,
                                          normalize_duplicates=config.normalize_duplicates)
        from scratchlm import parallel  # the padded slots; rows padded to divide over data

        pad = lambda x: jnp.pad(x, [(0, -(W * C) % mesh.shape["data"])] + [(0, 0)] * (x.ndim - 1))
        update = parallel.make_sharded_word2vec_update(mesh, skipgram_update,
                                                       normalize_duplicates=config.normalize_duplicates)
        # shared noise sets, repeated per centre: the same arithmetic (see skipgram_shared_update)
        noise = jnp.repeat(noise, share, axis=0)
        return update(params, pad(context), pad(mask), pad(target), pad(noise), alpha)

    def cbow_step(params, context, mask, target, noise, block, alpha):
        if mesh is not None:  # only the step's rows travel between devices, never a table
            from scratchlm import parallel

            update = parallel.make_sharded_word2vec_update(mesh, cbow_update,
                                                           normalize_duplicates=config.normalize_duplicates)
            # each centre given its set's words (sets across runs, as cbow_block_update takes them)
            set_of = (jnp.arange(L)[None, :] * G + jnp.arange(G)[:, None]).reshape(B) // share
            return update(params, context, mask, target, noise[set_of], alpha)
        return cbow_block_update(params, block, mask.reshape(G, L, 2 * W), target.reshape(G, L),
                                 noise.reshape(G, L, K) if share == 1 else noise, alpha,
                                 normalize_duplicates=config.normalize_duplicates)

    def step(t, carry):
        params, loss, pairs = carry
        progress = (epoch + t / steps_in_epoch) / config.epochs
        alpha = config.alpha - (config.alpha - config.min_alpha) * progress
        context, mask, target, noise, block = jax.tree.map(lambda x: x[t - t_start], batches)
        if config.model == "skipgram":
            params, step_loss, step_pairs = skipgram_step(params, context, mask, target, noise, alpha)
        else:
            params, step_loss, step_pairs = cbow_step(params, context, mask, target, noise, block, alpha)
        return params, loss + step_loss, pairs + step_pairs

    zero = jnp.zeros((), jnp.float32)
    return jax.lax.fori_loop(t_start, t_stop, step, (params, zero, jnp.zeros((), jnp.int32)))


@dataclass(frozen=True)
class Progress:
    epoch: int
    step: int  # next step within the epoch
    steps_in_epoch: int
    loss: float  # mean loss per pair since the last report
    words_done: int  # corpus tokens (in-vocabulary, before subsampling) processed so far
    seconds: float


def train(params, corpus: Corpus, config: Word2VecConfig, *, key: jax.Array, start_epoch: int = 0,
          start_step: int = 0, callback: Callable[[dict, Progress], None] | None = None, mesh=None):
    """Train from (``start_epoch``, ``start_step``) to the end; ``callback(params, progress)`` after each dispatch.

    Resuming from a checkpoint taken at (epoch, step) with the same key gives the same result as an
    uninterrupted run: each epoch's subsampling key is ``fold_in(key, epoch)`` and each step's key is
    folded from it with the step number.

    ``mesh`` (:func:`scratchlm.parallel.make_mesh`): the tables split by rows over ``model`` (their
    row count must divide by it: pad them, see ``scratchlm word2vec``), each step's centres over
    ``data``, the corpus replicated.  Equal to the one-device run up to the order in which a word's
    updates within one step are summed.
    """
    if mesh is not None:
        from scratchlm import parallel

        parallel.divisible_batch(config.batch_size, mesh, "batch_size")
        params = parallel.shard(params, mesh, parallel.EMBEDDING_RULES)
        fields = tuple(getattr(corpus, f.name) for f in dataclasses.fields(corpus))
        corpus = Corpus(*parallel.shard(fields, mesh, ()))  # replicated on every device
    N = int(corpus.ids.shape[0])
    started = time.perf_counter()
    last_loss = float("nan")
    for epoch in range(start_epoch, config.epochs):
        kept_ids, kept_sentence, n_kept, k_steps = epoch_tokens(key, epoch, corpus.ids, corpus.sentence, corpus.p_keep)
        S = max(1, math.ceil(int(n_kept) / config.batch_size))
        t = start_step if epoch == start_epoch else 0
        while t < S:
            t_stop = min(S, t + config.steps_per_call)
            params, loss, pairs = run_steps(params, kept_ids, kept_sentence, n_kept, corpus.table, k_steps,
                                            epoch, t, t_stop, S, config=config, mesh=mesh)
            last_loss = float(loss) / max(int(pairs), 1)
            if not math.isfinite(last_loss):
                raise NonFiniteLossError(f"word2vec loss became {last_loss} in epoch {epoch}, steps {t}..{t_stop}; "
                                         f"lower --alpha or --batch")
            t = t_stop
            if callback is not None:
                callback(params, Progress(epoch, t, S, last_loss, int(N * (epoch + t / S)), time.perf_counter() - started))
    return params, last_loss


def fit(sentences: Sequence[Sequence[str]], config: Word2VecConfig, *, key: jax.Array,
        callback: Callable[[dict, Progress], None] | None = None):
    """Vocabulary, encoding, init and training in one call: returns ``(WordVectors, vocab, final loss)``."""
    vocab = sampling.build_vocab(sentences, config.min_count)
    ids, sentence = sampling.encode(sentences, vocab)
    k_init, k_train = jax.random.split(key)
    params = init(k_init, len(vocab), config)
    params, loss = train(params, make_corpus(ids, sentence, vocab.counts, config.sample), config,
                         key=k_train, callback=callback)
    return word_vectors(params, vocab), vocab, loss


def word_vectors(params, vocab: sampling.Vocab) -> WordVectors:
    """The input vectors ``v`` as the model's word vectors (what the C tool writes)."""
    return WordVectors(vocab.words, np.asarray(params["v"]))
