r"""Word2Vec's batched sparse updates: the fast form of :mod:`~scratchlm.embeddings.word2vec.objective`'s equations.

Each kernel takes a whole step's centre words at once, gathers the rows it needs from the tables,
computes :func:`~scratchlm.embeddings.word2vec.objective.negative_sampling_grads` (skip-gram) or
:func:`~scratchlm.embeddings.word2vec.objective.cbow_grads` (CBOW) for every pair by a few batched
products, and scatter-adds :math:`-\alpha` times each row's summed gradient back (never a dense
[V, D] gradient).  A word occurring ``m`` times in one step receives the sum of its ``m`` row
updates, as sequential SGD would apply them (without the saturation of :math:`\sigma` in between);
``normalize_duplicates`` divides that sum by :math:`\sqrt m`.  Each kernel is tested equal, in
float64 and with duplicate rows, to ``jax.vmap`` of the objective's gradient scattered the same way
(``tests/embeddings/word2vec/test_kernels.py``).

The variants differ in how they lay out a step, not in the arithmetic per pair:
:func:`skipgram_update` (every centre ``J`` context slots), :func:`skipgram_groups_update` (centres
grouped by reduced window, each group at its own width), :func:`skipgram_shared_update` (sets of
centres sharing one set of noise words), :func:`cbow_update` and :func:`cbow_block_update` (runs of
consecutive centres sharing one gathered block of input rows).  Sigmoid: exact :math:`\sigma` in
float32 instead of the C tool's 1000-entry table clipped at ±6 (the table is a scalar-CPU speed
trick; the difference is below its resolution).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scratchlm.fusion import materialized


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

    The multiplicity counts every entry of ``rows``, or sums ``uses`` (same shape) where given; it is
    counted in the table's dtype (float32 in training, float64 in the tests against the objective).
    """
    rows, grads = rows.reshape(-1), grads.reshape(-1, table.shape[1])
    if normalize_duplicates:
        counted = 1.0 if uses is None else uses.reshape(-1).astype(table.dtype)
        m = jnp.maximum(jnp.zeros(table.shape[0], table.dtype).at[rows].add(counted), 1.0)
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
    (``J_g = 2b``, :func:`scratchlm.embeddings.word2vec.sampling.window_groups`), 6 slots per centre on
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
    r"""One batched skip-gram SGD step: :func:`~scratchlm.embeddings.word2vec.objective.negative_sampling_grads`
    of every (context word, centre word) pair, each row's gradients summed and scattered.

    For centre ``i`` with output words :math:`o_i` (the centre word, C orientation) and noise words
    :math:`w_{ik}`, and its context words :math:`c_{ij}` (real where ``context_mask``):

    .. math::
        g_{ijk} = \big(\sigma(u_{ik}^\top v_{c_{ij}}) - y_k\big)\,m_{ij}\,n_{ik},\quad y_0 = 1,\ y_{k>0} = 0

        v_{c_{ij}} \mathrel{-}= \alpha \sum_k g_{ijk}\,u_{ik},\qquad
        u_{ik} \mathrel{-}= \alpha \sum_j g_{ijk}\,v_{c_{ij}}

    where :math:`u_{i0} = u_{o_i}`, :math:`u_{ik} = u_{w_{ik}}`, and :math:`n_{ik} = 0` for a noise word
    equal to the target.  Args: context [B, J] ids; context_mask [B, J]; target [B]; noise [B, K].
    Returns (params, summed loss, number of pairs).
    """
    return skipgram_groups_update(params, [(context, context_mask)], target, noise, alpha,
                                  normalize_duplicates=normalize_duplicates)


