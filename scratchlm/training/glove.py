r"""Training GloVe: the epochs, checkpoints every epoch, resume (on any mesh), and the corpus-to-vectors recipe.

The paper's objective is :mod:`scratchlm.embeddings.glove.objective`, its minibatch kernels
:mod:`scratchlm.embeddings.glove.kernels` (and :mod:`~scratchlm.embeddings.glove.sharded` on a mesh);
this module runs them through the one training loop (:func:`scratchlm.training.loop.train`), which
the embeddings package may not import.  :func:`train` minimises :math:`J` over given counts;
:func:`train_on_corpus` counts the co-occurrences of tokenized sentences first and returns the word
vectors.  Writing files is the command's job (:mod:`scratchlm.commands.glove`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scratchlm.embeddings.formats import WordVectors
from scratchlm.embeddings.glove import kernels
from scratchlm.embeddings.glove.config import GloveConfig
from scratchlm.embeddings.glove.cooccurrence import Cooccurrence, CooccurrenceConfig, read_cooccurrences
from scratchlm.embeddings.glove.objective import Params
from scratchlm.errors import NonFiniteLossError, ScratchlmError
from scratchlm.training.checkpoint import latest_checkpoint, restore_checkpoint, save_checkpoint
from scratchlm.training.loop import LoopConfig, TrainState, init_train_state
from scratchlm.training.loop import train as loop_train


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
    from scratchlm import serialization

    saved_rows = np.shape(serialization.msgpack_restore(Path(path).read_bytes())["state"]["params"]["W"])[0]
    tables = (state.params, state.opt_state)
    target = jax.tree.map(lambda t: np.zeros((saved_rows, *np.shape(t)[1:]), t.dtype), tables)
    restored = restore_checkpoint(path, state.replace(params=target[0], opt_state=target[1]))
    params, opt_state = _with_rows((restored.params, restored.opt_state), tables, vocab_size)
    return restored.replace(params=params, opt_state=opt_state)


def minibatch_step(optimizer: optax.GradientTransformation, *, update: str, entrywise: bool = False,
                   mesh=None) -> Callable:
    """The kernel one minibatch runs: ``"dense"`` or ``"rows"`` on one device, the sharded row step on a mesh."""
    if mesh is None:
        kernel = {"dense": kernels.dense_update, "rows": kernels.row_update}[update]
        return partial(kernel, optimizer=optimizer, entrywise=entrywise)
    if update != "rows":
        raise ScratchlmError(f"GloVe on a mesh takes sparse row steps (update='rows'), got update={update!r}")
    from scratchlm.embeddings.glove.sharded import make_sharded_glove_update

    return make_sharded_glove_update(mesh, optimizer, entrywise=entrywise)


def train(i: np.ndarray, j: np.ndarray, x_ij: np.ndarray, vocab_size: int, *, config: GloveConfig, key: jax.Array,
          checkpoint_dir: str | Path | None = None, metrics_path: str | Path | None = None,
          progress: bool | None = None, on_epoch: Callable[[int, float], None] | None = None,
          mesh=None, checkpoint_seconds: float = 0.0) -> GloveResult:
    r"""Minimise :math:`J` with AdaGrad over shuffled minibatches of the non-zeros (Pennington et al. §4.2).

    The entries are shuffled once into minibatches (:func:`~scratchlm.embeddings.glove.kernels.prepare_entries`,
    as ``glove.c``'s ``shuffle``); each epoch visits the minibatches in a fresh random order (``glove.c`` keeps
    one order).  Epochs run through the shared loop (:func:`scratchlm.training.loop.train`: JSON-lines
    metrics, progress bar, atomic checkpoints after the epoch that ends ``checkpoint_seconds`` after the last
    one and after the last epoch, bitwise resume from ``checkpoint_dir``); a
    non-finite cost stops training with :class:`NonFiniteLossError`.

    With a ``mesh`` (:func:`scratchlm.distributed.make_mesh`) the tables and their accumulators are
    split by rows over ``model`` (padded with unused rows to a multiple of it), each minibatch over
    ``data`` (``batch_size`` a multiple of it), and every minibatch is a sparse row step
    (:func:`scratchlm.embeddings.glove.sharded.make_sharded_glove_update`).  A checkpoint resumes on any
    mesh or on one device (:func:`restore_rows`); the returned ``params`` are the unpadded tables.

    Args: i, j [N] ids; x_ij [N] counts > 0; vocab_size V; key: PRNG key for init, shuffle and order.
    """
    from scratchlm import distributed
    from scratchlm.embeddings.glove.sharded import PARTITION_RULES

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
    optimizer = kernels.make_optimizer(config)
    step = minibatch_step(optimizer, update=update, entrywise=config.accumulate == "entry", mesh=mesh)
    epoch = kernels.make_epoch_step(step, nnz=x_ij.size)
    if mesh is not None:
        distributed.divisible_batch(config.batch_size, mesh, "batch_size")
    k_init, k_order, k_shuffle = jax.random.split(key, 3)
    seed = int(jax.random.randint(k_shuffle, (), 0, 2**31 - 1))
    entries = kernels.prepare_entries(i, j, x_ij, config=config, seed=seed)
    params = kernels.init(k_init, vocab_size, config)
    if mesh is not None:  # rows V.. are never looked up (ids < V): padding, so that `model` divides the tables
        pad = -vocab_size % mesh.shape["model"]
        params = {k: jnp.pad(v, ((0, pad),) + ((0, 0),) * (v.ndim - 1)) for k, v in params.items()}
    state = init_train_state(params, optimizer, k_order)
    found = latest_checkpoint(checkpoint_dir) if checkpoint_dir else None
    if found is not None:
        state = restore_rows(found, state, vocab_size)
    if mesh is not None:
        state = distributed.shard(state, mesh, PARTITION_RULES)
        by_data = jax.sharding.PartitionSpec(None, "data")
        entries = distributed.shard(entries, mesh, ((r".*", by_data),))  # [n_batches, B]: B over data
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
                f"lr={config.lr}, x_max={config.x_max}); as with the C tool on small "
                f"corpora with large vectors: lower --lr or --dim")
        costs.append(cost)
        if on_epoch is not None:
            on_epoch(len(costs), cost)
        if hosts_save:
            host = distributed.gather_to_host(state)
            if jax.process_index() == 0:
                save_checkpoint(checkpoint_dir, host, extra={"data_position": int(host.step)})
        return state, metrics

    # resumed above (restore_rows), so that a checkpoint from another mesh fits
    loop_dir = None if hosts_save else checkpoint_dir
    loop = LoopConfig(steps=config.epochs, log_every=1, checkpoint_dir=loop_dir, resume=False,
                      checkpoint_seconds=checkpoint_seconds, metrics_path=metrics_path, progress=progress,
                      description="glove (epochs)")
    result = loop_train(state, timed_epoch, lambda _: entries, config=loop)
    params = result.state.params
    if mesh is not None:
        params = {k: jnp.asarray(v[:vocab_size]) for k, v in distributed.gather_to_host(params).items()}
    steady = times[1:] or times or [float("nan")]
    return GloveResult(params=params, costs=tuple(costs), seconds_per_epoch=float(np.median(steady)),
                       compile_seconds=float(times[0] - np.median(steady)) if times else 0.0, update=update)


@dataclass(frozen=True)
class GloveRun:
    """What :func:`train_on_corpus` returns: the counts, the training result and the word vectors."""

    cooccurrence: Cooccurrence
    result: GloveResult
    vectors: WordVectors  # one vector per word of ``cooccurrence.words``: W + W̃ or W (config.output)
    cooccurrence_seconds: float  # wall time of counting (and, on several hosts, gathering) X


def train_on_corpus(sentences: Sequence[Sequence[str]], *, config: GloveConfig, counting: CooccurrenceConfig,
                    key: jax.Array, checkpoint_dir: str | Path | None = None,
                    metrics_path: str | Path | None = None, progress: bool | None = None,
                    mesh=None, checkpoint_seconds: float = 0.0) -> GloveRun:
    """Count the co-occurrences of tokenized ``sentences``, train on them, return the word vectors.

    Counting is :func:`~scratchlm.embeddings.glove.cooccurrence.read_cooccurrences` (with several
    processes each counts its share and every process ends with the whole matrix); training is
    :func:`train` (checkpoints in ``checkpoint_dir``, resumed from there); the vectors are
    :func:`~scratchlm.embeddings.glove.kernels.vectors` (``config.output``).  Nothing is written but the
    loop's ``metrics_path`` and the checkpoints.
    """
    t0 = time.perf_counter()
    cooc = read_cooccurrences(sentences, **asdict(counting))
    seconds = time.perf_counter() - t0
    result = train(cooc.i, cooc.j, cooc.x, cooc.vocab_size, config=config, key=key, checkpoint_dir=checkpoint_dir,
                   metrics_path=metrics_path, progress=progress, mesh=mesh, checkpoint_seconds=checkpoint_seconds)
    wv = WordVectors(cooc.words, np.asarray(kernels.vectors(result.params, output=config.output)))
    return GloveRun(cooccurrence=cooc, result=result, vectors=wv, cooccurrence_seconds=seconds)
