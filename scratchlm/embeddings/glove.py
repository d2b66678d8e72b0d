r"""GloVe: global vectors from weighted least squares on log co-occurrences (Pennington et al. 2014).

.. math::  J = \sum_{i,j:\,X_{ij}>0} f(X_{ij})\,\bigl(w_i^\top \tilde w_j + b_i + \tilde b_j - \log X_{ij}\bigr)^2

The design document (002, §4.2) writes this loss as a Huber loss of the residual; the paper's loss,
implemented here, is a *weighted least-squares* loss: plain squared residuals weighted by
:math:`f(X_{ij})`.  We follow the paper.

Optimisation follows the paper (§4.2) and the Stanford C tool ``glove.c``: AdaGrad (optax) from the
tool's initialisation, over shuffled minibatches of the non-zero entries, with sparse row updates:
only the rows of the words in a minibatch change, each once with its summed gradient.
:func:`row_update` reads and writes only those rows; :func:`dense_update` computes the same numbers
with dense arrays, cheaper when the minibatch is about as large as the vocabulary.  See
:func:`make_optimizer` for the exact AdaGrad arithmetic of ``glove.c`` and :func:`train` for the
minibatch schedule.

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scratchlm.errors import NonFiniteLossError, ScratchlmError
from scratchlm.training.checkpoint import latest_checkpoint, restore_checkpoint, save_checkpoint
from scratchlm.training.loop import LoopConfig, TrainState, init_train_state
from scratchlm.training.loop import train as loop_train

Params = dict[str, jax.Array]  # {"W": [V, D], "b": [V], "W_tilde": [V, D], "b_tilde": [V]}
#: Which index selects each parameter's rows: the centre word i or the context word j.
ROW_OF = {"W": "i", "b": "i", "W_tilde": "j", "b_tilde": "j"}


@dataclass(frozen=True)
class GloveConfig:
    dim: int = 100  # the paper's Fig. 4 sweeps 50..300; 100 is glove.c's demo.sh
    x_max: float = 100.0  # Pennington et al. 2014, §4.2 (glove.c's demo.sh uses 10 on small corpora)
    alpha: float = 0.75  # ibid., "α = 3/4 gives a modest improvement over α = 1"
    learning_rate: float = 0.05  # ibid., §4.2 "initial learning rate of 0.05"; glove.c -eta 0.05
    epochs: int = 50  # ibid., §4.2: 50 iterations for vectors smaller than 300 dimensions
    # Non-zeros per minibatch (glove.c updates after every single entry).  On the Wikipedia sample
    # (3.24M non-zeros, 8,853 words) B = 16,384 scores as glove.c's loop does on the same counts;
    # B = 65,536 is 15-25% faster per epoch but loses about .002 of analogy accuracy
    # (benchmarks/glove.py has the seeds)
    batch_size: int = 16384
    update: str = "auto"  # "dense" | "rows" | "auto" (dense when V <= batch_size): same arithmetic
    # AdaGrad's accumulator grows by the square of the minibatch's summed gradient ("minibatch") or
    # by the squares of each entry's gradient ("entry", as glove.c's per-entry steps grow it): the
    # same scores on the Wikipedia sample within seed noise; "entry" is 30-60% slower per epoch
    accumulate: str = "minibatch"
    output: str = "sum"  # "sum": W + W̃ (glove.c -model 2, the paper's §4.2 choice); "word": W only

    def __post_init__(self):
        if self.dim < 1 or self.epochs < 0 or self.batch_size < 1:
            raise ScratchlmError(f"GloveConfig needs dim >= 1, epochs >= 0, batch_size >= 1; got {self}")
        if not (self.x_max > 0 and self.alpha >= 0 and self.learning_rate > 0):
            raise ScratchlmError(f"GloveConfig needs x_max > 0, alpha >= 0, learning_rate > 0; got {self}")
        if self.update not in ("auto", "dense", "rows"):
            raise ScratchlmError(f"GloveConfig.update must be 'auto', 'dense' or 'rows', got {self.update!r}")
        if self.accumulate not in ("entry", "minibatch"):
            raise ScratchlmError(f"GloveConfig.accumulate must be 'entry' or 'minibatch', got {self.accumulate!r}")
        if self.output not in ("sum", "word"):
            raise ScratchlmError(f"GloveConfig.output must be 'sum' (W + W̃) or 'word' (W only), got {self.output!r}")


def weighting(x_ij: jax.Array, *, x_max: float, alpha: float) -> jax.Array:
    r"""The weighting function (Pennington et al. 2014, eq. 9).

    .. math::  f(x) = \begin{cases} (x / x_{\max})^{\alpha} & x < x_{\max} \\ 1 & \text{otherwise} \end{cases}

    Args: x_ij [...] co-occurrence counts (>= 0). f(0) = 0, so absent pairs would contribute nothing.
    """
    return jnp.where(x_ij < x_max, (x_ij / x_max) ** alpha, 1.0)


def init(key: jax.Array, vocab_size: int, config: GloveConfig) -> Params:
    r"""Uniform initialisation of ``glove.c``: every weight and bias :math:`\sim (U[0,1) - 0.5) / D`."""
    D = config.dim
    k_w, k_b, k_wt, k_bt = jax.random.split(key, 4)
    u = lambda k, shape: (jax.random.uniform(k, shape) - 0.5) / D  # noqa: E731
    return {"W": u(k_w, (vocab_size, D)), "b": u(k_b, (vocab_size,)),
            "W_tilde": u(k_wt, (vocab_size, D)), "b_tilde": u(k_bt, (vocab_size,))}


def residual(w_i, b_i, w_tilde_j, b_tilde_j, log_x_ij):
    r""":math:`\delta_{ij} = w_i^\top \tilde w_j + b_i + \tilde b_j - \log X_{ij}`.  Args: w_i, w_tilde_j [N, D]; the rest [N]."""
    return jnp.sum(w_i * w_tilde_j, axis=-1) + b_i + b_tilde_j - log_x_ij


def loss(params: Params, i: jax.Array, j: jax.Array, x_ij: jax.Array, *, config: GloveConfig) -> jax.Array:
    r"""The GloVe objective over the given non-zeros (eq. 8), a weighted least-squares loss.

    .. math::  J = \sum_{(i,j)} f(X_{ij})\,\bigl(w_i^\top \tilde w_j + b_i + \tilde b_j - \log X_{ij}\bigr)^2

    Args: i, j [N] int word / context ids; x_ij [N] their counts (> 0).
    """
    delta = residual(params["W"][i], params["b"][i], params["W_tilde"][j], params["b_tilde"][j], jnp.log(x_ij))
    return jnp.sum(weighting(x_ij, x_max=config.x_max, alpha=config.alpha) * delta**2)


def entry_gradients(w_i, b_i, w_tilde_j, b_tilde_j, log_x_ij, f_ij):
    r"""Each non-zero's cost and its closed-form gradients with respect to the rows it touches.

    .. math::
        \frac{\partial J}{\partial w_i} = 2 \sum_j f(X_{ij})\,\delta_{ij}\,\tilde w_j, \quad
        \frac{\partial J}{\partial \tilde w_j} = 2 \sum_i f(X_{ij})\,\delta_{ij}\,w_i, \quad
        \frac{\partial J}{\partial b_i} = 2 \sum_j f(X_{ij})\,\delta_{ij}, \quad
        \frac{\partial J}{\partial \tilde b_j} = 2 \sum_i f(X_{ij})\,\delta_{ij}

    Returns ``(cost [N], grads)`` with ``grads`` per entry (``"W"``, ``"W_tilde"`` [N, D]; ``"b"``,
    ``"b_tilde"`` [N]): the terms of the sums above, to be summed per row.
    """
    delta = residual(w_i, b_i, w_tilde_j, b_tilde_j, log_x_ij)
    g = 2.0 * f_ij * delta  # [N]
    grads = {"W": g[:, None] * w_tilde_j, "b": g, "W_tilde": g[:, None] * w_i, "b_tilde": g}
    return f_ij * delta**2, grads


def gradients(params: Params, i: jax.Array, j: jax.Array, x_ij: jax.Array, *, config: GloveConfig) -> Params:
    """Dense closed-form :math:`\\nabla J` (the sums of :func:`entry_gradients` per row), for checks."""
    V = params["W"].shape[0]
    f_ij = weighting(x_ij, x_max=config.x_max, alpha=config.alpha)
    _, grads = entry_gradients(params["W"][i], params["b"][i], params["W_tilde"][j], params["b_tilde"][j],
                               jnp.log(x_ij), f_ij)
    rows = {"i": i, "j": j}
    return {name: jax.ops.segment_sum(g, rows[ROW_OF[name]], num_segments=V) for name, g in grads.items()}


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

    .. math::  G \leftarrow G + \sum_e (\nabla J_e)^2, \qquad \theta \leftarrow \theta - \frac{\sum_e \nabla J_e}{\sqrt{G}}

    Without ``squared_grads`` it is exactly ``optax.adagrad(1.0, initial_accumulator_value=4/η², eps=0)``.
    """
    g0 = 4.0 / config.learning_rate**2

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
    """Gather the touched rows and return :func:`entry_gradients` of the minibatch and its rows."""
    i, j, log_x, f = batch
    rows = {"i": i, "j": j}
    p = {k: v.at[rows[ROW_OF[k]]].get(mode=_PIB) for k, v in params.items()}
    cost, g = entry_gradients(p["W"], p["b"], p["W_tilde"], p["b_tilde"], log_x, f)
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
    opt_state = jax.tree.map(lambda t, new: scatter(t, new) if _is_params(t) else new, opt_state, s_u, is_leaf=_is_params)
    return params, opt_state, jnp.sum(cost)


