"""A word-level vocabulary: the words of a corpus, most frequent first, with special tokens in front.

``Vocab.from_corpus(sentences, min_count=5, max_size=None, specials=("<pad>", "<unk>"))`` keeps the
words seen at least ``min_count`` times, the ``max_size`` most frequent of them (ties broken by the
word itself, so the ids never depend on dictionary order), after the special tokens, which take ids
0, 1, ...  Unknown words map to the ``unk`` token (``<unk>`` by default; an error when it is absent).
Saved as JSON: ``{"specials": [...], "unk": "<unk>", "tokens": [...], "counts": [...]}``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

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
        """Words with ``count >= min_count``, most frequent first (ties: alphabetical), at most ``max_size``
        of them (specials not counted), after the special tokens."""
        if min_count < 1:
            raise ScratchlmError(f"min_count must be >= 1, got {min_count}")
        if max_size is not None and max_size < 0:
            raise ScratchlmError(f"max_size must be >= 0, got {max_size}")
        specials = tuple(specials)
        kept = sorted(((w, c) for w, c in counts.items() if c >= min_count and w not in specials), key=lambda wc: (-wc[1], wc[0]))
        if max_size is not None:
            kept = kept[:max_size]
        if not kept:
            raise CorpusError(f"no word occurs at least min_count={min_count} times ({len(counts)} distinct words counted)")
        return cls(specials + tuple(w for w, _ in kept), (0,) * len(specials) + tuple(c for _, c in kept), specials, unk)

    @classmethod
    def from_corpus(cls, sentences: Iterable[Iterable[str]], **kwargs) -> Vocab:
        """Count the words of tokenized sentences (e.g. ``corpora.load_tokenized_corpus("wiki")``) then :meth:`from_counts`."""
        counts = Counter()
        for sentence in sentences:
            counts.update(sentence)
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
        data = {"specials": list(self.specials), "unk": self.unk, "tokens": list(self.tokens), "counts": list(self.counts)}
        Path(path).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Vocab:
        try:
            data = json.loads(read_text(path))
            return cls(tuple(data["tokens"]), tuple(data["counts"]), tuple(data["specials"]), data["unk"])
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ScratchlmError(f"{path} is not a scratchlm vocabulary file: {err}") from None
