"""Vocab: counts -> ids, min_count / max_size, specials, unknown words, JSON round trip."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.tokenizers import Vocab


def test_worked_example():
    """Counts a:3, b:3, c:2, d:1 with min_count 2: specials 0 and 1, then a and b (tie broken
    alphabetically), then c; d is dropped and maps to <unk>."""
    vocab = Vocab.from_counts({"d": 1, "b": 3, "c": 2, "a": 3}, min_count=2)
    assert vocab.tokens == ("<pad>", "<unk>", "a", "b", "c")
    assert vocab.counts == (0, 0, 3, 3, 2)
    assert vocab.encode(["c", "d", "a"]) == [4, 1, 2]
    assert vocab.decode([2, 3]) == ["a", "b"]
    assert vocab.unk_id == 1 and len(vocab) == 5 and "d" not in vocab


def test_max_size_keeps_the_most_frequent():
    vocab = Vocab.from_counts({"x": 5, "y": 9, "z": 7}, max_size=2, specials=("<unk>",))
    assert vocab.tokens == ("<unk>", "y", "z")


@settings(max_examples=30)
@given(sentences=st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=8), min_size=1, max_size=8),
       min_count=st.integers(1, 3))
def test_ids_are_dense_and_round_trip(sentences, min_count, tmp_path_factory):
    counts = {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    if max(counts.values(), default=0) < min_count:
        with pytest.raises(CorpusError):
            Vocab.from_corpus(sentences, min_count=min_count)
        return
    vocab = Vocab.from_corpus(sentences, min_count=min_count)
    assert [vocab.token_to_id(t) for t in vocab.tokens] == list(range(len(vocab)))
    assert all(counts[t] >= min_count for t in vocab.tokens[2:])
    assert list(vocab.counts[2:]) == sorted(vocab.counts[2:], reverse=True)
    path = tmp_path_factory.mktemp("vocab") / "vocab.json"
    vocab.save(path)
    assert Vocab.load(path) == vocab


def test_bad_inputs():
    with pytest.raises(CorpusError, match="empty corpus"):
        Vocab.from_corpus([[], []])
    with pytest.raises(ScratchlmError, match="min_count"):
        Vocab.from_counts({"a": 1}, min_count=0)
    no_unk = Vocab.from_counts({"a": 1}, specials=(), unk=None)
    with pytest.raises(ScratchlmError, match="no unknown token"):
        no_unk.encode(["b"])


def test_lee_vocabulary():
    from scratchlm.data import corpora

    vocab = Vocab.from_corpus(corpora.load_tokenized_corpus("lee"), min_count=2, max_size=500)
    assert len(vocab) == 502 and vocab.tokens[2] == "the"