_UPDATES = {"dense": dense_update, "rows": row_update}


def make_epoch_step(optimizer: optax.GradientTransformation, *, update: str, nnz: int, entrywise: bool = False,
                    mesh=None):
    r"""``epoch(state, entries) -> (state, {"loss": J / nnz})``: every minibatch once, jitted, state donated.

    ``state.step`` counts epochs (one loop step is one epoch); the epoch's minibatch order is a
    permutation drawn from ``fold_in(state.key, state.step)``.  The minibatches run in one
    ``lax.scan``, so an epoch is one dispatch.  ``loss`` is :math:`J / \text{nnz}` summed over the
    epoch at the parameters each minibatch saw (``glove.c`` prints half of it as its "cost").
    With a ``mesh`` each minibatch is :func:`scratchlm.parallel.make_sharded_glove_update`'s row step
    (``update`` must be ``"rows"``): the state split by rows over ``model``, the entries over ``data``.
    """
    if mesh is None:
        step = partial(_UPDATES[update], optimizer=optimizer, entrywise=entrywise)
    elif update == "rows":
        from scratchlm import parallel

        step = parallel.make_sharded_glove_update(mesh, optimizer, entrywise=entrywise)
    else:
        raise ScratchlmError(f"GloVe on a mesh takes sparse row steps (update='rows'), got update={update!r}")

    def epoch(state: TrainState, entries):
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
    f = np.where(x < config.x_max, (x / config.x_max) ** config.alpha, 1.0)
    cols = [np.asarray(i)[perm].astype(np.int32), np.asarray(j)[perm].astype(np.int32),
            np.log(x).astype(np.float32), f.astype(np.float32)]
    return tuple(jnp.asarray(np.concatenate([c, np.zeros(pad, c.dtype)]).reshape(n_batches, B)) for c in cols)


