"""Shared fixtures for the HuggingFace comparisons: text strategies whose characters mean the same in
Python's Unicode database and in the older tables of HuggingFace's Rust crates (see normalizers.py)."""

import unicodedata

from hypothesis import strategies as st

from scratchlm.tokenizers.normalizers import WHITESPACE


def _stable(c: str) -> bool:
    """Assigned in Unicode 3.2 with the category it has today (so every table agrees on it)."""
    return unicodedata.ucd_3_2_0.category(c) == unicodedata.category(c) not in ("Cn", "Cs")


_RANGES = [
    (0x20, 0x7E),      # ASCII
    (0x00, 0x1F), (0x7F, 0x9F),  # control characters
    (0xA0, 0x17F),     # Latin-1, Latin Extended-A (accents)
    (0x300, 0x36F),    # combining marks
    (0x370, 0x3FF), (0x400, 0x4FF), (0x600, 0x6FF), (0x900, 0x97F),  # Greek, Cyrillic, Arabic, Devanagari
    (0x2000, 0x206F),  # general punctuation, spaces, zero-width and format characters
    (0x3000, 0x303F), (0x4E00, 0x4F00), (0xAC00, 0xAC80),  # CJK punctuation, ideographs, Hangul
    (0xF900, 0xF920),  # CJK compatibility ideographs (they decompose)
    (0xE000, 0xE00F),  # private use
    (0xFB00, 0xFB06), (0xFEFF, 0xFEFF), (0xFFFD, 0xFFFD),
]
_EMOJI = [chr(c) for c in range(0x1F300, 0x1F650) if unicodedata.category(chr(c)) == "So"]
ALPHABET = sorted({chr(c) for lo, hi in _RANGES for c in range(lo, hi + 1) if _stable(chr(c))}
                  | set(_EMOJI) | WHITESPACE)

# Mixed-script text, with runs of one letter long enough to pass WordPiece's 100-character limit.
texts = st.lists(
    st.one_of(st.text(st.sampled_from(ALPHABET), max_size=30),
              st.builds(lambda c, n: c * n, st.sampled_from("aé中x"), st.integers(95, 110))),
    max_size=4,
).map(" ".join)
