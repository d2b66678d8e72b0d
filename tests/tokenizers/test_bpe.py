"""Byte-level BPE (scratchlm/tokenizers/models/bpe.py, trained by trainers.learn_merges through
pipelines.train_bpe): lossless round trip, merges equal to HuggingFace's ``BpeTrainer`` on the same corpus,
encoding equal to HuggingFace loading our file (and we theirs)."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers import hf_json
from scratchlm.tokenizers.pipelines import train_bpe
from scratchlm.tokenizers.pre_tokenizers import bytes_to_unicode

hf_tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def trained():
    return train_bpe(corpora.wikipedia_paragraphs()[:600], 1200)


def test_merges_equal_huggingface_bpe_trainer():
    """Same corpus, same byte-level pre-tokenization and initial alphabet, same vocabulary size:
    the same merges in the same order, and the same vocabulary ids."""
    texts = corpora.wikipedia_paragraphs()[:800]
    ours = train_bpe(texts, 1500)
    hf = hf_tokenizers.Tokenizer(hf_tokenizers.models.BPE())
    hf.pre_tokenizer = hf_tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.train_from_iterator(texts, hf_tokenizers.trainers.BpeTrainer(
        vocab_size=1500, show_progress=False, initial_alphabet=hf_tokenizers.pre_tokenizers.ByteLevel.alphabet()))
    model = json.loads(hf.to_str())["model"]
    assert ours.model.merges == [tuple(m) for m in model["merges"]]
    assert ours.get_vocab() == model["vocab"]


@settings(max_examples=200)
@given(text=st.text(st.characters(exclude_categories=["Cs"]), max_size=60))
def test_decode_encode_is_identity(trained, text):
    ids = trained.encode(text).ids
    assert trained.decode(ids) == text


@settings(max_examples=100)
@given(text=st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
def test_offsets_cover_the_bytes_of_each_token(trained, text):
    """A byte-level token may hold part of a character; its span is the characters its bytes belong to."""
    enc = trained.encode(text)
    table = {c: b for b, c in bytes_to_unicode().items()}
    starts = [s for s, _ in enc.offsets]
    assert starts == sorted(starts)
    for token, (s, e) in zip(enc.tokens, enc.offsets):
        assert bytes(table[c] for c in token) in text[s:e].encode("utf-8")


def test_huggingface_reads_ours_and_we_read_theirs(trained, tmp_path):
    path = tmp_path / "bpe.json"
    trained.save(path)
    hf = hf_tokenizers.Tokenizer.from_file(str(path))
    back = tokenizers.load(path)
    for text in corpora.wikipedia_paragraphs()[600:900] + ["héllo wörld 😀 中文  \n\ttabs"]:
        a, b, c = trained.encode(text), hf.encode(text), back.encode(text)
        assert a.ids == b.ids == c.ids
        assert a.offsets == b.offsets
        assert hf.decode(a.ids) == trained.decode(a.ids) == text


def test_gpt2_style_file_with_prefix_space_and_trimmed_offsets(tmp_path):
    """A file as GPT-2's: ByteLevel pre-tokenizer with add_prefix_space and a ByteLevel post-processor
    that trims spaces from offsets; HuggingFace reads our model and both agree on ids and offsets."""
    ours = train_bpe(corpora.lee_corpus()[:100], 600)
    spec = json.loads(json.dumps(ours.to_json()))
    spec["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
    path = tmp_path / "gpt2ish.json"
    path.write_text(json.dumps(spec))
    mine, hf = tokenizers.load(path), hf_tokenizers.Tokenizer.from_file(str(path))
    for text in ["Hello world", "  two spaces", "a\nb", "end "] + list(corpora.lee_corpus()[100:130]):
        a, b = mine.encode(text, "and a pair"), hf.encode(text, "and a pair")
        assert (a.ids, a.offsets, a.type_ids) == (b.ids, b.offsets, b.type_ids)


def test_vocab_size_below_alphabet_is_an_error():
    with pytest.raises(ScratchlmError, match="alphabet size 256"):
        train_bpe(["hello world"], 100)


def test_empty_corpus_is_an_error():
    from scratchlm.errors import CorpusError

    with pytest.raises(CorpusError, match="empty corpus"):
        train_bpe([], 300)
    with pytest.raises(CorpusError, match="empty corpus"):
        train_bpe(["", ""], 300, byte_level=False)


@pytest.mark.parametrize("byte_level, max_token_length", [(True, 4), (False, 3)])
def test_max_token_length_merges_equal_huggingface(byte_level, max_token_length):
    """HuggingFace's BpeTrainer(max_token_length=L): a pair formed by a merge is counted only while its two
    symbols are shorter than L together; the same merges in the same order, no token longer than L."""
    texts = corpora.wikipedia_paragraphs()[:300]
    ours = train_bpe(texts, 900, byte_level=byte_level, max_token_length=max_token_length)
    hf = hf_tokenizers.Tokenizer(hf_tokenizers.models.BPE())
    if byte_level:
        hf.pre_tokenizer = hf_tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = hf_tokenizers.pre_tokenizers.ByteLevel.alphabet()
    else:
        hf.pre_tokenizer = hf_tokenizers.pre_tokenizers.Whitespace()
        alphabet = []
    hf.train_from_iterator(texts, hf_tokenizers.trainers.BpeTrainer(
        vocab_size=900, show_progress=False, initial_alphabet=alphabet, max_token_length=max_token_length))
    model = json.loads(hf.to_str())["model"]
    assert ours.model.merges == [tuple(m) for m in model["merges"]]
    assert max(len(t) for t in ours.get_vocab()) <= max_token_length


@pytest.mark.parametrize("byte_level", [True, False])
def test_dropped_characters_shift_offsets_as_huggingface(byte_level):
    """Without an unknown token (and, byte-level, without all 256 bytes) BPE drops a character it cannot
    spell; HuggingFace's offsets then run on the kept symbols' bytes only, so later tokens are shifted left
    ('ﬁne' -> 'ne' at (0, 1)).  We reproduce that rather than give the 'right' spans."""
    tok = hf_tokenizers.Tokenizer(hf_tokenizers.models.BPE())
    tok.pre_tokenizer = (hf_tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=True) if byte_level
                         else hf_tokenizers.pre_tokenizers.Whitespace())
    tok.train_from_iterator(corpora.lee_corpus()[:100],
                            hf_tokenizers.trainers.BpeTrainer(vocab_size=400, show_progress=False))
    ours = hf_json.from_json(json.loads(tok.to_str()))
    for text in ["ﬁne café x", "aéb ü中x", "abc中def", "élan"]:
        a, b = tok.encode(text), ours.encode(text)
        assert (b.ids, b.offsets) == (a.ids, a.offsets)
