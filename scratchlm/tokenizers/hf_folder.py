"""The tokenizer files of a HuggingFace model folder, so ``AutoTokenizer.from_pretrained(folder)`` and
``pipeline(..., model=folder)`` use scratchlm's tokenizer as it is:

- ``tokenizer.json``: the pipeline itself (:meth:`~scratchlm.tokenizers.Tokenizer.to_json`), which
  transformers' fast tokenizers run through the ``tokenizers`` library;
- ``tokenizer_config.json``: which transformers class wraps it (``BertTokenizerFast`` for BERT's
  WordPiece pipeline, ``PreTrainedTokenizerFast`` otherwise), ``model_max_length``, ``do_lower_case``
  and the special tokens;
- ``special_tokens_map.json``: the special tokens by role (``cls_token``, ``sep_token``, ...);
- ``vocab.txt`` for a WordPiece vocabulary whose ids run 0..V-1 (BERT's file: the slow
  ``BertTokenizer`` reads it).

Without these files transformers builds a tokenizer from defaults: a folder holding only
``config.json`` and weights gets a vocabulary of a few special tokens, every word becomes ``[UNK]``,
and every input receives the same prediction, without a warning.
"""

from __future__ import annotations

import json
from pathlib import Path

from scratchlm.io import atomic_write_text
from scratchlm.tokenizers.models import WordPiece
from scratchlm.tokenizers.normalizers import BertNormalizer

# transformers' attribute names of the special tokens, with the ids scratchlm's Tokenizer knows them by.
ROLES = {"unk_token": "unk_token_id", "sep_token": "sep_token_id", "pad_token": "pad_token_id",
         "cls_token": "cls_token_id", "mask_token": "mask_token_id"}
FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def special_tokens_map(tok) -> dict[str, str]:
    """``{"cls_token": "[CLS]", ...}``: each role whose token the vocabulary holds."""
    out = {}
    for role, attribute in ROLES.items():
        i = getattr(tok, attribute)
        token = tok.id_to_token(i) if i is not None else None
        if token is not None:
            out[role] = token
    return out


def tokenizer_config(tok, *, model_max_length: int | None = None, special_tokens: dict[str, str] | None = None) -> dict:
    """``tokenizer_config.json``: the transformers class, its options and the special tokens.

    ``BertTokenizerFast`` when the pipeline is BERT's (a WordPiece model under a ``BertNormalizer``), with
    the normalizer's options as BERT's tokenizer arguments; else ``PreTrainedTokenizerFast``, which runs
    any ``tokenizer.json``.  ``model_max_length``: the longest input the model reads (its position
    table); transformers truncates to it when asked to truncate.  ``special_tokens``: roles to add to
    :func:`special_tokens_map`'s (a GPT-2 vocabulary's ``<|endoftext|>`` as ``eos_token`` and ``pad_token``)."""
    bert = isinstance(tok.model, WordPiece) and isinstance(tok.normalizer, BertNormalizer)
    config: dict = {"tokenizer_class": "BertTokenizerFast" if bert else "PreTrainedTokenizerFast"}
    if bert:
        n = tok.normalizer
        config.update(do_lower_case=n.lowercase, strip_accents=n.strip_accents,
                      tokenize_chinese_chars=n.handle_chinese_chars, do_basic_tokenize=True, never_split=None)
    if model_max_length is not None:
        config["model_max_length"] = int(model_max_length)
    config.update(special_tokens_map(tok), **(special_tokens or {}))
    config["clean_up_tokenization_spaces"] = False  # decode gives the decoder's text, as scratchlm's decode does
    return config


def vocab_txt(tok) -> str | None:
    """BERT's ``vocab.txt`` (one token a line, the line number its id), or None when the model is not
    WordPiece or its ids, added tokens included, do not run 0..V-1 without a gap."""
    if not isinstance(tok.model, WordPiece):
        return None
    by_id = {i: t for t, i in tok.get_vocab().items()}
    if sorted(by_id) != list(range(len(by_id))):
        return None
    return "".join(by_id[i] + "\n" for i in range(len(by_id)))


def save_pretrained(folder: str | Path, tok, *, model_max_length: int | None = None,
                    special_tokens: dict[str, str] | None = None) -> list[Path]:
    """Write ``tok``'s files of a HuggingFace model folder (see the module doc); returns the paths written.
    ``special_tokens``: roles beside the ones the vocabulary's own names give (:func:`tokenizer_config`).

    ``tokenizer.json`` holds the same bytes :meth:`~scratchlm.tokenizers.Tokenizer.save` writes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    texts = {"tokenizer.json": json.dumps(tok.to_json(), ensure_ascii=False, indent=2) + "\n",
             "tokenizer_config.json": json.dumps(tokenizer_config(tok, model_max_length=model_max_length,
                                                                  special_tokens=special_tokens),
                                                 ensure_ascii=False, indent=2) + "\n",
             "special_tokens_map.json": json.dumps({**special_tokens_map(tok), **(special_tokens or {})},
                                                   ensure_ascii=False, indent=2) + "\n"}
    vocab = vocab_txt(tok)
    if vocab is not None:
        texts["vocab.txt"] = vocab
    for name, text in texts.items():
        atomic_write_text(folder / name, text)
    return [folder / name for name in texts]


__all__ = ["FILES", "ROLES", "save_pretrained", "special_tokens_map", "tokenizer_config", "vocab_txt"]
