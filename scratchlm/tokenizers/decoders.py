"""Decoders: tokens back to text, HuggingFace's ``decoders``.

Each decoder maps the token strings to strings (``decode_chain``, so that a ``Sequence`` can chain them)
and ``decode`` joins the result: WordPiece's ``##`` gluing, GPT-2's bytes, SentencePiece's ``▁``
(``Metaspace``), ``<0xNN>`` byte pieces (``ByteFallback``), ``Fuse``, ``Strip``, ``Replace``, the
``</w>`` suffix (``BPEDecoder``) and CTC's collapse of repeats (Graves et al. 2006, §3.2: remove repeated
labels, then blanks).
"""

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
        return "".join(self.decode_chain(tokens))

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out = []
        for i, token in enumerate(tokens):
            if i:
                token = token[len(self.prefix):] if token.startswith(self.prefix) else " " + token
            if self.cleanup:
                for dirty, clean in _CLEANUP:
                    token = token.replace(dirty, clean)
            out.append(token)
        return out

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

    def decode_chain(self, tokens: list[str]) -> list[str]:
        return [self.decode(tokens)]

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

    def decode_chain(self, tokens: list[str]) -> list[str]:
        return [self.decode(tokens)]

    def to_json(self) -> None:
        return None


class ChainDecoder:
    """A decoder defined by ``decode_chain`` (tokens -> strings); ``decode`` joins them."""

    def decode(self, tokens: list[str]) -> str:
        return "".join(self.decode_chain(tokens))


@dataclass(frozen=True)
class MetaspaceDecoder(ChainDecoder):
    """``▁`` back to a space; in the first token every ``▁`` is dropped unless ``prepend_scheme`` is ``never``."""

    replacement: str = "\u2581"
    prepend_scheme: str = "always"
    split: bool = True

    def decode_chain(self, tokens: list[str]) -> list[str]:
        rep = self.replacement
        drop_first = self.prepend_scheme != "never"
        return [t.replace(rep, "") if i == 0 and drop_first else t.replace(rep, " ") for i, t in enumerate(tokens)]

    def to_json(self) -> dict:
        return {"type": "Metaspace", "replacement": self.replacement, "prepend_scheme": self.prepend_scheme,
                "split": self.split}

    @classmethod
    def from_json(cls, spec: dict) -> MetaspaceDecoder:
        scheme = spec.get("prepend_scheme", "always")
        if spec.get("add_prefix_space") is False:
            scheme = "never"
        return cls(spec.get("replacement", "\u2581"), scheme, spec.get("split", True))


def _byte_token(token: str) -> int | None:
    if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
        try:
            return int(token[3:5], 16)
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class ByteFallbackDecoder(ChainDecoder):
    """Runs of ``<0xNN>`` pieces back to their UTF-8 text; a run that is not valid UTF-8 becomes one U+FFFD per byte."""

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out, pending = [], bytearray()

        def flush():
            if pending:
                try:
                    out.append(pending.decode("utf-8"))
                except UnicodeDecodeError:
                    out.extend(["\ufffd"] * len(pending))
                pending.clear()

        for token in tokens:
            b = _byte_token(token)
            if b is not None:
                pending.append(b)
            else:
                flush()
                out.append(token)
        flush()
        return out

    def to_json(self) -> dict:
        return {"type": "ByteFallback"}

    @classmethod
    def from_json(cls, spec: dict) -> ByteFallbackDecoder:
        return cls()


@dataclass(frozen=True)
class FuseDecoder(ChainDecoder):
    """All tokens into one string."""

    def decode_chain(self, tokens: list[str]) -> list[str]:
        return ["".join(tokens)]

    def to_json(self) -> dict:
        return {"type": "Fuse"}

    @classmethod
    def from_json(cls, spec: dict) -> FuseDecoder:
        return cls()


@dataclass(frozen=True)
class StripDecoder(ChainDecoder):
    """Remove up to ``start`` leading and ``stop`` trailing ``content`` characters from every token."""

    content: str = " "
    start: int = 0
    stop: int = 0

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out = []
        for token in tokens:
            a = 0
            while a < min(self.start, len(token)) and token[a] == self.content:
                a += 1
            b = len(token)
            while len(token) - b < self.stop and b > a and token[b - 1] == self.content:
                b -= 1
            out.append(token[a:b])
        return out

    def to_json(self) -> dict:
        return {"type": "Strip", "content": self.content, "start": self.start, "stop": self.stop}

    @classmethod
    def from_json(cls, spec: dict) -> StripDecoder:
        return cls(spec.get("content", " "), spec.get("start", 0), spec.get("stop", 0))


@dataclass(frozen=True)
class ReplaceDecoder(ChainDecoder):
    """Every match of the normalizer ``Replace``'s pattern in each token replaced by its content."""

    replace: object  # a text_normalizers.Replace

    def decode_chain(self, tokens: list[str]) -> list[str]:
        return [self.replace.replace_str(t) for t in tokens]

    def to_json(self) -> dict:
        return self.replace.to_json()


@dataclass(frozen=True)
class BPEDecoder(ChainDecoder):
    """The end-of-word ``suffix`` (``</w>``) becomes a space, or nothing in the last token."""

    suffix: str = "</w>"

    def decode_chain(self, tokens: list[str]) -> list[str]:
        n = len(tokens) - 1
        return [t.replace(self.suffix, "" if i == n else " ") for i, t in enumerate(tokens)]

    def to_json(self) -> dict:
        return {"type": "BPEDecoder", "suffix": self.suffix}

    @classmethod
    def from_json(cls, spec: dict) -> BPEDecoder:
        return cls(spec.get("suffix", "</w>"))


@dataclass(frozen=True)
class CTCDecoder(ChainDecoder):
    """CTC's collapse (Graves et al. 2006, §3.2): merge repeated tokens, drop the blank ``pad_token``;
    with ``cleanup`` BERT's clean-up and ``word_delimiter_token`` to a space."""

    pad_token: str = "<pad>"
    word_delimiter_token: str = "|"
    cleanup: bool = True

    def decode_chain(self, tokens: list[str]) -> list[str]:
        out = []
        for i, token in enumerate(tokens):
            if i and token == tokens[i - 1]:
                continue
            token = token.replace(self.pad_token, "")
            if self.cleanup:
                for dirty, clean in _CLEANUP:
                    token = token.replace(dirty, clean)
                token = token.replace(self.word_delimiter_token, " ")
            if token:
                out.append(token)
        return out

    def to_json(self) -> dict:
        return {"type": "CTC", "pad_token": self.pad_token, "word_delimiter_token": self.word_delimiter_token,
                "cleanup": self.cleanup}

    @classmethod
    def from_json(cls, spec: dict) -> CTCDecoder:
        return cls(spec.get("pad_token", "<pad>"), spec.get("word_delimiter_token", "|"), spec.get("cleanup", True))


@dataclass(frozen=True)
class SequenceDecoder(ChainDecoder):
    """Decoders chained: each one's ``decode_chain`` on the previous one's strings."""

    decoders: tuple

    def decode_chain(self, tokens: list[str]) -> list[str]:
        for d in self.decoders:
            tokens = d.decode_chain(tokens)
        return tokens

    def to_json(self) -> dict:
        return {"type": "Sequence", "decoders": [d.to_json() for d in self.decoders]}
