r"""Byte-pair encoding (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword
Units", Algorithm 1; byte-level as in GPT-2, Radford et al. 2019).

Training.  Start from the characters of each word :math:`w` (weighted by its corpus count
:math:`n_w`) and repeat until the vocabulary has ``vocab_size`` tokens: merge the most frequent
adjacent pair

.. math::  (a, b)^\ast = \arg\max_{(a, b)} \; c(a, b), \qquad
           c(a, b) = \sum_w n_w \, \#\{i : w_i = a, w_{i+1} = b\},

ties going to the pair with the smaller ids :math:`(\mathrm{id}_a, \mathrm{id}_b)` (HuggingFace's
``BpeTrainer`` rule, which we follow so both learn the same merges in the same order).  Counts are
updated incrementally: merging :math:`(a, b)` visits only the words that hold it (an index from pair
to words) and changes only the counts of the pairs around each occurrence,
:math:`c(x, a) \mathrel{-}= n_w,\ c(x, ab) \mathrel{+}= n_w,\ c(b, y) \mathrel{-}= n_w,\ c(ab, y) \mathrel{+}= n_w`.
A max-heap holds the candidates; an entry whose count went stale is re-inserted with the current
count when it reaches the top (lazy deletion).  The heap entries, the word sets attached to them,
and the one-occurrence-at-a-time bookkeeping follow HuggingFace's trainer exactly — including its
quirk that an entry only merges the words recorded with it, so a pair can be merged a second time
later (the later rank wins, as in HuggingFace's merge table).

Encoding a word: split into symbols (characters, or GPT-2 bytes), then repeatedly merge the leftmost
occurrence of the adjacent pair of lowest merge rank, until no pair has a rank; cached per word by
the tokenizer.  Byte-level decoding is lossless (``decoders.ByteLevelDecoder``).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable

from scratchlm.errors import CorpusError, ScratchlmError


class BPE:
    """The BPE model: a vocabulary and ranked merges; ``tokenize(word)`` applies them."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *, unk_token: str | None = None,
                 continuing_subword_prefix: str | None = None, end_of_word_suffix: str | None = None,
                 fuse_unk: bool = False, ignore_merges: bool = False):
        self.vocab = dict(vocab)
        self.inverse = {i: t for t, i in self.vocab.items()}
        self.merges = [tuple(m) for m in merges]
        self.unk_token = unk_token
        self.prefix = continuing_subword_prefix
        self.suffix = end_of_word_suffix
        self.fuse_unk = fuse_unk
        self.ignore_merges = ignore_merges
        # (id_a, id_b) -> (rank, id_ab); the merged token drops b's continuation prefix.
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}
        n_prefix = len(self.prefix or "")
        for rank, (a, b) in enumerate(self.merges):
            merged = a + (b[n_prefix:] if self.prefix and b.startswith(self.prefix) else b)
            for token in (a, b, merged):
                if token not in self.vocab:
                    raise ScratchlmError(f"BPE merge {rank} ({a!r}, {b!r}): token {token!r} is not in the vocabulary")
            self.ranks[(self.vocab[a], self.vocab[b])] = (rank, self.vocab[merged])

    def tokenize(self, word: str) -> list[tuple[int, str, int, int]]:
        """``[(id, token, start, end), ...]`` for one word; offsets in characters of ``word``."""
        if self.ignore_merges and word in self.vocab:
            return [(self.vocab[word], word, 0, len(word))]
        vocab, unk = self.vocab, self.unk_token
        ids, spans = [], []
        n = len(word)
        for i, ch in enumerate(word):
            s = ch
            if i > 0 and self.prefix:
                s = self.prefix + s
            if i == n - 1 and self.suffix:
                s = s + self.suffix
            t = vocab.get(s)
            if t is not None:
                ids.append(t)
                spans.append([i, i + 1])
            elif unk is not None:
                if unk not in vocab:
                    raise ScratchlmError(f"BPE: the unknown token {unk!r} is not in the vocabulary")
                if self.fuse_unk and ids and ids[-1] == vocab[unk] and spans[-1][1] == i:
                    spans[-1][1] = i + 1
                else:
                    ids.append(vocab[unk])
                    spans.append([i, i + 1])
            # else: HuggingFace drops a character it cannot represent
        ranks = self.ranks
        while len(ids) > 1:
            best, best_at = None, -1
            for k in range(len(ids) - 1):
                r = ranks.get((ids[k], ids[k + 1]))
                if r is not None and (best is None or r[0] < best[0]):
                    best, best_at = r, k
            if best is None:
                break
            ids[best_at:best_at + 2] = [best[1]]
            spans[best_at:best_at + 2] = [[spans[best_at][0], spans[best_at + 1][1]]]
        inverse = self.inverse
        return [(t, inverse[t], s, e) for t, (s, e) in zip(ids, spans)]

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def id_to_token(self, i: int) -> str | None:
        return self.inverse.get(i)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def to_json(self) -> dict:
        return {"type": "BPE", "dropout": None, "unk_token": self.unk_token,
                "continuing_subword_prefix": self.prefix, "end_of_word_suffix": self.suffix,
                "fuse_unk": self.fuse_unk, "byte_fallback": False, "ignore_merges": self.ignore_merges,
                "vocab": dict(sorted(self.vocab.items(), key=lambda kv: kv[1])),
                "merges": [list(m) for m in self.merges]}

    @classmethod
    def from_json(cls, spec: dict) -> BPE:
        if spec.get("dropout") not in (None, 0, 0.0):
            raise ScratchlmError("BPE dropout is not supported by scratchlm (encoding is deterministic)")
        if spec.get("byte_fallback"):
            raise ScratchlmError("BPE byte_fallback is not supported by scratchlm (use a byte-level pre-tokenizer)")
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in spec.get("merges", [])]
        return cls(spec["vocab"], merges, unk_token=spec.get("unk_token"),
                   continuing_subword_prefix=spec.get("continuing_subword_prefix"),
                   end_of_word_suffix=spec.get("end_of_word_suffix"), fuse_unk=spec.get("fuse_unk", False),
                   ignore_merges=spec.get("ignore_merges", False))


