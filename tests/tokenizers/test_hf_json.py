"""tokenizer.json (scratchlm/tokenizers/hf_json.py): every registered component reads back what it
writes, files round-trip unchanged, and an unsupported type names the supported ones."""

import json

import pytest

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.tokenizers import hf_json
from scratchlm.tokenizers.pipelines import BERT_SPECIAL_TOKENS, train_bert_wordpiece, train_bpe
from scratchlm.tokenizers.processors import TemplateProcessing

# One written example per registered type name (models are covered by the trained files below).
COMPONENTS = {
    "normalizer": [
        {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": False, "strip_accents": None,
         "lowercase": False},
        {"type": "Lowercase"}, {"type": "NFD"}, {"type": "NFKD"}, {"type": "NFC"}, {"type": "NFKC"},
        {"type": "StripAccents"}, {"type": "Strip", "strip_left": True, "strip_right": False},
        {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        {"type": "Prepend", "prepend": "\u2581"}, {"type": "Nmt"}, {"type": "ByteLevel"},
        {"type": "Precompiled", "precompiled_charsmap": "AAAAAA=="},
        {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}, {"type": "Lowercase"}]},
    ],
    "pre_tokenizer": [
        {"type": "BertPreTokenizer"}, {"type": "Whitespace"}, {"type": "WhitespaceSplit"},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": False},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        {"type": "Split", "pattern": {"Regex": "\\d+"}, "behavior": "MergedWithNext", "invert": True},
        {"type": "Punctuation", "behavior": "Contiguous"}, {"type": "Digits", "individual_digits": True},
        {"type": "CharDelimiterSplit", "delimiter": "_"}, {"type": "FixedLength", "length": 3},
        {"type": "UnicodeScripts"},
        {"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                                               {"type": "Metaspace", "replacement": "_", "prepend_scheme": "always",
                                                "split": True}]},
    ],
    "post_processor": [
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        TemplateProcessing.bert("[CLS]", 101, "[SEP]", 102).to_json(),
        {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": True,
         "add_prefix_space": False},
        {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            TemplateProcessing.bert("[CLS]", 101, "[SEP]", 102).to_json()]},
    ],
    "decoder": [{"type": "WordPiece", "prefix": "##", "cleanup": False},
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
                {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
                {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0},
                {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                {"type": "BPEDecoder", "suffix": "</w>"},
                {"type": "CTC", "pad_token": "<pad>", "word_delimiter_token": "|", "cleanup": True},
                {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Fuse"}]}],
}


def test_every_registered_type_has_an_example():
    named = {slot: {spec["type"] for spec in specs} for slot, specs in COMPONENTS.items()}
    for slot, readers in hf_json.REGISTRY.items():
        if slot != "model":
            assert set(readers) - {"BertProcessing"} == named[slot], slot


@pytest.mark.parametrize("slot, spec", [(slot, spec) for slot, specs in COMPONENTS.items() for spec in specs],
                         ids=lambda x: x if isinstance(x, str) else x["type"])
def test_component_reads_back_what_it_writes(slot, spec):
    assert hf_json.read(slot, spec).to_json() == spec


def test_bert_processing_reads_as_bert_template():
    """MiniLM's file writes BERT's template as a TemplateProcessing; older files say BertProcessing."""
    minilm = tokenizers.load(corpora.minilm_path() / "tokenizer.json")
    spec = {"type": "BertProcessing", "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}
    assert hf_json.read("post_processor", spec) == minilm.post_processor


@pytest.mark.parametrize("make", [
    lambda: tokenizers.load(corpora.minilm_path() / "tokenizer.json"),
    lambda: train_bpe(corpora.lee_corpus()[:50], 400, special_tokens=["<|endoftext|>"]),
    lambda: train_bpe(corpora.lee_corpus()[:50], 300, byte_level=False),
    lambda: train_bert_wordpiece(corpora.lee_corpus()[:50], 400, special_tokens=BERT_SPECIAL_TOKENS),
], ids=["minilm", "byte-level-bpe", "whitespace-bpe", "wordpiece"])
def test_file_round_trips(tmp_path, make):
    tok = make()
    tok.save(tmp_path / "t.json")
    again = tokenizers.load(tmp_path / "t.json")
    assert again.to_json() == tok.to_json() == json.loads((tmp_path / "t.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("slot", ["normalizer", "pre_tokenizer", "model", "decoder", "post_processor"])
def test_unsupported_type_is_refused_by_name(slot):
    """A type HuggingFace does not have is refused, naming it and the supported ones."""
    with pytest.raises(tokenizers.ScratchlmError, match=f"{slot} type 'Mystery' is not supported by scratchlm "
                                                        r"\(supported: "):
        hf_json.read(slot, {"type": "Mystery"})


def test_every_type_huggingface_documents_is_read():
    """The Python package's component classes are HuggingFace's documented list: every one is registered."""
    hf = pytest.importorskip("tokenizers")
    slots = {"normalizers": "normalizer", "pre_tokenizers": "pre_tokenizer", "decoders": "decoder",
             "processors": "post_processor", "models": "model"}
    renamed = {"Delimiter": "CharDelimiterSplit", "PostProcessor": None, "Normalizer": None, "PreTokenizer": None,
               "Decoder": None, "Model": None, "DecodeStream": None, "NORMALIZERS": None}
    for module, slot in slots.items():
        names = [n for n in dir(getattr(hf, module)) if n[0].isupper()]
        for name in names:
            name = renamed.get(name, name)
            if name is None:
                continue
            assert name in hf_json.REGISTRY[slot], (module, name)
