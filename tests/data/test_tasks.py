"""Task files, the [CLS] A [SEP] B [SEP] layout, and word-to-sub-token label alignment."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.data import batching, corpora, tasks
from scratchlm.errors import CorpusError

SPECIAL = tasks.SpecialIds(cls=101, sep=102, pad=0, unk=100)


def toy_encode_word(word: str) -> list[int]:
    """A stand-in WordPiece: one sub-token per 3 characters (so words of 1-9 chars give 1-3 pieces)."""
    return [1000 + (sum(map(ord, word[i:i + 3])) % 500) for i in range(0, len(word), 3)]


WORDS = st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=9), min_size=1, max_size=12)


@settings(max_examples=100)
@given(st.data())
def test_aligned_labels_map_back_to_the_word_tags(data):
    words = data.draw(WORDS)
    tags = data.draw(st.lists(st.integers(0, 4), min_size=len(words), max_size=len(words)))
    ids, labels = tasks.align_labels(words, tags, toy_encode_word, SPECIAL, max_length=512)
    assert len(ids) == len(labels) and ids[0] == SPECIAL.cls and ids[-1] == SPECIAL.sep
    assert tasks.word_predictions(labels, labels, len(words)) == tags
    # the label sits on each word's first sub-token
    position = 1
    for word, tag in zip(words, tags):
        n = len(toy_encode_word(word))
        assert labels[position:position + n] == [tag] + [batching.IGNORE] * (n - 1)
        position += n


@settings(max_examples=50)
@given(st.data())
def test_truncated_words_are_predicted_outside(data):
    words = data.draw(WORDS)
    tags = data.draw(st.lists(st.integers(1, 4), min_size=len(words), max_size=len(words)))
    ids, labels = tasks.align_labels(words, tags, toy_encode_word, SPECIAL, max_length=8)
    assert len(ids) <= 8
    back = tasks.word_predictions(labels, labels, len(words))
    kept = sum(y != batching.IGNORE for y in labels)
    assert back == tags[:kept] + [0] * (len(words) - kept)


def test_alignment_with_the_real_minilm_wordpiece():
    """With MiniLM's WordPiece (HuggingFace tokenizers as the reference), words split into several
    pieces carry their label once, and the ids equal HuggingFace's is_split_into_words encoding."""
    hf = pytest.importorskip("tokenizers")
    tok = hf.Tokenizer.from_file(str(corpora.minilm_path() / "tokenizer.json"))
    tok.no_padding()
    encode_word = lambda w: tok.encode(w, add_special_tokens=False).ids  # noqa: E731
    words = ["Ada", "Lovelace", "analysed", "Babbage's", "engine", "."]
    tags = [1, 2, 0, 1, 0, 0]
    ids, labels = tasks.align_labels(words, tags, encode_word, SPECIAL, max_length=64)
    reference = tok.encode(words, is_pretokenized=True)
    assert ids == reference.ids
    word_ids = reference.word_ids
    firsts = [i for i, w in enumerate(word_ids) if w is not None and (i == 0 or word_ids[i - 1] != w)]
    assert [labels[i] for i in firsts] == tags
    assert tasks.word_predictions(labels, labels, len(words)) == tags


def test_sentence_pair_layout_and_longest_first_truncation():
    ids, segments = tasks.encode_sequence([1, 2, 3], [4, 5], SPECIAL, max_length=16)
    assert ids == [101, 1, 2, 3, 102, 4, 5, 102]
    assert segments == [0, 0, 0, 0, 0, 1, 1, 1]
    ids, segments = tasks.encode_sequence([1, 2, 3, 4, 5, 6], [7, 8], SPECIAL, max_length=8)
    assert ids == [101, 1, 2, 3, 102, 7, 8, 102] and segments == [0] * 5 + [1] * 3
    lengths = lambda s: [len(w) for w in s.split()]  # noqa: E731
    batch = tasks.encode_sequence_task([("a b", "c", 1), ("a", None, 0)], lengths, SPECIAL)
    assert batch["input_ids"].shape == (2, 8) and batch["labels"].tolist() == [1, 0]
    assert batch["token_type_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert batch["attention_mask"].sum(1).tolist() == [6, 3]


def test_pair_encoding_matches_huggingface():
    hf = pytest.importorskip("tokenizers")
    tok = hf.Tokenizer.from_file(str(corpora.minilm_path() / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    encode = lambda s: tok.encode(s, add_special_tokens=False).ids  # noqa: E731
    a, b = "The film is a delight.", "A dull, tired remake."
    ids, segments = tasks.encode_sequence(encode(a), encode(b), SPECIAL, max_length=128)
    reference = tok.encode(a, b)
    assert ids == reference.ids and segments == reference.type_ids


def test_reading_jsonl_and_conll(tmp_path):
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps({"text": "good", "label": "pos"}) + "\n\n"
                     + json.dumps({"text": "q", "text_pair": "a", "label": 1}) + "\n")
    assert tasks.read_jsonl(jsonl) == [("good", None, "pos"), ("q", "a", "1")]
    conll = tmp_path / "t.conll"
    conll.write_text("-DOCSTART- O\n\nAda NNP B-PER\nruns VBZ O\n\nParis NNP B-LOC\n")
    assert tasks.read_conll(conll) == [(["Ada", "runs"], ["B-PER", "O"]), (["Paris"], ["B-LOC"])]
    assert tasks.label_vocabulary(["I-PER", "O", "B-PER"]) == ("O", "B-PER", "I-PER")


def test_bad_task_files_say_where(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok", "label": 1}\n{"text": "no label"}\n')
    with pytest.raises(CorpusError, match="line 2"):
        tasks.read_jsonl(bad)
    bad.write_text('{"text": "ok", "label": 1}\nnot json\n')
    with pytest.raises(CorpusError, match="line 2: not valid JSON"):
        tasks.read_jsonl(bad)
    conll = tmp_path / "bad.conll"
    conll.write_text("Ada B-PER\nlonely\n")
    with pytest.raises(CorpusError, match="line 2"):
        tasks.read_conll(conll)
