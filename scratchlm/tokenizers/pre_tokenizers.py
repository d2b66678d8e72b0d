"""Pre-tokenizers: split normalized text into words, each tokenized by the model on its own.

A pre-tokenizer here is one compiled regular expression whose matches are the words (what is not
matched, whitespace, is dropped), plus, for byte-level BPE, a map from each word to the string the
model sees.  Words are what the tokenizer caches, so a pre-tokenizer also bounds the work per word.

* ``BertPreTokenizer``: split on whitespace, and isolate every punctuation character (Devlin et al.
  2019, ``BasicTokenizer._run_split_on_punc``).  CJK ideographs were already spaced by the normalizer.
* ``ByteLevel``: GPT-2's split regex (Radford et al. 2019, ``encoder.py``) and its byte-to-unicode
  map: every UTF-8 byte becomes one printable character, so byte-level BPE never meets an unknown
  symbol and decoding is lossless.
* ``Whitespace`` (``\\w+|[^\\w\\s]+``) and ``WhitespaceSplit``, as HuggingFace names them.

The pre-tokenizers that need more than one regex (``Metaspace``, ``Split`` and its behaviours,
``Digits``, ``Punctuation``, ``Sequence``, ...) are in :mod:`scratchlm.tokenizers.split_pre_tokenizers`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import regex

from scratchlm.tokenizers.normalizers import WHITESPACE

_WS = "".join(f"\\U{ord(c):08x}" for c in sorted(WHITESPACE))
# BERT's punctuation: ASCII non-alphanumeric printables and Unicode P* (normalizers.is_punctuation).
_PUNCT = r"!-/:-@\[-`{-~\p{P}"

# GPT-2's split: contractions, letters, digits, other symbols (each optionally after one space), and
# runs of whitespace, the last one kept apart from the following word (\s+(?!\S)).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (Radford et al. 2019, ``encoder.py``).

    The 188 printable Latin-1 bytes map to themselves; the other 68 (control characters, space,
    ...) to U+0100 onwards in byte order, so a space becomes ``Ġ`` (U+0120) and a newline ``Ċ``.
    """
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


def to_byte_chars(text: str) -> str:
    """``text``'s UTF-8 bytes written with GPT-2's byte characters (one C-speed pass: bytes -> Latin-1 -> map)."""
    return text.encode("utf-8").decode("latin-1").translate(bytes_to_unicode())


@functools.cache
def unicode_to_bytes() -> dict[str, int]:
    return {c: b for b, c in bytes_to_unicode().items()}


class PreTokenizer:
    """``pattern.finditer(text)`` yields the words; ``transform(word)`` gives the model's input string and,
    for each of its characters, the index of the word character it came from (``None``: identity)."""

    pattern: regex.Pattern
    add_prefix_space: bool = False

    def transform(self, word: str) -> tuple[str, list[int] | None]:
        return word, None

    def pre_tokenize(self, pieces: list[tuple[str, list[int]]], at_origin=None) -> list[tuple[str, list[int]]]:
        """Split each ``(string, alignment)`` piece into words (the general path that ``Sequence`` composes):
        the regex's matches, each transformed, its alignment following the transform."""
        out = []
        for text, align in pieces:
            if self.add_prefix_space and text and not text.startswith(" "):
                text, align = " " + text, [align[0]] + align
            for m in self.pattern.finditer(text):
                a, b = m.span()
                word, char_of = self.transform(text[a:b])
                out.append((word, align[a:b] if char_of is None else [align[a + k] for k in char_of]))
        return out

    def pre_tokenize_str(self, text: str) -> list[tuple[str, tuple[int, int]]]:
        """The words and their spans, as HuggingFace's method of the same name returns them."""
        return [(self.transform(m.group())[0], m.span()) for m in self.pattern.finditer(text)]

    def to_json(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_json(cls, spec: dict) -> PreTokenizer:
        return cls()


class BertPreTokenizer(PreTokenizer):
    pattern = regex.compile(f"[^{_WS}{_PUNCT}]+|[{_PUNCT}]")

    def to_json(self) -> dict:
        return {"type": "BertPreTokenizer"}


class Whitespace(PreTokenizer):
    pattern = regex.compile(r"\w+|[^\w\s]+")

    def to_json(self) -> dict:
        return {"type": "Whitespace"}


class WhitespaceSplit(PreTokenizer):
    pattern = regex.compile(f"[^{_WS}]+")

    def to_json(self) -> dict:
        return {"type": "WhitespaceSplit"}


@dataclass(frozen=True)
class ByteLevel(PreTokenizer):
    """GPT-2's byte-level pre-tokenizer; ``add_prefix_space`` puts a space before a text that lacks one
    so the first word is tokenized like any other (HuggingFace's default is True, GPT-2's own is False)."""

    add_prefix_space: bool = False
    use_regex: bool = True
    trim_offsets: bool = True

    @property
    def pattern(self) -> regex.Pattern:
        return _BYTE_LEVEL_SPLIT if self.use_regex else _WHOLE

    def transform(self, word: str) -> tuple[str, list[int] | None]:
        """The word's UTF-8 bytes as GPT-2 characters, each aligned to the character it encodes."""
        mapped = to_byte_chars(word)
        if len(mapped) == len(word):  # ASCII: one byte per character
            return mapped, None
        alignment = []
        for i, ch in enumerate(word):
            alignment.extend([i] * len(ch.encode("utf-8")))
        return mapped, alignment

    def pre_tokenize_str(self, text: str) -> list[tuple[str, tuple[int, int]]]:
        """The words and their spans (the space put before the text aligned to its first character)."""
        pieces = self.pre_tokenize([(text, list(range(len(text))))])
        return [(w, (align[0], align[-1] + 1)) for w, align in pieces]

    def to_json(self) -> dict:
        return {"type": "ByteLevel", "add_prefix_space": self.add_prefix_space,
                "trim_offsets": self.trim_offsets, "use_regex": self.use_regex}

    @classmethod
    def from_json(cls, spec: dict) -> ByteLevel:
        return cls(spec.get("add_prefix_space", True), spec.get("use_regex", True), spec.get("trim_offsets", True))


_BYTE_LEVEL_SPLIT = regex.compile(GPT2_PATTERN)
_WHOLE = regex.compile(r"(?s).+")
