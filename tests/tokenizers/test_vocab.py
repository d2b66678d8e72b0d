"""Vocab: counts -> ids, min_count / max_size, specials, unknown words, JSON round trip."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.tokenizers import Vocab
from scratchlm.tokenizers.vocab import build_vocabulary, ranked_words, vocabulary_from_counts, word_counts


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


def test_one_ranking_rule_count_then_word():
    """ranked_words: count descending, ties by the word in code-point order ("B" < "a" < "b"), whatever the
    order the counts arrive in; Vocab.from_counts and GloVe's vocabulary_from_counts both follow it."""
    counts = {"b": 2, "a": 2, "B": 2, "c": 5, "d": 1}
    assert ranked_words(counts) == [("c", 5), ("B", 2), ("a", 2), ("b", 2), ("d", 1)]
    assert ranked_words(dict(reversed(counts.items()))) == ranked_words(counts)
    assert ranked_words(counts, min_count=2, max_size=3, exclude=("c",)) == [("B", 2), ("a", 2), ("b", 2)]
    assert Vocab.from_counts(counts, specials=(), unk=None).tokens == ("c", "B", "a", "b", "d")
    words, n = vocabulary_from_counts(counts, min_count=2)
    assert words == ("c", "B", "a", "b") and n.tolist() == [5, 2, 2, 2] and n.dtype == "int64"


def test_glove_vocabulary_order_min_count_and_max_size():
    sentences = [["b", "a", "c", "a", "b", "d", "e", "e"]]
    assert word_counts(sentences) == {"a": 2, "b": 2, "c": 1, "d": 1, "e": 2}
    words, counts = build_vocabulary(sentences, min_count=1)
    assert words == ("a", "b", "e", "c", "d") and counts.tolist() == [2, 2, 2, 1, 1]  # count, then alphabet
    assert build_vocabulary(sentences, min_count=2)[0] == ("a", "b", "e")
    assert build_vocabulary(sentences, min_count=1, max_size=2)[0] == ("a", "b")
    with pytest.raises(CorpusError, match="empty"):
        vocabulary_from_counts({})
    with pytest.raises(CorpusError, match="min_count=3"):
        vocabulary_from_counts({"a": 2}, min_count=3)
    with pytest.raises(ScratchlmError, match="max_size"):
        vocabulary_from_counts({"a": 2}, max_size=0)
