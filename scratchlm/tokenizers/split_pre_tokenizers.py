r"""Pre-tokenizers built on one operation, HuggingFace's ``NormalizedString.split(pattern, behavior)``:
find the pattern's matches :math:`m_1, m_2, \dots` in a piece, which cut it into alternating matches and
gaps, then keep them by the *behaviour*:

* ``removed``: the gaps only;  ``isolated``: every match and gap a piece of its own;
* ``merged_with_previous`` / ``merged_with_next``: a match joins the gap before / after it;
* ``contiguous``: adjacent matches join into one piece;

and drop the empty pieces.  ``invert`` swaps matches and gaps.  On it: ``Split`` (a string or regex),
``Punctuation``, ``Digits``, ``CharDelimiterSplit``, ``Metaspace`` (SentencePiece's space handling,
Kudo & Richardson 2018, §3.1: spaces become ``▁`` (U+2581), which starts each word), ``FixedLength``
and ``Sequence`` (each pre-tokenizer splits the pieces of the previous one).

A piece is ``(string, alignment)``, the alignment giving for each character its position in the
normalized text; the tokenizer maps those to the original text.  These pre-tokenizers set
``general = True``: the tokenizer hands them the pieces rather than running one regex.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import regex

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers.pre_tokenizers import _PUNCT, PreTokenizer

Piece = tuple[str, list[int]]
BEHAVIORS = {"Removed": "removed", "Isolated": "isolated", "MergedWithPrevious": "merged_with_previous",
             "MergedWithNext": "merged_with_next", "Contiguous": "contiguous"}


def find_matches(text: str, pattern: regex.Pattern) -> list[tuple[int, int, bool]]:
    """``text`` cut into ``(start, end, is_match)`` pieces covering it: the regex's matches and the gaps
    between them (HuggingFace's ``Pattern::find_matches``; a character class matches one character a time,
    as HuggingFace's character predicates do)."""
    if not text:
        return [(0, 0, False)]
    out, prev = [], 0
    for m in pattern.finditer(text):
        s, e = m.span()
        if prev != s:
            out.append((prev, s, False))
        out.append((s, e, True))
        prev = e
    if prev != len(text):
        out.append((prev, len(text), False))
    return out


def split_spans(text: str, pattern, behavior: str, invert: bool = False) -> list[tuple[int, int]]:
    """The spans of ``text`` that :func:`find_matches`' pieces make under ``behavior`` (empty ones dropped)."""
    matches = [(s, e, m != invert) for s, e, m in find_matches(text, pattern)]
    if behavior == "removed":
        spans = [[s, e] for s, e, m in matches if not m]
    elif behavior == "isolated":
        spans = [[s, e] for s, e, _ in matches]
    elif behavior == "contiguous":
        spans, previous = [], False
        for s, e, m in matches:
            if m == previous and spans:
                spans[-1][1] = e
            else:
                spans.append([s, e])
            previous = m
    elif behavior == "merged_with_previous":
        spans, previous = [], False
        for s, e, m in matches:
            if m and not previous and spans:
                spans[-1][1] = e
            else:
                spans.append([s, e])
            previous = m
    elif behavior == "merged_with_next":
        spans, previous = [], False
        for s, e, m in reversed(matches):
            if m and not previous and spans:
                spans[-1][0] = s
            else:
                spans.append([s, e])
            previous = m
        spans.reverse()
    else:
        raise ScratchlmError(f"split behavior must be one of {', '.join(BEHAVIORS.values())}, got {behavior!r}")
    return [(s, e) for s, e in spans if e > s]


class GeneralPreTokenizer(PreTokenizer):
    """A pre-tokenizer that splits pieces by :func:`split_spans`; subclasses give ``spans(text)``."""

    general = True

    def spans(self, text: str) -> list[tuple[int, int]]:
        raise NotImplementedError

    def pre_tokenize(self, pieces: list[Piece], at_origin=None) -> list[Piece]:
        return [(text[a:b], align[a:b]) for text, align in pieces for a, b in self.spans(text)]

    def pre_tokenize_str(self, text: str) -> list[tuple[str, tuple[int, int]]]:
        """The words and their spans in ``text``, as HuggingFace's method of the same name returns them."""
        pieces = self.pre_tokenize([(text, list(range(len(text))))], at_origin=lambda j: j == 0)
        return [(w, (align[0], align[-1] + 1)) for w, align in pieces]


def _behavior_json(behavior: str) -> str:
    return {v: k for k, v in BEHAVIORS.items()}[behavior]


def _behavior(spec: dict, default: str) -> str:
    name = spec.get("behavior", default)
    if name not in BEHAVIORS:
        raise ScratchlmError(f"split behavior {name!r} is not one of {', '.join(BEHAVIORS)}")
    return BEHAVIORS[name]


@dataclass(frozen=True)
class Split(GeneralPreTokenizer):
    """Split on a string or a regular expression (``regex=True``) with a behaviour; ``invert`` splits on the gaps."""

    pattern_text: str
    behavior: str = "removed"
    invert: bool = False
    regex: bool = False

    def __post_init__(self):
        try:
            compiled = regex.compile(self.pattern_text if self.regex else regex.escape(self.pattern_text))
        except regex.error as err:
            raise ScratchlmError(f"Split: invalid regular expression {self.pattern_text!r}: {err}") from None
        object.__setattr__(self, "_compiled", compiled)

    def spans(self, text: str) -> list[tuple[int, int]]:
        return split_spans(text, self._compiled, self.behavior, self.invert)

    def to_json(self) -> dict:
        return {"type": "Split", "pattern": {"Regex" if self.regex else "String": self.pattern_text},
                "behavior": _behavior_json(self.behavior), "invert": self.invert}

    @classmethod
    def from_json(cls, spec: dict) -> Split:
        (kind, pattern), = spec["pattern"].items()
        return cls(pattern, _behavior(spec, "Removed"), spec.get("invert", False), regex=kind == "Regex")


@dataclass(frozen=True)
class Punctuation(GeneralPreTokenizer):
    """Split on punctuation (ASCII punctuation and Unicode P*), isolated by default."""

    behavior: str = "isolated"

    def spans(self, text: str) -> list[tuple[int, int]]:
        return split_spans(text, _PUNCTUATION, self.behavior)

    def to_json(self) -> dict:
        return {"type": "Punctuation", "behavior": _behavior_json(self.behavior)}

    @classmethod
    def from_json(cls, spec: dict) -> Punctuation:
        return cls(_behavior(spec, "Isolated"))


def is_numeric(c: str) -> bool:
    """Rust's ``char::is_numeric``: general category Nd, Nl or No (``_DIGIT`` as one regex)."""
    return unicodedata.category(c) in ("Nd", "Nl", "No")


_DIGIT = regex.compile(r"\p{N}")  # one match per character, as HuggingFace's char predicate
_PUNCTUATION = regex.compile(f"[{_PUNCT}]")  # BERT's punctuation (normalizers.is_punctuation)


@dataclass(frozen=True)
class Digits(GeneralPreTokenizer):
    """Isolate runs of digits (``individual_digits``: each digit alone)."""

    individual_digits: bool = False

    def spans(self, text: str) -> list[tuple[int, int]]:
        return split_spans(text, _DIGIT, "isolated" if self.individual_digits else "contiguous")

    def to_json(self) -> dict:
        return {"type": "Digits", "individual_digits": self.individual_digits}

    @classmethod
    def from_json(cls, spec: dict) -> Digits:
        return cls(spec.get("individual_digits", False))


@dataclass(frozen=True)
class CharDelimiterSplit(GeneralPreTokenizer):
    """Split on one character, which is removed."""

    delimiter: str

    def spans(self, text: str) -> list[tuple[int, int]]:
        return split_spans(text, regex.compile(regex.escape(self.delimiter)), "removed")

    def to_json(self) -> dict:
        return {"type": "CharDelimiterSplit", "delimiter": self.delimiter}

    @classmethod
    def from_json(cls, spec: dict) -> CharDelimiterSplit:
        return cls(spec["delimiter"])


@dataclass(frozen=True)
class FixedLength(GeneralPreTokenizer):
    """Chunks of ``length`` characters."""

    length: int = 5

    def spans(self, text: str) -> list[tuple[int, int]]:
        return [(i, min(i + self.length, len(text))) for i in range(0, len(text), self.length)]

    def to_json(self) -> dict:
        return {"type": "FixedLength", "length": self.length}

    @classmethod
    def from_json(cls, spec: dict) -> FixedLength:
        return cls(spec.get("length", 5))


# HuggingFace's (SentencePiece's) script list, the common ones first; a character of any other script,
# or unassigned, is "Any" there and here.
_SCRIPTS = ("Latin", "Common", "Han", "Inherited", "Cyrillic", "Greek", "Arabic", "Hangul", "Hiragana", "Katakana",
            "Devanagari", "Hebrew", "Thai", "Adlam", "Ahom", "AnatolianHieroglyphs", "Armenian", "Avestan",
            "Balinese", "Bamum", "BassaVah", "Batak", "Bengali", "Bhaiksuki", "Bopomofo", "Brahmi", "Braille",
            "Buginese", "Buhid", "CanadianAboriginal", "Carian", "CaucasianAlbanian", "Chakma", "Cham", "Cherokee",
            "Coptic", "Cuneiform", "Cypriot", "Deseret", "Duployan", "EgyptianHieroglyphs", "Elbasan", "Ethiopic",
            "Georgian", "Glagolitic", "Gothic", "Grantha", "Gujarati", "Gurmukhi", "Hanunoo", "Hatran",
            "ImperialAramaic", "InscriptionalPahlavi", "InscriptionalParthian", "Javanese", "Kaithi", "Kannada",
            "KayahLi", "Kharoshthi", "Khmer", "Khojki", "Khudawadi", "Lao", "Lepcha", "Limbu", "LinearA",
            "LinearB", "Lisu", "Lycian", "Lydian", "Mahajani", "Malayalam", "Mandaic", "Manichaean", "Marchen",
            "MeeteiMayek", "MendeKikakui", "MeroiticCursive", "MeroiticHieroglyphs", "Miao", "Modi", "Mongolian",
            "Mro", "Multani", "Myanmar", "Nabataean", "NewTaiLue", "Newa", "Nko", "Ogham", "OlChiki",
            "OldHungarian", "OldItalic", "OldNorthArabian", "OldPermic", "OldPersian", "OldSouthArabian",
            "OldTurkic", "Oriya", "Osage", "Osmanya", "PahawhHmong", "Palmyrene", "PauCinHau", "PhagsPa",
            "Phoenician", "PsalterPahlavi", "Rejang", "Runic", "Samaritan", "Saurashtra", "Sharada", "Shavian",
            "Siddham", "SignWriting", "Sinhala", "SoraSompeng", "Sundanese", "SylotiNagri", "Syriac", "Tagalog",
            "Tagbanwa", "TaiLe", "TaiTham", "TaiViet", "Takri", "Tamil", "Tangut", "Telugu", "Thaana", "Tibetan",
            "Tifinagh", "Tirhuta", "Ugaritic", "Vai", "WarangCiti", "Yi")
_SCRIPT_OF = regex.compile("|".join(f"(?P<{name}>\\p{{Script={name}}})" for name in _SCRIPTS))


@functools.cache
def script_of(c: str) -> str:
    """SentencePiece's script of a character for ``UnicodeScripts``: Hiragana, Katakana and U+30FC count as
    Han, a space as "Any" (it joins either side)."""
    if c == "\u30fc":
        return "Han"
    if c == " ":
        return "Any"
    m = _SCRIPT_OF.match(c)
    script = m.lastgroup if m else "Any"
    return "Han" if script in ("Hiragana", "Katakana") else script


@dataclass(frozen=True)
class UnicodeScripts(GeneralPreTokenizer):
    """Cut where the script changes (spaces belong to no script), HuggingFace's ``UnicodeScripts``: as
    HuggingFace, what comes before the first character of a script (leading spaces) is dropped."""

    def spans(self, text: str) -> list[tuple[int, int]]:
        cuts, last = [], None
        for i, c in enumerate(text):
            script = script_of(c)
            if script != "Any" and script != last:
                cuts.append(i)
            if script != "Any":
                last = script
        cuts.append(len(text))
        return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]

    def to_json(self) -> dict:
        return {"type": "UnicodeScripts"}

    @classmethod
    def from_json(cls, spec: dict) -> UnicodeScripts:
        return cls()


