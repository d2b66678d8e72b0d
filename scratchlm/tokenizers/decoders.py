"""Decoders: tokens back to text (HuggingFace's ``decoders.WordPiece`` and ``decoders.ByteLevel``)."""

from __future__ import annotations

from dataclasses import dataclass

from scratchlm.tokenizers.pre_tokenizers import unicode_to_bytes

# BERT's detokenization clean-up of spaces before punctuation and English contractions (per token,
# as HuggingFace applies it).
_CLEANUP = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
            (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


@dataclass(frozen=True)
class WordPieceDecoder:
    """Join tokens with spaces, gluing ``##`` continuations to the token before them."""

    prefix: str = "##"
    cleanup: bool = True

    def decode(self, tokens: list[str]) -> str:
        out = []
        for i, token in enumerate(tokens):
            if i:
                token = token[len(self.prefix):] if token.startswith(self.prefix) else " " + token
            if self.cleanup:
                for dirty, clean in _CLEANUP:
                    token = token.replace(dirty, clean)
            out.append(token)
        return "".join(out)

    def to_json(self) -> dict:
        return {"type": "WordPiece", "prefix": self.prefix, "cleanup": self.cleanup}

    @classmethod
    def from_json(cls, spec: dict) -> WordPieceDecoder:
        return cls(spec.get("prefix", "##"), spec.get("cleanup", True))


@dataclass(frozen=True)
class ByteLevelDecoder:
    """Concatenate tokens, map GPT-2 characters back to bytes, decode UTF-8 (invalid sequences become U+FFFD,
    which happens only when ids are cut inside a character)."""

    def decode(self, tokens: list[str]) -> str:
        table = unicode_to_bytes()
        data = bytearray()
        for token in tokens:
            try:
                data.extend(table[c] for c in token)
            except KeyError:  # an added token written as plain text
                data.extend(token.encode("utf-8"))
        return data.decode("utf-8", errors="replace")

    def to_json(self) -> dict:
        return {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}

    @classmethod
    def from_json(cls, spec: dict) -> ByteLevelDecoder:
        return cls()


@dataclass(frozen=True)
class SpaceDecoder:
    """No decoder in the file: tokens joined by spaces (HuggingFace's fallback)."""

    def decode(self, tokens: list[str]) -> str:
        return " ".join(tokens)

    def to_json(self) -> None:
        return None
