r"""Word2Vec's two tables (:func:`init`), the word vectors kept at the end (:func:`word_vectors`), the
batch an accelerator takes for a corpus (:func:`accelerator_batch`), and the settings a run uses on its
device (:func:`run_config`)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.embeddings.formats import WordVectors
from scratchlm.embeddings.word2vec import sampling
from scratchlm.embeddings.word2vec.config import Word2VecConfig, default_cpu_batch, default_noise_share


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


def run_config(*, accelerator: bool, counts: np.ndarray | None = None, batch_size: int | None = None,
               normalize_duplicates: bool | None = None, noise_share: int | None = None,
               steps_per_call: int | None = None, **settings) -> Word2VecConfig:
    """The config a run uses on its device: the settings given, and for each of the four left ``None`` the
    default measured for the device and corpus.  ``scratchlm word2vec`` and ``benchmarks/word2vec.py`` both
    take their settings from here, so a benchmark times what the command runs.

    - ``batch_size``: on an accelerator :func:`accelerator_batch` of the vocabulary's ``counts`` (16,384
      before they are known); on a CPU :func:`~scratchlm.embeddings.word2vec.config.default_cpu_batch`.
    - ``normalize_duplicates``: above 2,048 centres a step.  Large batches hit a frequent word's rows many
      times a step: damp them.  At 1,024 and below the plain sum scores as gensim (H100, the sample,
      15 epochs: WordSim .459 plain against .392 damped).
    - ``noise_share``: :func:`~scratchlm.embeddings.word2vec.config.default_noise_share`.
    - ``steps_per_call``: the config's, except CBOW on a CPU once ``counts`` are known, which takes
      :func:`epoch_dispatch_steps`.

    ``settings`` are :class:`~scratchlm.embeddings.word2vec.config.Word2VecConfig`'s other fields.
    """
    model = settings.get("model", Word2VecConfig.model)
    sample = settings.get("sample", Word2VecConfig.sample)
    if batch_size is None:
        if accelerator:
            batch_size = 16_384 if counts is None else accelerator_batch(counts, sample)
        else:
            batch_size = default_cpu_batch(model)
    if normalize_duplicates is None:
        normalize_duplicates = batch_size > 2048
    if noise_share is None:
        noise_share = default_noise_share(model, batch_size, accelerator)
    if steps_per_call is None:
        steps_per_call = Word2VecConfig.steps_per_call
        if model == "cbow" and not accelerator and counts is not None:
            steps_per_call = epoch_dispatch_steps(counts, sample, batch_size, cap=steps_per_call)
    return Word2VecConfig(**settings, batch_size=batch_size, normalize_duplicates=normalize_duplicates,
                          noise_share=noise_share, steps_per_call=steps_per_call)


def word_vectors(params, vocab: sampling.Vocab) -> WordVectors:
    """The input vectors ``v`` as the model's word vectors (what the C tool writes)."""
    return WordVectors(vocab.words, np.asarray(params["v"]))