@dataclass(frozen=True)
class Metaspace(GeneralPreTokenizer):
    r"""SentencePiece's whitespace handling: every space becomes ``replacement`` (``▁``), a ``▁`` is put
    before a piece that lacks one (``prepend_scheme``: ``always``; ``first``: only the piece that begins the
    original text; ``never``), then (``split``) the piece is cut before every ``▁``.  The put ``▁`` is aligned
    to the piece's first character."""

    replacement: str = "\u2581"
    prepend_scheme: str = "always"
    split: bool = True

    def __post_init__(self):
        if self.prepend_scheme not in ("always", "first", "never"):
            raise ScratchlmError(
                f"Metaspace prepend_scheme must be always, first or never, got {self.prepend_scheme!r}")
        if len(self.replacement) != 1:
            raise ScratchlmError(f"Metaspace replacement must be one character, got {self.replacement!r}")
        rep = regex.escape(self.replacement)
        # merged_with_next on the replacement: each one starts a piece (split_spans' rule, as one regex)
        object.__setattr__(self, "_pieces", regex.compile(f"{rep}[^{rep}]*|[^{rep}]+"))

    def pre_tokenize(self, pieces: list[Piece], at_origin=None) -> list[Piece]:
        out, rep = [], self.replacement
        for text, align in pieces:
            text = text.replace(" ", rep)
            if text and not text.startswith(rep) and (
                    self.prepend_scheme == "always"
                    or self.prepend_scheme == "first" and at_origin is not None and at_origin(align[0])):
                text, align = rep + text, [align[0]] + align
            if self.split:
                out += [(m.group(), align[m.start():m.end()]) for m in self._pieces.finditer(text)]
            elif text:
                out.append((text, align))
        return out

    def to_json(self) -> dict:
        return {"type": "Metaspace", "replacement": self.replacement, "prepend_scheme": self.prepend_scheme,
                "split": self.split}

    @classmethod
    def from_json(cls, spec: dict) -> Metaspace:
        scheme = spec.get("prepend_scheme", "always")
        if spec.get("add_prefix_space") is False:  # files before prepend_scheme
            if "prepend_scheme" in spec and scheme != "never":
                raise ScratchlmError("Metaspace: add_prefix_space does not match declared prepend_scheme")
            scheme = "never"
        return cls(spec.get("replacement", "\u2581"), scheme, spec.get("split", True))


@dataclass(frozen=True)
class Sequence(GeneralPreTokenizer):
    """Pre-tokenizers applied in turn, each to the pieces of the previous one."""

    pre_tokenizers: tuple[PreTokenizer, ...]

    def pre_tokenize(self, pieces: list[Piece], at_origin=None) -> list[Piece]:
        for p in self.pre_tokenizers:
            pieces = p.pre_tokenize(pieces, at_origin)
        return pieces

    def to_json(self) -> dict:
        return {"type": "Sequence", "pretokenizers": [p.to_json() for p in self.pre_tokenizers]}

    @classmethod
    def from_json(cls, spec: dict, *, read: Callable[[dict], PreTokenizer]) -> Sequence:
        return cls(tuple(read(member) for member in spec["pretokenizers"]))