@dataclass(frozen=True)
class GloveResult:
    params: Params
    costs: tuple[float, ...]  # J / nnz of each epoch run here (mean weighted squared residual)
    seconds_per_epoch: float  # median wall time of an epoch after the first (compilation excluded)
    compile_seconds: float  # the first epoch's extra time
    update: str  # "dense" or "rows", as chosen


def _with_rows(tree, like, n: int):
    """``tree``'s tables with ``like``'s row count: ``tree``'s first ``n`` rows, then ``like``'s rows from ``n`` on."""
    join = lambda t, ref: jnp.asarray(np.concatenate([np.asarray(t)[:n], np.asarray(ref)[n:]]))  # noqa: E731
    return jax.tree.map(join, tree, like)


def restore_rows(path: str | Path, state: TrainState, vocab_size: int) -> TrainState:
    r"""The training state saved at ``path``, with ``state``'s number of table rows: checkpoints cross meshes.

    On a mesh the tables (and their AdaGrad accumulators) carry padding rows beyond ``vocab_size``
    so that ``model`` divides them; no id reaches them, so they keep their initial values
    (parameters 0, accumulators :math:`4/\eta^2`), and a checkpoint written there holds them too.
    The first ``vocab_size`` rows are read exactly; the rows after them are ``state``'s (a fresh state).
    """
    from flax import serialization

    saved_rows = np.shape(serialization.msgpack_restore(Path(path).read_bytes())["state"]["params"]["W"])[0]
    tables = (state.params, state.opt_state)
    target = jax.tree.map(lambda t: np.zeros((saved_rows, *np.shape(t)[1:]), t.dtype), tables)
    restored = restore_checkpoint(path, state.replace(params=target[0], opt_state=target[1]))
    params, opt_state = _with_rows((restored.params, restored.opt_state), tables, vocab_size)
    return restored.replace(params=params, opt_state=opt_state)


