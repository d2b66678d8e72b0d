r"""What Word2Vec samples: the vocabulary, frequent-word subsampling, the noise distribution, the window.

Host side (NumPy, once per run): :func:`build_vocab` (words seen at least ``min_count`` times, most
frequent first; :func:`~scratchlm.tokenizers.vocab.word_counts` and :func:`vocab_from_counts`
are its two halves, so that processes can merge their shards' counts in between), :func:`encode`
(the corpus as one int32 id array plus each token's sentence number), :func:`keep_probability`,
:func:`noise_table` and its words' slot ends, :func:`noise_ends` (what training searches).

Device side (JAX, inside the jitted training step): :func:`subsample` (one epoch's kept tokens,
compacted so that windows span kept words only, as in the C tool), :func:`reduced_windows`,
:func:`window_groups`, :func:`context_positions` and :func:`draw_negatives`.  Nothing here loops in Python over tokens
during training.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.errors import CorpusError
from scratchlm.tokenizers.vocab import vocabulary_from_counts, word_counts

NOISE_POWER = 0.75  # Mikolov et al. 2013b, §2.2: U(w)^{3/4} "outperformed significantly" the unigram
NOISE_TABLE_SIZE = 1 << 23  # 8M entries (32 MiB): a word of noise probability p gets p·2^23 ± 1 slots


@dataclass(frozen=True)
class Vocab:
    """``words`` [V] most frequent first (ties by the word itself: :func:`scratchlm.tokenizers.vocab.ranked_words`),
    ``counts`` [V] int64."""

    words: tuple[str, ...]
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


def vocab_from_counts(counts: dict[str, int], min_count: int = 5) -> Vocab:
    """Words counted at least ``min_count`` times, most frequent first: the one vocabulary rule,
    :func:`scratchlm.tokenizers.vocab.vocabulary_from_counts` (ties by the word itself, as GloVe's
    ``vocab_count``; gensim and word2vec.c keep first-appearance order among equal counts instead, a
    difference of row order only).

    ``counts`` may be one process's :func:`~scratchlm.tokenizers.vocab.word_counts` or all processes'
    merged (:func:`scratchlm.distributed.allgather_counts`): the ranking does not depend on which.
    """
    words, kept = vocabulary_from_counts(counts, min_count=min_count)
    return Vocab(words, kept)


def build_vocab(sentences: Iterable[Sequence[str]], min_count: int = 5) -> Vocab:
    """Count words and keep those seen at least ``min_count`` times, most frequent first."""
    return vocab_from_counts(word_counts(sentences), min_count)


def encode(sentences: Iterable[Sequence[str]], vocab: Vocab, *,
           allow_empty: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The corpus as ``ids`` [N] int32 and ``sentence`` [N] int32, out-of-vocabulary words dropped first.

    Dropping before windowing is what the C tool and gensim do: a window counts in-vocabulary words.
    ``allow_empty``: return empty arrays instead of raising (one process's shard may hold none).
    """
    sentences = sentences if isinstance(sentences, Sequence) else list(sentences)
    index = {w: i for i, w in enumerate(vocab.words)}
    lengths = np.fromiter(map(len, sentences), dtype=np.int64, count=len(sentences))
    # one look-up a token, in C (map over dict.get, -1 for a word outside the vocabulary): no Python loop
    found = np.fromiter(map(index.get, itertools.chain.from_iterable(sentences), itertools.repeat(-1)),
                        dtype=np.int32, count=int(lengths.sum()))
    keep = found >= 0
    ids, sentence = found[keep], np.repeat(np.arange(len(sentences), dtype=np.int32), lengths)[keep]
    if not ids.size and not allow_empty:
        raise CorpusError("no in-vocabulary word in the corpus")
    return ids, sentence


def keep_probability(counts: np.ndarray, sample: float) -> np.ndarray:
    r"""Probability of keeping each occurrence of a word when subsampling frequent words.

    The C tool's formula (gensim's too), with :math:`f(w)` the word's share of the in-vocabulary tokens:

    .. math::  P_\text{keep}(w) = \min\Big(1,\ \big(\sqrt{f(w)/t} + 1\big)\,\frac{t}{f(w)}\Big)

    The paper (Mikolov et al. 2013b, eq. 5) writes the discard probability :math:`1 - \sqrt{t/f(w)}`,
    i.e. :math:`P_\text{keep} = \sqrt{t/f}`; the C formula keeps a little more (the extra :math:`t/f`).
    ``sample=0`` keeps every word.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if sample <= 0:
        return np.ones(len(counts), dtype=np.float32)
    f = counts / counts.sum()
    t = sample
    return np.minimum(1.0, (np.sqrt(f / t) + 1.0) * t / f).astype(np.float32)


def noise_probabilities(counts: np.ndarray, power: float = NOISE_POWER) -> np.ndarray:
    r"""The noise distribution :math:`P_n(w) = U(w)^{3/4} / \sum_{w'} U(w')^{3/4}` (Mikolov et al. 2013b, §2.2)."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    return weights / weights.sum()