# ----------------------------------------------------------------------------- training


def merge_pair(words: list[list[int]], counts: list[int], positions: Iterable[int], pair: tuple[int, int], new: int,
               pair_counts: dict[tuple[int, int], int]) -> dict[tuple[int, int], set[int]]:
    """Replace each occurrence of ``pair`` by ``new`` in the words at ``positions`` (left to right, not
    overlapping) and update the neighbouring pair counts; returns the pairs gained, with their words.

    The merged pair's own count is left as it is, as HuggingFace leaves it (its heap entry is gone).
    """
    a, b = pair
    gained: dict[tuple[int, int], set[int]] = {}
    for w in positions:
        symbols, n = words[w], counts[w]
        if a not in symbols:
            continue
        i = 0
        while i < len(symbols) - 1:
            if symbols[i] == a and symbols[i + 1] == b:
                if i > 0:
                    x = symbols[i - 1]
                    pair_counts[(x, a)] -= n
                    p = (x, new)
                    pair_counts[p] = pair_counts.get(p, 0) + n
                    gained.setdefault(p, set()).add(w)
                symbols[i:i + 2] = [new]
                if i < len(symbols) - 1:
                    y = symbols[i + 1]
                    pair_counts[(b, y)] -= n
                    p = (new, y)
                    pair_counts[p] = pair_counts.get(p, 0) + n
                    gained.setdefault(p, set()).add(w)
            i += 1
    return gained


