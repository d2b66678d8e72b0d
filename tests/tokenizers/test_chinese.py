"""Chinese has no spaces between words.  What each pipeline does with it, offsets exact and equal to
HuggingFace's: BERT spaces every ideograph (one token per character); Metaspace + Unigram keeps a line as
one word and learns multi-character pieces; byte-level BPE works on UTF-8 bytes (three per ideograph), so
a token may hold part of a character and its span is then the whole character."""

import json

import pytest

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.tokenizers.pipelines import train_bpe, train_unigram
from scratchlm.tokenizers.pre_tokenizers import bytes_to_unicode

hf = pytest.importorskip("tokenizers")

CHINESE = ["我在北京大学学习中文。", "北京大学很大，学生很多。", "他在北京工作了三年。", "大学生在北京学习中文",
           "我喜欢北京的秋天。", "中文没有空格，词之间不分开。", "今天北京的天气很好。"] * 3
TEXT = "我在北京大学学习，Hello 世界！"


def _same_as_huggingface(ours, text):
    theirs = hf.Tokenizer.from_str(json.dumps(ours.to_json()))
    a, b = theirs.encode(text), ours.encode(text)
    assert (b.ids, b.tokens, b.offsets) == (a.ids, a.tokens, a.offsets)
    return b


def test_bert_splits_every_ideograph():
    tok = tokenizers.load(corpora.minilm_path() / "tokenizer.json")
    tok.no_padding(), tok.no_truncation()
    enc = _same_as_huggingface(tok, TEXT)
    ideographs = [(token, (s, e)) for token, (s, e) in zip(enc.tokens, enc.offsets)
                  if e > s and "\u4e00" <= TEXT[s] <= "\u9fff"]
    assert len(ideographs) == 10  # 我在北京大学学习 and 世界
    for token, (s, e) in ideographs:
        assert e - s == 1 and token in (TEXT[s], "[UNK]")


def test_metaspace_unigram_learns_multi_character_pieces():
    tok = train_unigram(CHINESE, 60)
    enc = _same_as_huggingface(tok, "我在北京大学学习中文")
    assert any(len(t.lstrip("▁")) >= 2 for t in enc.tokens)  # e.g. '北京', '大学', '中文'
    for token, (s, e) in zip(enc.tokens, enc.offsets):
        assert "我在北京大学学习中文"[s:e] == (token.lstrip("▁") or "我")  # the put '▁' is aligned to '我'


def test_byte_level_bpe_offsets_cover_whole_characters():
    tok = train_bpe(CHINESE + list(corpora.lee_corpus()[:20]), 400)
    enc = _same_as_huggingface(tok, TEXT)
    table = {c: b for b, c in bytes_to_unicode().items()}
    for token, (s, e) in zip(enc.tokens, enc.offsets):
        assert bytes(table[c] for c in token).lstrip(b" ") in TEXT[s:e].encode("utf-8")
    assert tok.decode(enc.ids) == TEXT