def train(i: np.ndarray, j: np.ndarray, x_ij: np.ndarray, vocab_size: int, *, config: GloveConfig, key: jax.Array,
          checkpoint_dir: str | Path | None = None, metrics_path: str | Path | None = None,
          progress: bool | None = None, on_epoch: Callable[[int, float], None] | None = None,
          mesh=None) -> GloveResult:
    r"""Minimise :math:`J` with AdaGrad over shuffled minibatches of the non-zeros (Pennington et al. §4.2).

    The entries are shuffled once into minibatches (:func:`prepare_entries`, as ``glove.c``'s
    ``shuffle``); each epoch visits the minibatches in a fresh random order (``glove.c`` keeps one
    order).  Epochs run through the shared loop (:func:`scratchlm.training.loop.train`: JSON-lines
    metrics, progress bar, atomic checkpoints and bitwise resume); a non-finite cost stops training
    with :class:`NonFiniteLossError`.

    With a ``mesh`` (:func:`scratchlm.parallel.make_mesh`) the tables and their accumulators are
    split by rows over ``model`` (padded with unused rows to a multiple of it), each minibatch over
    ``data`` (``batch_size`` a multiple of it), and every minibatch is a sparse row step
    (:func:`scratchlm.parallel.make_sharded_glove_update`).  A checkpoint resumes on any mesh or on
    one device (:func:`restore_rows`); the returned ``params`` are the unpadded tables.

    Args: i, j [N] ids; x_ij [N] counts > 0; vocab_size V; key: PRNG key for init, shuffle and order.
    """
    x_ij = np.asarray(x_ij)
    if vocab_size < 1:
        raise ScratchlmError(f"vocab_size must be >= 1, got {vocab_size}")
    if not (np.asarray(i).shape == np.asarray(j).shape == x_ij.shape and x_ij.ndim == 1):
        raise ScratchlmError(f"expected i, j, x_ij of equal shape [N], got {np.shape(i)}, {np.shape(j)}, {x_ij.shape}")
    if x_ij.size and (np.any(~np.isfinite(x_ij)) or np.any(x_ij <= 0)):
        raise ScratchlmError("co-occurrence values must be finite and > 0 (log X_ij is the target)")
    if x_ij.size and (min(np.min(i), np.min(j)) < 0 or max(np.max(i), np.max(j)) >= vocab_size):
        raise ScratchlmError(f"word ids must lie in [0, {vocab_size})")
    dense = vocab_size <= config.batch_size and mesh is None  # a dense step on a mesh would move whole tables
    update = config.update if config.update != "auto" else ("dense" if dense else "rows")
    optimizer = make_optimizer(config)
    epoch = make_epoch_step(optimizer, update=update, nnz=x_ij.size, entrywise=config.accumulate == "entry", mesh=mesh)
    if mesh is not None:
        from scratchlm import parallel

        parallel.divisible_batch(config.batch_size, mesh, "batch_size")
    k_init, k_order, k_shuffle = jax.random.split(key, 3)
    entries = prepare_entries(i, j, x_ij, config=config, seed=int(jax.random.randint(k_shuffle, (), 0, 2**31 - 1)))
    params = init(k_init, vocab_size, config)
    if mesh is not None:  # rows V.. are never looked up (ids < V): padding, so that `model` divides the tables
        pad = -vocab_size % mesh.shape["model"]
        params = {k: jnp.pad(v, ((0, pad),) + ((0, 0),) * (v.ndim - 1)) for k, v in params.items()}
    state = init_train_state(params, optimizer, k_order)
    found = latest_checkpoint(checkpoint_dir) if checkpoint_dir else None
    if found is not None:
        state = restore_rows(found, state, vocab_size)
    if mesh is not None:
        state = parallel.shard(state, mesh, parallel.EMBEDDING_RULES)
        by_data = jax.sharding.PartitionSpec(None, "data")
        entries = parallel.shard(entries, mesh, ((r".*", by_data),))  # [n_batches, B]: B over data
    costs, times = [], []
    # Several processes: the loop would save each process's own arrays.  Every process gathers the state
    # after an epoch instead, process 0 writes it; a resume needs the directory shared by all hosts.
    hosts_save = mesh is not None and jax.process_count() > 1 and checkpoint_dir is not None

    def timed_epoch(state, entries):
        t0 = time.perf_counter()
        state, metrics = epoch(state, entries)
        cost = float(metrics["loss"])  # one sync per epoch
        times.append(time.perf_counter() - t0)
        if not np.isfinite(cost):
            raise NonFiniteLossError(
                f"GloVe cost J/nnz became {cost} in epoch {len(costs) + 1} (dim={config.dim}, "
                f"learning_rate={config.learning_rate}, x_max={config.x_max}); as with the C tool on small "
                f"corpora with large vectors: lower --learning-rate or --dim")
        costs.append(cost)
        if on_epoch is not None:
            on_epoch(len(costs), cost)
        if hosts_save:
            host = parallel.gather_to_host(state)
            if jax.process_index() == 0:
                save_checkpoint(checkpoint_dir, host, extra={"data_position": int(host.step)})
        return state, metrics

    # resumed above (restore_rows), so that a checkpoint from another mesh fits
    loop_dir = None if hosts_save else checkpoint_dir
    loop = LoopConfig(steps=config.epochs, log_every=1, checkpoint_dir=loop_dir, resume=False,
                      checkpoint_every=1 if loop_dir else 0, metrics_path=metrics_path, progress=progress)
    result = loop_train(state, timed_epoch, lambda _: entries, config=loop)
    params = result.state.params
    if mesh is not None:
        params = {k: jnp.asarray(v[:vocab_size]) for k, v in parallel.gather_to_host(params).items()}
    steady = times[1:] or times or [float("nan")]
    return GloveResult(params=params, costs=tuple(costs), seconds_per_epoch=float(np.median(steady)),
                       compile_seconds=float(times[0] - np.median(steady)) if times else 0.0, update=update)


def vectors(params: Params, *, output: str = "sum") -> jax.Array:
    r"""The word vectors: :math:`W + \tilde W` (``"sum"``, glove.c ``-model 2``, paper §4.2) or :math:`W` (``"word"``)."""
    if output == "sum":
        return params["W"] + params["W_tilde"]
    if output == "word":
        return params["W"]
    raise ScratchlmError(f"output must be 'sum' or 'word', got {output!r}")