def noise_table(counts: np.ndarray, size: int = NOISE_TABLE_SIZE, power: float = NOISE_POWER) -> np.ndarray:
    """A table of word ids in which word ``w`` fills a share :math:`P_n(w)` of the slots (the C tool's
    ``InitUnigramTable``), so that a uniform slot index draws from :math:`P_n` with one gather.

    Slot ``i`` holds the word whose cumulative-probability interval contains ``(i + 1/2) / size``, so
    each word gets ``P_n(w)·size`` slots up to rounding (±1).  Training reads it through
    :func:`noise_ends` instead (the same words, without the table's ``size`` entries).
    """
    ends = noise_ends(counts, size, power)
    return np.repeat(np.arange(len(counts), dtype=np.int32), np.diff(ends, prepend=0, append=size))


def noise_ends(counts: np.ndarray, size: int = NOISE_TABLE_SIZE, power: float = NOISE_POWER) -> np.ndarray:
    """Where each word's slots of :func:`noise_table` end, ``ends`` [V - 1] int32 (the last word's end at
    ``size``): word ``w`` fills slots ``ends[w - 1] .. ends[w] - 1``, so slot ``i`` holds the number of
    words ``w`` with ``ends[w] <= i``, one binary search (:func:`draw_negatives`) instead of a read
    from the 2^23-slot table, which cost 0.05-0.15 s of a command's start to build and move to the device.
    """
    cumulative = np.cumsum(noise_probabilities(counts, power))
    # Slot i holds #{w : cumulative[w] <= slot_i}, slot_i = (i + 1/2) / size, capped at V - 1: word w
    # fills the slots before ends[w] = #{i : slot_i < cumulative[w]}.  Solved for i, that count is
    # ceil(cumulative[w]·size - 1/2); the product can round either way, so each end is checked once
    # against the slots' own arithmetic.  Materialising the 2^23 slots to search them cost about
    # 0.3 s on a first call (fresh pages), most of a command's set-up.
    c = cumulative[: len(counts) - 1]
    ends = np.clip(np.ceil(c * size - 0.5), 0, size).astype(np.int64)
    ends += (ends < size) & ((ends + 0.5) / size < c)  # slot `ends` still lies below c[w]
    ends -= (ends > 0) & ((ends - 0.5) / size >= c)  # slot `ends - 1` does not
    return ends.astype(np.int32)


# ----------------------------------------------------------------------------- on the device


def subsample(key: jax.Array, ids: jax.Array, sentence: jax.Array, p_keep: jax.Array):
    """One epoch's kept tokens, moved to the front: ``(ids [N], sentence [N], n_kept)``.

    Each token survives with probability ``p_keep[id]``.  The survivors are compacted in order, so
    the window then spans kept words only, as in the C tool (which removes discarded words from the
    sentence before windowing).  Slots from ``n_kept`` on are padding (sentence ``-1``).
    """
    N = ids.shape[0]
    keep = jax.random.uniform(key, (N,)) < p_keep[ids]
    # a kept token goes to slot (kept tokens before it); the rest to N, dropped.  Scattering by a
    # running count compiles in 0.6 s on XLA:CPU and runs 13 ms over 452 k tokens, where
    # jnp.nonzero's compaction took 0.8 s and 26 ms
    slot = jnp.where(keep, jnp.cumsum(keep, dtype=jnp.int32) - 1, N)
    kept_ids = jnp.zeros(N, ids.dtype).at[slot].set(ids, mode="drop", unique_indices=True)
    kept_sentence = jnp.full(N, -1, sentence.dtype).at[slot].set(sentence, mode="drop", unique_indices=True)
    return kept_ids, kept_sentence, keep.sum(dtype=jnp.int32)


