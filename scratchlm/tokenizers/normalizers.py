r"""Normalizers: text -> (normalized text, alignment to the original characters).

Every normalizer here is *character-wise*: it replaces each original character :math:`c_i` by a
string :math:`n(c_i)` (possibly empty, possibly several characters), so the normalized text is

.. math::  \tilde{x} = n(c_1) \, n(c_2) \cdots n(c_L), \qquad
           \mathrm{align}(j) = i \ \text{ for every character } j \text{ that } n(c_i) \text{ produced},

and a token covering normalized characters :math:`j_0..j_1` came from original characters
:math:`\mathrm{align}(j_0) .. \mathrm{align}(j_1) + 1`.  This is how HuggingFace ``tokenizers``
keeps offsets right through accent stripping and CJK spacing (its ``NormalizedString`` tracks one
alignment per character); we keep the alignment only for texts that need it.

BERT's normalizer (Devlin et al. 2019, ``BasicTokenizer`` in google-research/bert ``tokenization.py``):
remove NUL, U+FFFD and control characters, map whitespace to a space, surround every CJK ideograph
with spaces, optionally strip accents (NFD, then drop non-spacing marks) and lowercase.

Unicode versions.  Our character classes come from Python's ``unicodedata``; HuggingFace's Rust
crates use older tables (``unicode_categories``).  They disagree on about 400 code points assigned as
non-spacing marks or format characters after those tables were made (U+0890 ARABIC POUND MARK ABOVE,
U+1734, ...): HuggingFace keeps them, we drop them as Unicode now says.  Texts made of characters
that existed in Unicode 3.2 with the same category today, plus emoji, normalize identically
(tests/tokenizers/peers.py draws the generated text from them; test_normalizers.py pins the difference).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

# Rust's char::is_whitespace (the Unicode White_Space property), which HuggingFace uses; Python's
# str.isspace differs (it counts U+001C..U+001F as whitespace and not U+0085's neighbours alike).
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)

# BERT's "Chinese character": the CJK Unified Ideographs blocks and their extensions and
# compatibility blocks (google-research/bert tokenization.py, _is_chinese_char; HuggingFace's list).
CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def is_whitespace(c: str) -> bool:
    return c in WHITESPACE


def is_control(c: str) -> bool:
    """Control, format, private-use or surrogate (Cc, Cf, Co, Cs), tab/newline/CR excepted (they are whitespace)."""
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs")


def is_chinese_char(c: str) -> bool:
    o = ord(c)
    return any(lo <= o <= hi for lo, hi in CJK_RANGES)


def is_punctuation(c: str) -> bool:
    """BERT's punctuation: every ASCII non-alphanumeric printable character, and Unicode category P*."""
    o = ord(c)
    return 33 <= o <= 47 or 58 <= o <= 64 or 91 <= o <= 96 or 123 <= o <= 126 or unicodedata.category(c)[0] == "P"


