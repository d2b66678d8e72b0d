"""HuggingFace ``tokenizer.json``: read one into a :class:`Tokenizer`, write a Tokenizer as one.

The file's own settings are honoured as HuggingFace applies them: its normalizer, pre-tokenizer,
post-processor (where special tokens go), decoder, added tokens, and its ``truncation`` and
``padding`` (all-MiniLM-L6-v2's file pads and truncates to 128 tokens; call ``tok.no_padding()`` /
``tok.no_truncation()`` to switch that off, as with HuggingFace).
"""

from __future__ import annotations

import json
from pathlib import Path

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers import decoders, normalize, pretokenize
from scratchlm.tokenizers.encoding import Padding, TemplateProcessing, Truncation
from scratchlm.tokenizers.tokenizer import AddedToken, Tokenizer


def load(path: str | Path) -> Tokenizer:
    """Read a HuggingFace ``tokenizer.json`` (WordPiece or BPE model)."""
    from scratchlm.data.corpora import read_text

    path = Path(path)
    try:
        spec = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ScratchlmError(f"{path} is not a tokenizer.json: invalid JSON at line {err.lineno} column {err.colno}") from None
    if not isinstance(spec, dict) or "model" not in spec:
        raise ScratchlmError(f"{path} is not a tokenizer.json: it has no 'model' entry")
    try:
        return from_json(spec)
    except ScratchlmError as err:
        raise ScratchlmError(f"{path}: {err}") from None


def from_json(spec: dict) -> Tokenizer:
    model = _model_from_json(spec["model"])
    added = [AddedToken(t["content"], t["id"], t.get("special", False), t.get("single_word", False),
                        t.get("lstrip", False), t.get("rstrip", False), t.get("normalized", not t.get("special", False)))
             for t in spec.get("added_tokens") or []]
    return Tokenizer(
        model,
        normalizer=normalize.from_json(spec.get("normalizer")),
        pre_tokenizer=pretokenize.from_json(spec.get("pre_tokenizer")),
        post_processor=_post_processor_from_json(spec.get("post_processor")),
        decoder=decoders.from_json(spec.get("decoder")),
        added_tokens=added,
        truncation=_truncation_from_json(spec.get("truncation")),
        padding=_padding_from_json(spec.get("padding")),
    )


def to_json(tok: Tokenizer) -> dict:
    processor = tok.post_processor
    if processor is None:
        post = None
    elif processor.trim_offsets and not processor.special_tokens:
        post = {"type": "ByteLevel", "add_prefix_space": getattr(tok.pre_tokenizer, "add_prefix_space", False),
                "trim_offsets": True, "use_regex": True}
    else:
        post = processor.to_json()
    return {
        "version": "1.0",
        "truncation": None if tok.truncation is None else tok.truncation.to_json(),
        "padding": None if tok.padding is None else tok.padding.to_json(),
        "added_tokens": [t.to_json() for t in tok.added_tokens],
        "normalizer": None if tok.normalizer is None else tok.normalizer.to_json(),
        "pre_tokenizer": None if tok.pre_tokenizer is None else tok.pre_tokenizer.to_json(),
        "post_processor": post,
        "decoder": tok.decoder.to_json(),
        "model": tok.model.to_json(),
    }


def save(tok: Tokenizer, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_json(tok), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _model_from_json(spec: dict):
    kind = spec.get("type")
    if kind is None:  # very old files name no type; tell them apart as HuggingFace does
        kind = "BPE" if "merges" in spec else "WordPiece" if "continuing_subword_prefix" in spec else None
    if kind == "WordPiece":
        from scratchlm.tokenizers.wordpiece import WordPiece

        return WordPiece.from_json(spec)
    if kind == "BPE":
        from scratchlm.tokenizers.bpe import BPE

        return BPE.from_json(spec)
    raise ScratchlmError(f"tokenizer.json model type {kind!r} is not supported by scratchlm (supported: WordPiece, BPE)")


def _post_processor_from_json(spec: dict | None) -> TemplateProcessing | None:
    if spec is None:
        return None
    kind = spec.get("type")
    if kind == "TemplateProcessing":
        def pieces(template):
            out = []
            for piece in template:
                (name, body), = piece.items()
                out.append((body["id"], body.get("type_id", 0)))
            return tuple(out)

        specials = {name: (tuple(s["ids"]), tuple(s["tokens"])) for name, s in spec.get("special_tokens", {}).items()}
        return TemplateProcessing(pieces(spec["single"]), pieces(spec["pair"]), specials)
    if kind == "BertProcessing":
        (sep, sep_id), (cls, cls_id) = spec["sep"], spec["cls"]
        return TemplateProcessing.bert(cls, cls_id, sep, sep_id)
    if kind == "ByteLevel":
        return TemplateProcessing((("A", 0),), (("A", 0), ("B", 1)), {}, trim_offsets=spec.get("trim_offsets", True))
    raise ScratchlmError(
        f"tokenizer.json post_processor type {kind!r} is not supported by scratchlm "
        "(supported: TemplateProcessing, BertProcessing, ByteLevel)")


def _truncation_from_json(spec: dict | None) -> Truncation | None:
    if spec is None:
        return None
    strategy = {"LongestFirst": "longest_first", "OnlyFirst": "only_first", "OnlySecond": "only_second"}[spec.get("strategy", "LongestFirst")]
    return Truncation(spec["max_length"], strategy, spec.get("direction", "Right").lower(), spec.get("stride", 0))


def _padding_from_json(spec: dict | None) -> Padding | None:
    if spec is None:
        return None
    strategy = spec.get("strategy", "BatchLongest")
    length = strategy["Fixed"] if isinstance(strategy, dict) else None
    return Padding(length, spec.get("pad_id", 0), spec.get("pad_type_id", 0), spec.get("pad_token", "[PAD]"),
                   spec.get("direction", "Right").lower(), spec.get("pad_to_multiple_of"))
