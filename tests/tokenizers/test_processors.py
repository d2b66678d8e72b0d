"""Encoding, special tokens, truncation and padding (scratchlm/tokenizers/encoding.py, processors.py) against
HuggingFace."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.errors import ScratchlmError

hf_tokenizers = pytest.importorskip("tokenizers")

WORDS = st.lists(st.sampled_from(["the", "cat", "sat", "unaffable", "on", ",", "mat", "é", "中"]),
                 max_size=30).map(" ".join)


@pytest.fixture(scope="module")
def pair():
    """Loaded once; every test sets the truncation and padding it needs on both."""
    path = corpora.minilm_path() / "tokenizer.json"
    return tokenizers.load(path), hf_tokenizers.Tokenizer.from_file(str(path))


@settings(max_examples=80)
@given(a=WORDS, b=st.one_of(st.none(), WORDS), max_length=st.integers(2, 40),
       strategy=st.sampled_from(["longest_first", "only_first", "only_second"]),
       direction=st.sampled_from(["left", "right"]), pad=st.one_of(st.none(), st.integers(0, 50)),
       multiple=st.sampled_from([None, 8]), pad_left=st.booleans(), add_special=st.booleans())
def test_truncation_and_padding_match_huggingface(pair, a, b, max_length, strategy, direction, pad, multiple, pad_left,
                                                  add_special):
    ours, hf = pair
    for tok in (ours, hf):
        tok.enable_truncation(max_length, strategy=strategy, direction=direction)
        tok.enable_padding(length=pad, direction="left" if pad_left else "right", pad_to_multiple_of=multiple)
    if add_special and max_length < (3 if b is not None else 2):
        # No room for [CLS] ... [SEP] [SEP]: HuggingFace's unsigned subtraction wraps around and it then
        # does not truncate at all; we refuse with a clear error instead.
        with pytest.raises(ScratchlmError, match="no room"):
            ours.encode(a, b, add_special_tokens=add_special)
        return
    try:
        theirs = hf.encode(a, b, add_special_tokens=add_special)
    except Exception:  # HuggingFace refuses (sequence too short for only_first / no second sequence)
        with pytest.raises(ScratchlmError):
            ours.encode(a, b, add_special_tokens=add_special)
        return
    mine = ours.encode(a, b, add_special_tokens=add_special)
    assert (mine.ids, mine.type_ids, mine.attention_mask, mine.offsets, mine.special_tokens_mask, mine.word_ids) == (
        theirs.ids, theirs.type_ids, theirs.attention_mask, theirs.offsets, theirs.special_tokens_mask, theirs.word_ids)


def test_batch_padding_and_arrays(pair):
    ours, hf = pair
    for tok in (ours, hf):
        tok.no_truncation()
        tok.enable_padding()
    texts = ["a short one", "a somewhat longer sentence, with a comma", "x"]
    pairs = ["first pair", "second", "third pair here"]
    batch = tokenizers.encodings_to_arrays(ours.encode_batch(texts, pairs))
    theirs = hf.encode_batch(list(zip(texts, pairs)))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids"}
    np.testing.assert_array_equal(batch["input_ids"], [e.ids for e in theirs])
    np.testing.assert_array_equal(batch["attention_mask"], [e.attention_mask for e in theirs])
    np.testing.assert_array_equal(batch["token_type_ids"], [e.type_ids for e in theirs])
    assert batch["input_ids"].dtype == np.int32 and batch["input_ids"].shape == (3, len(theirs[0].ids))


def test_unpadded_batch_cannot_become_arrays(pair):
    ours, _ = pair
    ours.no_padding()
    with pytest.raises(ScratchlmError, match="pad them"):
        tokenizers.encodings_to_arrays(ours.encode_batch(["one", "two words"]))


def test_pretokenized_words_like_huggingface(pair):
    ours, hf = pair
    for tok in (ours, hf):
        tok.no_padding(), tok.no_truncation()
    words = ["Jean-Luc", "Picard", "commands", "the", "Enterprise."]
    a, b = ours.encode(words, is_pretokenized=True), hf.encode(words, is_pretokenized=True)
    assert (a.ids, a.offsets, a.word_ids) == (b.ids, b.offsets, b.word_ids)


@pytest.mark.parametrize("pre_prefix, post_prefix", [(True, False), (False, True), (True, True)])
def test_byte_level_trimming_follows_its_own_add_prefix_space(tmp_path, pre_prefix, post_prefix):
    """HuggingFace's ByteLevel post-processor trims offsets with its own ``add_prefix_space``, not the
    pre-tokenizer's: a file where the two disagree gives the same ids and offsets in both."""
    from scratchlm.tokenizers.pipelines import train_bpe

    spec = train_bpe(corpora.lee_corpus()[:100], 600).to_json()
    spec["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": pre_prefix, "trim_offsets": True,
                             "use_regex": True}
    spec["post_processor"] = {"type": "ByteLevel", "add_prefix_space": post_prefix, "trim_offsets": True,
                              "use_regex": True}
    path = tmp_path / "byte_level.json"
    path.write_text(json.dumps(spec))
    mine, theirs = tokenizers.load(path), hf_tokenizers.Tokenizer.from_file(str(path))
    assert mine.to_json()["post_processor"] == spec["post_processor"]
    for text in ["Hello world", "  two spaces", "a\nb", "end ", " lead"] + list(corpora.lee_corpus()[100:130]):
        a, b = mine.encode(text, "and a pair"), theirs.encode(text, "and a pair")
        assert (a.ids, a.offsets, a.type_ids) == (b.ids, b.offsets, b.type_ids)