def cbow_update(params, context, context_mask, target, noise, alpha, *, normalize_duplicates=False):
    r"""One batched CBOW SGD step: :func:`~scratchlm.embeddings.word2vec.objective.cbow_grads` of every centre
    word (the mean context vector predicts it, gensim ``cbow_mean=1``), each row's gradients summed and scattered.

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
    out_mask = (jnp.concatenate([jnp.ones_like(target[:, None], bool), noise != target[:, None]], axis=1)
                & (count > 0)[:, None])
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


def _shift(x, offset, run):
    """``x[offset : offset + run]``: a window's slot at ``offset``, for every centre of a position-major block."""
    return jax.lax.slice_in_dim(x, offset, offset + run, axis=0)


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
    # Position-major throughout ([L, G, ...]: position l of every run, then l + 1): a window's shift is
    # a slice of whole [G, D] planes, and a set of S centres taken across runs is S consecutive rows, so
    # no step array is transposed (XLA:CPU's copies between the two orders took a sixth of a step).
    block, target = block.T, target.T  # [L + 2W, G], [L, G]
    maskf = jnp.swapaxes(context_mask, 0, 1).astype(v.dtype)  # [L, G, J]
    count = jnp.sum(maskf, axis=2)  # [L, G]
    real = count > 0
    v_block = _rows(v, block)  # [L + 2W, G, D]
    h = sum(maskf[:, :, j, None] * _shift(v_block, W + o, L) for j, o in enumerate(offsets))
    h = h / jnp.maximum(count, 1.0)[..., None]  # [L, G, D]
    # materialised once: fused into its consumers, XLA:CPU recomputed the window sum in each of them
    h = materialized(h).reshape(G * L, D)
    t = target.reshape(G * L)
    # Sets of S centres sharing K noise words are taken across runs, S consecutive centres of the
    # position-major order, from unrelated sentences.  Consecutive centres of one run, whose mean contexts
    # nearly coincide, would push a shared noise row S times the same way at once (analogy accuracy fell
    # from .026-.029 to .018 at S = 32 that way)
    if noise.ndim == 3:  # K noise words per centre: sets of one
        noise = jnp.swapaxes(noise, 0, 1).reshape(G * L, -1)
    N, K = noise.shape
    S = G * L // N  # centres per noise set
    h_s, t_s, real_s = h.reshape(N, S, D), t.reshape(N, S), real.reshape(N, S)
    u_t, u_n = _rows(u, t).reshape(N, S, D), _rows(u, noise)  # [N, S, D], [N, K, D]
    # skip-gram's shared-noise arithmetic with one input vector per centre, its mean context (the C tool's
    # skip of a noise word equal to the centre)
    d_h, d_t, d_n, loss = _shared_noise_grads(h_s[:, :, None], u_t, u_n, real_s[..., None],
                                              noise[:, None, :] != t_s[..., None])
    # each block row collects ∂ℓ/∂h of every centre whose window holds it, the adjoint of the window sum:
    # Δ_r = Σ_j m_{r−W−o_j, j} d_{r−W−o_j}, a window sum over d and m zero-padded by 2W rows a side
    # (padded once, apart: a pad fused into the sum tests every pad at every element)
    pad = [(2 * W, 2 * W), (0, 0), (0, 0)]
    d_pad, m_pad = jax.lax.optimization_barrier((jnp.pad(d_h.reshape(L, G, D), pad), jnp.pad(maskf, pad)))
    back = [W - o for o in offsets]  # block row r reads padded row r + W − o_j
    d_block = sum(_shift(m_pad[..., j, None], b, L + 2 * W) * _shift(d_pad, b, L + 2 * W)
                  for j, b in enumerate(back))  # [L + 2W, G, D]
    rows = block.reshape(-1)
    if normalize_duplicates:
        uses = sum(_shift(m_pad[..., j], b, L + 2 * W) for j, b in enumerate(back))  # [L + 2W, G]
        m = jnp.maximum(jnp.zeros(v.shape[0], v.dtype).at[rows].add(uses.reshape(-1)), 1.0)
        d_block = d_block * jax.lax.rsqrt(m)[block][..., None]
    params = {"v": v.at[rows].add(-alpha * d_block.reshape(-1, D), mode="promise_in_bounds"),
              "u": _scatter(u, jnp.concatenate([t, noise.reshape(-1)]),
                            jnp.concatenate([d_t.reshape(-1, D), d_n.reshape(-1, D)]), alpha, normalize_duplicates,
                            uses=jnp.concatenate([jnp.ones(t.size, jnp.int32), jnp.full(noise.size, S, jnp.int32)]))}
    return params, loss, jnp.sum(real)
