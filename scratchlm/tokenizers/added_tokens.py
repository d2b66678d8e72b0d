"""Added tokens: strings matched in the text before anything else (HuggingFace's ``AddedToken`` and its
``AddedVocabulary`` matching), the special tokens among them."""

from __future__ import annotations

from dataclasses import dataclass

import regex


@dataclass(frozen=True)
class AddedToken:
    """A token matched in the raw text before anything else (HuggingFace's ``AddedToken``)."""

    content: str
    id: int
    special: bool = True
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = False  # matched in the normalized text rather than the original

    def to_json(self) -> dict:
        return {"id": self.id, "content": self.content, "single_word": self.single_word, "lstrip": self.lstrip,
                "rstrip": self.rstrip, "normalized": self.normalized, "special": self.special}

    @classmethod
    def from_json(cls, spec: dict) -> AddedToken:
        special = spec.get("special", False)
        return cls(spec["content"], spec["id"], special, spec.get("single_word", False), spec.get("lstrip", False),
                   spec.get("rstrip", False), spec.get("normalized", not special))


def added_pattern(tokens: list[AddedToken]) -> regex.Pattern | None:
    """One alternation, longest first, so the leftmost-longest token wins (HuggingFace's Aho-Corasick rule)."""
    if not tokens:
        return None
    parts = []
    for t in sorted(tokens, key=lambda t: -len(t.content)):
        p = regex.escape(t.content)
        if t.single_word:
            p = rf"(?<!\w){p}(?!\w)"
        if t.lstrip:
            p = rf"\s*{p}"
        if t.rstrip:
            p = rf"{p}\s*"
        parts.append(p)
    return regex.compile("|".join(parts))
