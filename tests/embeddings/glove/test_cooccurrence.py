"""Co-occurrence counting (scratchlm/embeddings/glove/cooccurrence.py) against a brute-force double loop."""

import collections
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings.glove.cooccurrence import Cooccurrence, count_cooccurrences
from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.tokenizers.vocab import build_vocabulary


def brute_force(sentences, words, window, symmetric):
    """X_ij = sum of 1/d over occurrences of j at distance d <= window left of i (and right, if symmetric)."""
    index = {w: k for k, w in enumerate(words)}
    X = collections.defaultdict(float)
    for sentence in sentences:
        ids = [index[w] for w in sentence if w in index]  # OOV dropped before windowing
        for p in range(len(ids)):
            for q in range(max(0, p - window), p):
                X[ids[p], ids[q]] += 1.0 / (p - q)
                if symmetric:
                    X[ids[q], ids[p]] += 1.0 / (p - q)
    return X


def as_dict(c: Cooccurrence):
    return {(int(i), int(j)): float(x) for i, j, x in zip(c.i, c.j, c.x)}


corpora = st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=14), min_size=1, max_size=6).filter(
    lambda s: sum(map(len, s)) >= 2)


@settings(max_examples=40)
@given(corpus=corpora, window=st.integers(1, 6), symmetric=st.booleans(), min_count=st.integers(1, 3),
       max_memory_mb=st.sampled_from([1e-6, 2e-4, 64.0]))
def test_counts_equal_brute_force(corpus, window, symmetric, min_count, max_memory_mb):
    """Sentence boundaries, OOV removal, chunk carry-over (1e-6 MiB = one token a chunk) and merges.

    Tolerance: each X_ij is a sum of at most a few hundred terms 1/d in float64, summed in a different
    order than the loop: relative error <= ~1e-14, asserted at 1e-12.
    """
    try:
        words, _ = build_vocabulary(corpus, min_count=min_count)
    except CorpusError:
        return  # no word reaches min_count: covered by test_bad_inputs
    expected = brute_force(corpus, words, window, symmetric)
    if not expected:
        with pytest.raises(CorpusError, match="co-occur"):
            count_cooccurrences(corpus, window=window, symmetric=symmetric, min_count=min_count,
                                max_memory_mb=max_memory_mb)
        return
    c = count_cooccurrences(corpus, window=window, symmetric=symmetric, min_count=min_count,
                            max_memory_mb=max_memory_mb)
    got = as_dict(c)
    assert c.words == words
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in expected], [expected[k] for k in expected], rtol=1e-12)
    keys = c.i.astype(np.int64) * c.vocab_size + c.j
    assert np.all(np.diff(keys) > 0), "COO rows must be sorted by (i, j) and unique"
    if symmetric:
        assert all(got[j, i] == pytest.approx(x, rel=1e-12) for (i, j), x in got.items())


def test_worked_example():
    """By hand, window 2, symmetric: "a b c" gives X_ab = X_bc = 1 (d = 1), X_ac = 1/2 (d = 2), and
    their transposes; the OOV token "z" (min_count 2) is dropped before windowing, so in "a z c" the
    pair (a, c) sits at d = 1 and adds 1: X_ac = 1.5.  Ids: a (3 times), c (3), b (1 -> OOV at min_count 2)."""
    c = count_cooccurrences([["a", "b", "c"], ["a", "z", "c"], ["a", "c"]], window=2, min_count=2)
    assert c.words == ("a", "c")
    a, cc = 0, 1
    # "a b c" with b dropped: a c at d=1 -> 1; "a z c": 1; "a c": 1.
    assert as_dict(c) == pytest.approx({(a, cc): 3.0, (cc, a): 3.0})
    c = count_cooccurrences([["a", "b", "c"]], window=2, min_count=1)
    a, b, cc = (c.words.index(w) for w in "abc")
    assert as_dict(c) == pytest.approx({(a, b): 1, (b, a): 1, (b, cc): 1, (cc, b): 1, (a, cc): 0.5, (cc, a): 0.5})


def test_left_only_counts_context_left_of_centre():
    c = count_cooccurrences([["a", "b"]], window=3, symmetric=False, min_count=1)
    a, b = c.words.index("a"), c.words.index("b")
    assert as_dict(c) == {(b, a): 1.0}


