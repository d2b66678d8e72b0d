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

import base64
import struct
from dataclasses import dataclass

import regex

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers.normalizers import WHITESPACE, Normalizer, positional_alignment, unicode_normalize
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


@dataclass(frozen=True, eq=False)
class Precompiled(TextNormalizer):
    """SentencePiece's compiled normalization rules (``precompiled_charsmap``: a double-array trie over UTF-8
    bytes whose values index NUL-terminated replacement strings; Kudo & Richardson 2018, §3.3), applied as
    HuggingFace does: per extended grapheme cluster, the whole cluster when it is shorter than 6 bytes
    and its shortest matching prefix has a rule, else character by character."""

    charsmap: str  # base64, as in the file

    def __post_init__(self):
        try:
            blob = base64.b64decode(self.charsmap)
            (size,) = struct.unpack_from("<I", blob)
            trie = struct.unpack_from(f"<{size // 4}I", blob, 4)
            replacements = blob[4 + size // 4 * 4:]
            replacements.decode("utf-8")
        except (ValueError, struct.error) as err:
            raise ScratchlmError(f"Precompiled: cannot read precompiled_charsmap ({err})") from None
        object.__setattr__(self, "_trie", trie)
        object.__setattr__(self, "_replacements", replacements)
        object.__setattr__(self, "_cache", {})

    def _lookup(self, chunk: str) -> str | None:
        """The replacement of the shortest prefix of ``chunk`` that has a rule (spm_precompiled's
        ``transform``: the first common-prefix-search result)."""
        hit = self._cache.get(chunk, False)
        if hit is not False:
            return hit
        trie, result = self._trie, None
        if not trie:
            return None

        def offset(unit: int) -> int:
            return (unit >> 10) << ((unit & (1 << 9)) >> 6)

        node = offset(trie[0])
        for byte in chunk.encode("utf-8"):
            if byte == 0:
                break
            node ^= byte
            if node >= len(trie):
                break
            unit = trie[node]
            if unit & ((1 << 31) | 0xFF) != byte:
                break
            node ^= offset(unit)
            if (unit >> 8) & 1:
                start = trie[node] & ((1 << 31) - 1)
                end = self._replacements.find(b"\0", start)
                result = self._replacements[start:end if end >= 0 else len(self._replacements)].decode("utf-8")
                break
        self._cache[chunk] = result
        return result

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        chars, changes, modified = [], [], False

        def replace(old: str, new: str) -> None:
            chars.extend(new)
            diff = len(new) - len(old)
            changes.extend([0] * (len(new) - max(diff, 0)) + [1] * max(diff, 0))
            if diff < 0 and changes:  # the last change so far, even an earlier character's (HuggingFace's)
                changes[-1] += diff

        for grapheme in _GRAPHEME.findall(text):
            if len(grapheme.encode("utf-8")) < 6:
                new = self._lookup(grapheme)
                if new is not None:
                    modified = True
                    replace(grapheme, new)
                    continue
            for c in grapheme:
                new = self._lookup(c)
                if new is not None:
                    modified = True
                    replace(c, new)
                else:
                    chars.append(c)
                    changes.append(0)
        if not modified:
            return text, None
        return "".join(chars), positional_alignment(changes, len(text))

    def to_json(self) -> dict:
        return {"type": "Precompiled", "precompiled_charsmap": self.charsmap}

    @classmethod
    def from_json(cls, spec: dict) -> Precompiled:
        return cls(spec["precompiled_charsmap"])


_GRAPHEME = regex.compile(r"\X")