def _strip_accents(s: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", s) if unicodedata.category(ch) != "Mn")


class _LazyTable(dict):
    """A ``str.translate`` table filled on first sight of each character (one ``char_map`` call per code point)."""

    def __init__(self, fn: Callable[[int], object]):
        super().__init__()
        self._fn = fn

    def __missing__(self, o: int):
        value = self[o] = self._fn(o)
        return value


class Normalizer:
    """A character-wise normalizer: ``char_map(c) -> str`` composed into fast whole-text normalization.

    ``normalize(text) -> (normalized, alignment)`` where ``alignment`` is ``None`` when every character
    maps to exactly one character in place (the usual case, found with one ``str.translate``), and
    otherwise a list giving, for each normalized character, the index of the original character it came from.
    """

    decomposes = False  # True when NFD is applied: combining marks then need canonical reordering
    charwise = True  # False for the whole-text normalizers (text_normalizers.py): no char_map

    def char_map(self, c: str) -> str:
        raise NotImplementedError

    def to_json(self) -> dict | None:
        raise NotImplementedError

    def _tables(self):
        if "_map" not in self.__dict__:
            # Frozen dataclasses: the caches are set past __setattr__; they never change the normalizer.
            object.__setattr__(self, "_map", _LazyTable(lambda o: self.char_map(chr(o))))
            # Characters that break the one-to-one alignment map to themselves; the others are deleted,
            # so ``text.translate(self._irregular)`` is empty exactly when the fast path applies.
            object.__setattr__(self, "_irregular", _LazyTable(lambda o: o if self._is_irregular(chr(o)) else None))
        return self._map, self._irregular

    def _is_irregular(self, c: str) -> bool:
        n = self._map[ord(c)]
        return len(n) != 1 or (self.decomposes and unicodedata.combining(n) != 0)

    def normalize_str(self, text: str) -> str:
        return self.normalize(text)[0]

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        table, irregular = self._tables()
        if not text.translate(irregular):
            return text.translate(table), None
        pieces, alignment = [], []
        for i, c in enumerate(text):
            n = table[ord(c)]
            pieces.append(n)
            alignment.extend([i] * len(n))
        normalized = "".join(pieces)
        if self.decomposes:
            normalized, alignment = _canonical_order(normalized, alignment)
        return normalized, alignment


def _canonical_order(s: str, alignment: list[int]) -> tuple[str, list[int]]:
    """Unicode canonical ordering (a stable sort by combining class inside each run of marks), as NFD does
    across character boundaries; the alignment moves with its character."""
    ccc = [unicodedata.combining(ch) for ch in s]
    if not any(ccc):
        return s, alignment
    chars, align = list(s), list(alignment)
    i = 0
    while i < len(chars):
        if ccc[i] == 0:
            i += 1
            continue
        j = i
        while j < len(chars) and ccc[j] != 0:
            j += 1
        order = sorted(range(i, j), key=lambda k: ccc[k])
        chars[i:j] = [chars[k] for k in order]
        align[i:j] = [alignment[k] for k in order]
        i = j
    return "".join(chars), align


@functools.cache
def _compose_pair(a: str, b: str) -> str | None:
    """The primary composite of ``a`` and ``b`` (UAX #15, D114), or ``None``."""
    c = unicodedata.normalize("NFC", a + b)
    return c if len(c) == 1 else None


def unicode_normalize(text: str, form: str) -> tuple[str, list[int] | None]:
    r"""``unicodedata.normalize(form, text)`` with HuggingFace's alignment (its ``NormalizedString.nfd`` ...).

    UAX #15, §3: decompose every character (``NFD``/``NFKD``), sort each run of combining marks by
    combining class (canonical ordering), and for ``NFC``/``NFKC`` compose every mark not blocked from the
    last starter.  Each output character carries a *change*: 0 for the first character of a
    decomposition, +1 for the others, and a composition sums its parts' changes less one; the changes
    move with their characters when marks are reordered.  The alignment is then read *positionally*, as
    HuggingFace's ``transform`` does: a character of change :math:`c \le 0` takes the next unread original
    character and skips :math:`-c` more, one of change +1 takes the last one read.
    """
    if unicodedata.is_normalized(form, text):
        return text, None
    decompose = "NFKD" if form in ("NFKC", "NFKD") else "NFD"
    chars, changes = [], []
    for c in text:
        d = unicodedata.normalize(decompose, c)
        chars.extend(d)
        changes += [0] + [1] * (len(d) - 1)
    ccc = [unicodedata.combining(ch) for ch in chars]
    i, n = 0, len(chars)
    while i < n:  # canonical ordering, each change moving with its character
        j = i
        while j < n and ccc[j] != 0:
            j += 1
        if j - i > 1:
            order = sorted(range(i, j), key=ccc.__getitem__)
            chars[i:j], changes[i:j], ccc[i:j] = ([seq[k] for k in order] for seq in (chars, changes, ccc))
        i = max(j, i + 1)
    if form in ("NFC", "NFKC"):
        out, out_changes, out_ccc, starter = [], [], [], None
        for c, change, cc in zip(chars, changes, ccc):
            if starter is not None:
                adjacent = starter == len(out) - 1
                blocked = not adjacent and (out_ccc[-1] == 0 or out_ccc[-1] >= cc)
                composite = None if blocked else _compose_pair(out[starter], c)
                if composite is not None:
                    out[starter] = composite
                    out_changes[starter] += change - 1
                    continue
            if cc == 0:
                starter = len(out)
            out.append(c)
            out_changes.append(change)
            out_ccc.append(cc)
        chars, changes = out, out_changes
    return "".join(chars), positional_alignment(changes, len(text))


def positional_alignment(changes: list[int], n_original: int) -> list[int]:
    """HuggingFace's ``NormalizedString::transform``: each new character's change is 0 (it replaces the next
    original character), :math:`-k` (it replaces that one and the :math:`k` after it) or +1 (inserted: it
    takes the alignment of the last original character read)."""
    alignment, read = [], 0
    for change in changes:
        if change > 0:
            alignment.append(max(read - 1, 0))
        else:
            alignment.append(min(read, n_original - 1))
            read += 1 - change
    return alignment


@dataclass(frozen=True, eq=False)
class BertNormalizer(Normalizer):
    """BERT's text cleaning: control characters out, whitespace to spaces, CJK ideographs spaced,
    accents stripped (NFD then drop Mn) and lower-casing.  ``strip_accents=None`` follows ``lowercase``,
    as in the original uncased BERT and HuggingFace."""

    clean_text: bool = True
    handle_chinese_chars: bool = True
    strip_accents: bool | None = None
    lowercase: bool = True

    @property
    def decomposes(self) -> bool:
        return self.lowercase if self.strip_accents is None else self.strip_accents

    def char_map(self, c: str) -> str:
        if self.clean_text:
            if c in ("\x00", "\ufffd") or is_control(c):
                return ""
            if c in WHITESPACE:
                return " "
        s = f" {c} " if self.handle_chinese_chars and is_chinese_char(c) else c
        if self.decomposes:
            s = _strip_accents(s)
        if self.lowercase:
            s = "".join(ch.lower() for ch in s)  # per character: Rust's to_lowercase knows no final sigma
        return s

    def to_json(self) -> dict:
        return {"type": "BertNormalizer", "clean_text": self.clean_text,
                "handle_chinese_chars": self.handle_chinese_chars,
                "strip_accents": self.strip_accents, "lowercase": self.lowercase}

    @classmethod
    def from_json(cls, spec: dict) -> BertNormalizer:
        return cls(spec.get("clean_text", True), spec.get("handle_chinese_chars", True), spec.get("strip_accents"),
                   spec.get("lowercase", True))


@dataclass(frozen=True, eq=False)
class Lowercase(Normalizer):
    def char_map(self, c: str) -> str:
        return c.lower()

    def to_json(self) -> dict:
        return {"type": "Lowercase"}

    @classmethod
    def from_json(cls, spec: dict) -> Lowercase:
        return cls()


@dataclass(frozen=True, eq=False)
class NFD(Normalizer):
    """Canonical decomposition; the compatibility variant (NFKD) with ``compatibility=True``."""

    compatibility: bool = False
    decomposes = True
    charwise = False  # reordered marks are aligned positionally (unicode_normalize), as HuggingFace does

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        return unicode_normalize(text, "NFKD" if self.compatibility else "NFD")

    def char_map(self, c: str) -> str:
        return unicodedata.normalize("NFKD" if self.compatibility else "NFD", c)

    def to_json(self) -> dict:
        return {"type": "NFKD" if self.compatibility else "NFD"}

    @classmethod
    def from_json(cls, spec: dict) -> NFD:
        return cls(compatibility=spec["type"] == "NFKD")


@dataclass(frozen=True, eq=False)
class StripAccents(Normalizer):
    """Drop combining marks, Mn, Mc and Me (HuggingFace's ``StripAccents``, its ``is_combining_mark``; put it
    after NFD).  BERT's own accent stripping drops Mn only (``BertNormalizer``)."""

    def char_map(self, c: str) -> str:
        return "" if unicodedata.category(c) in ("Mn", "Mc", "Me") else c

    def to_json(self) -> dict:
        return {"type": "StripAccents"}

    @classmethod
    def from_json(cls, spec: dict) -> StripAccents:
        return cls()


@dataclass(frozen=True, eq=False)
class Sequence(Normalizer):
    """Normalizers applied one after another, each to every character the previous one produced."""

    normalizers: tuple[Normalizer, ...]

    @property
    def decomposes(self) -> bool:
        return any(n.decomposes for n in self.normalizers)

    @property
    def charwise(self) -> bool:
        return all(n.charwise for n in self.normalizers)

    def normalize(self, text: str) -> tuple[str, list[int] | None]:
        r"""Character-wise members compose into one ``char_map``; otherwise each member normalizes the
        previous one's output and the alignments compose, :math:`\mathrm{align}(j) = a_1(a_2(j))`."""
        if self.charwise:
            return super().normalize(text)
        alignment = None
        for n in self.normalizers:
            text, inner = n.normalize(text)
            if inner is not None:
                alignment = inner if alignment is None else [alignment[k] for k in inner]
        return text, alignment

    def char_map(self, c: str) -> str:
        s = c
        for n in self.normalizers:
            s = "".join(n.char_map(ch) for ch in s)
        return s

    def to_json(self) -> dict:
        return {"type": "Sequence", "normalizers": [n.to_json() for n in self.normalizers]}

    @classmethod
    def from_json(cls, spec: dict, *, read: Callable[[dict], Normalizer]) -> Sequence:
        """``read`` reads one member (``hf_json`` passes its registry's normalizer reader)."""
        return cls(tuple(read(member) for member in spec["normalizers"]))


# SentencePiece's NMT normalization as HuggingFace's ``Nmt``: drop these control characters ...
_NMT_DROP = frozenset([*range(0x01, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, 0x8F, 0x9F])
# ... and map these to a space (tab, newlines, zero-width spaces and marks, U+2581, BOM, U+FFFD).
_NMT_SPACE = frozenset([0x09, 0x0A, 0x0C, 0x0D, 0x1680, *range(0x200B, 0x2010), 0x2028, 0x2029, 0x2581, 0xFEFF,
                        0xFFFD])


@dataclass(frozen=True, eq=False)
class Nmt(Normalizer):
    """SentencePiece's ``nmt_nfkc`` control-character clean-up without the NFKC (HuggingFace's ``Nmt``)."""

    def char_map(self, c: str) -> str:
        o = ord(c)
        return "" if o in _NMT_DROP else " " if o in _NMT_SPACE else c

    def to_json(self) -> dict:
        return {"type": "Nmt"}

    @classmethod
    def from_json(cls, spec: dict) -> Nmt:
        return cls()
