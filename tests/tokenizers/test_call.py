"""Tokenizer.__call__: transformers' tok(texts, padding=..., truncation=..., max_length=..., return_tensors=...)
on MiniLM's tokenizer.json, id for id against transformers' PreTrainedTokenizerFast on the same file."""

import numpy as np
import pytest

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.errors import ScratchlmError

transformers = pytest.importorskip("transformers")

TEXTS = ["Hello world!", "The naïve café served crème brûlée to 東京's visitors.", "a", "",
         "unaffable " * 20 + "end"]
PAIRS = ["What is it?", "It is a long answer " * 12, "b", "x", "short"]


@pytest.fixture(scope="module")
def toks():
    path = corpora.minilm_path()
    ours = tokenizers.load(path / "tokenizer.json")
    theirs = transformers.AutoTokenizer.from_pretrained(str(path))  # tokenizer.json + tokenizer_config.json
    return ours, theirs


def assert_same(ours: dict, theirs) -> None:
    assert list(ours) == ["input_ids", "token_type_ids", "attention_mask"]
    for key in ours:
        a, b = ours[key], theirs[key]
        if isinstance(a, np.ndarray):
            assert a.shape == b.shape, key
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, key


CASES = [
    dict(),
    dict(padding=True),
    dict(padding="longest", truncation=True, max_length=12),
    dict(padding="max_length", max_length=40),
    dict(truncation=True, max_length=9),
    dict(truncation="only_first", max_length=30),
    dict(max_length=10),  # no truncation= given: transformers truncates (longest_first)
    dict(padding=True, pad_to_multiple_of=8),
    dict(padding=True, truncation=True, max_length=16, add_special_tokens=False),
]


@pytest.mark.parametrize("kwargs", CASES)
def test_batches_equal_transformers(toks, kwargs):
    ours, theirs = toks
    assert_same(ours(TEXTS, **kwargs), theirs(TEXTS, **kwargs))


@pytest.mark.parametrize("kwargs", [k for k in CASES if k.get("truncation") != "only_first"])
def test_pairs_equal_transformers(toks, kwargs):
    ours, theirs = toks
    assert_same(ours(TEXTS, PAIRS, **kwargs), theirs(TEXTS, PAIRS, **kwargs))
    assert_same(ours(TEXTS[1], PAIRS[1], **kwargs), theirs(TEXTS[1], PAIRS[1], **kwargs))


@pytest.mark.parametrize("text", TEXTS)
def test_single_texts_equal_transformers(toks, text):
    """A str gives flat lists (not padded to the file's 128), and [1, T] arrays with return_tensors='np'."""
    ours, theirs = toks
    assert_same(ours(text), theirs(text))
    assert_same(ours(text, return_tensors="np"), theirs(text, return_tensors="np"))
    assert_same(ours(text, truncation=True, max_length=6, return_tensors="np"),
                theirs(text, truncation=True, max_length=6, return_tensors="np"))


def test_arrays_equal_transformers(toks):
    ours, theirs = toks
    got = ours(TEXTS, PAIRS, padding=True, truncation=True, max_length=32, return_tensors="np")
    assert got["input_ids"].shape == (len(TEXTS), 32)  # the long pairs reach max_length, the batch pads to it
    assert_same(got, theirs(TEXTS, PAIRS, padding=True, truncation=True, max_length=32, return_tensors="np"))


def test_call_leaves_the_files_settings_alone(toks):
    ours, _ = toks
    ours(TEXTS, padding=True, truncation=True, max_length=5)
    assert len(ours.encode("Hello world!")) == 128  # MiniLM's tokenizer.json still pads encode() to 128
    assert ours.padding.length == 128 and ours.truncation.max_length == 128


def test_default_truncation_length_is_the_files(toks):
    ours, _ = toks
    assert len(ours("word " * 300, truncation=True)["input_ids"]) == 128


def test_mistakes_are_scratchlm_errors(toks):
    ours, _ = toks
    with pytest.raises(ScratchlmError, match="padding=True"):
        ours(TEXTS, return_tensors="np")
    with pytest.raises(ScratchlmError, match="'np'"):
        ours(TEXTS, padding=True, return_tensors="pt")
    with pytest.raises(ScratchlmError, match="padding must be"):
        ours(TEXTS, padding="everything")
    with pytest.raises(ScratchlmError, match="truncation must be"):
        ours(TEXTS, truncation="middle")
    with pytest.raises(ScratchlmError, match="2 pairs"):
        ours(TEXTS, PAIRS[:2])
