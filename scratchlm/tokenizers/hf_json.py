"""HuggingFace ``tokenizer.json``: read one into a :class:`Tokenizer` (``Tokenizer.save`` writes one).

The file's own settings are honoured as HuggingFace applies them: its normalizer, pre-tokenizer,
post-processor (where special tokens go), decoder, added tokens, and its ``truncation`` and
``padding`` (all-MiniLM-L6-v2's file pads and truncates to 128 tokens; call ``tok.no_padding()`` /
``tok.no_truncation()`` to switch that off, as with HuggingFace).

Each component class writes its own JSON (``to_json``) and reads it back (``from_json``); the file
names a component by HuggingFace's ``"type"``, and :data:`REGISTRY` maps each slot's type names to the
readers.  This is the one module that knows every component type: writing needs no registry (a
Tokenizer asks its own components), so ``tokenizer.py`` imports none of them and nothing here is
imported back by them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from scratchlm.errors import ScratchlmError
from scratchlm.io import read_text
from scratchlm.tokenizers import split_pre_tokenizers as split
from scratchlm.tokenizers import text_normalizers as text
from scratchlm.tokenizers.decoders import (
    BPEDecoder,
    ByteFallbackDecoder,
    ByteLevelDecoder,
    CTCDecoder,
    FuseDecoder,
    MetaspaceDecoder,
    ReplaceDecoder,
    SequenceDecoder,
    StripDecoder,
    WordPieceDecoder,
)
from scratchlm.tokenizers.models import BPE, Unigram, WordLevel, WordPiece
from scratchlm.tokenizers.normalizers import (
    NFD,
    BertNormalizer,
    Lowercase,
    Nmt,
    Sequence,
    StripAccents,
)
from scratchlm.tokenizers.pre_tokenizers import BertPreTokenizer, ByteLevel, Whitespace, WhitespaceSplit
from scratchlm.tokenizers.processors import (
    ByteLevelProcessing,
    Padding,
    RobertaProcessing,
    SequenceProcessing,
    TemplateProcessing,
    Truncation,
)
from scratchlm.tokenizers.tokenizer import AddedToken, Tokenizer

# slot of the file -> HuggingFace's "type" name -> reader of that component's JSON.
REGISTRY: dict[str, dict[str, Callable[[dict], object]]] = {
    "model": {"WordPiece": WordPiece.from_json, "BPE": BPE.from_json, "Unigram": Unigram.from_json,
              "WordLevel": WordLevel.from_json},
    "normalizer": {
        "BertNormalizer": BertNormalizer.from_json, "Lowercase": Lowercase.from_json, "NFD": NFD.from_json,
        "NFKD": NFD.from_json, "NFC": text.NFC.from_json, "NFKC": text.NFC.from_json,
        "StripAccents": StripAccents.from_json, "Strip": text.Strip.from_json, "Replace": text.Replace.from_json,
        "Prepend": text.Prepend.from_json, "Precompiled": text.Precompiled.from_json, "Nmt": Nmt.from_json,
        "ByteLevel": text.ByteLevelNormalizer.from_json,
        "Sequence": lambda spec: Sequence.from_json(spec, read=lambda member: read("normalizer", member)),
    },
    "pre_tokenizer": {
        "BertPreTokenizer": BertPreTokenizer.from_json, "ByteLevel": ByteLevel.from_json,
        "Whitespace": Whitespace.from_json, "WhitespaceSplit": WhitespaceSplit.from_json,
        "Metaspace": split.Metaspace.from_json, "Split": split.Split.from_json,
        "Punctuation": split.Punctuation.from_json, "Digits": split.Digits.from_json,
        "CharDelimiterSplit": split.CharDelimiterSplit.from_json, "FixedLength": split.FixedLength.from_json,
        "UnicodeScripts": split.UnicodeScripts.from_json,
        "Sequence": lambda spec: split.Sequence.from_json(spec, read=lambda member: read("pre_tokenizer", member)),
    },
    "post_processor": {
        "TemplateProcessing": TemplateProcessing.from_json, "BertProcessing": TemplateProcessing.from_bert_json,
        "ByteLevel": ByteLevelProcessing.from_json, "RobertaProcessing": RobertaProcessing.from_json,
        "Sequence": lambda spec: SequenceProcessing.from_json(spec, read=lambda m: read("post_processor", m)),
    },
    "decoder": {
        "WordPiece": WordPieceDecoder.from_json, "ByteLevel": ByteLevelDecoder.from_json,
        "Metaspace": MetaspaceDecoder.from_json, "ByteFallback": ByteFallbackDecoder.from_json,
        "Fuse": FuseDecoder.from_json, "Strip": StripDecoder.from_json, "BPEDecoder": BPEDecoder.from_json,
        "CTC": CTCDecoder.from_json, "Replace": lambda spec: ReplaceDecoder(text.Replace.from_json(spec)),
        "Sequence": lambda spec: SequenceDecoder(tuple(read("decoder", m) for m in spec["decoders"])),
    },
}


def read(slot: str, spec: dict):
    """The component a ``tokenizer.json`` entry of ``slot`` describes; an unsupported type is an error."""
    kind = spec.get("type")
    if kind is None and slot == "model":  # very old files name no type; tell them apart as HuggingFace does
        kind = ("BPE" if "merges" in spec else "WordPiece" if "continuing_subword_prefix" in spec
                else "Unigram" if isinstance(spec.get("vocab"), list) else "WordLevel" if "vocab" in spec else None)
    reader = REGISTRY[slot].get(kind)
    if reader is None:
        raise ScratchlmError(
            f"tokenizer.json {slot} type {kind!r} is not supported by scratchlm "
            f"(supported: {', '.join(REGISTRY[slot])})")
    return reader(spec)


def load(path: str | Path, *, rng=None) -> Tokenizer:
    """Read a HuggingFace ``tokenizer.json`` (a WordPiece, BPE, Unigram or WordLevel model).  ``rng`` (a
    ``numpy.random.Generator``) drives BPE-dropout when the file's BPE has a ``dropout``."""
    path = Path(path)
    try:
        spec = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ScratchlmError(
            f"{path} is not a tokenizer.json: invalid JSON at line {err.lineno} column {err.colno}") from None
    if not isinstance(spec, dict) or "model" not in spec:
        raise ScratchlmError(f"{path} is not a tokenizer.json: it has no 'model' entry")
    try:
        return from_json(spec, rng=rng)
    except ScratchlmError as err:
        raise ScratchlmError(f"{path}: {err}") from None


def from_json(spec: dict, *, rng=None) -> Tokenizer:
    """The Tokenizer a parsed ``tokenizer.json`` describes (the inverse of :meth:`Tokenizer.to_json`)."""

    def optional(slot: str):
        return None if spec.get(slot) is None else read(slot, spec[slot])

    model = spec["model"]
    return Tokenizer(
        BPE.from_json(model, rng=rng) if rng is not None and model.get("type") == "BPE" else read("model", model),
        normalizer=optional("normalizer"),
        pre_tokenizer=optional("pre_tokenizer"),
        post_processor=optional("post_processor"),
        decoder=optional("decoder"),  # none: the Tokenizer joins tokens with spaces, as HuggingFace does
        added_tokens=[AddedToken.from_json(t) for t in spec.get("added_tokens") or []],
        truncation=None if spec.get("truncation") is None else Truncation.from_json(spec["truncation"]),
        padding=None if spec.get("padding") is None else Padding.from_json(spec["padding"]),
    )
