"""Text <-> token ids for the language model: a word :class:`~scratchlm.tokenizers.Vocab` or any tokenizer.json.

:class:`TextCodec` adapts the two tokenizer kinds to one interface (``encode``, ``decode``,
``vocab_size``, ``eos_id``, ``stream``) so the language-model recipe (:mod:`scratchlm.training.lm`)
and its commands need not know which one they hold.  No JAX here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scratchlm import tokenizers
from scratchlm.data.corpora import word_tokens
from scratchlm.errors import ScratchlmError

EOS = "<eos>"  # ends each paragraph in the word-level token stream
MAX_VOCAB = 10000  # word vocabulary size (specials excluded): the Wikipedia sample's frequent words
MIN_COUNT = 2  # rarer words become <unk>


class TextCodec:
    """The LM's tokenizer: a word :class:`~scratchlm.tokenizers.Vocab` or any tokenizer.json (no JAX here)."""

    def __init__(self, kind: str, impl):
        self.kind, self.impl = kind, impl  # kind: "word" | "file"

    @classmethod
    def build(cls, spec: str, paragraphs: list[str], *, max_vocab: int = MAX_VOCAB,
              min_count: int = MIN_COUNT) -> TextCodec:
        """``spec`` ``"word"``: a word vocabulary of ``paragraphs`` (the ``max_vocab`` most frequent words seen
        ``min_count`` times or more, plus ``<pad>``, ``<unk>``, ``<eos>``); else the path of a tokenizer.json."""
        if spec == "word":
            vocab = tokenizers.Vocab.from_corpus((word_tokens(p) for p in paragraphs), min_count=min_count,
                                                 max_size=max_vocab, specials=("<pad>", "<unk>", EOS))
            return cls("word", vocab)
        if not Path(spec).is_file():
            raise ScratchlmError(f"--tokenizer {spec!r}: give 'word' or the path of a tokenizer.json")
        tok = tokenizers.load(spec)
        tok.no_padding()
        tok.no_truncation()
        return cls("file", tok)

    @classmethod
    def load(cls, folder: Path) -> TextCodec:
        if (folder / "vocab.json").is_file():
            return cls("word", tokenizers.Vocab.load(folder / "vocab.json"))
        tok = tokenizers.load(folder / "tokenizer.json")
        tok.no_padding()
        tok.no_truncation()
        return cls("file", tok)

    def save(self, folder: Path) -> None:
        self.impl.save(folder / ("vocab.json" if self.kind == "word" else "tokenizer.json"))

    @property
    def vocab_size(self) -> int:
        return len(self.impl) if self.kind == "word" else self.impl.get_vocab_size()

    @property
    def eos_id(self) -> int | None:
        if self.kind == "word":
            return self.impl.token_to_id(EOS)
        return self.impl.sep_token_id if self.impl.sep_token_id is not None else self.impl.token_to_id("</s>")

    def encode(self, text: str) -> list[int]:
        if self.kind == "word":
            return self.impl.encode(word_tokens(text))
        return list(self.impl.encode(text, add_special_tokens=False).ids)

    def decode(self, ids) -> str:
        if self.kind == "word":
            return " ".join(self.impl.decode(ids))
        return self.impl.decode([int(i) for i in ids], skip_special_tokens=False)

    def stream(self, paragraphs: list[str]):
        """All paragraphs as one id stream, each followed by the end-of-paragraph id (when there is one)."""
        eos = [] if self.eos_id is None else [self.eos_id]
        return np.asarray([i for p in paragraphs for i in self.encode(p) + eos], dtype=np.int32)
