"""What happens to an encoding after the model: special tokens (a template such as BERT's
``[CLS] A [SEP] B [SEP]``, or GPT-2's byte-level offset trimming), truncation and padding.

The semantics are HuggingFace ``tokenizers``' (``TemplateProcessing``, ``ByteLevel``,
``truncate_encodings``, ``pad_encodings``), so ids, masks and type ids agree token for token:

* truncation happens before the special tokens are added, with ``max_length`` reduced by their count;
  ``longest_first`` on a pair cuts the longer sequence first and, if both are long, gives each half;
* padding never truncates: ``length=None`` pads a batch to its longest encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers.encoding import Encoding

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
            return [{"Sequence" if p in ("A", "B") else "SpecialToken": {"id": p, "type_id": t}} for p, t in template]

        return {"type": "TemplateProcessing", "single": pieces(self.single), "pair": pieces(self.pair),
                "special_tokens": {name: {"id": name, "ids": list(ids), "tokens": list(toks)}
                                   for name, (ids, toks) in self.special_tokens.items()}}

    @classmethod
    def from_json(cls, spec: dict) -> TemplateProcessing:
        def pieces(template):
            out = []
            for piece in template:
                (_, body), = piece.items()
                out.append((body["id"], body.get("type_id", 0)))
            return tuple(out)

        specials = {name: (tuple(s["ids"]), tuple(s["tokens"])) for name, s in spec.get("special_tokens", {}).items()}
        single, pair = pieces(spec["single"]), pieces(spec["pair"])
        missing = sorted({p for p, _ in single + pair if p not in ("A", "B") and p not in specials})
        if missing:  # HuggingFace refuses these files too
            raise ScratchlmError(f"TemplateProcessing: missing special token(s) {', '.join(missing)} "
                                 "(the templates name them but special_tokens does not define them)")
        if pair and not {"A", "B"} <= {p for p, _ in pair}:
            raise ScratchlmError("TemplateProcessing: the pair template must use both sequences ($A and $B)")
        return cls(single, pair, specials)

    @classmethod
    def from_bert_json(cls, spec: dict) -> TemplateProcessing:
        """HuggingFace's ``BertProcessing`` (``{"sep": [token, id], "cls": [token, id]}``), which is this template."""
        (sep, sep_id), (cls_token, cls_id) = spec["sep"], spec["cls"]
        return cls.bert(cls_token, cls_id, sep, sep_id)


@dataclass(frozen=True)
class ByteLevelProcessing:
    """HuggingFace's ``ByteLevel`` post-processor: no special tokens; with ``trim_offsets`` a token's
    offsets leave out the spaces it holds (GPT-2's ``Ġ``), except the one space a pre-tokenizer with
    ``add_prefix_space`` put before the text."""

    add_prefix_space: bool = True
    trim_offsets: bool = True
    use_regex: bool = True

    def num_special_tokens_to_add(self, is_pair: bool) -> int:
        return 0

    def process(self, first: Encoding, second: Encoding | None, add_special_tokens: bool) -> Encoding:
        if self.trim_offsets:
            for enc in (first, second):
                if enc is not None:
                    _trim_offsets(enc, self.add_prefix_space)
        return default_process(first, second)

    def to_json(self) -> dict:
        return {"type": "ByteLevel", "add_prefix_space": self.add_prefix_space, "trim_offsets": self.trim_offsets,
                "use_regex": self.use_regex}

    @classmethod
    def from_json(cls, spec: dict) -> ByteLevelProcessing:
        return cls(spec.get("add_prefix_space", True), spec.get("trim_offsets", True), spec.get("use_regex", True))


