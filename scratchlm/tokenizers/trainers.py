r"""Learning sub-word merges: one learner for BPE and WordPiece, the score is the parameter.

Start from the characters of each word :math:`w` (weighted by its corpus count :math:`n_w`) and
repeat until the vocabulary has ``vocab_size`` tokens: merge the adjacent pair of highest score,

.. math::  (a, b)^\ast = \arg\max_{(a, b)} \; s\big(c(a, b), c(a), c(b)\big), \qquad
           c(a, b) = \sum_w n_w \, \#\{i : w_i = a, w_{i+1} = b\}, \quad c(a) = \sum_w n_w \, \#\{i : w_i = a\},

ties going to the pair with the smaller ids :math:`(\mathrm{id}_a, \mathrm{id}_b)`.  Two scores:

* :func:`frequency`, :math:`s = c(a, b)`: BPE (Sennrich et al. 2016, "Neural Machine Translation of
  Rare Words with Subword Units", Algorithm 1), and HuggingFace's ``WordPieceTrainer`` too;
* :func:`likelihood`, :math:`s = c(a, b) / (c(a)\, c(b))`: the WordPiece paper's rule, the pair whose
  merge most raises the corpus likelihood under a unigram model (Schuster & Nakajima 2012; Wu et al. 2016).

Counts are updated incrementally: merging :math:`(a, b)` visits only the words that hold it (an index
from pair to words) and changes only the counts of the pairs around each occurrence,
:math:`c(x, a) \mathrel{-}= n_w,\ c(x, ab) \mathrel{+}= n_w,\ c(b, y) \mathrel{-}= n_w,\ c(ab, y) \mathrel{+}= n_w`
(:func:`merge_pair` returns these changes; the learner applies them).  A max-heap holds the
candidates; an entry whose score went stale is re-inserted with the current score when it reaches
the top (lazy deletion).

Bookkeeping.  For :func:`frequency` the heap entries, the word sets attached to them, and the
one-occurrence-at-a-time count updates follow HuggingFace's ``BpeTrainer`` exactly, so both learn the
same merges in the same order — including its quirks: the merged pair's own count is left as it was,
and an entry only merges the words recorded with it, so a pair can be merged a second time later (the
later rank wins, as in HuggingFace's merge table).  Any other score is kept exact: the merged pair's
count drops to what is left, every word holding the pair is merged, and since the score moves with
:math:`c(a)` and :math:`c(b)`, every pair holding :math:`a` or :math:`b` is re-scored after a merge.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable
from typing import NamedTuple

from scratchlm.errors import CorpusError, ScratchlmError

Pair = tuple[int, int]


def frequency(c_ab: int, c_a: int, c_b: int) -> int:
    r"""BPE's score :math:`s = c(a, b)` (Sennrich et al. 2016, Algorithm 1): the most frequent pair."""
    return c_ab


def likelihood(c_ab: int, c_a: int, c_b: int) -> float:
    r"""WordPiece's score :math:`s = c(a, b) / (c(a)\, c(b))` (Schuster & Nakajima 2012; Wu et al. 2016):
    the likelihood gain of merging :math:`a, b` under a unigram language model, up to a constant."""
    return c_ab / (c_a * c_b)


SCORES: dict[str, Callable[[int, int, int], float]] = {"frequency": frequency, "likelihood": likelihood}


class Merge(NamedTuple):
    """What merging one pair changed in the counts."""

    deltas: dict[Pair, int]  # pair -> change of its count, exact (the merged pair loses every merged occurrence)
    gained: dict[Pair, set[int]]  # (x, ab) and (ab, y) -> the words they were formed in, in order of formation
    merged: int  # occurrences merged, weighted by word count: c(a) and c(b) lose it, c(ab) gains it


def merge_pair(words: list[list[int]], counts: list[int], positions: Iterable[int], pair: Pair, new: int) -> Merge:
    """Replace each occurrence of ``pair`` by ``new`` in the words at ``positions`` (left to right, not
    overlapping) and return how the counts change; the counts themselves are the caller's to update.

    The words' symbol lists are rewritten in place: they are the learner's own working copy, and
    returning new lists instead cost a quarter more training time (byte-level BPE, 2,000 paragraphs).
    """
    a, b = pair
    deltas: dict[Pair, int] = {}
    gained: dict[Pair, set[int]] = {}
    merged = 0
    for w in positions:
        symbols, n = words[w], counts[w]
        if a not in symbols:
            continue
        i = symbols.index(a)
        while i < len(symbols) - 1:
            if symbols[i + 1] == b and symbols[i] == a:
                merged += n
                if i > 0:
                    x = symbols[i - 1]
                    deltas[(x, a)] = deltas.get((x, a), 0) - n
                    p = (x, new)
                    deltas[p] = deltas.get(p, 0) + n
                    gained.setdefault(p, set()).add(w)
                symbols[i:i + 2] = [new]
                if i < len(symbols) - 1:
                    y = symbols[i + 1]
                    deltas[(b, y)] = deltas.get((b, y), 0) - n
                    p = (new, y)
                    deltas[p] = deltas.get(p, 0) + n
                    gained.setdefault(p, set()).add(w)
            i += 1
    if merged:
        deltas[pair] = deltas.get(pair, 0) - merged  # the occurrences merged, which no neighbour update counts
    return Merge(deltas, gained, merged)


