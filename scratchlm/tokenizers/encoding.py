"""One encoding result for every tokenizer (HuggingFace's ``Encoding``), and the arrays a model eats.

Offsets are character spans ``(start, end)`` into the text the token came from (``(0, 0)`` for
special and padding tokens); ``word_ids`` index the pre-tokenized words of each sequence.  What
happens to an encoding after the model (special tokens, truncation, padding) is in ``processors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scratchlm.errors import ScratchlmError


@dataclass
class Encoding:
    """The tokenization of one text (or pair): parallel lists, one entry per token."""

    ids: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    offsets: list[tuple[int, int]] = field(default_factory=list)
    type_ids: list[int] = field(default_factory=list)
    attention_mask: list[int] = field(default_factory=list)
    special_tokens_mask: list[int] = field(default_factory=list)
    word_ids: list[int | None] = field(default_factory=list)
    sequence_ids: list[int | None] = field(default_factory=list)
    overflowing: list[Encoding] = field(default_factory=list)  # the windows truncation cut off

    def __len__(self) -> int:
        return len(self.ids)

    # ------------------------------------------------------------------ HuggingFace's position helpers

    @property
    def n_sequences(self) -> int:
        """How many input sequences this encoding holds (1 or 2)."""
        return max(1, len({s for s in self.sequence_ids if s is not None}))

    def _in(self, sequence_index: int) -> range:
        return range(len(self)) if self.n_sequences == 1 else \
            [k for k, s in enumerate(self.sequence_ids) if s == sequence_index]

    def token_to_sequence(self, token_index: int) -> int | None:
        return self.sequence_ids[token_index] if 0 <= token_index < len(self) else None

    def token_to_word(self, token_index: int) -> int | None:
        return self.word_ids[token_index] if 0 <= token_index < len(self) else None

    def token_to_chars(self, token_index: int) -> tuple[int, int] | None:
        """The token's offsets in its own sequence's text; ``None`` for special tokens."""
        if not 0 <= token_index < len(self) or self.sequence_ids[token_index] is None:
            return None
        return self.offsets[token_index]

    def word_to_tokens(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        """The tokens ``[start, end)`` of word ``word_index`` of sequence ``sequence_index``."""
        hits = [k for k in self._in(sequence_index) if self.word_ids[k] == word_index]
        return (hits[0], hits[-1] + 1) if hits else None

    def word_to_chars(self, word_index: int, sequence_index: int = 0) -> tuple[int, int] | None:
        span = self.word_to_tokens(word_index, sequence_index)
        return None if span is None else (self.offsets[span[0]][0], self.offsets[span[1] - 1][1])

    def char_to_token(self, char_pos: int, sequence_index: int = 0) -> int | None:
        """The first token of sequence ``sequence_index`` whose offsets hold character ``char_pos``."""
        for k in self._in(sequence_index):
            if self.word_ids[k] is not None and self.offsets[k][0] <= char_pos < self.offsets[k][1]:
                return k
        return None

    def char_to_word(self, char_pos: int, sequence_index: int = 0) -> int | None:
        k = self.char_to_token(char_pos, sequence_index)
        return None if k is None else self.word_ids[k]

    @classmethod
    def from_tokens(cls, ids, tokens, offsets, word_ids, *, type_id: int = 0, sequence_id: int = 0) -> Encoding:
        n = len(ids)
        return cls(list(ids), list(tokens), list(offsets), [type_id] * n, [1] * n, [0] * n, list(word_ids),
                   [sequence_id] * n)

    def _fields(self):
        return (self.ids, self.tokens, self.offsets, self.type_ids, self.attention_mask,
                self.special_tokens_mask, self.word_ids, self.sequence_ids)

    def truncate(self, max_length: int, direction: str = "right", stride: int = 0) -> None:
        """Keep the first (``right``: cut on the right) or last ``max_length`` tokens, in place; the rest go to
        ``overflowing`` as windows of ``max_length`` tokens, each overlapping the one before by ``stride``
        (HuggingFace's ``Encoding::truncate``)."""
        n = len(self)
        if n <= max_length:
            return
        if max_length == 0:
            self.overflowing = [self._slice(0, n)]
            for values in self._fields():
                values[:] = []
            return
        if stride >= max_length:
            raise ScratchlmError(f"truncation stride {stride} must be smaller than max_length {max_length}")
        step, ranges = max_length - stride, []
        if direction == "right":
            for start in range(0, n, step):
                ranges.append((start, min(start + max_length, n)))
                if ranges[-1][1] == n:
                    break
        else:
            for stop in range(n, 0, -step):
                ranges.append((max(stop - max_length, 0), stop))
                if ranges[-1][0] == 0:
                    break
        parts = [self._slice(a, b) for a, b in ranges]
        for values, kept in zip(self._fields(), parts[0]._fields()):
            values[:] = kept
        self.overflowing = parts[1:]

    def copy(self) -> Encoding:
        return self._slice(0, len(self))

    def _slice(self, start: int, stop: int) -> Encoding:
        return Encoding(*(list(values[start:stop]) for values in self._fields()))

    def pad(self, length: int, *, pad_id: int, pad_type_id: int, pad_token: str, direction: str = "right") -> None:
        """Pad to ``length`` tokens (attention mask 0, special mask 1, offsets (0, 0)), in place."""
        for enc in self.overflowing:
            enc.pad(length, pad_id=pad_id, pad_type_id=pad_type_id, pad_token=pad_token, direction=direction)
        n = length - len(self)
        if n <= 0:
            return
        pads = ([pad_id] * n, [pad_token] * n, [(0, 0)] * n, [pad_type_id] * n, [0] * n, [1] * n, [None] * n,
                [None] * n)
        for values, pad in zip(self._fields(), pads):
            values[:] = values + pad if direction == "right" else pad + values

    @staticmethod
    def merge(encodings: list[Encoding]) -> Encoding:
        out = Encoding()
        for enc in encodings:
            for mine, theirs in zip(out._fields(), enc._fields()):
                mine.extend(theirs)
        return out


# ----------------------------------------------------------------------------- to arrays


def encodings_to_arrays(encodings: list[Encoding], *, dtype=np.int32) -> dict[str, np.ndarray]:
    """A batch of equally long encodings as HuggingFace-named arrays, each ``[B, T]``:
    ``input_ids``, ``attention_mask``, ``token_type_ids``.

    Encodings of different lengths are an error: pad them first (``tok.enable_padding()`` then
    ``tok.encode_batch``, which pads a batch to its longest member).
    """
    lengths = {len(e) for e in encodings}
    if not encodings:
        raise ScratchlmError("encodings_to_arrays needs at least one encoding")
    if len(lengths) != 1:
        raise ScratchlmError(
            f"encodings have different lengths {sorted(lengths)}; pad them (tok.enable_padding(), "
            "then tok.encode_batch) before making arrays")
    return {
        "input_ids": np.array([e.ids for e in encodings], dtype=dtype),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=dtype),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=dtype),
    }
