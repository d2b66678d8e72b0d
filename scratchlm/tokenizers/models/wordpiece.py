"""WordPiece: greedy longest-match-first sub-words with ``##`` continuations (Wu et al. 2016, §4.1;
Devlin et al. 2019, ``WordpieceTokenizer`` in google-research/bert ``tokenization.py``).

Encoding a word :math:`w = c_1 \\dots c_n`: from position :math:`i` (start 1) take the longest
:math:`c_i \\dots c_j` in the vocabulary (written ``##c_i...c_j`` when :math:`i > 1`), continue from
:math:`j + 1`; if no prefix matches, or the word is longer than ``max_input_chars_per_word``, the whole
word becomes ``[UNK]``.

The vocabulary is learnt by :func:`scratchlm.tokenizers.trainers.learn_merges` (see
:func:`scratchlm.tokenizers.pipelines.train_bert_wordpiece`): HuggingFace's ``WordPieceTrainer`` is its BPE
trainer with ``##`` on every non-initial symbol, merging the most *frequent* pair; the WordPiece paper's
likelihood rule — merge the pair maximising
:math:`\\mathrm{count}(ab) / (\\mathrm{count}(a)\\,\\mathrm{count}(b))` — is the score
:func:`scratchlm.tokenizers.trainers.likelihood` (FIELD-NOTES: HuggingFace's vocabulary needs the frequency rule).
"""

from __future__ import annotations

from pathlib import Path

from scratchlm.errors import ScratchlmError
from scratchlm.io import read_text
from scratchlm.tokenizers.models.base import Model


class WordPiece(Model):
    """The WordPiece model: a vocabulary and greedy longest-match-first ``tokenize(word)``."""

    def __init__(self, vocab: dict[str, int], *, unk_token: str = "[UNK]", continuing_subword_prefix: str = "##",
                 max_input_chars_per_word: int = 100):
        super().__init__(vocab)
        self.unk_token = unk_token
        self.prefix = continuing_subword_prefix
        self.max_input_chars_per_word = max_input_chars_per_word
        # No vocabulary entry is longer than this, so longer candidates need no lookup.
        self._longest = max((len(t) for t in self.vocab), default=0)

    @classmethod
    def from_vocab_file(cls, path: str | Path, **kwargs) -> WordPiece:
        """BERT's ``vocab.txt``: one token a line, the id is the line number (from 0)."""
        tokens = read_text(path).split("\n")
        if tokens and tokens[-1] == "":
            tokens.pop()
        return cls({t: i for i, t in enumerate(tokens)}, **kwargs)

    def save_vocab(self, path: str | Path) -> None:
        Path(path).write_text("".join(self.inverse[i] + "\n" for i in sorted(self.inverse)), encoding="utf-8")

    def tokenize(self, word: str) -> list[tuple[int, str, int, int]]:
        """``[(id, token, start, end), ...]`` for one pre-tokenized word; offsets are characters of ``word``."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [self._unk(n)]
        vocab, prefix, pieces = self.vocab, self.prefix, []
        start = 0
        while start < n:
            end = min(n, start + self._longest)
            while end > start:
                piece = word[start:end] if start == 0 else prefix + word[start:end]
                i = vocab.get(piece)
                if i is not None:
                    pieces.append((i, piece, start, end))
                    break
                end -= 1
            else:
                return [self._unk(n)]
            start = end
        return pieces

    def _unk(self, n: int) -> tuple[int, str, int, int]:
        i = self.vocab.get(self.unk_token)
        if i is None:
            raise ScratchlmError(f"WordPiece: the unknown token {self.unk_token!r} is not in the vocabulary")
        return (i, self.unk_token, 0, n)

    def to_json(self) -> dict:
        return {"type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": self.prefix,
                "max_input_chars_per_word": self.max_input_chars_per_word,
                "vocab": dict(sorted(self.vocab.items(), key=lambda kv: kv[1]))}

    @classmethod
    def from_json(cls, spec: dict) -> WordPiece:
        return cls(spec["vocab"], unk_token=spec.get("unk_token", "[UNK]"),
                   continuing_subword_prefix=spec.get("continuing_subword_prefix", "##"),
                   max_input_chars_per_word=spec.get("max_input_chars_per_word", 100))