def learn_merges(word_counts: dict[str, int], vocab_size: int, *, special_tokens: Iterable[str] = (),
                 initial_alphabet: Iterable[str] = (), limit_alphabet: int | None = None, min_frequency: int = 0,
                 continuing_subword_prefix: str | None = None, end_of_word_suffix: str | None = None,
                 score: str = "frequency") -> tuple[list[str], list[tuple[str, str]]]:
    r"""Learn BPE merges from word counts; returns ``(id_to_token, merges)`` (HuggingFace's ``BpeTrainer``).

    The vocabulary is: the special tokens, the alphabet (characters of the words plus
    ``initial_alphabet``, sorted by code point; ``limit_alphabet`` keeps the most frequent), the
    prefixed / suffixed characters in order of first appearance (HuggingFace numbers them in its
    hash-map order, which changes from run to run), then one token per merge.

    ``score="likelihood"`` picks instead the pair maximising the WordPiece likelihood gain
    :math:`c(a, b) / (c(a)\, c(b))` (Schuster & Nakajima 2012; Wu et al. 2016), with :math:`c(a)` the
    corpus count of symbol :math:`a`; it rescans all pairs per merge, so it is meant for small corpora.
    """
    if score not in ("frequency", "likelihood"):
        raise ScratchlmError(f"score must be 'frequency' or 'likelihood', got {score!r}")
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

    pair_counts: dict[tuple[int, int], int] = {}
    where: dict[tuple[int, int], set[int]] = {}
    for w, (symbols, n) in enumerate(zip(words, counts)):
        for pair in zip(symbols, symbols[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + n
            s = where.get(pair)
            if s is None:
                where[pair] = {w}
            else:
                s.add(w)
    n_prefix = len(continuing_subword_prefix or "")

    def merged_token(pair: tuple[int, int]) -> int:
        part_b = id_to_token[pair[1]]
        if continuing_subword_prefix and part_b.startswith(continuing_subword_prefix):
            part_b = part_b[n_prefix:]
        return add(id_to_token[pair[0]] + part_b)

    if score == "likelihood":
        merges = _likelihood_merges(words, counts, pair_counts, where, merged_token, lambda: len(token_to_id),
                                    vocab_size, min_frequency)
    else:
        merges = _frequency_merges(words, counts, pair_counts, where, merged_token, lambda: len(token_to_id),
                                   vocab_size, min_frequency)

    # A pair merged twice keeps its last rank (HuggingFace's merge table is keyed by pair).
    last_rank = {pair: r for r, (pair, _) in enumerate(merges)}
    ordered = [pair for r, (pair, _) in enumerate(merges) if last_rank[pair] == r]
    return id_to_token, [(id_to_token[a], id_to_token[b]) for a, b in ordered]


def _frequency_merges(words, counts, pair_counts, where, merged_token, vocab_len, vocab_size, min_frequency):
    """HuggingFace's merge loop: a max-heap on (count, then smallest pair), lazily re-validated."""
    # Entries (-count, pair, sequence number, words holding the pair when the entry was made).
    seq = 0
    heap = []
    for pair, positions in where.items():
        if pair_counts[pair] > 0:
            heap.append((-pair_counts[pair], pair, seq, positions))
            seq += 1
    heapq.heapify(heap)
    merges: list[tuple[tuple[int, int], int]] = []
    while vocab_len() < vocab_size and heap:
        neg, pair, _, positions = heapq.heappop(heap)
        current = pair_counts[pair]
        if -neg != current:
            heapq.heappush(heap, (-current, pair, seq, positions))
            seq += 1
            continue
        if current < 1 or min_frequency > current:
            break
        new = merged_token(pair)
        merges.append((pair, new))
        for p, ws in merge_pair(words, counts, positions, pair, new, pair_counts).items():
            c = pair_counts[p]
            if c > 0:
                heapq.heappush(heap, (-c, p, seq, ws))
                seq += 1
    return merges


def _likelihood_merges(words, counts, pair_counts, where, merged_token, vocab_len, vocab_size, min_frequency):
    """WordPiece's rule: merge the pair of highest c(ab) / (c(a) c(b)); exact counts, recounted per touched word."""
    symbol_counts: Counter = Counter()
    for symbols, n in zip(words, counts):
        for t in symbols:
            symbol_counts[t] += n
    merges: list[tuple[tuple[int, int], int]] = []
    while vocab_len() < vocab_size:
        candidates = [(c / (symbol_counts[a] * symbol_counts[b]), -a, -b) for (a, b), c in pair_counts.items()
                      if c > 0 and c >= min_frequency]
        if not candidates:
            break
        _, a, b = max(candidates)
        pair = (-a, -b)
        new = merged_token(pair)
        merges.append((pair, new))
        for w in list(where[pair]):
            symbols, n = words[w], counts[w]
            for p in zip(symbols, symbols[1:]):
                pair_counts[p] -= n
            for t in symbols:
                symbol_counts[t] -= n
            merge_pair(words, counts, (w,), pair, new, dict.fromkeys(zip(symbols, symbols[1:]), 0))  # counts redone below
            for p in zip(symbols, symbols[1:]):
                pair_counts[p] = pair_counts.get(p, 0) + n
                where.setdefault(p, set()).add(w)
            for t in symbols:
                symbol_counts[t] += n
    return merges


def train(texts: Iterable[str], vocab_size: int, *, byte_level: bool = True, special_tokens: Iterable[str] = (),
          min_frequency: int = 0, limit_alphabet: int | None = None):
    r"""Train a BPE tokenizer on ``texts``; returns a :class:`~scratchlm.tokenizers.Tokenizer`.

    ``byte_level=True``: GPT-2's byte-level pre-tokenizer (no prefix space, so ``decode(encode(s)) == s``)
    with all 256 byte symbols in the alphabet, as HuggingFace's ``ByteLevelBPETokenizer`` trains.
    Otherwise words split by ``Whitespace`` (``\w+|[^\w\s]+``), characters as the alphabet, no unknown token.
    Other settings are HuggingFace ``BpeTrainer``'s defaults.
    """
    from scratchlm.tokenizers import decoders, pretokenize
    from scratchlm.tokenizers.tokenizer import AddedToken, Tokenizer

    special_tokens = list(dict.fromkeys(special_tokens))
    if byte_level:
        pre = pretokenize.ByteLevel(add_prefix_space=False)
        alphabet = list(pretokenize.bytes_to_unicode().values())
        decoder = decoders.ByteLevelDecoder()
    else:
        pre, alphabet, decoder = pretokenize.Whitespace(), [], None
    words: Counter = Counter()
    for text in texts:
        words.update(pre.pattern.findall(text))
    word_counts: Counter = Counter()
    for word, n in words.items():
        word_counts[pre.transform(word)[0]] += n
    id_to_token, merges = learn_merges(word_counts, vocab_size, special_tokens=special_tokens,
                                       initial_alphabet=alphabet, limit_alphabet=limit_alphabet,
                                       min_frequency=min_frequency)
    vocab = {t: i for i, t in enumerate(id_to_token)}
    added = [AddedToken(t, vocab[t], special=True) for t in special_tokens]
    return Tokenizer(BPE(vocab, merges), pre_tokenizer=pre, decoder=decoder, added_tokens=added)
