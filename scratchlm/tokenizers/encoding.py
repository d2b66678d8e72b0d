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

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_tokens(cls, ids, tokens, offsets, word_ids, *, type_id: int = 0, sequence_id: int = 0) -> Encoding:
        n = len(ids)
        return cls(list(ids), list(tokens), list(offsets), [type_id] * n, [1] * n, [0] * n, list(word_ids),
                   [sequence_id] * n)

    def _fields(self):
        return (self.ids, self.tokens, self.offsets, self.type_ids, self.attention_mask,
                self.special_tokens_mask, self.word_ids, self.sequence_ids)

    def truncate(self, max_length: int, direction: str = "right") -> None:
        """Keep the first (``right``: cut on the right) or last ``max_length`` tokens, in place."""
        if len(self) <= max_length:
            return
        for values in self._fields():
            kept = values[:max_length] if direction == "right" else values[len(values) - max_length:]
            values[:] = kept

    def pad(self, length: int, *, pad_id: int, pad_type_id: int, pad_token: str, direction: str = "right") -> None:
        """Pad to ``length`` tokens (attention mask 0, special mask 1, offsets (0, 0)), in place."""
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
