r"""Word–word co-occurrence counts for GloVe, streamed and memory-bounded (Pennington et al. 2014, §3).

.. math::  X_{ij} = \sum_{\text{occurrences of } j \text{ at distance } 1 \le d \le \text{window from } i} \frac{1}{d}

This is what the Stanford C tools ``vocab_count`` and ``cooccur`` compute, with their choices:

- The vocabulary keeps words seen at least ``min_count`` times, at most ``max_size`` of them, ranked
  by count (ties alphabetically, as ``vocab_count`` does); word ids are those ranks
  (:func:`scratchlm.tokenizers.vocab.build_vocabulary`: counting words is vocabulary work).
- Out-of-vocabulary tokens are dropped *before* windowing, so distances count in-vocabulary words
  only (``cooccur`` skips an unknown word before it enters its history buffer).
- Windows never cross a sentence (a line of the corpus): ``cooccur`` resets its history at a newline.
- ``symmetric=True`` (``cooccur -symmetric 1``, the default) adds each pair in both directions;
  ``symmetric=False`` counts only context words to the *left* of the centre word:
  :math:`X_{ij}` sums :math:`1/d` over occurrences of ``j`` at ``d`` words left of ``i``.
  (``cooccur`` stores that left-only count with the context word first, which only swaps the
  roles of :math:`W` and :math:`\tilde W` in training.)

How it scales: the corpus is streamed in chunks of tokens; each chunk's pairs are built with NumPy
from shifted id arrays (one shift per distance d), packed into integer keys ``((i·V + j) << b) | d``
and sorted (NumPy's vectorised sort of plain integers is ~10× faster than an argsort), then reduced
to sorted unique ``i·V + j`` keys with their summed :math:`1/d` weights.  Sorted partial counts are
merged pairwise (a binary-counter schedule, so the total merge work is O(nnz log chunks)).

Memory ceiling: beyond the corpus and the vocabulary as given, counting takes at most
:math:`M + 64\,\text{nnz}` bytes (:math:`M` = ``max_memory_mb`` MiB, nnz = the distinct pairs of
the result): beyond the ceiling, only the output's own size, whatever the corpus's length (``cooccur``
instead spills its partial counts to overflow files on disk).  A dense V×V matrix is never allocated.
The terms, phase by phase:

- Counting a chunk: its buffers take about ``_BYTES_PER_PAIR`` = 40 bytes per pair and a chunk holds
  :math:`M / (40 \cdot \text{pairs per token})` tokens, so they stay under :math:`M`.
- The partial counts held between chunks: sorted runs of 16 bytes a key (int64 key, float64 value).
  The merge schedule keeps each run under half the run before it, so the runs sum to under twice the
  oldest, itself at most nnz keys: under :math:`32\,\text{nnz}`; only the newest chunk's run (at most
  one key per pair of its chunk, 16 of the 40 bytes a pair took: :math:`0.4\,M`) may break the
  halving until merged.
- A merge (:func:`_merge`): its output at its exact size (at most nnz keys: :math:`16\,\text{nnz}`),
  filled in steps of at most :math:`M/4` (:func:`_merge_block`; 1024 keys of each run at the least);
  no buffer the size of its inputs.
- The result: the merged keys and values (:math:`16\,\text{nnz}`), the ids ``i``, ``j`` (int32:
  :math:`8\,\text{nnz}`) and one int64 temporary (:math:`8\,\text{nnz}`).

So the peak is :math:`\max(M + 32\,\text{nnz},\ 0.65\,M + 48\,\text{nnz},\ 32\,\text{nnz})
\le M + 48\,\text{nnz}`; the stated :math:`64\,\text{nnz}` leaves 16 bytes a pair to the allocator.
(Before the merges were made in steps, a merge also built an array of its inputs' combined length,
their merge positions and the reduced copy, about 38 bytes per input key: a peak near 90 bytes × nnz
on the sample repeated 4 or 16 times, beyond the stated bound.)
Nothing here imports JAX except :func:`read_cooccurrences`, which asks it how many processes share the
corpus (several hosts: each counts its share, and the partial counts are gathered and merged).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchlm import checks
from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.tokenizers.vocab import build_vocabulary, vocabulary_from_counts, word_counts

# One pair's footprint while a chunk is counted: its packed int64 key in the per-distance piece, in
# the concatenated array and in the sorted copy, plus the boolean masks and reduced outputs.
_BYTES_PER_PAIR = 40
# One key's footprint in a merge step (:func:`_merge_step`): its key and value, its merge position, two
# boolean masks, its run start and the reduced key and value (8 + 8 + 8 + 2 + 8 + 16 bytes, rounded up).
_MERGE_BYTES_PER_KEY = 56
_MERGE_BLOCK = 1 << 16  # keys of each run a merge step takes when no memory ceiling is given
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CooccurrenceConfig:
    """How :math:`X` is counted: the settings of ``cooccur`` and ``vocab_count`` (defaults: glove.c's ``demo.sh``)."""

    window: int = 15  # context words on each side: demo.sh WINDOW_SIZE=15 (cooccur -window-size)
    symmetric: bool = True  # both sides of the centre word (cooccur -symmetric 1); False: left only
    min_count: int = 5  # demo.sh VOCAB_MIN_COUNT=5 (vocab_count -min-count)
    max_size: int | None = None  # keep at most this many words (vocab_count -max-vocab); None: all
    max_memory_mb: float = 512.0  # ceiling for the counting buffers (cooccur -memory is in GB)

    def __post_init__(self):  # count_cooccurrences checks its arguments again: it is called without a config too
        checks.at_least("window", self.window, 1)
        checks.at_least("min_count", self.min_count, 1)
        if self.max_size is not None:
            checks.at_least("max_size", self.max_size, 1)
        checks.positive("max_memory_mb", self.max_memory_mb)


@dataclass(frozen=True)
class Cooccurrence:
    """Sparse co-occurrence matrix in COO form, rows sorted by ``(i, j)``.

    Fields: ``words`` [V] (id -> word), ``counts`` [V] int64 corpus frequencies, ``i``, ``j`` [N] int32
    ids of the centre and context word, ``x`` [N] float64 :math:`X_{ij} > 0`; and the counting settings.
    """

    words: tuple[str, ...]
    counts: np.ndarray
    i: np.ndarray
    j: np.ndarray
    x: np.ndarray
    window: int
    symmetric: bool

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    @property
    def nnz(self) -> int:
        return int(self.x.size)

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` of plain arrays (no pickle); words as one UTF-8, newline-joined byte array."""
        if any("\n" in w for w in self.words):
            raise ScratchlmError("a vocabulary word contains a newline; it cannot be saved")
        np.savez(
            Path(path),
            version=np.int64(_FORMAT_VERSION),
            words_utf8=np.frombuffer("\n".join(self.words).encode("utf-8"), dtype=np.uint8),
            counts=self.counts, i=self.i, j=self.j, x=self.x,
            window=np.int64(self.window), symmetric=np.bool_(self.symmetric),
        )

    @classmethod
    def load(cls, path: str | Path) -> Cooccurrence:
        """Read what :meth:`save` wrote (``allow_pickle=False``); a malformed file is a clear error."""
        path = Path(path)
        if not path.exists():
            raise ScratchlmError(f"co-occurrence file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            missing = {"version", "words_utf8", "counts", "i", "j", "x", "window", "symmetric"} - set(data.files)
            if missing:
                raise ScratchlmError(f"{path} is not a scratchlm co-occurrence file: it lacks {sorted(missing)}")
            if int(data["version"]) != _FORMAT_VERSION:
                raise ScratchlmError(f"{path}: co-occurrence format version {int(data['version'])}, "
                                     f"expected {_FORMAT_VERSION}")
            text = data["words_utf8"].tobytes().decode("utf-8")
            result = cls(
                words=tuple(text.split("\n")) if text else (),
                counts=data["counts"], i=data["i"], j=data["j"], x=data["x"],
                window=int(data["window"]), symmetric=bool(data["symmetric"]),
            )
        V, N = result.vocab_size, result.nnz
        if result.counts.shape != (V,) or result.i.shape != (N,) or result.j.shape != (N,):
            raise ScratchlmError(f"{path}: inconsistent shapes (V={V}, counts {result.counts.shape}, "
                                 f"i {result.i.shape}, j {result.j.shape}, x {result.x.shape})")
        return result


def count_cooccurrences(sentences: Sequence[Sequence[str]], *, window: int = CooccurrenceConfig.window,
                        symmetric: bool = CooccurrenceConfig.symmetric, min_count: int = CooccurrenceConfig.min_count,
                        max_size: int | None = CooccurrenceConfig.max_size,
                        max_memory_mb: float = CooccurrenceConfig.max_memory_mb,
                        vocabulary: tuple[tuple[str, ...], np.ndarray] | None = None) -> Cooccurrence:
    """Vocabulary and distance-weighted co-occurrence counts of a tokenized corpus (see module docstring).

    Args: sentences: a re-iterable of token sequences (read twice: vocabulary, then counting);
    window: context words on each side (``cooccur -window-size``); symmetric: both sides or left only;
    min_count / max_size: vocabulary bounds; max_memory_mb: ceiling for the counting buffers beyond
    the output's own 64 bytes a pair (module docstring);
    vocabulary: ``(words, counts)`` already built (then ``min_count`` / ``max_size`` are not applied).
    """
    _check_settings(window, max_memory_mb)  # before any work
    words, counts = (build_vocabulary(sentences, min_count=min_count, max_size=max_size)
                     if vocabulary is None else vocabulary)
    keys, x = count_pairs(sentences, words, window=window, symmetric=symmetric, max_memory_mb=max_memory_mb)
    return cooccurrence_from_pairs(words, counts, keys, x, window=window, symmetric=symmetric, min_count=min_count)


def count_pairs(sentences: Iterable[Sequence[str]], words: Sequence[str], *, window: int = CooccurrenceConfig.window,
                symmetric: bool = CooccurrenceConfig.symmetric,
                max_memory_mb: float = CooccurrenceConfig.max_memory_mb) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys ``i·V + j`` (int64) and their :math:`X_{ij}` (float64) over ``words``' ids.

    Pairs never cross a sentence, so the counts of a corpus are the sums of its shares' counts
    (:func:`merge_pairs`): what processes that each read a share of the corpus combine.
    """
    _check_settings(window, max_memory_mb)
    index = {w: k for k, w in enumerate(words)}
    pairs_per_token = window * (2 if symmetric else 1)
    tokens_per_chunk = max(1, int(max_memory_mb * 2**20 / (_BYTES_PER_PAIR * pairs_per_token)))
    return count_id_pairs(_id_chunks(sentences, index, tokens_per_chunk), vocab_size=len(words),
                          window=window, symmetric=symmetric, block=_merge_block(max_memory_mb))


def read_cooccurrences(sentences: Sequence[Sequence[str]], *, window: int, symmetric: bool, min_count: int,
                       max_size: int | None, max_memory_mb: float) -> Cooccurrence:
    r"""The corpus's :class:`Cooccurrence`; with several processes, each counts its own share.

    Process ``p`` of ``P`` reads only its contiguous share of the sentences
    (:func:`scratchlm.distributed.process_shard`): the word counts are summed across processes before the
    vocabulary is cut, each process counts the pairs of its share (windows never cross a sentence,
    so no pair spans two shares), and the sorted partial counts are gathered and merged, so every
    process holds the whole matrix (its minibatches are cut from it identically on every process).
    The merged :math:`X_{ij} = \sum_p X^{(p)}_{ij}` equal one process's up to the order of float64
    additions.
    One process: :func:`count_cooccurrences`.
    """
    import jax

    from scratchlm import distributed

    if jax.process_count() == 1:
        return count_cooccurrences(sentences, window=window, symmetric=symmetric, min_count=min_count,
                                   max_size=max_size, max_memory_mb=max_memory_mb)
    local = distributed.process_shard(sentences)
    words, counts = vocabulary_from_counts(distributed.allgather_counts(word_counts(local)),
                                           min_count=min_count, max_size=max_size)
    keys, x = count_pairs(local, words, window=window, symmetric=symmetric, max_memory_mb=max_memory_mb)
    parts = distributed.allgather_arrays({"keys": keys, "x": x})
    keys, x = merge_pairs([(part["keys"], part["x"]) for part in parts])
    return cooccurrence_from_pairs(words, counts, keys, x, window=window, symmetric=symmetric, min_count=min_count)


def _check_settings(window, max_memory_mb) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ScratchlmError(f"window must be a positive integer (context words on each side), got {window!r}")
    if not max_memory_mb > 0:
        raise ScratchlmError(f"max_memory_mb must be positive, got {max_memory_mb}")


def merge_pairs(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum several :func:`count_pairs` results (sorted unique keys each) into one, merged in order."""
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    merged = (np.asarray(parts[0][0], np.int64), np.asarray(parts[0][1], np.float64))
    for keys, x in parts[1:]:
        merged = _merge(merged, (np.asarray(keys, np.int64), np.asarray(x, np.float64)))
    return merged


def cooccurrence_from_pairs(words: Sequence[str], counts: np.ndarray, keys: np.ndarray, x: np.ndarray, *,
                            window: int, symmetric: bool, min_count: int | None = None) -> Cooccurrence:
    """The :class:`Cooccurrence` of counted pairs; an error if no two words co-occur."""
    if keys.size == 0:
        raise CorpusError(f"no two in-vocabulary words ({len(words)} words"
                          + ("" if min_count is None else f" with min_count={min_count}")
                          + f") co-occur within a window of {window} inside one sentence; lower --min-count "
                          f"or give a larger corpus")
    V = len(words)
    return Cooccurrence(words=tuple(words), counts=np.asarray(counts, np.int64), i=(keys // V).astype(np.int32),
                        j=(keys % V).astype(np.int32), x=x, window=int(window), symmetric=bool(symmetric))


def _id_chunks(sentences: Iterable[Sequence[str]], index: dict[str, int],
               tokens_per_chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(ids, sentence_ids)`` int64 arrays of at most ``tokens_per_chunk`` in-vocabulary tokens."""
    ids: list[int] = []
    sentence_ids: list[int] = []
    for s, sentence in enumerate(sentences):
        kept = [index[w] for w in sentence if w in index]
        ids.extend(kept)
        sentence_ids.extend([s] * len(kept))
        while len(ids) >= tokens_per_chunk:
            yield (np.array(ids[:tokens_per_chunk], dtype=np.int64),
                   np.array(sentence_ids[:tokens_per_chunk], dtype=np.int64))
            del ids[:tokens_per_chunk], sentence_ids[:tokens_per_chunk]
    if ids:
        yield np.array(ids, dtype=np.int64), np.array(sentence_ids, dtype=np.int64)


def _merge_block(max_memory_mb: float) -> int:
    """Keys of each run a merge step takes: a step (at most twice that many keys) within a quarter of
    ``max_memory_mb``, but at least 1024 keys, so that tiny ceilings do not make a merge crawl."""
    return max(1024, int(max_memory_mb * 2**20 / (4 * 2 * _MERGE_BYTES_PER_KEY)))


def count_id_pairs(chunks: Iterable[tuple[np.ndarray, np.ndarray]], *, vocab_size: int, window: int,
                   symmetric: bool, block: int = _MERGE_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique keys ``i·V + j`` (int64) and their :math:`X_{ij}` (float64) from streamed id chunks.

    Each chunk is ``(ids, sentence_ids)``; the last ``window`` tokens of a chunk are carried into the
    next as left context only, so every pair is counted exactly once, at its right-hand token.
    """
    V = int(vocab_size)
    shift = int(window).bit_length()  # bits that hold the distance d in a packed key
    if V > 1 and (V * V) >= 2 ** (62 - shift):
        raise ScratchlmError(f"vocabulary of {V} words too large for 64-bit pair keys with window {window}")
    runs: list[tuple[np.ndarray, np.ndarray]] = []
    carry_ids = carry_sids = np.zeros(0, dtype=np.int64)
    for ids, sentence_ids in chunks:
        all_ids = np.concatenate([carry_ids, ids])
        all_sids = np.concatenate([carry_sids, sentence_ids])
        runs.append(_count_chunk(all_ids, all_sids, first=carry_ids.size, V=V, window=window,
                                 symmetric=symmetric, shift=shift))
        carry_ids, carry_sids = all_ids[-window:], all_sids[-window:]
        # Binary-counter merging: merge while the newest run is at least half its predecessor.
        while len(runs) > 1 and 2 * runs[-1][0].size >= runs[-2][0].size:
            b = runs.pop()
            runs.append(_merge(runs.pop(), b, block=block))
    while len(runs) > 1:
        b = runs.pop()
        runs.append(_merge(runs.pop(), b, block=block))
    if not runs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return runs[0]


def _count_chunk(ids: np.ndarray, sids: np.ndarray, *, first: int, V: int, window: int, symmetric: bool,
                 shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose right-hand token is at position >= ``first``, reduced to sorted unique keys."""
    n = ids.size
    pieces = []
    for d in range(1, window + 1):
        s = max(first, d)
        if s >= n:
            break
        centre, context = ids[s:], ids[s - d : n - d]  # context is d tokens left of centre
        same = sids[s:] == sids[s - d : n - d]  # windows stop at sentence boundaries
        centre, context = centre[same], context[same]
        pieces.append(((centre * V + context) << shift) | d)
        if symmetric:
            pieces.append(((context * V + centre) << shift) | d)
    packed = np.sort(np.concatenate(pieces)) if pieces else np.zeros(0, dtype=np.int64)
    del pieces
    if packed.size == 0:
        return packed, np.zeros(0, dtype=np.float64)
    # Runs of equal packed keys: same pair at the same distance d, worth count / d.
    starts = np.flatnonzero(np.concatenate([[True], packed[1:] != packed[:-1]]))
    n_same = np.diff(np.append(starts, packed.size))
    packed = packed[starts]
    weights = n_same / (packed & ((1 << shift) - 1))
    return _sum_sorted(packed >> shift, weights)


def _sum_sorted(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum the values of equal adjacent keys (``keys`` sorted)."""
    if keys.size == 0:
        return keys, values
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return keys[starts], np.add.reduceat(values, starts)


def _merge(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], *,
           block: int = _MERGE_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """Sum two sorted unique-key runs into one: the sorted union of the keys, ``va + vb`` where both hold a key.

    Memory: beyond the inputs, only the output at its exact size (a first pass counts the keys the
    runs share) and one step's buffers: each step merges at most ``block`` keys of each run, cut at a
    key so that no key is split across steps, about ``_MERGE_BYTES_PER_KEY`` bytes a key.  A step
    places each key of ``a`` before the equal key of ``b`` and sums runs of equal keys in that order,
    so the sums are those of one merge over whole arrays, bit for bit.
    """
    (ka, va), (kb, vb) = a, b
    na, nb = ka.size, kb.size
    shared = 0
    if nb:
        for s in range(0, na, block):
            part = ka[s : s + block]
            at = np.minimum(np.searchsorted(kb, part), nb - 1)
            shared += int(np.count_nonzero(kb[at] == part))
    keys = np.empty(na + nb - shared, dtype=np.int64)
    values = np.empty(keys.size, dtype=np.float64)
    ia = ib = out = 0
    while ia < na or ib < nb:
        ea, eb = min(ia + block, na), min(ib + block, nb)
        # The cut: the smallest last key of a window that stops short of its run's end.  Every key of
        # either run up to the cut lies in its window, and the window that sets the cut is taken
        # whole, so each step takes at least `block` keys (or all that are left).
        ends = [k[e - 1] for k, e, n in ((ka, ea, na), (kb, eb, nb)) if e < n]
        if ends:
            cut = min(ends)
            ea = ia + int(np.searchsorted(ka[ia:ea], cut, side="right"))
            eb = ib + int(np.searchsorted(kb[ib:eb], cut, side="right"))
        k, v = _merge_step(ka[ia:ea], va[ia:ea], kb[ib:eb], vb[ib:eb])
        keys[out : out + k.size], values[out : out + k.size] = k, v
        out += k.size
        ia, ib = ea, eb
    return keys, values


def _merge_step(ka: np.ndarray, va: np.ndarray, kb: np.ndarray, vb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step of :func:`_merge`: both runs whole, by their merge positions (no re-sort)."""
    keys = np.empty(ka.size + kb.size, dtype=np.int64)
    values = np.empty(keys.size, dtype=np.float64)
    # A key of a goes before equal keys of b; each run's own order is kept.
    pos_a = np.arange(ka.size) + np.searchsorted(kb, ka, side="left")
    pos_b = np.arange(kb.size) + np.searchsorted(ka, kb, side="right")
    keys[pos_a], values[pos_a] = ka, va
    keys[pos_b], values[pos_b] = kb, vb
    return _sum_sorted(keys, values)