@dataclass(frozen=True)
class RobertaProcessing:
    """RoBERTa's special tokens (Liu et al. 2019): ``<s> A </s>`` and ``<s> A </s> </s> B </s>``, every
    ``token_type_id`` 0, offsets trimmed as the byte-level post-processor trims them (``trim_offsets``)."""

    sep: tuple[str, int] = ("</s>", 2)
    cls: tuple[str, int] = ("<s>", 0)
    trim_offsets: bool = True
    add_prefix_space: bool = True

    @property
    def template(self) -> TemplateProcessing:
        (sep, sep_id), (cls_token, cls_id) = self.sep, self.cls
        return TemplateProcessing(single=((cls_token, 0), ("A", 0), (sep, 0)),
                                  pair=((cls_token, 0), ("A", 0), (sep, 0), (sep, 0), ("B", 0), (sep, 0)),
                                  special_tokens={cls_token: ((cls_id,), (cls_token,)), sep: ((sep_id,), (sep,))})

    def num_special_tokens_to_add(self, is_pair: bool) -> int:
        return 4 if is_pair else 2

    def process(self, first: Encoding, second: Encoding | None, add_special_tokens: bool) -> Encoding:
        if self.trim_offsets:
            for enc in (first, second):
                if enc is not None:
                    _trim_offsets(enc, self.add_prefix_space)
        return self.template.process(first, second, add_special_tokens)

    def to_json(self) -> dict:
        return {"type": "RobertaProcessing", "sep": list(self.sep), "cls": list(self.cls),
                "trim_offsets": self.trim_offsets, "add_prefix_space": self.add_prefix_space}

    @classmethod
    def from_json(cls, spec: dict) -> RobertaProcessing:
        return cls(tuple(spec.get("sep", ("</s>", 2))), tuple(spec.get("cls", ("<s>", 0))),
                   spec.get("trim_offsets", True), spec.get("add_prefix_space", True))


@dataclass(frozen=True)
class SequenceProcessing:
    """Post-processors in turn (HuggingFace's ``processors.Sequence``): the byte-level ones trim the offsets
    of each sequence; the last one places the special tokens."""

    processors: tuple

    def num_special_tokens_to_add(self, is_pair: bool) -> int:
        return sum(p.num_special_tokens_to_add(is_pair) for p in self.processors)

    def process(self, first: Encoding, second: Encoding | None, add_special_tokens: bool) -> Encoding:
        *before, last = self.processors
        for p in before:
            if p.trim_offsets:
                for enc in (first, second):
                    if enc is not None:
                        _trim_offsets(enc, p.add_prefix_space)
        return last.process(first, second, add_special_tokens)

    def to_json(self) -> dict:
        return {"type": "Sequence", "processors": [p.to_json() for p in self.processors]}

    @classmethod
    def from_json(cls, spec: dict, *, read) -> SequenceProcessing:
        processors = tuple(read(member) for member in spec["processors"])
        if not processors:
            return cls((ByteLevelProcessing(trim_offsets=False),))
        for p in processors[:-1]:
            if not isinstance(p, ByteLevelProcessing):
                raise ScratchlmError(f"post_processor Sequence: {p.to_json()['type']} can only come last "
                                     "(scratchlm places special tokens once)")
        return cls(processors)