def test_memory_stays_under_the_stated_ceiling():
    """Peak traced memory <= max_memory_mb + 64 bytes per non-zero (the bound the module states), on a
    corpus whose dense V x V float64 matrix would take over 20 times the ceiling, repeated 8 times as
    benchmarks/growth.py repeats its sample: nnz stops growing while chunks keep coming, so the merges
    into a run of nnz keys dominate (merging whole arrays took about 83 bytes a pair here).

    Margin: the module derives at most M + 48 bytes a pair for the arrays; what else counting
    allocates is the vocabulary (a Counter and an index dict over V = 1800 words, about 0.3 MB) and
    one chunk's id lists (16 bytes a token, 2.8 kB at M = 1 MiB), far under the 16 bytes x ~2e5 pairs
    (3.2 MB) the stated bound leaves beyond the derivation."""
    rng = np.random.default_rng(0)
    V = 1800
    vocab = [f"w{k}" for k in range(V)]
    sentences = [[vocab[k] for k in rng.integers(0, V, size=30)] for _ in range(1000)] * 8
    ceiling_mb = 1.0
    tracemalloc.start()
    try:
        c = count_cooccurrences(sentences, window=4, min_count=1, max_memory_mb=ceiling_mb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert c.vocab_size ** 2 * 8 > 20 * ceiling_mb * 2**20
    assert peak <= ceiling_mb * 2**20 + 64 * c.nnz, (peak, c.nnz)
    # and the derivation itself: M + 48 bytes a pair, plus 0.5 MiB for the vocabulary's dicts, lists
    # and tuples (five containers of 1800 entries at under 64 bytes an entry each: 0.58 MB = 0.55 MiB,
    # of which the words themselves are the corpus's own strings)
    assert peak <= ceiling_mb * 2**20 + 48 * c.nnz + 0.55 * 2**20, (peak, c.nnz)
    # Chunking changes the summation order only.
    one_chunk = count_cooccurrences(sentences, window=4, min_count=1, max_memory_mb=1024)
    np.testing.assert_array_equal(one_chunk.i, c.i)
    np.testing.assert_array_equal(one_chunk.j, c.j)
    np.testing.assert_allclose(one_chunk.x, c.x, rtol=1e-12)


sorted_runs = st.lists(st.tuples(st.integers(0, 60), st.floats(0.01, 10.0)), max_size=40).map(
    lambda kv: (np.array(sorted(dict(kv)), dtype=np.int64), np.array([dict(kv)[k] for k in sorted(dict(kv))])))


@settings(max_examples=60)
@given(a=sorted_runs, b=sorted_runs, block=st.integers(1, 8))
def test_merge_in_steps_equals_a_plain_merge_bit_for_bit(a, b, block):
    """_merge's steps of `block` keys against a dict: the sorted union of the keys, x_a + x_b (that
    order) where both runs hold a key; exactly equal, since each sum is the same single addition."""
    from scratchlm.embeddings.glove.cooccurrence import _merge

    expected = dict(zip(a[0].tolist(), a[1].tolist(), strict=True))
    for k, v in zip(b[0].tolist(), b[1].tolist(), strict=True):
        expected[k] = expected[k] + v if k in expected else v
    keys, x = _merge(a, b, block=block)
    assert keys.dtype == np.int64 and x.dtype == np.float64
    assert keys.tolist() == sorted(expected)
    assert x.tolist() == [expected[k] for k in sorted(expected)]


def test_save_load_round_trip(tmp_path):
    c = count_cooccurrences([["é", "b", "c", "b"], ["c", "é"]], window=2, min_count=1)
    path = tmp_path / "cooc.npz"
    c.save(path)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert set(data.files) >= {"i", "j", "x", "counts", "words_utf8"}
    back = Cooccurrence.load(path)
    assert back.words == c.words and back.window == 2 and back.symmetric
    for name in ("counts", "i", "j", "x"):
        np.testing.assert_array_equal(getattr(back, name), getattr(c, name))
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ScratchlmError, match="not a scratchlm co-occurrence file"):
        Cooccurrence.load(tmp_path / "other.npz")
    with pytest.raises(ScratchlmError, match="does not exist"):
        Cooccurrence.load(tmp_path / "missing.npz")


def test_bad_inputs():
    with pytest.raises(CorpusError, match="empty"):
        count_cooccurrences([], window=5)
    with pytest.raises(CorpusError, match="empty"):
        count_cooccurrences([[], []], window=5)
    with pytest.raises(ScratchlmError, match="window"):
        count_cooccurrences([["a", "b"]], window=0, min_count=1)
    with pytest.raises(CorpusError, match="min_count=5"):
        count_cooccurrences([["a", "b"]], window=2, min_count=5)
    with pytest.raises(CorpusError, match="co-occur"):  # every sentence holds one in-vocabulary word
        count_cooccurrences([["a", "x"], ["a", "y"], ["a"]], window=2, min_count=2)
    with pytest.raises(ScratchlmError, match="max_memory_mb"):
        count_cooccurrences([["a", "b"]], window=2, min_count=1, max_memory_mb=0)


@settings(max_examples=40)
@given(corpus=corpora, window=st.integers(1, 6), symmetric=st.booleans(), shares=st.integers(1, 4),
       max_memory_mb=st.sampled_from([1e-6, 64.0]))
def test_shares_counted_apart_and_merged_equal_the_whole(corpus, window, symmetric, shares, max_memory_mb):
    """What processes that each read a share of the sentences build (scratchlm glove on several hosts):
    the vocabulary from the summed word counts, the pairs of each share merged in order."""
    from scratchlm import distributed as parallel
    from scratchlm.embeddings.glove import cooccurrence as co
    from scratchlm.tokenizers.vocab import vocabulary_from_counts, word_counts

    parts = [parallel.process_shard(corpus, p, shares) for p in range(shares)]
    words, counts = vocabulary_from_counts(parallel.merge_counts([word_counts(s) for s in parts]), min_count=1)
    whole_words, whole_counts = build_vocabulary(corpus, min_count=1)
    assert words == whole_words and np.array_equal(counts, whole_counts)
    merged = co.merge_pairs([co.count_pairs(s, words, window=window, symmetric=symmetric, max_memory_mb=max_memory_mb)
                             for s in parts])
    whole = co.count_pairs(corpus, words, window=window, symmetric=symmetric, max_memory_mb=max_memory_mb)
    np.testing.assert_array_equal(merged[0], whole[0])
    # the same terms 1/d summed in another grouping (per chunk, then merged): at most 6 distances x 84
    # one-token chunks = 504 float64 additions a key, a relative round-off below 504 u = 6e-14
    np.testing.assert_allclose(merged[1], whole[1], rtol=1e-12, atol=0)