def learn_merges(word_counts: dict[str, int], vocab_size: int, *, score: Callable[[int, int, int], float] = frequency,
                 special_tokens: Iterable[str] = (), initial_alphabet: Iterable[str] = (),
                 limit_alphabet: int | None = None, min_frequency: int = 0,
                 continuing_subword_prefix: str | None = None, end_of_word_suffix: str | None = None,
                 max_token_length: int | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    r"""Learn merges from word counts by ``score`` (:func:`frequency` or :func:`likelihood`); returns
    ``(id_to_token, merges)``.  With :func:`frequency` this is HuggingFace's ``BpeTrainer`` (and, with
    ``continuing_subword_prefix="##"``, its ``WordPieceTrainer``).

    The vocabulary is: the special tokens, the alphabet (characters of the words plus
    ``initial_alphabet``, sorted by code point; ``limit_alphabet`` keeps the most frequent), the
    prefixed / suffixed characters in order of first appearance (HuggingFace numbers them in its
    hash-map order, which changes from run to run), then one token per merge.  A pair is a candidate
    while its count is at least ``max(1, min_frequency)``.  ``max_token_length`` (HuggingFace's, in
    characters of the word, prefix and suffix not counted): a pair formed by a merge is counted only
    when its two symbols together are shorter than it.
    """
    id_to_token, words, counts = _initial_vocabulary(
        word_counts, vocab_size, special_tokens=special_tokens, initial_alphabet=initial_alphabet,
        limit_alphabet=limit_alphabet, continuing_subword_prefix=continuing_subword_prefix,
        end_of_word_suffix=end_of_word_suffix)
    token_to_id = {t: i for i, t in enumerate(id_to_token)}
    n_prefix = len(continuing_subword_prefix or "")

    def merged_token(pair: Pair) -> int:
        part_b = id_to_token[pair[1]]
        if continuing_subword_prefix and part_b.startswith(continuing_subword_prefix):
            part_b = part_b[n_prefix:]
        token = id_to_token[pair[0]] + part_b
        if token not in token_to_id:
            token_to_id[token] = len(id_to_token)
            id_to_token.append(token)
        return token_to_id[token]

    def symbol_length(t: int) -> int:
        """Characters of the word a symbol covers (its prefix and suffix not counted)."""
        token, n = id_to_token[t], len(id_to_token[t])
        if continuing_subword_prefix and token.startswith(continuing_subword_prefix):
            n -= n_prefix
        if end_of_word_suffix and token.endswith(end_of_word_suffix):
            n -= len(end_of_word_suffix)
        return n

    pair_counts: dict[Pair, int] = {}
    where: dict[Pair, set[int]] = {}  # pair -> the words holding it (a superset once merges begin)
    symbol_counts: Counter = Counter()
    for w, (symbols, n) in enumerate(zip(words, counts)):
        for t in symbols:
            symbol_counts[t] += n
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + n
            s = where.get(pair)
            if s is None:
                where[pair] = {w}
            else:
                s.add(w)
    exact = score is not frequency  # see the module docstring: HuggingFace's bookkeeping, or exact counts
    with_symbol: dict[int, set[Pair]] = {}  # symbol -> the pairs holding it (exact bookkeeping only)
    if exact:
        for pair in pair_counts:
            for t in pair:
                with_symbol.setdefault(t, set()).add(pair)

    def priority(pair: Pair) -> float:
        return score(pair_counts[pair], symbol_counts[pair[0]], symbol_counts[pair[1]])

    # Entries (-score, pair, sequence number, words holding the pair when the entry was made).
    seq = 0
    heap = []
    for pair, positions in where.items():
        if pair_counts[pair] > 0:
            heap.append((-priority(pair), pair, seq, positions))
            seq += 1
    heapq.heapify(heap)
    floor = max(1, min_frequency)
    merges: list[tuple[Pair, int]] = []
    while len(id_to_token) < vocab_size and heap:
        neg, pair, _, positions = heapq.heappop(heap)
        if exact and pair_counts[pair] < floor:
            continue  # not a candidate now; it gets a new entry when its count changes
        current = priority(pair)
        if -neg != current:
            heapq.heappush(heap, (-current, pair, seq, positions))
            seq += 1
            continue
        if pair_counts[pair] < floor:
            break  # the top pair is the most frequent one: no pair is left (HuggingFace's rule)
        new = merged_token(pair)
        merges.append((pair, new))
        step = merge_pair(words, counts, where[pair] if exact else positions, pair, new)
        if max_token_length is not None:  # HuggingFace's Word::merge: a too-long new pair is never counted
            long = [p for p in step.gained if symbol_length(p[0]) + symbol_length(p[1]) >= max_token_length]
            for p in long:
                del step.gained[p]
                step.deltas.pop(p, None)
        for p, d in step.deltas.items():
            pair_counts[p] = pair_counts.get(p, 0) + d
        a, b = pair
        symbol_counts[a] -= step.merged
        symbol_counts[b] -= step.merged
        symbol_counts[new] += step.merged
        if exact:
            for p, ws in step.gained.items():
                where[p] = where[p] | ws if p in where else ws
                for t in p:
                    with_symbol.setdefault(t, set()).add(p)
            # c(a) and c(b) fell, so every pair holding a or b may score higher now.
            fresh = [(p, None) for p in set(step.gained) | with_symbol[a] | with_symbol[b]]
        else:
            pair_counts[pair] += step.merged  # HuggingFace leaves the merged pair's count as it was
            fresh = step.gained.items()
        for p, ws in fresh:
            if pair_counts[p] > 0:
                heapq.heappush(heap, (-priority(p), p, seq, ws))
                seq += 1

    # A pair merged twice keeps its last rank (HuggingFace's merge table is keyed by pair).
    last_rank = {pair: r for r, (pair, _) in enumerate(merges)}
    ordered = [pair for r, (pair, _) in enumerate(merges) if last_rank[pair] == r]
    return id_to_token, [(id_to_token[a], id_to_token[b]) for a, b in ordered]


def _initial_vocabulary(word_counts: dict[str, int], vocab_size: int, *, special_tokens: Iterable[str],
                        initial_alphabet: Iterable[str], limit_alphabet: int | None,
                        continuing_subword_prefix: str | None, end_of_word_suffix: str | None,
                        ) -> tuple[list[str], list[list[int]], list[int]]:
    """The tokens before any merge (specials, alphabet, prefixed / suffixed characters), each word as
    symbol ids, and the words' counts."""
    if not word_counts:
        raise CorpusError("cannot train BPE on an empty corpus (no word after pre-tokenization)")
    id_to_token: list[str] = []
    token_to_id: dict[str, int] = {}

    def add(token: str) -> int:
        if token not in token_to_id:
            token_to_id[token] = len(id_to_token)
            id_to_token.append(token)
        return token_to_id[token]

    for token in special_tokens:
        add(token)

    alphabet: Counter = Counter()
    for word, n in word_counts.items():
        for ch, k in Counter(word).items():
            alphabet[ch] += k * n
    for ch in initial_alphabet:
        alphabet[ch] = float("inf")
    kept = list(alphabet)
    if limit_alphabet is not None and len(kept) > limit_alphabet:
        kept = sorted(kept, key=lambda ch: (alphabet[ch], ch))[len(kept) - limit_alphabet:]
    alphabet_size = len(set(kept) | set(token_to_id))
    if vocab_size < alphabet_size:
        raise ScratchlmError(
            f"vocab_size {vocab_size} is below the alphabet size {alphabet_size} (special tokens plus "
            f"{len(kept)} distinct characters): no merge could be learned; raise vocab_size")
    for ch in sorted(kept):
        add(ch)

    # Words as lists of symbol ids; characters outside the alphabet are left out (HuggingFace's rule).
    words: list[list[int]] = []
    counts: list[int] = []
    for word, n in word_counts.items():
        symbols, last = [], len(word) - 1
        for i, ch in enumerate(word):
            if ch not in token_to_id:
                continue
            s = ch
            if i > 0 and continuing_subword_prefix:
                s = continuing_subword_prefix + s
            if i == last and end_of_word_suffix:
                s = s + end_of_word_suffix
            symbols.append(add(s))
        words.append(symbols)
        counts.append(n)
    return id_to_token, words, counts