def _trim_offsets(encoding: Encoding, add_prefix_space: bool) -> None:
    """HuggingFace's ByteLevel ``process_offsets``: offsets leave out a token's leading / trailing spaces."""
    for i, (token, (start, end)) in enumerate(zip(encoding.tokens, encoding.offsets)):
        lead = len(token) - len(token.lstrip("Ġ \t\n\r\x0b\x0c"))
        trail = len(token) - len(token.rstrip("Ġ \t\n\r\x0b\x0c"))
        if not lead and not trail:
            continue
        if lead and (i == 0 or start == 0) and add_prefix_space and lead == 1:
            lead = 0  # the space the pre-tokenizer added itself
        if lead:
            start = min(start + lead, end)
        if trail and end >= trail:
            end = max(end - trail, start)
        encoding.offsets[i] = (start, end)


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
    stride: int = 0  # overlap of the overflowing windows (Encoding.truncate)

    def __post_init__(self):
        if self.max_length < 0:
            raise ScratchlmError(f"truncation max_length must be >= 0, got {self.max_length}")
        if self.strategy not in ("longest_first", "only_first", "only_second"):
            raise ScratchlmError(
                f"truncation strategy must be longest_first, only_first or only_second, got {self.strategy!r}")
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
        if second is None and self.strategy != "only_second":
            first.truncate(max_length, self.direction, self.stride)  # the rest in first.overflowing
            return
        if self.strategy == "longest_first":
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
            first.truncate(n1, self.direction, self.stride)
            second.truncate(n2, self.direction, self.stride)
            return
        target = first if self.strategy == "only_first" else second
        if target is None:
            raise ScratchlmError("truncation strategy only_second needs a pair of sequences")
        if len(target) <= to_remove:
            raise ScratchlmError(
                f"cannot truncate to max_length {max_length} with {self.strategy}: that sequence has only "
                f"{len(target)} tokens and {to_remove} must go")
        target.truncate(len(target) - to_remove, self.direction, self.stride)

    def to_json(self) -> dict:
        strategy = {"longest_first": "LongestFirst", "only_first": "OnlyFirst",
                    "only_second": "OnlySecond"}[self.strategy]
        return {"direction": self.direction.capitalize(), "max_length": self.max_length, "strategy": strategy,
                "stride": self.stride}

    @classmethod
    def from_json(cls, spec: dict) -> Truncation:
        strategy = {"LongestFirst": "longest_first", "OnlyFirst": "only_first",
                    "OnlySecond": "only_second"}[spec.get("strategy", "LongestFirst")]
        return cls(spec["max_length"], strategy, spec.get("direction", "Right").lower(), spec.get("stride", 0))


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
            enc.pad(length, pad_id=self.pad_id, pad_type_id=self.pad_type_id, pad_token=self.pad_token,
                    direction=self.direction)

    def to_json(self) -> dict:
        return {"strategy": "BatchLongest" if self.length is None else {"Fixed": self.length},
                "direction": self.direction.capitalize(), "pad_to_multiple_of": self.pad_to_multiple_of,
                "pad_id": self.pad_id, "pad_type_id": self.pad_type_id, "pad_token": self.pad_token}

    @classmethod
    def from_json(cls, spec: dict) -> Padding:
        strategy = spec.get("strategy", "BatchLongest")
        length = strategy["Fixed"] if isinstance(strategy, dict) else None
        return cls(length, spec.get("pad_id", 0), spec.get("pad_type_id", 0), spec.get("pad_token", "[PAD]"),
                   spec.get("direction", "Right").lower(), spec.get("pad_to_multiple_of"))


# ----------------------------------------------------------------------------- HuggingFace's call arguments

_PADDING = {True: "longest", "longest": "longest", "max_length": "max_length", False: None, "do_not_pad": None}
_TRUNCATION = {True: "longest_first", "longest_first": "longest_first", "only_first": "only_first",
               "only_second": "only_second", False: None, "do_not_truncate": None}


def call_settings(padding, truncation, max_length: int | None, pad_to_multiple_of: int | None, *,
                  default_max_length: int | None, pad: Padding) -> tuple[Truncation | None, Padding | None]:
    """The truncation and padding one ``tokenizer(texts, padding=..., truncation=..., max_length=...)`` call
    asks for, by transformers' rules (``PreTrainedTokenizerBase._get_padding_truncation_strategies``):

    * ``padding``: ``False`` / ``"do_not_pad"`` (default), ``True`` / ``"longest"`` (to the batch's longest),
      ``"max_length"`` (to ``max_length``, never cutting);
    * ``truncation``: ``False`` / ``"do_not_truncate"``, ``True`` / ``"longest_first"``, ``"only_first"``,
      ``"only_second"``, at ``max_length`` (default ``default_max_length``); left ``None`` with a
      ``max_length`` and no padding to it, ``"longest_first"``, as transformers does;
    * ``pad`` gives the pad token, its ids and the side.
    """
    if padding not in _PADDING:
        raise ScratchlmError(f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', got {padding!r}")
    if truncation is None:
        truncation = max_length is not None and padding != "max_length"
    if truncation not in _TRUNCATION:
        raise ScratchlmError("truncation must be True, False, 'longest_first', 'only_first', 'only_second' or "
                             f"'do_not_truncate', got {truncation!r}")
    pad_kind, cut_kind = _PADDING[padding], _TRUNCATION[truncation]
    length = max_length if max_length is not None else default_max_length
    if length is None and (cut_kind is not None or pad_kind == "max_length"):
        raise ScratchlmError(f"truncation={truncation!r} / padding={padding!r} need max_length: this tokenizer "
                             "has no default length")
    cut = Truncation(length, cut_kind) if cut_kind is not None else None
    if pad_kind is None:
        return cut, None
    return cut, Padding(length if pad_kind == "max_length" else None, pad.pad_id, pad.pad_type_id, pad.pad_token,
                        pad.direction, pad_to_multiple_of)
