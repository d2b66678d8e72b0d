r"""Word2Vec's two tables (:func:`init`), the word vectors kept at the end (:func:`word_vectors`), and the
batch an accelerator takes for a corpus (:func:`accelerator_batch`)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.embeddings.formats import WordVectors
from scratchlm.embeddings.word2vec import sampling
from scratchlm.embeddings.word2vec.config import Word2VecConfig


def init(key: jax.Array, vocab_size: int, config: Word2VecConfig) -> dict[str, jax.Array]:
    r"""``{"v": U(-0.5/D, 0.5/D) [V, D], "u": 0 [V, D]}``, the C tool's initialisation."""
    D = config.dim
    v = jax.random.uniform(key, (vocab_size, D), jnp.float32, -0.5 / D, 0.5 / D)
    return {"v": v, "u": jnp.zeros((vocab_size, D), jnp.float32)}


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


def epoch_dispatch_steps(counts: np.ndarray, sample: float, batch: int, *, cap: int = 256, margin: float = 0.02,
                         multiple: int = 8) -> int:
    """Steps per dispatch that cover an epoch of the expected subsampled corpus in the fewest dispatches of
    at most ``cap`` steps, split evenly, with ``margin`` to spare, rounded up to a ``multiple``.

    A dispatch draws the batches of all its ``steps_per_call`` steps at once, also past the epoch's end:
    at 256 an epoch of 305 steps drew 512 batches (two dispatches), at 160 it draws 320 (CBOW on the
    sample, 15 epochs in one process, 2 loaded cores: 2.48-2.70 against 2.59-2.80 s).  The kept count varies a little
    between epochs (subsampling draws each token): ``margin`` covers it; an epoch past it takes one more
    dispatch, the same numbers either way (a step's draws depend on its number alone).
    """
    counts = np.asarray(counts, dtype=np.float64)
    steps = float(np.sum(counts * sampling.keep_probability(counts, sample))) / batch * (1 + margin)
    per_call = math.ceil(steps / math.ceil(steps / cap))
    return min(cap, -(-per_call // multiple) * multiple)


def word_vectors(params, vocab: sampling.Vocab) -> WordVectors:
    """The input vectors ``v`` as the model's word vectors (what the C tool writes)."""
    return WordVectors(vocab.words, np.asarray(params["v"]))
