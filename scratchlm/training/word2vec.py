r"""Training Word2Vec: the epochs, the jitted dispatches of steps, checkpoints and resume, the multi-host corpus.

The update arithmetic is :mod:`scratchlm.embeddings.word2vec.kernels` (each kernel the fast form of
:mod:`~scratchlm.embeddings.word2vec.objective`); this module decides which centres a step takes and
at what learning rate, and runs the steps:

- :func:`read_corpus`: the vocabulary and the encoded corpus (with several processes, each reads its
  share and the pieces are gathered);
- :func:`seeded_init`: the tables and the training key from a seed, one program;
- :func:`step_batches`: the ids, masks and draws of a dispatch's steps, built first as arrays (pair
  generation, subsampling and negative sampling on the device);
- :func:`run_steps`: ``steps_per_call`` steps in one ``lax.fori_loop`` per dispatch;
- :func:`train`: the epochs from a given (epoch, step), bit-identical to an uninterrupted run, each
  dispatch's batches drawn on a second thread while the one before runs;
- :func:`train_with_checkpoints`: :func:`train` writing checkpoints after every epoch and every
  ``checkpoint_every`` seconds, and resuming from the latest one; :func:`fit`: all in one call.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm import distributed
from scratchlm.embeddings.word2vec import kernels, model, sampling, sharded
from scratchlm.embeddings.word2vec.config import Word2VecConfig, cbow_run_length
from scratchlm.errors import CorpusError, NonFiniteLossError, ScratchlmError
from scratchlm.training import checkpoint as ckpt
from scratchlm.training.state import TrainState

logger = logging.getLogger("scratchlm.training.word2vec")


def read_corpus(sentences, min_count: int):
    """``(vocab, ids, sentence, raw_words)`` of the corpus; with several processes, each reads its share.

    Process ``p`` of ``P`` counts and encodes only its contiguous share of the sentences
    (:func:`scratchlm.distributed.process_shard`); the counts are summed across processes before the
    vocabulary is cut, and the encoded shares are gathered back in process order with their sentence
    numbers offset, so every process ends with exactly the arrays one process reading the whole
    corpus would build (the training step draws its centres from the whole corpus).
    """
    if jax.process_count() == 1:
        vocab = sampling.build_vocab(sentences, min_count)
        ids, sentence = sampling.encode(sentences, vocab)
        return vocab, ids, sentence, sum(len(s) for s in sentences)
    local = distributed.process_shard(sentences)
    vocab = sampling.vocab_from_counts(distributed.allgather_counts(sampling.word_counts(local)), min_count)
    ids, sentence = sampling.encode(local, vocab, allow_empty=True)
    shares = distributed.allgather_arrays({"ids": ids, "sentence": sentence,
                                           "sizes": np.array([len(local), sum(len(s) for s in local)], np.int64)})
    offsets = np.cumsum([0] + [int(share["sizes"][0]) for share in shares[:-1]])
    ids = np.concatenate([share["ids"] for share in shares]).astype(np.int32)
    sentence = np.concatenate([share["sentence"] + offset for share, offset in zip(shares, offsets)]).astype(np.int32)
    if ids.size == 0:
        raise CorpusError("no in-vocabulary word in the corpus")
    return vocab, ids, sentence, int(sum(int(share["sizes"][1]) for share in shares))


@dataclass(frozen=True)
class Corpus:
    """What lives on the device: ``ids`` [N] int32, ``sentence`` [N] int32, ``p_keep`` [V], and where each
    word's slots of the noise table end, ``noise_ends`` [V - 1]
    (:func:`~scratchlm.embeddings.word2vec.sampling.noise_ends`)."""

    ids: jax.Array
    sentence: jax.Array
    p_keep: jax.Array
    noise_ends: jax.Array


def make_corpus(ids: np.ndarray, sentence: np.ndarray, counts: np.ndarray, sample: float) -> Corpus:
    """The encoded corpus on the device, with each word's keep probability (threshold ``sample``) and the
    noise table's word ends, both from the vocabulary's ``counts``."""
    return Corpus(jnp.asarray(ids, jnp.int32), jnp.asarray(sentence, jnp.int32),
                  jnp.asarray(sampling.keep_probability(counts, sample)), jnp.asarray(sampling.noise_ends(counts)))


@partial(jax.jit, static_argnames=("vocab_size", "config"))
def seeded_init(seed, vocab_size: int, config: Word2VecConfig):
    """``(params, key)`` of a run from its integer ``seed``: ``key(seed)`` split into the tables'
    (:func:`scratchlm.embeddings.word2vec.model.init`) and the training's key.  One program: as eager
    calls, the key, its split and the initialiser's draws were five small programs to trace and load
    (about 0.08 s of a command's start)."""
    k_init, k_train = jax.random.split(jax.random.key(seed))
    return model.init(k_init, vocab_size, config), k_train


@jax.jit
def epoch_tokens(key, epoch, ids, sentence, p_keep):
    """Epoch ``epoch``'s subsampled, compacted corpus (see
    :func:`scratchlm.embeddings.word2vec.sampling.subsample`) and the key of its steps:
    ``(kept_ids, kept_sentence, n_kept, step_key)``, both keys split from ``fold_in(key, epoch)``.

    The keys are derived here rather than by eager calls, each of which XLA:CPU compiles as a program
    of its own (0.3-0.4 s of a command's start for ``fold_in`` and ``split``)."""
    k_keep, k_steps = jax.random.split(jax.random.fold_in(key, epoch))
    return (*sampling.subsample(k_keep, ids, sentence, p_keep), k_steps)


def _step_layout(config: Word2VecConfig) -> tuple[int, int, int]:
    """``(L, G, C)``: CBOW's G runs of L consecutive centres a step; skip-gram's C centres per window
    group (sets of ``noise_share``)."""
    B, W, share = config.batch_size, config.window, config.noise_share
    L = cbow_run_length(config)
    return L, B // L, -(-B // (W * share)) * share


@partial(jax.jit, static_argnames=("config", "mesh"))
def step_batches(kept_ids, kept_sentence, n_kept, noise_ends, key, t_start, steps_in_epoch, *, config, mesh=None):
    """The ids, masks and draws of steps ``t_start .. t_start + steps_per_call - 1`` of an epoch (pair
    generation and negative sampling on the device), for :func:`run_steps`: ``(context, mask, target,
    noise, block)``, each with a leading axis of ``steps_per_call``.

    Step ``t`` takes centres at positions ``t + j·S`` (``j < batch_size``, ``S`` = steps in the epoch)
    of the compacted corpus (CBOW: runs ``t + g·S`` of ``L`` consecutive positions ``(t + g·S)·L + l``).
    Skip-gram groups the step's centres by reduced window
    (:func:`scratchlm.embeddings.word2vec.sampling.window_groups`).  CBOW's context ids only with a
    ``mesh`` (``None`` otherwise: one device reads them from the block).  A program of its own, so that
    :func:`train` can draw the next dispatch's batches while the current one's steps run.
    """
    B, W, K = config.batch_size, config.window, config.negative
    L, G, C = _step_layout(config)
    last = kept_ids.shape[0] - 1
    share = config.noise_share
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
        noise = sampling.draw_negatives(w_noise, noise_ends, (n_sets, K))  # one set per `share` rows
        context = kept_ids[position] if config.model == "skipgram" or mesh is not None else None
        return context, mask, kept_ids[jnp.clip(centre, 0, last)], noise, block

    # every step's batch made at once, as arrays: XLA:CPU's threefry loop costs per call, not per
    # number, and inside the steps' loop XLA would fuse the masks' arithmetic into each consumer and
    # redo it per element of [rows, 2W, D]
    return jax.vmap(batch)(t_start + jnp.arange(config.steps_per_call))


@partial(jax.jit, static_argnames=("config", "mesh"), donate_argnums=(0,))
def run_steps(params, batches, epoch, t_start, t_stop, steps_in_epoch, *, config, mesh=None):
    """Steps ``t_start .. t_stop-1`` (at most ``config.steps_per_call``) of one epoch in one dispatch, on
    ``batches`` from :func:`step_batches` (drawn from the same ``t_start``); returns (params, summed
    loss, pairs).

    Step ``t``'s learning rate is the linear decay at progress ``(epoch + t/S)/epochs``.  Skip-gram
    computes each window group at its own width
    (:func:`~scratchlm.embeddings.word2vec.kernels.skipgram_groups_update`), CBOW its runs'
    shared blocks (:func:`~scratchlm.embeddings.word2vec.kernels.cbow_block_update`).

    With a ``mesh`` the tables are split by rows over its ``model`` axis and the step's centres over
    ``data`` (:func:`scratchlm.embeddings.word2vec.sharded.make_sharded_word2vec_update`; CBOW through
    :func:`~scratchlm.embeddings.word2vec.kernels.cbow_update`,
    the same arithmetic for the same centres); the batch is drawn as on one device.
    """
    B, W, K = config.batch_size, config.window, config.negative
    L, G, C = _step_layout(config)
    share = config.noise_share

    def skipgram_step(params, context, mask, target, noise, alpha):
        if mesh is None:  # group b: its rows, and its slots at offsets -b..-1, 1..b (columns W-b .. W+b-1)
            groups = [(context[(b - 1) * C:b * C, W - b:W + b], mask[(b - 1) * C:b * C, W - b:W + b])
                      for b in range(1, W + 1)]
            if share > 1:
                return kernels.skipgram_shared_update(params, groups, target, noise, alpha, share=share,
                                              normalize_duplicates=config.normalize_duplicates)
            return kernels.skipgram_groups_update(params, groups, target, noise, alpha,
                                                  normalize_duplicates=config.normalize_duplicates)
        def pad(x):  # the padded slots; rows padded to divide over data
            return jnp.pad(x, [(0, -(W * C) % mesh.shape["data"])] + [(0, 0)] * (x.ndim - 1))

        update = sharded.make_sharded_word2vec_update(mesh, kernels.skipgram_update,
                                                      normalize_duplicates=config.normalize_duplicates)
        # shared noise sets, repeated per centre: the same arithmetic (see skipgram_shared_update)
        noise = jnp.repeat(noise, share, axis=0)
        return update(params, pad(context), pad(mask), pad(target), pad(noise), alpha)

    def cbow_step(params, context, mask, target, noise, block, alpha):
        if mesh is not None:  # only the step's rows travel between devices, never a table
            update = sharded.make_sharded_word2vec_update(mesh, kernels.cbow_update,
                                                          normalize_duplicates=config.normalize_duplicates)
            # each centre given its set's words (sets across runs, as cbow_block_update takes them)
            set_of = (jnp.arange(L)[None, :] * G + jnp.arange(G)[:, None]).reshape(B) // share
            return update(params, context, mask, target, noise[set_of], alpha)
        return kernels.cbow_block_update(params, block, mask.reshape(G, L, 2 * W), target.reshape(G, L),
                                         noise.reshape(G, L, K) if share == 1 else noise, alpha,
                                         normalize_duplicates=config.normalize_duplicates)

    def step(t, carry):
        params, loss, pairs = carry
        progress = (epoch + t / steps_in_epoch) / config.epochs
        alpha = config.lr - (config.lr - config.min_lr) * progress  # the paper's α, decaying linearly
        context, mask, target, noise, block = jax.tree.map(lambda x: x[t - t_start], batches)
        if config.model == "skipgram":
            params, step_loss, step_pairs = skipgram_step(params, context, mask, target, noise, alpha)
        else:
            params, step_loss, step_pairs = cbow_step(params, context, mask, target, noise, block, alpha)
        return params, loss + step_loss, pairs + step_pairs

    zero = jnp.zeros((), jnp.float32)
    return jax.lax.fori_loop(t_start, t_stop, step, (params, zero, jnp.zeros((), jnp.int32)))


def _ahead(items: Iterator):
    """``items``, each computed by a second thread while the caller works on the one before.

    The next dispatch's subsampling and batches (:func:`epoch_tokens`, :func:`step_batches`) are then
    drawn while the current dispatch's steps run: on two cores, with XLA:CPU's pool of two threads
    (``scratchlm word2vec --threads 2``), side by side, as XLA:CPU runs one program at a time per
    calling thread.  The same numbers in the same order as iterating ``items`` directly.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="word2vec-batches") as pool:
        coming = pool.submit(next, items, None)
        while (item := coming.result()) is not None:
            coming = pool.submit(next, items, None)
            yield item


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

    ``mesh`` (:func:`scratchlm.distributed.make_mesh`): the tables split by rows over ``model`` (their
    row count must divide by it: pad them, see ``scratchlm word2vec``), each step's centres over
    ``data``, the corpus replicated.  Equal to the one-device run up to the order in which a word's
    updates within one step are summed.
    """
    if mesh is not None:
        distributed.divisible_batch(config.batch_size, mesh, "batch_size")
        params = distributed.shard(params, mesh, sharded.RULES)
        fields = tuple(getattr(corpus, f.name) for f in dataclasses.fields(corpus))
        corpus = Corpus(*distributed.shard(fields, mesh, ()))  # replicated on every device
    N = int(corpus.ids.shape[0])
    started = time.perf_counter()
    last_loss = float("nan")

    def dispatches():  # (epoch, t, t_stop, S, batches) of every dispatch, in order
        for epoch in range(start_epoch, config.epochs):
            kept_ids, kept_sentence, n_kept, k_steps = epoch_tokens(key, epoch, corpus.ids, corpus.sentence,
                                                                    corpus.p_keep)
            S = max(1, math.ceil(int(n_kept) / config.batch_size))
            t = start_step if epoch == start_epoch else 0
            while t < S:
                batches = step_batches(kept_ids, kept_sentence, n_kept, corpus.noise_ends, k_steps, t, S, config=config,
                                       mesh=mesh)
                yield epoch, t, min(S, t + config.steps_per_call), S, jax.block_until_ready(batches)
                t += config.steps_per_call

    # one process: the next dispatch's batches drawn on a second thread (several: every process launches its
    # programs in one order)
    for epoch, t, t_stop, S, batches in (_ahead if jax.process_count() == 1 else iter)(dispatches()):
        params, loss, pairs = run_steps(params, batches, epoch, t, t_stop, S, config=config, mesh=mesh)
        last_loss = float(loss) / max(int(pairs), 1)
        if not math.isfinite(last_loss):
            raise NonFiniteLossError(f"word2vec loss became {last_loss} in epoch {epoch}, steps {t}..{t_stop}; "
                                     f"lower --lr or --batch-size")
        if callback is not None:
            callback(params, Progress(epoch, t_stop, S, last_loss, int(N * (epoch + t_stop / S)),
                                      time.perf_counter() - started))
    return params, last_loss


def fit(sentences: Sequence[Sequence[str]], config: Word2VecConfig, *, key: jax.Array,
        callback: Callable[[dict, Progress], None] | None = None):
    """Vocabulary, encoding, init and training in one call: returns ``(WordVectors, vocab, final loss)``."""
    vocab = sampling.build_vocab(sentences, config.min_count)
    ids, sentence = sampling.encode(sentences, vocab)
    k_init, k_train = jax.random.split(key)
    params = model.init(k_init, len(vocab), config)
    params, loss = train(params, make_corpus(ids, sentence, vocab.counts, config.sample), config,
                         key=k_train, callback=callback)
    return model.word_vectors(params, vocab), vocab, loss


def train_with_checkpoints(params, corpus: Corpus, config: Word2VecConfig, *, key: jax.Array, checkpoint_dir: Path,
                           settings: dict, checkpoint_every: float, resume: bool = False, mesh=None,
                           callback: Callable[[dict, Progress], None] | None = None,
                           log: Callable[[str], None] | None = None):
    """:func:`train` with checkpoints under ``checkpoint_dir``: returns ``(params, final loss, start_epoch)``.

    A checkpoint (the tables, unpadded, and ``settings``, the epoch, the step and the number of
    dispatches) is written after the last epoch and, with one process, every ``checkpoint_every``
    seconds (0: only at the end; several processes: after every epoch), by process 0, in the
    background while the next steps run.  ``resume`` continues from the latest one, bit-identically
    to an uninterrupted run, after checking that it
    was written with the same ``settings``.  With a ``mesh`` the tables are padded with unused rows
    to a multiple of its ``model`` axis (ids never reach them) and sharded; checkpoints and the
    returned params hold the unpadded tables, so a run resumes on any mesh or on one device.
    ``callback(params, progress)`` runs after each dispatch, ``log`` says where a run resumes.
    """
    lead = jax.process_index() == 0
    start_epoch = start_step = calls = 0
    latest = ckpt.latest_checkpoint(checkpoint_dir) if resume else None
    if latest is not None:
        extra = ckpt.read_extra(latest)
        if extra.get("settings") != json.loads(json.dumps(settings)):
            raise ScratchlmError(f"{latest} was written with other settings ({extra.get('settings')}); "
                                 f"use the same arguments or another --out")
        target = TrainState(params=params, opt_state={}, step=jnp.zeros((), jnp.int32), key=key)
        params = ckpt.restore_checkpoint(latest, target).params
        start_epoch, start_step, calls = extra["epoch"], extra["step"], int(extra["calls"])
        if log is not None:
            log(f"resuming from {latest} (epoch {start_epoch}, step {start_step})")
    V = params["v"].shape[0]
    if mesh is not None:  # rows V.. are never looked up (ids < V): padding, so that `model` divides the tables
        pad = -V % mesh.shape["model"]
        params = {k: jnp.pad(t, ((0, pad), (0, 0))) for k, t in params.items()}

    def unpadded(params):
        return params if mesh is None else {k: t[:V] for k, t in distributed.gather_to_host(params).items()}

    state = {"last_save": time.perf_counter(), "calls": calls}

    def on_progress(params, progress):
        state["calls"] += 1
        if callback is not None:
            callback(params, progress)
        epoch_end = progress.step >= progress.steps_in_epoch
        last = epoch_end and progress.epoch + 1 == config.epochs
        # several processes gather the tables together: only at epoch ends, which every process reaches
        timed = checkpoint_every > 0 and jax.process_count() == 1
        due = timed and time.perf_counter() - state["last_save"] >= checkpoint_every
        if last or (epoch_end and jax.process_count() > 1) or due:
            epoch, step = (progress.epoch + 1, 0) if epoch_end else (progress.epoch, progress.step)
            host = unpadded(params)
            if lead:  # written while the next steps run (an epoch of the sample takes about as long as a write)
                saver.save(checkpoint_dir, TrainState(params=host, opt_state={}, step=jnp.int32(state["calls"]),
                                                      key=key),
                           extra={"settings": settings, "epoch": epoch, "step": step, "calls": state["calls"]})
            state["last_save"] = time.perf_counter()

    with ckpt.BackgroundSaver() as saver:  # leaving it waits for the last write, also on an error
        params, loss = train(params, corpus, config, key=key, start_epoch=start_epoch, start_step=start_step,
                             callback=on_progress, mesh=mesh)
        jax.block_until_ready(params)
    return unpadded(params), loss, start_epoch
