"""A word-level vocabulary: the words of a corpus, most frequent first, with special tokens in front.

``Vocab.from_corpus(sentences, min_count=5, max_size=None, specials=("<pad>", "<unk>"))`` keeps the
words seen at least ``min_count`` times, the ``max_size`` most frequent of them (ties broken by the
word itself, so the ids never depend on dictionary order), after the special tokens, which take ids
0, 1, ...  Unknown words map to the ``unk`` token (``<unk>`` by default; an error when it is absent).
Saved as JSON: ``{"specials": [...], "unk": "<unk>", "tokens": [...], "counts": [...]}``.

Counting the words of a corpus is vocabulary work too: :func:`word_counts` counts them,
:func:`ranked_words` ranks them (the one ranking rule: count descending, ties by the word itself,
the order of the Stanford GloVe tool's ``vocab_count``), and :func:`vocabulary_from_counts` is that
ranking as the ``(words, counts)`` pair GloVe's co-occurrence counting indexes by.  Plain Python and
NumPy: no JAX.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.io import read_text


@dataclass(frozen=True)
class Vocab:
    tokens: tuple[str, ...]  # id -> token; specials first
    counts: tuple[int, ...]  # corpus count per id (0 for specials)
    specials: tuple[str, ...] = ("<pad>", "<unk>")
    unk: str | None = "<unk>"

    def __post_init__(self):
        index = {t: i for i, t in enumerate(self.tokens)}
        if len(index) != len(self.tokens):
            raise ScratchlmError("Vocab tokens must be distinct")
        if self.unk is not None and self.unk not in index:
            raise ScratchlmError(f"Vocab: the unknown token {self.unk!r} is not among the tokens")
        object.__setattr__(self, "_index", index)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], *, min_count: int = 1, max_size: int | None = None,
                    specials: Iterable[str] = ("<pad>", "<unk>"), unk: str | None = "<unk>") -> Vocab:
        """Words with ``count >= min_count`` in :func:`ranked_words`' order (most frequent first, ties by the
        word), at most ``max_size`` of them (specials not counted), after the special tokens."""
        if max_size is not None and max_size < 0:
            raise ScratchlmError(f"max_size must be >= 0, got {max_size}")
        specials = tuple(specials)
        kept = ranked_words(counts, min_count=min_count, max_size=max_size, exclude=specials)
        if not kept:
            raise CorpusError(f"no word occurs at least min_count={min_count} times "
                              f"({len(counts)} distinct words counted)")
        return cls(specials + tuple(w for w, _ in kept), (0,) * len(specials) + tuple(c for _, c in kept),
                   specials, unk)

    @classmethod
    def from_corpus(cls, sentences: Iterable[Iterable[str]], **kwargs) -> Vocab:
        """:func:`word_counts` of tokenized sentences (e.g. ``corpora.load_tokenized_corpus("wiki")``), then
        :meth:`from_counts`."""
        counts = word_counts(sentences)
        if not counts:
            raise CorpusError("cannot build a vocabulary from an empty corpus")
        return cls.from_counts(counts, **kwargs)

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def token_to_id(self, token: str) -> int | None:
        return self._index.get(token)

    def id_to_token(self, i: int) -> str:
        return self.tokens[i]

    @property
    def unk_id(self) -> int | None:
        return None if self.unk is None else self._index[self.unk]

    def encode(self, words: Iterable[str]) -> list[int]:
        """Ids of ``words``; unknown words get the ``unk`` id (an error if the vocabulary has none)."""
        index, unk = self._index, self.unk_id
        out = []
        for w in words:
            i = index.get(w, unk)
            if i is None:
                raise ScratchlmError(f"word {w!r} is not in the vocabulary and it has no unknown token")
            out.append(i)
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.tokens[int(i)] for i in ids]

    def save(self, path: str | Path) -> None:
        data = {"specials": list(self.specials), "unk": self.unk, "tokens": list(self.tokens),
                "counts": list(self.counts)}
        Path(path).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        try:
            data = json.loads(read_text(path))
            return cls(tuple(data["tokens"]), tuple(data["counts"]), tuple(data["specials"]), data["unk"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ScratchlmError(f"{path} is not a scratchlm vocabulary file: {err}") from None


def word_counts(sentences: Iterable[Sequence[str]]) -> Counter[str]:
    """Each word's count over tokenized sentences (the first pass of GloVe's ``vocab_count``).

    A :class:`collections.Counter`: its iteration order is each word's first appearance, which no
    ranking here depends on (:func:`ranked_words` breaks ties by the word itself).
    """
    return Counter(itertools.chain.from_iterable(sentences))  # one counting loop in C over every token


def ranked_words(counts: Mapping[str, int], *, min_count: int = 1, max_size: int | None = None,
                 exclude: Iterable[str] = ()) -> list[tuple[str, int]]:
    """The ``(word, count)`` pairs with ``count >= min_count``, ranked, cut to the first ``max_size``.

    The ranking, the one rule of this module: count descending, ties broken by the word itself in
    ascending code-point order (Python's ``str`` order), i.e. the sort key ``(-count, word)``, as
    the Stanford GloVe tool's ``vocab_count`` ranks.  So a vocabulary never depends on the order in
    which words were first seen, nor on how a corpus was split across processes.  Words in
    ``exclude`` (a vocabulary's special tokens) are left out.
    """
    if min_count < 1:
        raise ScratchlmError(f"min_count must be >= 1, got {min_count}")
    exclude = set(exclude)
    kept = sorted(((w, c) for w, c in counts.items() if c >= min_count and w not in exclude),
                  key=lambda wc: (-wc[1], wc[0]))
    return kept if max_size is None else kept[:max_size]


def vocabulary_from_counts(counts: Mapping[str, int], *, min_count: int = 5,
                           max_size: int | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """GloVe's vocabulary: :func:`ranked_words` of ``counts`` as ``(words, counts)``; a word's id is its rank.

    ``counts`` is :func:`word_counts` of the corpus, or of each process's share summed
    (:func:`scratchlm.distributed.allgather_counts`: the ranking does not depend on the order).
    Returns ``words`` [V] and ``counts`` [V] int64, ranked by count descending, ties alphabetically
    (``vocab_count``'s order), at most ``max_size`` of them.
    """
    if min_count < 1:
        raise ScratchlmError(f"min_count must be >= 1, got {min_count}")
    if max_size is not None and max_size < 1:
        raise ScratchlmError(f"max_size must be >= 1 or None, got {max_size}")
    if not counts:
        raise CorpusError("the corpus is empty: no word to count")
    ranked = ranked_words(counts, min_count=min_count, max_size=max_size)
    if not ranked:
        raise CorpusError(f"no word occurs at least min_count={min_count} times "
                          f"(the most frequent occurs {max(counts.values())} times); lower --min-count")
    return tuple(w for w, _ in ranked), np.array([c for _, c in ranked], dtype=np.int64)


def build_vocabulary(sentences: Iterable[Sequence[str]], *, min_count: int = 5,
                     max_size: int | None = None) -> tuple[tuple[str, ...], np.ndarray]:
    """:func:`vocabulary_from_counts` of :func:`word_counts` of ``sentences``: GloVe's ``vocab_count``."""
    if min_count < 1:  # checked again below, but here before the pass over the corpus
        raise ScratchlmError(f"min_count must be >= 1, got {min_count}")
    return vocabulary_from_counts(word_counts(sentences), min_count=min_count, max_size=max_size)