def random_words(source: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Random 32-bit words ``[*shape]`` uint32: drawn from ``source`` if it is a PRNG key, else ``source``
    itself, already drawn (checked for shape and dtype).

    Each sampler below takes either.  A training step draws all its words in one threefry call and
    hands each sampler its slice: on XLA:CPU every threefry call is a loop of its own to compile, and
    the step's random numbers took two thirds of its compile time as five calls.
    """
    if jax.dtypes.issubdtype(source.dtype, jax.dtypes.prng_key):
        return jax.random.bits(source, shape, jnp.uint32)
    if source.dtype != jnp.uint32 or source.shape != tuple(shape):
        raise ValueError(f"random words must be uint32 {tuple(shape)}, got {source.dtype} {source.shape}")
    return source


def reduced_windows(key: jax.Array, shape: tuple[int, ...], window: int) -> jax.Array:
    r"""The dynamic window: :math:`b \sim \mathcal U\{1, \dots, \text{window}\}` per centre word, as the C
    tool draws it: ``b = next_random % window`` (a reduced window ``window - b``), here one 32-bit word
    per centre, whose bias (``window`` / 2^32) is far below sampling noise.  A context word at distance
    :math:`d` is used with probability :math:`(\text{window} - d + 1)/\text{window}`.
    ``key``: a PRNG key or the words (:func:`random_words`)."""
    return (random_words(key, shape) % jnp.uint32(window)).astype(jnp.int32) + 1


def window_groups(key: jax.Array, n_centres: int, window: int, multiple: int = 1) -> jax.Array:
    r"""The reduced windows of ``n_centres`` centres, stratified: ``[window, C]`` cells, ``C = ⌈n_centres/window⌉``.

    Row ``b - 1`` holds the centres given window ``b``: cell value ``i < n_centres`` is centre ``i``,
    ``n_centres`` an empty cell.  The centres fill a uniformly random permutation of the cells, so
    each centre's ``b`` is :math:`\mathcal U\{1, \dots, \text{window}\}` as in :func:`reduced_windows`;
    only the counts per ``b`` within one call are fixed (``C`` cells each), which lets the step
    compute each row with its own static context width ``2b``.  ``multiple``: ``C`` is rounded up to a
    multiple of it (more empty cells), so that each row splits into sets of ``multiple`` cells.
    ``key``: a PRNG key or ``window · C`` words (:func:`random_words`).
    """
    C = -(-n_centres // (window * multiple)) * multiple
    # the cells ordered by i.i.d. 32-bit keys: a uniform permutation (ties, about n²/2^33 per call,
    # keep index order), as jax.random.permutation's one round for n < 2^7 ... 2^10 is, in one threefry
    # call rather than its split and draw: the step's random numbers dominate its compile time on CPU
    _, cell = jax.lax.sort_key_val(random_words(key, (window * C,)), jnp.arange(window * C, dtype=jnp.int32))
    return jnp.minimum(cell, n_centres).reshape(window, C)


def context_positions(centre: jax.Array, b: jax.Array, sentence: jax.Array, n: jax.Array, window: int):
    """Context positions ``[B, 2·window]`` of centres ``[B]`` and which of them are real.

    Offsets are ``-window..-1, 1..window``; slot ``(i, j)`` is real when its distance is within the
    reduced window ``b[i]``, it lies inside ``[0, n)`` and in the same sentence as the centre, and the
    centre itself is real (``centre < n``).  Positions are clipped into range so that masked slots can
    still be gathered.
    """
    offsets = jnp.concatenate([jnp.arange(-window, 0), jnp.arange(1, window + 1)])  # [2W]
    position = centre[:, None] + offsets[None, :]  # [B, 2W]
    inside = (position >= 0) & (position < n)
    position = jnp.clip(position, 0, sentence.shape[0] - 1)
    centre_clipped = jnp.clip(centre, 0, sentence.shape[0] - 1)
    mask = (inside & (jnp.abs(offsets)[None, :] <= b[:, None])
            & (sentence[position] == sentence[centre_clipped][:, None]) & (centre < n)[:, None])
    return position, mask


def draw_negatives(key: jax.Array, ends: jax.Array, shape: tuple[int, ...], size: int = NOISE_TABLE_SIZE) -> jax.Array:
    """Noise words drawn from :math:`P_n`: one uniform slot of :func:`noise_table`'s ``size`` each, and the
    word that fills it, searched in its ``ends`` (:func:`noise_ends`): the table's word, without the table.

    One random 32-bit word per draw.  A table of :math:`2^m` slots (the default size) takes its top
    ``m`` bits, exactly uniform; any other size takes the word modulo the size, as the C tool does
    (``(next_random >> 16) % table_size``; the bias, size / 2^32, is far below sampling noise).
    ``key``: a PRNG key or the words (:func:`random_words`).
    """
    if size >= 1 << 31:
        raise ValueError(f"draw_negatives: a table of {size} slots; at most 2^31 - 1")
    words = random_words(key, shape)
    m = size.bit_length() - 1
    if size == 1 << m:
        slot = words >> (32 - m) if m else jnp.zeros(shape, jnp.uint32)
    else:
        slot = words % jnp.uint32(size)
    return jnp.searchsorted(ends, slot.astype(jnp.int32), side="right").astype(jnp.int32)
