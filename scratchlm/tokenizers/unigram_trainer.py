r"""Training the unigram language model (Kudo 2018, §3.2; SentencePiece's ``unigram_model_trainer.cc``, as
HuggingFace's ``UnigramTrainer`` runs it).  The corpus is its pre-tokenized words :math:`X_s` with counts
:math:`n_s`.

1. **Seed** (:func:`seed_pieces`): every character, with its corpus count, and the frequent substrings of
   2 to ``max_piece_length`` characters, scored by (occurrences) :math:`\times` (length).  SentencePiece
   takes the substrings from a suffix array: the internal nodes of the suffix tree of the distinct words
   joined by ``\0``, i.e. the substrings seen at least twice among the distinct words and followed by at
   least two different characters (right-maximal repeats).  :func:`seed_pieces` counts exactly those with
   a dictionary over every substring up to ``max_piece_length``, which is the same set.
   :math:`\log p(x) = \log \mathrm{score}(x) - \log \sum_y \mathrm{score}(y)`.
2. **EM** (``n_sub_iterations`` rounds): the E-step (:func:`expected_counts`) takes each piece's expected
   count under the posterior over segmentations (forward-backward on each word's lattice, Kudo 2018 Eq. 3),

   .. math::  c(x) = \sum_s n_s \sum_{\mathbf{x} \in S(X_s)} P(\mathbf{x} \mid X_s) \, \#_x(\mathbf{x}),

   and the M-step (:func:`m_step`) drops the pieces with :math:`c(x) < 1/2` and sets, as SentencePiece's
   Bayesian (variational) update does, :math:`\log p(x) = \psi(c(x)) - \psi(\sum_y c(y))` with
   :math:`\psi` the digamma function.
3. **Prune** (:func:`prune`): for each piece :math:`x` whose own best segmentation is itself, the loss of
   likelihood if it were removed and its occurrences re-segmented by the second-best segmentation
   :math:`\mathbf{a}(x)` (Kudo 2018, §3.2 step 3),

   .. math::  L(x) = f(x) \Big( \log p(x) - \sum_{a \in \mathbf{a}(x)} \log
              \frac{F(a) + F(x)}{\sum_y F(y) + F(x)\,(|V| - 1)} \Big),

   with :math:`F` the Viterbi counts and :math:`f(x)` the share of words whose Viterbi segmentation uses
   :math:`x`; keep the pieces of largest loss, :math:`\max(1.1\,V, \lfloor 0.75 |V| \rfloor)` of them
   (``shrinking_factor`` 0.75), pieces that are their own only segmentation (single characters) always.
   (:math:`|V| - 1` is HuggingFace's normalizer; SentencePiece uses :math:`|\mathbf{a}(x)| - 1`.)
4. Repeat 2-3 until at most :math:`1.1\,V` pieces; then :func:`finalize`: every character of the corpus,
   then the pieces in order up to ``vocab_size``, sorted by score, after the special tokens (score 0).

Why one module of ~300 lines: the four steps share the lattice helpers and are read in order.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import numpy as np

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers.models.unigram import Unigram

Piece = tuple[str, float]
UNK = "<UNK>"  # the placeholder unknown piece of the training model (id 0), dropped at the end


def digamma(x: float) -> float:
    r""":math:`\psi(x) = \frac{d}{dx} \log \Gamma(x)` by recurrence to :math:`x \ge 7` and the asymptotic
    series (Abramowitz & Stegun 6.3.5, 6.3.18), as SentencePiece and HuggingFace compute it."""
    result = 0.0
    while x < 7.0:
        result -= 1.0 / x
        x += 1.0
    x -= 0.5
    xx = 1.0 / x
    xx2 = xx * xx
    xx4 = xx2 * xx2
    return (result + math.log(x) + xx2 / 24.0 - 7.0 / 960.0 * xx4 + 31.0 / 8064.0 * xx4 * xx2
            - 127.0 / 30720.0 * xx4 * xx4)


def seed_pieces(words: list[tuple[str, int]], max_piece_length: int = 16, seed_size: int = 1_000_000) -> list[Piece]:
    """The seed vocabulary with log-probabilities (step 1 of the module docstring), HuggingFace's order:
    characters by count then character, descending; then substrings by score then string, descending."""
    chars: Counter = Counter()
    # substring -> [occurrences among the distinct words, first following character, seen two followers]
    subs: dict[str, list] = {}
    for word, n in words:
        if not word:
            continue
        for c in word:
            chars[c] += n
        length = len(word)
        for i in range(length):
            for j in range(i + 2, min(length, i + max_piece_length) + 1):
                s = word[i:j]
                follower = word[j] if j < length else "\0"
                entry = subs.get(s)
                if entry is None:
                    subs[s] = [1, follower, False]
                else:
                    entry[0] += 1
                    if not entry[2] and entry[1] != follower:
                        entry[2] = True
    seeds: list[Piece] = [(c, float(n)) for n, c in sorted(((n, c) for c, n in chars.items()), reverse=True)]
    scored = sorted(((e[0] * len(s), s) for s, e in subs.items() if e[0] >= 2 and e[2]), reverse=True)
    for score, s in scored:
        if len(seeds) >= seed_size:
            break
        seeds.append((s, float(score)))
    log_total = math.log(sum(score for _, score in seeds))
    return [(s, math.log(score) - log_total) for s, score in seeds]


def _logaddexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def expected_counts(model: Unigram, words: list[tuple[str, int]]) -> list[float]:
    r"""E-step: :math:`c(x)` by forward-backward over each word's lattice.  With
    :math:`\alpha(i)` (resp. :math:`\beta(j)`) the log-sum of the scores of the segmentations of the first
    :math:`i` (last :math:`n - j`) characters, a node :math:`(i, j, x)` has posterior
    :math:`\exp(\alpha(i) + \log p(x) + \beta(j) - \alpha(n))`."""
    expected = [0.0] * len(model.pieces)
    for word, n in words:
        size = len(word)
        nodes = model.lattice(word)
        alpha = [-math.inf] * (size + 1)
        alpha[0] = 0.0
        for start, end, _, score in nodes:  # in order of start: every node ending at `start` came before
            alpha[end] = _logaddexp(alpha[end], alpha[start] + score)
        beta = [-math.inf] * (size + 1)
        beta[size] = 0.0
        for start, end, _, score in sorted(nodes, key=lambda node: -node[1]):
            beta[start] = _logaddexp(beta[start], score + beta[end])
        z = alpha[size]
        for start, end, i, score in nodes:
            expected[i] += n * math.exp(alpha[start] + score + beta[end] - z)
    return expected


class Lattices:
    """Every word's lattice over the seed vocabulary, as flat NumPy arrays, for the vectorized E-step.

    The vocabulary only shrinks during training, so each EM round's lattice is the seed lattice's nodes
    whose piece is still alive, plus an unknown node where a position lost its one-character piece.  Word
    :math:`k`'s positions are ``offset[k] .. offset[k] + len(word)`` of one flat array; the forward and
    backward passes go position by position within the words, all words at once.
    """

    def __init__(self, words: list[tuple[str, int]], seeds: list[str]):
        index = {s: i for i, s in enumerate(seeds)}
        prefixes = {s[:k] for s in seeds for k in range(1, len(s))}
        longest = max(map(len, seeds))
        src, dst, seed, within = [], [], [], []
        char_seed, offsets, pos = [], [], 0
        for word, _ in words:
            offsets.append(pos)
            n = len(word)
            for start in range(n):
                char_seed.append(index.get(word[start], -1))
                for end in range(start + 1, min(n, start + longest) + 1):
                    piece = word[start:end]
                    i = index.get(piece)
                    if i is not None:
                        src.append(pos + start)
                        dst.append(pos + end)
                        seed.append(i)
                        within.append(end)
                    if piece not in prefixes:
                        break
            char_seed.append(-1)  # the word's end position starts no piece
            pos += n + 1
        self.size = pos
        self.offsets = np.array(offsets, dtype=np.int64)
        self.lengths = np.array([len(w) for w, _ in words], dtype=np.int64)
        self.counts = np.array([n for _, n in words], dtype=np.float64)
        self.word_of = np.repeat(np.arange(len(words)), self.lengths + 1)
        self.within = np.arange(pos) - np.repeat(self.offsets, self.lengths + 1)  # position inside its word
        self.src, self.dst = np.array(src, dtype=np.int64), np.array(dst, dtype=np.int64)
        self.seed, self.char_seed = np.array(seed, dtype=np.int64), np.array(char_seed, dtype=np.int64)
        self.is_start = np.ones(pos, dtype=bool)
        self.is_start[self.offsets + self.lengths] = False  # end positions start nothing

    def nodes(self, seed_to_id: np.ndarray, scores: np.ndarray, unk_id: int, unk_score: float):
        """The current lattice: ``(src, dst, id, score)`` of the live nodes and the unknown nodes."""
        ids = seed_to_id[self.seed]
        live = ids >= 0
        char_ids = np.where(self.char_seed >= 0, seed_to_id[np.maximum(self.char_seed, 0)], -1)
        unk_at = np.flatnonzero(self.is_start & (char_ids < 0))
        src = np.concatenate([self.src[live], unk_at])
        dst = np.concatenate([self.dst[live], unk_at + 1])
        ids = np.concatenate([ids[live], np.full(len(unk_at), unk_id)])
        score = np.concatenate([scores[ids[:live.sum()]], np.full(len(unk_at), unk_score)])
        return src, dst, ids, score


def _grouped_logsumexp(values: np.ndarray, keys: np.ndarray, out: np.ndarray) -> None:
    """``out[k] = logaddexp(out[k], logsumexp(values[keys == k]))`` for every key (``keys`` sorted)."""
    if not len(values):
        return
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    top = np.maximum.reduceat(values, starts)
    total = np.add.reduceat(np.exp(values - np.repeat(top, np.diff(np.r_[starts, len(values)]))), starts)
    at = keys[starts]
    out[at] = np.logaddexp(out[at], top + np.log(total))


def expected_counts_fast(lattices: Lattices, model: Unigram, seed_to_id: np.ndarray) -> np.ndarray:
    """:func:`expected_counts`, vectorized over all words (tested equal to it)."""
    scores = np.array(model.scores, dtype=np.float64)
    src, dst, ids, score = lattices.nodes(seed_to_id, scores, model.unk_id, model.unk_score)
    within_src, within_dst = lattices.within[src], lattices.within[dst]
    alpha = np.full(lattices.size, -np.inf)
    alpha[lattices.offsets] = 0.0
    order = np.lexsort((dst, within_dst))  # by the end's place in its word, then by end
    bounds = np.searchsorted(within_dst[order], np.arange(1, lattices.lengths.max() + 2))
    for e in range(len(bounds) - 1):
        group = order[bounds[e]:bounds[e + 1]]
        _grouped_logsumexp(alpha[src[group]] + score[group], dst[group], alpha)
    beta = np.full(lattices.size, -np.inf)
    beta[lattices.offsets + lattices.lengths] = 0.0
    order = np.lexsort((src, -within_src))  # by the start's place, last first, then by start
    keys = -within_src[order]
    bounds = np.searchsorted(keys, np.arange(-lattices.lengths.max(), 1))
    for b in range(len(bounds) - 1):
        group = order[bounds[b]:bounds[b + 1]]
        _grouped_logsumexp(score[group] + beta[dst[group]], src[group], beta)
    z = alpha[lattices.offsets + lattices.lengths]
    word = lattices.word_of[src]
    posterior = np.exp(alpha[src] + score + beta[dst] - z[word]) * lattices.counts[word]
    return np.bincount(ids, weights=posterior, minlength=len(model.pieces))


def viterbi_counts(model: Unigram, words: list[tuple[str, int]]) -> list[float]:
    r"""The Viterbi counts :math:`F(x) = \sum_s n_s \, \#_x(\mathbf{x}^\ast(X_s))` that pruning uses."""
    freq = [0.0] * len(model.pieces)
    for word, n in words:
        for i in _viterbi_ids(model, word):
            freq[i] += n
    return freq


def viterbi_counts_fast(lattices: Lattices, model: Unigram, seed_to_id: np.ndarray) -> np.ndarray:
    """:func:`viterbi_counts`, vectorized over all words (tested equal to it): the best score at each
    position, all words at once, ties to the piece that starts first; then every path traced back together."""
    scores = np.array(model.scores, dtype=np.float64)
    src, dst, ids, score = lattices.nodes(seed_to_id, scores, model.unk_id, model.unk_score)
    best = np.full(lattices.size, -np.inf)
    best[lattices.offsets] = 0.0
    back = np.full(lattices.size, -1, dtype=np.int64)  # node of the best piece ending at each position
    within_dst = lattices.within[dst]
    order = np.lexsort((src, dst, within_dst))
    bounds = np.searchsorted(within_dst[order], np.arange(1, lattices.lengths.max() + 2))
    for e in range(len(bounds) - 1):
        group = order[bounds[e]:bounds[e + 1]]
        if not len(group):
            continue
        values, keys = best[src[group]] + score[group], dst[group]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        segment = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(group)]))
        top = np.flatnonzero(values == np.maximum.reduceat(values, starts)[segment])
        first = top[np.r_[True, segment[top][1:] != segment[top][:-1]]]
        best[keys[first]] = values[first]
        back[keys[first]] = group[first]
    freq = np.zeros(len(model.pieces))
    position = lattices.offsets + lattices.lengths
    active = lattices.lengths > 0
    while active.any():
        nodes = back[position[active]]
        np.add.at(freq, ids[nodes], lattices.counts[active])
        position[active] = src[nodes]
        active = position != lattices.offsets
    return freq


def m_step(pieces: list[Piece], expected: list[float]) -> list[Piece]:
    r"""M-step: drop pieces of expected count below 1/2, :math:`\log p(x) = \psi(c(x)) - \psi(\sum_y c(y))`."""
    kept = [(pieces[0][0], math.nan)]
    kept += [(p, c) for (p, _), c in zip(pieces[1:], expected[1:]) if c >= 0.5]
    log_total = digamma(sum(c for _, c in kept[1:]))
    return [kept[0]] + [(p, digamma(c) - log_total) for p, c in kept[1:]]


def _viterbi_ids(model: Unigram, word: str, *, exclude_whole: bool = False) -> list[int]:
    """The best segmentation's ids over the lattice (without the node covering all of ``word`` when asked:
    the second-best segmentation of a piece whose best is itself)."""
    size = len(word)
    best = [-math.inf] * (size + 1)
    best[0] = 0.0
    back: list = [None] * (size + 1)
    for start, end, i, score in model.lattice(word):
        if exclude_whole and start == 0 and end == size:
            continue
        candidate = best[start] + score
        if back[end] is None or candidate > best[end]:
            best[end], back[end] = candidate, (start, i)
    out, end = [], size
    while end > 0:
        if back[end] is None:
            return []
        start, i = back[end]
        out.append(i)
        end = start
    return out[::-1]


def prune(model: Unigram, pieces: list[Piece], words: list[tuple[str, int]], vocab_size: int,
          shrinking_factor: float, freq: list[float] | None = None) -> list[Piece]:
    r"""Pruning (step 3 of the module docstring), HuggingFace's ``prune_sentence_pieces``; ``freq``: the
    Viterbi counts when the caller has them (:func:`viterbi_counts_fast`).  :math:`f(x)`, the words using
    :math:`x` weighted by their counts (a word once per use), is :math:`F(x) / \sum_s n_s`."""
    always_keep = [True] * len(pieces)
    alternatives: list[list[int]] = [[] for _ in pieces]
    always_keep[0] = False
    for i, (piece, _) in enumerate(pieces[1:], start=1):
        if len(piece) == 1:
            continue
        best = _viterbi_ids(model, piece)
        if len(best) >= 2:
            always_keep[i] = False
        elif len(best) == 1:
            alternatives[i] = _viterbi_ids(model, piece, exclude_whole=True)
    freq = viterbi_counts(model, words) if freq is None else list(freq)
    vsum = float(sum(n for _, n in words))
    total = sum(freq)
    log_total = math.log(total)
    kept, candidates = [pieces[0]], []
    for i, (piece, score) in enumerate(pieces[1:], start=1):
        if freq[i] == 0.0 and not always_keep[i]:
            continue
        if not alternatives[i]:
            kept.append((piece, score))
            continue
        f = freq[i] / vsum
        if f == 0.0:
            continue
        logprob = math.log(freq[i]) - log_total
        log_total_alt = math.log(total + freq[i] * (len(alternatives) - 1))
        logprob_alt = sum(math.log(freq[a] + freq[i]) - log_total_alt for a in alternatives[i])
        candidates.append((i, f * (logprob - logprob_alt)))
    size = max(vocab_size * 11 // 10, int(len(pieces) * shrinking_factor))
    candidates.sort(key=lambda c: -c[1])
    for i, _ in candidates:
        if len(kept) == size:
            break
        kept.append(pieces[i])
    return kept


def finalize(model: Unigram, required_chars: list[str], vocab_size: int, special_tokens: list[str],
             unk_token: str | None) -> Unigram:
    """The trained vocabulary: special tokens (score 0, the unknown token first if it is not among them),
    every required character (missing ones just above the lowest score), then the pieces in order until
    ``vocab_size``, the non-special pieces sorted by score (descending, stable)."""
    existing = dict(model.pieces)
    pieces, inserted, penalty = [], {UNK}, 0.0
    for c in required_chars:
        if c in existing:
            pieces.append((c, existing[c]))
        else:
            pieces.append((c, model.min_score + penalty))
            penalty += 0.0001
        inserted.add(c)
    need_unk = unk_token is not None and unk_token not in special_tokens
    unk_id = None if unk_token is None else (0 if need_unk else special_tokens.index(unk_token))
    budget = vocab_size - len(special_tokens) - (1 if need_unk else 0)
    for piece, score in model.pieces:
        if piece in inserted:
            continue
        inserted.add(piece)
        pieces.append((piece, 0.0 if math.isnan(score) else score))
        if len(pieces) == budget:
            break
    pieces.sort(key=lambda p: -p[1])
    specials = [(t, 0.0) for t in special_tokens]
    if need_unk:
        specials.insert(0, (unk_token, 0.0))
    return Unigram(specials + pieces, unk_id=unk_id)


def train_unigram_model(word_counts: dict[str, int] | Iterable[tuple[str, int]], vocab_size: int, *,
                        special_tokens: Iterable[str] = (), unk_token: str | None = None,
                        initial_alphabet: Iterable[str] = (), shrinking_factor: float = 0.75,
                        n_sub_iterations: int = 2, max_piece_length: int = 16,
                        seed_size: int = 1_000_000) -> Unigram:
    """Learn a :class:`~scratchlm.tokenizers.models.Unigram` from pre-tokenized word counts (steps 1-4),
    HuggingFace ``UnigramTrainer``'s defaults."""
    words = sorted(dict(word_counts).items())
    special_tokens = list(dict.fromkeys(special_tokens))
    required = sorted({c for w, _ in words for c in w} | {a[0] for a in initial_alphabet if a})
    if len(required) > vocab_size:
        raise ScratchlmError(f"vocab_size {vocab_size} is smaller than the {len(required)} characters of the corpus")
    if not words:
        raise ScratchlmError("cannot train a Unigram model on an empty corpus")
    pieces = [(UNK, math.nan)] + seed_pieces(words, max_piece_length, seed_size)
    seeds = [p for p, _ in pieces]
    lattices = Lattices(words, seeds)
    desired = vocab_size * 11 // 10
    while True:
        model = Unigram(pieces, unk_id=0)
        for _ in range(n_sub_iterations):
            seed_to_id = np.array([model.vocab.get(s, -1) for s in seeds], dtype=np.int64)
            seed_to_id[0] = -1  # the placeholder matches no text
            pieces = m_step(pieces, list(expected_counts_fast(lattices, model, seed_to_id)))
            model = Unigram(pieces, unk_id=0)
        if len(pieces) <= desired:
            break
        seed_to_id = np.array([model.vocab.get(s, -1) for s in seeds], dtype=np.int64)
        seed_to_id[0] = -1
        pieces = prune(model, pieces, words, vocab_size, shrinking_factor,
                       freq=viterbi_counts_fast(lattices, model, seed_to_id))
    return finalize(model, required, vocab_size, special_tokens, unk_token)
