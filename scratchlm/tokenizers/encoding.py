"""One encoding result for every tokenizer, and what happens to it after the model: special tokens
(a template such as BERT's ``[CLS] A [SEP] B [SEP]``), truncation and padding, and the arrays a model eats.

The semantics are HuggingFace ``tokenizers``' (``Encoding``, ``TemplateProcessing``,
``truncate_encodings``, ``pad_encodings``), so ids, masks and type ids agree token for token:

* offsets are character spans ``(start, end)`` into the text the token came from (``(0, 0)`` for
  special and padding tokens); ``word_ids`` index the pre-tokenized words of each sequence;
* truncation happens before the special tokens are added, with ``max_length`` reduced by their count;
  ``longest_first`` on a pair cuts the longer sequence first and, if both are long, gives each half;
* padding never truncates: ``length=None`` pads a batch to its longest encoding.
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
        return cls(list(ids), list(tokens), list(offsets), [type_id] * n, [1] * n, [0] * n, list(word_ids), [sequence_id] * n)

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
        pads = ([pad_id] * n, [pad_token] * n, [(0, 0)] * n, [pad_type_id] * n, [0] * n, [1] * n, [None] * n, [None] * n)
        for values, pad in zip(self._fields(), pads):
            values[:] = values + pad if direction == "right" else pad + values

    @staticmethod
    def merge(encodings: list[Encoding]) -> Encoding:
        out = Encoding()
        for enc in encodings:
            for mine, theirs in zip(out._fields(), enc._fields()):
                mine.extend(theirs)
        return out


# ----------------------------------------------------------------------------- special tokens


@dataclass(frozen=True)
class TemplateProcessing:
    """Where special tokens go: ``single`` and ``pair`` are lists of pieces, each ``("A"|"B", type_id)`` for a
    sequence or ``(token, type_id)`` for a special token whose ids are ``special_tokens[token]``.

    BERT (Devlin et al. 2019, §3): ``single = [CLS] A [SEP]``, ``pair = [CLS] A [SEP] B [SEP]`` with
    ``token_type_ids`` 0 up to the first ``[SEP]`` and 1 after it.
    """

    single: tuple[tuple[str, int], ...]
    pair: tuple[tuple[str, int], ...]
    special_tokens: dict[str, tuple[tuple[int, ...], tuple[str, ...]]]
    trim_offsets: bool = False  # only ByteLevel post-processors trim leading/trailing spaces from offsets

    @classmethod
    def bert(cls, cls_token: str, cls_id: int, sep_token: str, sep_id: int) -> TemplateProcessing:
        return cls(single=((cls_token, 0), ("A", 0), (sep_token, 0)),
                   pair=((cls_token, 0), ("A", 0), (sep_token, 0), ("B", 1), (sep_token, 1)),
                   special_tokens={cls_token: ((cls_id,), (cls_token,)), sep_token: ((sep_id,), (sep_token,))})

    def num_special_tokens_to_add(self, is_pair: bool) -> int:
        template = self.pair if is_pair else self.single
        return sum(len(self.special_tokens[p][0]) for p, _ in template if p not in ("A", "B"))

    def process(self, first: Encoding, second: Encoding | None, add_special_tokens: bool) -> Encoding:
        template = self.single if second is None else self.pair
        out = Encoding()
        for piece, type_id in template:
            if piece in ("A", "B"):
                enc, sequence_id = (first, 0) if piece == "A" else (second, 1)
                n = len(enc)
                out.ids += enc.ids
                out.tokens += enc.tokens
                out.offsets += enc.offsets
                out.type_ids += [type_id] * n
                out.attention_mask += enc.attention_mask
                out.special_tokens_mask += enc.special_tokens_mask
                out.word_ids += enc.word_ids
                out.sequence_ids += [sequence_id] * n
            elif add_special_tokens:
                ids, tokens = self.special_tokens[piece]
                n = len(ids)
                out.ids += ids
                out.tokens += tokens
                out.offsets += [(0, 0)] * n
                out.type_ids += [type_id] * n
                out.attention_mask += [1] * n
                out.special_tokens_mask += [1] * n
                out.word_ids += [None] * n
                out.sequence_ids += [None] * n
        return out

    def to_json(self) -> dict:
        def pieces(template):
            return [{"Sequence": {"id": p, "type_id": t}} if p in ("A", "B") else {"SpecialToken": {"id": p, "type_id": t}}
                    for p, t in template]

        return {"type": "TemplateProcessing", "single": pieces(self.single), "pair": pieces(self.pair),
                "special_tokens": {name: {"id": name, "ids": list(ids), "tokens": list(toks)}
                                   for name, (ids, toks) in self.special_tokens.items()}}


def default_process(first: Encoding, second: Encoding | None) -> Encoding:
    """No post-processor: the pair is appended as it is (HuggingFace's ``default_process``)."""
    if second is None:
        return first
    second.sequence_ids[:] = [1] * len(second)
    return Encoding.merge([first, second])


# ----------------------------------------------------------------------------- truncation / padding


@dataclass(frozen=True)
class Truncation:
    max_length: int
    strategy: str = "longest_first"  # or "only_first", "only_second"
    direction: str = "right"
    stride: int = 0  # kept for the file format; overflowing windows are not produced

    def __post_init__(self):
        if self.max_length < 0:
            raise ScratchlmError(f"truncation max_length must be >= 0, got {self.max_length}")
        if self.strategy not in ("longest_first", "only_first", "only_second"):
            raise ScratchlmError(f"truncation strategy must be longest_first, only_first or only_second, got {self.strategy!r}")
        if self.direction not in ("left", "right"):
            raise ScratchlmError(f"truncation direction must be 'left' or 'right', got {self.direction!r}")

    def apply(self, first: Encoding, second: Encoding | None, max_length: int) -> None:
        """Cut ``first`` / ``second`` in place so that together they hold at most ``max_length`` tokens."""
        if max_length == 0:
            first.truncate(0, self.direction)
            if second is not None:
                second.truncate(0, self.direction)
            return
        total = len(first) + (len(second) if second is not None else 0)
        if total <= max_length:
            return
        to_remove = total - max_length
        if self.strategy == "longest_first":
            if second is None:
                first.truncate(max_length, self.direction)
                return
            n1, n2 = len(first), len(second)
            swap = n1 > n2
            if swap:
                n1, n2 = n2, n1
            n2 = n1 if n1 > max_length else max(n1, max_length - n1)
            if n1 + n2 > max_length:  # both are long: half each, the odd token to the longer one
                n1 = max_length // 2
                n2 = n1 + max_length % 2
            if swap:
                n1, n2 = n2, n1
            first.truncate(n1, self.direction)
            second.truncate(n2, self.direction)
            return
        target = first if self.strategy == "only_first" else second
        if target is None:
            raise ScratchlmError("truncation strategy only_second needs a pair of sequences")
        if len(target) <= to_remove:
            raise ScratchlmError(
                f"cannot truncate to max_length {max_length} with {self.strategy}: that sequence has only "
                f"{len(target)} tokens and {to_remove} must go")
        target.truncate(len(target) - to_remove, self.direction)

    def to_json(self) -> dict:
        strategy = {"longest_first": "LongestFirst", "only_first": "OnlyFirst", "only_second": "OnlySecond"}[self.strategy]
        return {"direction": self.direction.capitalize(), "max_length": self.max_length, "strategy": strategy, "stride": self.stride}


@dataclass(frozen=True)
class Padding:
    length: int | None = None  # None: pad each batch to its longest encoding
    pad_id: int = 0
    pad_type_id: int = 0
    pad_token: str = "[PAD]"
    direction: str = "right"
    pad_to_multiple_of: int | None = None

    def __post_init__(self):
        if self.direction not in ("left", "right"):
            raise ScratchlmError(f"padding direction must be 'left' or 'right', got {self.direction!r}")

    def apply(self, encodings: list[Encoding]) -> None:
        length = self.length if self.length is not None else max((len(e) for e in encodings), default=0)
        if self.pad_to_multiple_of and length % self.pad_to_multiple_of:
            length += self.pad_to_multiple_of - length % self.pad_to_multiple_of
        for enc in encodings:
            enc.pad(length, pad_id=self.pad_id, pad_type_id=self.pad_type_id, pad_token=self.pad_token, direction=self.direction)

    def to_json(self) -> dict:
        return {"strategy": "BatchLongest" if self.length is None else {"Fixed": self.length},
                "direction": self.direction.capitalize(), "pad_to_multiple_of": self.pad_to_multiple_of,
                "pad_id": self.pad_id, "pad_type_id": self.pad_type_id, "pad_token": self.pad_token}


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
