"""WordLevel: each pre-tokenized word is one token, or the unknown token (HuggingFace's ``WordLevel``).

.. math::  \\mathrm{tokenize}(w) = \\begin{cases} w & w \\in V \\\\ \\mathrm{unk} & \\text{otherwise} \\end{cases}

the word-level vocabulary of classic neural language models (Bengio et al. 2003, §2: one symbol a word).
"""

from __future__ import annotations

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers.models.base import Model


class WordLevel(Model):
    """A vocabulary of whole words; ``tokenize(word)`` looks the word up."""

    def __init__(self, vocab: dict[str, int], *, unk_token: str = "<unk>"):
        super().__init__(vocab)
        self.unk_token = unk_token

    def tokenize(self, word: str) -> list[tuple[int, str, int, int]]:
        i = self.vocab.get(word)
        if i is not None:
            return [(i, word, 0, len(word))]
        unk = self.vocab.get(self.unk_token)
        if unk is None:
            raise ScratchlmError(f"WordLevel: {word!r} is not in the vocabulary and neither is the unknown token "
                                 f"{self.unk_token!r}")
        return [(unk, self.unk_token, 0, len(word))]

    def to_json(self) -> dict:
        return {"type": "WordLevel", "vocab": dict(sorted(self.vocab.items(), key=lambda kv: kv[1])),
                "unk_token": self.unk_token}

    @classmethod
    def from_json(cls, spec: dict) -> WordLevel:
        return cls(spec["vocab"], unk_token=spec.get("unk_token", "<unk>"))
