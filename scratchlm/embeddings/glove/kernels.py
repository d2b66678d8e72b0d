r"""GloVe's fast kernels: the minibatch AdaGrad steps of :mod:`scratchlm.embeddings.glove.objective`.

These are not new equations.  Each step gathers a minibatch's rows, computes every entry's
cost and gradient with ``jax.vmap`` of :func:`~scratchlm.embeddings.glove.objective.entry_gradients`
(the paper's closed form for one entry), and sums the entries' terms per row, so that a word in
several entries of the minibatch gets one AdaGrad step with their summed gradient.  What differs
between the kernels is only how the per-row sums and the update are laid out in memory:
:func:`dense_update` scatters them into dense ``[V, ...]`` arrays (:func:`_row_sums`), cheaper when
the minibatch is about as large as the vocabulary; :func:`row_update` reads and writes only the
touched rows (:func:`unique_rows`, segment sums), the choice when :math:`V \gg B`; the row-sharded
step over a device mesh is :func:`scratchlm.embeddings.glove.sharded.make_sharded_glove_update`.
``tests/embeddings/glove/test_kernels.py`` checks each, in float64, against ``jax.vmap`` of
``entry_gradients`` summed per row and the AdaGrad update applied to that sum.

Optimisation follows the paper (§4.2) and the Stanford C tool ``glove.c``: AdaGrad (optax) from the
tool's initialisation, over shuffled minibatches of the non-zero entries, with sparse row updates.
See :func:`make_optimizer` for the exact AdaGrad arithmetic of ``glove.c`` and
:func:`scratchlm.training.glove.train` for the minibatch schedule.

``glove.c`` itself takes one AdaGrad step per non-zero (Hogwild over threads).  A minibatch sums the
entries' gradients of a row into one step, and AdaGrad's accumulator grows by the square of that sum
(``accumulate="minibatch"``, the default) or, as ``glove.c``'s per-entry steps grow it, by the sum of
the entries' squares (``accumulate="entry"``, see :func:`make_optimizer`).  Trained on the same
co-occurrence counts of the Wikipedia sample, ``glove.c``'s own update loop (2 threads) and both
variants here reach the same cost and the same scores within seed noise; "entry" costs 30-60%
more time per epoch, which makes it no faster than ``glove.c`` (``benchmarks/glove.py`` module
docstring has the figures).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scratchlm.embeddings.glove.config import GloveConfig
from scratchlm.embeddings.glove.objective import ROW_OF, Params, entry_gradients
from scratchlm.errors import ScratchlmError


def init(key: jax.Array, vocab_size: int, config: GloveConfig) -> Params:
    r"""Uniform initialisation of ``glove.c``: every weight and bias :math:`\sim (U[0,1) - 0.5) / D`."""
    D = config.dim
    k_w, k_b, k_wt, k_bt = jax.random.split(key, 4)
    u = lambda k, shape: (jax.random.uniform(k, shape) - 0.5) / D  # noqa: E731
    return {"W": u(k_w, (vocab_size, D)), "b": u(k_b, (vocab_size,)),
            "W_tilde": u(k_wt, (vocab_size, D)), "b_tilde": u(k_bt, (vocab_size,))}


def make_optimizer(config: GloveConfig) -> optax.GradientTransformationExtraArgs:
    r"""AdaGrad with ``glove.c``'s arithmetic, as an optax transformation applied to :math:`\nabla J`.

    ``glove.c`` updates :math:`\theta \leftarrow \theta - \eta g / \sqrt{G}` then
    :math:`G \leftarrow G + (\eta g)^2` with :math:`G_0 = 1` and :math:`g = \nabla (J/2)` (its
    ``fdiff``): it accumulates the squares of the *learning-rate-scaled* gradient.  In terms of
    :math:`\nabla J = 2g` that is

    .. math::  \theta \leftarrow \theta - \frac{\nabla J}{\sqrt{4/\eta^2 + \sum (\nabla J)^2}}

    i.e. optax's AdaGrad with learning rate 1 and initial accumulator :math:`4/\eta^2` (1600 for
    :math:`\eta = 0.05`).  optax adds the current square before dividing, ``glove.c`` after: the only
    difference, negligible once :math:`G` has grown.  A textbook AdaGrad with learning rate
    :math:`\eta` would take steps :math:`1/\eta = 20` times smaller once the accumulator dominates,
    and trains far slower than the tool whose scores we compare against.

    A minibatch sums the gradients :math:`\nabla J_e` of its entries :math:`e` per row.  ``glove.c``
    takes one step per entry, so its accumulator grows by :math:`\sum_e (\nabla J_e)^2`; AdaGrad on
    the summed gradient would grow it by :math:`(\sum_e \nabla J_e)^2` instead, which for a
    frequent word (hundreds of entries per minibatch) differs from the former by the cross terms.
    The minibatch steps therefore pass ``squared_grads`` = :math:`\sum_e (\nabla J_e)^2` per row
    when ``config.accumulate == "entry"``, and this transformation adds that:

    .. math::  G \leftarrow G + \sum_e (\nabla J_e)^2, \qquad
               \theta \leftarrow \theta - \frac{\sum_e \nabla J_e}{\sqrt{G}}

    Without ``squared_grads`` it is exactly ``optax.adagrad(1.0, initial_accumulator_value=4/η², eps=0)``.
    """
    g0 = 4.0 / config.lr**2

    def init_fn(params):
        return (optax.ScaleByRssState(sum_of_squares=jax.tree.map(lambda p: jnp.full_like(p, g0), params)),
                optax.EmptyState())

    def update_fn(updates, state, params=None, *, squared_grads=None):
        del params
        squares = jax.tree.map(jnp.square, updates) if squared_grads is None else squared_grads
        acc = jax.tree.map(jnp.add, state[0].sum_of_squares, squares)
        updates = jax.tree.map(lambda g, a: -g * jax.lax.rsqrt(a), updates, acc)
        return updates, (optax.ScaleByRssState(sum_of_squares=acc), optax.EmptyState())

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


_PIB = "promise_in_bounds"  # minibatch ids are valid by construction; skips XLA's clamping on CPU


def _is_params(t) -> bool:
    return isinstance(t, dict) and set(t) == set(ROW_OF)


def _minibatch_terms(params: Params, batch):
    """Gather the touched rows; return them, and ``jax.vmap`` of the objective's ``entry_gradients`` over the minibatch.

    Returns ``(rows, cost [B], g)``: ``rows`` the ids ``{"i": [B], "j": [B]}``, ``g`` each entry's
    gradient terms (``"W"``, ``"W_tilde"`` [B, D]; ``"b"``, ``"b_tilde"`` [B]), to be summed per row.
    """
    i, j, log_x, f = batch
    rows = {"i": i, "j": j}
    p = {k: v.at[rows[ROW_OF[k]]].get(mode=_PIB) for k, v in params.items()}
    cost, g = jax.vmap(entry_gradients)(p["W"], p["b"], p["W_tilde"], p["b_tilde"], log_x, f)
    return rows, cost, g


def dense_update(params: Params, opt_state, batch, *, optimizer: optax.GradientTransformation,
                 entrywise: bool = False):
    r"""One minibatch step: :math:`\nabla J` of the minibatch scattered into dense arrays, one optax step.

    Rows outside the minibatch have zero gradient, which AdaGrad leaves exactly unchanged (parameters
    and accumulators), so this *is* a sparse row update, computed densely: cheaper than gathering and
    scattering the touched rows once the minibatch holds about as many entries as the vocabulary has
    words (measured on CPU at V = 8,853: half the time of :func:`row_update` at B = 65,536).

    Args: batch (i, j, log_x, f) each [B]; padding entries have f = 0 and so no effect; entrywise:
    pass each row's sum of squared per-entry gradients to the optimizer (see :func:`make_optimizer`).
    Returns (params, opt_state, cost) with cost = :math:`\sum f\delta^2` at the parameters before the step.
    """
    rows, cost, g = _minibatch_terms(params, batch)
    extra = {"squared_grads": _row_sums(jax.tree.map(jnp.square, g), rows, params)} if entrywise else {}
    updates, opt_state = optimizer.update(_row_sums(g, rows, params), opt_state, params, **extra)
    return optax.apply_updates(params, updates), opt_state, jnp.sum(cost)


def _row_sums(term: Params, rows: dict[str, jax.Array], params: Params) -> Params:
    """Per-row sums of per-entry terms (a params-shaped dict of [B, ...] arrays), as dense arrays.

    The terms indexed by the same rows (``W`` and ``b`` by ``i``; ``W_tilde`` and ``b_tilde`` by
    ``j``) go through one scatter-add, side by side as [B, D+1]: XLA:CPU's scatter costs per index
    far more than per column (a [65,536, 101] scatter takes about what a [65,536, 100] one does), so
    two scatters instead of four take a third off the minibatch step.  Wider still loses: a
    [65,536, 202] scatter of a term and its square took four times as long.
    """
    out = {}
    for r, ids in rows.items():
        keys = [k for k in params if ROW_OF[k] == r]
        cols = jnp.concatenate([term[k].reshape(ids.shape[0], -1) for k in keys], axis=1)
        total = jnp.zeros((params[keys[0]].shape[0], cols.shape[1]), cols.dtype).at[ids].add(cols, mode=_PIB)
        start = 0
        for k in keys:
            width = math.prod(params[k].shape[1:])
            out[k] = total[:, start:start + width].reshape(params[k].shape)
            start += width
    return out


def unique_rows(r: jax.Array, size: int, fill: int):
    """Each entry's segment (index of its row among the sorted unique rows) and those rows, padded with ``fill``.

    Args: r [B] row ids; size >= the number of distinct ids (``min(B, V)``).  Returns ``(segment [B], rows [size])``.
    """
    (B,) = r.shape
    sorted_r, order = jax.lax.sort_key_val(r, jnp.arange(B, dtype=r.dtype))
    first = jnp.concatenate([jnp.ones(1, bool), sorted_r[1:] != sorted_r[:-1]])
    seg_sorted = jnp.cumsum(first, dtype=r.dtype) - 1  # [B], values < min(B, V) = size
    segment = jnp.zeros(B, r.dtype).at[order].set(seg_sorted, mode=_PIB, unique_indices=True)
    unique = jnp.full(size, fill, r.dtype).at[seg_sorted].set(sorted_r, mode=_PIB)
    return segment, unique


def row_update(params: Params, opt_state, batch, *, optimizer: optax.GradientTransformation,
               entrywise: bool = False):
    r"""The same step as :func:`dense_update`, reading and writing only the rows the minibatch touches.

    A word in several entries of the minibatch gets one update with the *sum* of their gradients
    (segment sums over its unique rows), exactly the dense step's arithmetic.  The optax update is
    applied to the gathered rows of the parameters and of the optimizer state, then scattered back.
    Costs O(B·D) plus a sort of the B ids, independent of V: the choice when V is much larger than B.
    """
    V = params["W"].shape[0]
    rows, cost, g = _minibatch_terms(params, batch)
    size = min(rows["i"].shape[0], V)
    seg_uniq = {r: unique_rows(ids, size, fill=V) for r, ids in rows.items()}
    segment_sums = lambda terms: {k: jax.ops.segment_sum(v, seg_uniq[ROW_OF[k]][0], num_segments=size)  # noqa: E731
                                  for k, v in terms.items()}
    g_u = segment_sums(g)
    extra = {"squared_grads": segment_sums(jax.tree.map(jnp.square, g))} if entrywise else {}
    # Padding slots hold row V: gathered clipped (their gradient is 0), dropped on the way back.
    gather = lambda t: {k: v.at[seg_uniq[ROW_OF[k]][1]].get(mode="clip") for k, v in t.items()}  # noqa: E731
    scatter = lambda t, new: {k: v.at[seg_uniq[ROW_OF[k]][1]].set(new[k], mode="drop") for k, v in t.items()}  # noqa: E731
    p_u = gather(params)
    s_u = jax.tree.map(lambda t: gather(t) if _is_params(t) else t, opt_state, is_leaf=_is_params)
    updates, s_u = optimizer.update(g_u, s_u, p_u, **extra)
    params = scatter(params, optax.apply_updates(p_u, updates))
    opt_state = jax.tree.map(lambda t, new: scatter(t, new) if _is_params(t) else new, opt_state, s_u,
                             is_leaf=_is_params)
    return params, opt_state, jnp.sum(cost)


def make_epoch_step(step: Callable, *, nnz: int) -> Callable:
    r"""``epoch(state, entries) -> (state, {"loss": J / nnz})``: every minibatch once, jitted, state donated.

    ``step(params, opt_state, batch) -> (params, opt_state, cost)`` is one minibatch kernel
    (:func:`dense_update` or :func:`row_update` with its optimizer bound, or the sharded
    :func:`~scratchlm.embeddings.glove.sharded.make_sharded_glove_update`).  ``state`` is a
    :class:`scratchlm.training.loop.TrainState` (``params``, ``opt_state``, ``step``, ``key``):
    ``state.step`` counts epochs (one loop step is one epoch); the epoch's minibatch order is a
    permutation drawn from ``fold_in(state.key, state.step)``.  The minibatches run in one
    ``lax.scan``, so an epoch is one dispatch.  ``loss`` is :math:`J / \text{nnz}` summed over the
    epoch at the parameters each minibatch saw (``glove.c`` prints half of it as its "cost").
    """

    def epoch(state, entries):
        n_batches = entries[0].shape[0]
        order = jax.random.permutation(jax.random.fold_in(state.key, state.step), n_batches)

        def body(carry, k):
            params, opt_state, cost = step(*carry, tuple(a[k] for a in entries))
            return (params, opt_state), cost

        (params, opt_state), costs = jax.lax.scan(body, (state.params, state.opt_state), order)
        new_state = state.replace(params=params, opt_state=opt_state, step=state.step + 1)
        return new_state, {"loss": jnp.sum(costs) / nnz}

    return jax.jit(epoch, donate_argnums=0)


def prepare_entries(i: np.ndarray, j: np.ndarray, x_ij: np.ndarray, *, config: GloveConfig, seed: int):
    r"""The non-zeros shuffled once (as ``glove.c``'s ``shuffle`` tool) and cut into [n_batches, B] arrays.

    Returns ``(i, j, log_x, f)`` device arrays; the last minibatch is padded with ``f = 0`` entries.
    :math:`\log X_{ij}` and :math:`f(X_{ij})` are computed once here, in float64, then stored in float32.
    """
    N, B = x_ij.size, config.batch_size
    if N == 0:
        raise ScratchlmError("no co-occurrence to train on (the matrix has no non-zero entry)")
    perm = np.random.default_rng(seed).permutation(N)
    n_batches = -(-N // B)
    pad = n_batches * B - N
    x = np.asarray(x_ij, dtype=np.float64)[perm]
    f = np.where(x < config.x_max, (x / config.x_max) ** config.alpha, 1.0)  # eq. 9 (objective.weighting) in NumPy
    cols = [np.asarray(i)[perm].astype(np.int32), np.asarray(j)[perm].astype(np.int32),
            np.log(x).astype(np.float32), f.astype(np.float32)]
    return tuple(jnp.asarray(np.concatenate([c, np.zeros(pad, c.dtype)]).reshape(n_batches, B)) for c in cols)


def vectors(params: Params, *, output: str = "sum") -> jax.Array:
    r"""The word vectors: :math:`W + \tilde W` (``"sum"``, glove.c ``-model 2``, paper §4.2) or :math:`W`
    (``"word"``)."""
    if output == "sum":
        return params["W"] + params["W_tilde"]
    if output == "word":
        return params["W"]
    raise ScratchlmError(f"output must be 'sum' or 'word', got {output!r}")
