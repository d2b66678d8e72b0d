r"""Normalizers that are not character-wise: Unicode composition (NFC, NFKC), ``Strip``, ``Replace`` and
``Prepend``.  Each gives ``normalize(text) -> (normalized, alignment)`` directly, the alignment naming
for every normalized character :math:`j` the original character :math:`\mathrm{align}(j)` it came from
(``None``: unchanged text), with HuggingFace ``NormalizedString``'s rules:

* a character that replaces others (a composition :math:`e + \acute{} \to \acute{e}`) takes the alignment
  of the first one it replaces, so the marks it absorbed fall outside every token's span
  (:func:`~scratchlm.tokenizers.normalizers.unicode_normalize`);
* an inserted character (``Replace``'s content, ``Prepend``'s prefix) takes the alignment of the character
  before the insertion point: for ``Replace`` the last character of the match, for ``Prepend`` the first
  character of the text.

Composition: Unicode Standard Annex #15 (Unicode Normalization Forms), §3 and §5: NFC = canonical
decomposition, canonical ordering, canonical composition; NFKC the same after compatibility decomposition.
"""

from __future__ import annotations

from dataclasses import dataclass

import regex

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers.normalizers import WHITESPACE, Normalizer, unicode_normalize
from scratchlm.tokenizers.pre_tokenizers import to_byte_chars


class TextNormalizer(Normalizer):
    """A normalizer over the whole text (no ``char_map``); ``normalize`` is each subclass's own."""

    charwise = False

    def char_map(self, c: str) -> str:
        raise TypeError(f"{type(self).__name__} is not character-wise")


@dataclass(frozen=True, eq=False)
class NFC(TextNormalizer):
    r"""Canonical (``compatibility=False``, NFC) or compatibility (NFKC) composition (UAX #15, §3):
    :math:`\mathrm{NFC}(x) = \mathrm{compose}(\mathrm{order}(\mathrm{NFD}(x)))`.

    Aligned as HuggingFace aligns it (:func:`~scratchlm.tokenizers.normalizers.unicode_normalize`)."""

    compatibility: bool = False

    @property
    def form(self) -> str:
        return "NFKC" if self.compatibility else "NFC"

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        return unicode_normalize(text, self.form)

    def to_json(self) -> dict:
        return {"type": self.form}

    @classmethod
    def from_json(cls, spec: dict) -> NFC:
        return cls(compatibility=spec["type"] == "NFKC")


@dataclass(frozen=True, eq=False)
class Strip(TextNormalizer):
    """Remove leading and / or trailing whitespace (Rust's ``char::is_whitespace``), HuggingFace's ``Strip``."""

    strip_left: bool = True
    strip_right: bool = True

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        start, end = 0, len(text)
        if self.strip_left:
            while start < end and text[start] in WHITESPACE:
                start += 1
        if self.strip_right:
            while end > start and text[end - 1] in WHITESPACE:
                end -= 1
        if (start, end) == (0, len(text)):
            return text, None
        return text[start:end], list(range(start, end))

    def to_json(self) -> dict:
        return {"type": "Strip", "strip_left": self.strip_left, "strip_right": self.strip_right}

    @classmethod
    def from_json(cls, spec: dict) -> Strip:
        return cls(spec.get("strip_left", True), spec.get("strip_right", True))


@dataclass(frozen=True, eq=False)
class Replace(TextNormalizer):
    """Replace every match of a string (``regex=False``) or a regular expression by ``content``
    (HuggingFace's ``Replace``; ``{"String": ...}`` or ``{"Regex": ...}`` in the file)."""

    pattern: str
    content: str
    regex: bool = False

    def __post_init__(self):
        try:
            compiled = regex.compile(self.pattern if self.regex else regex.escape(self.pattern))
        except regex.error as err:
            raise ScratchlmError(f"Replace: invalid regular expression {self.pattern!r}: {err}") from None
        object.__setattr__(self, "_compiled", compiled)

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        pieces, alignment, cursor = [], [], 0
        for m in self._compiled.finditer(text):
            s, e = m.span()
            if s == e:
                continue
            pieces += [text[cursor:s], self.content]
            alignment += list(range(cursor, s)) + [e - 1] * len(self.content)
            cursor = e
        if not pieces:
            return text, None
        pieces.append(text[cursor:])
        alignment += list(range(cursor, len(text)))
        return "".join(pieces), alignment

    def replace_str(self, token: str) -> str:
        """The decoder's use: every match of ``token`` replaced by ``content``."""
        return self._compiled.sub(lambda m: self.content, token)

    def to_json(self) -> dict:
        return {"type": "Replace", "pattern": {"Regex" if self.regex else "String": self.pattern},
                "content": self.content}

    @classmethod
    def from_json(cls, spec: dict) -> Replace:
        (kind, pattern), = spec["pattern"].items()
        return cls(pattern, spec["content"], regex=kind == "Regex")


@dataclass(frozen=True, eq=False)
class Prepend(TextNormalizer):
    """Put ``prepend`` before a non-empty text (HuggingFace's ``Prepend``; Llama's ``▁``), aligned to its first
    character."""

    prepend: str

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        if not text:
            return text, None
        return self.prepend + text, [0] * len(self.prepend) + list(range(len(text)))

    def to_json(self) -> dict:
        return {"type": "Prepend", "prepend": self.prepend}

    @classmethod
    def from_json(cls, spec: dict) -> Prepend:
        return cls(spec["prepend"])


@dataclass(frozen=True, eq=False)
class ByteLevelNormalizer(Normalizer):
    """Each character as GPT-2's characters of its UTF-8 bytes (HuggingFace's ``normalizers.ByteLevel``)."""

    def char_map(self, c: str) -> str:
        return to_byte_chars(c)

    def to_json(self) -> dict:
        return {"type": "ByteLevel"}

    @classmethod
    def from_json(cls, spec: dict) -> ByteLevelNormalizer:
        return cls()
