"""vectors.py: gensim's KeyedVectors queries, checked against gensim itself on the same vectors."""

import warnings

import numpy as np
import pytest

from scratchlm.embeddings.evaluate import cosine_similarity, nearest_neighbours
from scratchlm.embeddings.formats import load_glove, load_word2vec, save_word2vec
from scratchlm.embeddings.vectors import WordVectors
from scratchlm.errors import ScratchlmError, WordNotInVocabularyError

gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated `init_sims`:DeprecationWarning")  # gensim's own

V, D = 300, 24
# A similarity is a D-term float32 dot product of unit vectors (entries <= 1) plus a normalisation; each
# side rounds at most ~(D + 4) times at u = 2**-24 ~ 6e-8, so two orders of evaluation differ by at most
# ~2 (D + 4) u ~ 3.4e-6 (cosmul: a product of up to three such terms over another, ~3x that).
ATOL = 1e-5


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    words = tuple(f"w{i}" for i in range(V))
    vectors = rng.standard_normal((V, D)).astype(np.float32)
    vectors[:, 0] += 2.0  # a shared direction, so that similarities spread over (-1, 1) rather than sit near 0
    kv = gensim_kv.KeyedVectors(vector_size=D)
    kv.add_vectors(list(words), vectors)
    return WordVectors(words, vectors), kv


def assert_same(ours, theirs):
    """Same words in the same order and similarities within ATOL.  The order is only defined where
    consecutive similarities differ by more than the rounding: the test checks that first."""
    ours_sims = np.array([s for _, s in ours])
    assert len(ours) == len(theirs)
    assert np.all(np.diff(ours_sims) < -2 * ATOL), "near-tie in the reference ranking: choose another query"
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose(ours_sims, [s for _, s in theirs], rtol=0, atol=ATOL)


QUERIES = [
    dict(positive=["w3"]),
    dict(positive=["w3", "w17"], negative=["w40"]),
    dict(positive=["w5", "w6", "w7"], negative=["w8", "w9"]),
    dict(negative=["w11"]),
    dict(positive="w12"),  # one word, not a list
    dict(positive=[("w3", 2.0), "w17"], negative=[("w40", -0.5)]),  # gensim's (word, weight) pairs
]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("topn", [1, 10, 40])
def test_most_similar_equals_gensim(pair, query, topn):
    wv, kv = pair
    assert_same(wv.most_similar(**query, topn=topn), kv.most_similar(**query, topn=topn))


@pytest.mark.parametrize("restrict_vocab", [1, 50, 200, 10_000])
def test_most_similar_restrict_vocab_equals_gensim(pair, restrict_vocab):
    """restrict_vocab=N searches the first N rows; the query words (even beyond N) are still looked up."""
    wv, kv = pair
    query = dict(positive=["w3", "w250"], negative=["w40"])
    ours = wv.most_similar(**query, topn=10, restrict_vocab=restrict_vocab)
    assert_same(ours, kv.most_similar(**query, topn=10, restrict_vocab=restrict_vocab))
    assert all(wv.index[w] < restrict_vocab for w, _ in ours)


def test_topn_none_returns_every_similarity_as_gensim(pair):
    wv, kv = pair
    for restrict_vocab in (None, 120):
        ours = wv.most_similar(positive=["w3", "w17"], negative=["w40"], topn=None, restrict_vocab=restrict_vocab)
        theirs = kv.most_similar(positive=["w3", "w17"], negative=["w40"], topn=None, restrict_vocab=restrict_vocab)
        assert ours.shape == theirs.shape == (restrict_vocab or V,)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=ATOL)
    ours = wv.most_similar_cosmul(positive=["w3", "w17"], negative=["w40"], topn=None)
    np.testing.assert_allclose(ours, kv.most_similar_cosmul(positive=["w3", "w17"], negative=["w40"], topn=None),
                               rtol=0, atol=3 * ATOL)
    assert wv.most_similar("w3", topn=0) == [] == kv.most_similar("w3", topn=0)


@pytest.mark.parametrize("query", [q for q in QUERIES[:5] if "positive" in q])  # gensim needs a positive
def test_most_similar_cosmul_equals_gensim(pair, query):
    wv, kv = pair
    ours = wv.most_similar_cosmul(**query, topn=10)
    theirs = kv.most_similar_cosmul(**query, topn=10)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], rtol=0, atol=3 * ATOL)


def test_cosmul_restrict_vocab_is_honoured(pair):
    """gensim 4.4 accepts restrict_vocab in most_similar_cosmul and searches every word; ours equals its
    ranking with the rows past N taken out."""
    wv, kv = pair
    query = dict(positive=["w3", "w17"], negative=["w40"])
    theirs = [(w, s) for w, s in kv.most_similar_cosmul(**query, topn=V) if kv.get_index(w) < 100]
    ours = wv.most_similar_cosmul(**query, topn=10, restrict_vocab=100)
    assert [w for w, _ in ours] == [w for w, _ in theirs[:10]]


def test_cosmul_by_hand():
    """Two words and one query on a plane, the docstring's equation done by hand.

    x_a = (1, 0), x_b = (0, 1), x_c = (1, 1)/sqrt 2.  Query positive=[a], negative=[b]:
    cos'(c, a) = (1 + 1/sqrt 2)/2 ~ 0.853553, cos'(c, b) = the same, so sim(c) = 1 / (1 + 1e-6 / 0.853553).
    """
    wv = WordVectors(("a", "b", "c"), np.array([[1, 0], [0, 1], [1, 1]], np.float32))
    (word, sim), = wv.most_similar_cosmul(positive=["a"], negative=["b"])
    shifted = (1 + 2 ** -0.5) / 2
    assert word == "c" and sim == pytest.approx(shifted / (shifted + 1e-6), rel=1e-6)


def test_similar_by_vector_and_word_equal_gensim(pair):
    wv, kv = pair
    v = np.random.default_rng(1).standard_normal(D).astype(np.float32) * 3
    assert_same(wv.similar_by_vector(v, topn=15), kv.similar_by_vector(v, topn=15))
    assert_same(wv.similar_by_vector(v, topn=15, restrict_vocab=80), kv.similar_by_vector(v, topn=15,
                                                                                           restrict_vocab=80))
    assert_same(wv.similar_by_word("w9", topn=15), kv.similar_by_word("w9", topn=15))
    assert wv.similar_by_vector(wv["w9"], topn=1)[0][0] == "w9"  # a vector is not a query word: nothing left out
    assert nearest_neighbours(wv, "w9", 15) == wv.similar_by_word("w9", topn=15)


def test_similarity_lookup_and_missing_words(pair):
    wv, kv = pair
    assert wv.similarity("w1", "w2") == pytest.approx(float(kv.similarity("w1", "w2")), abs=ATOL)
    np.testing.assert_array_equal(wv["w5"], kv["w5"])
    np.testing.assert_array_equal(wv[["w5", "w6"]], kv[["w5", "w6"]])
    assert "w5" in wv and "zzz" not in wv
    with pytest.raises(KeyError, match="'zzz' is not in the vocabulary"):  # gensim users catch KeyError
        wv.most_similar(positive=["w1", "zzz"])
    with pytest.raises(WordNotInVocabularyError):
        wv["zzz"]
    with pytest.raises(ScratchlmError, match="at least one"):
        wv.most_similar()
    with pytest.raises(ScratchlmError, match="positive"):
        wv.most_similar_cosmul(negative=["w1"])
    with pytest.raises(ScratchlmError, match=r"\[24\]"):
        wv.similar_by_vector(np.zeros(3))


def test_gensims_names_equal_gensim(pair):
    wv, kv = pair
    assert wv.key_to_index == kv.key_to_index and list(wv.index_to_key) == kv.index_to_key
    np.testing.assert_array_equal(wv.get_vector("w7"), kv.get_vector("w7"))
    # float32 norms and division on both sides: a few ulps apart
    np.testing.assert_allclose(wv.get_vector("w7", norm=True), kv.get_vector("w7", norm=True), rtol=1e-6)
    for ws1, ws2 in ((["w1", "w2"], ["w3"]), (["w4", "w5", "w6"], ["w7", "w8"])):
        assert wv.n_similarity(ws1, ws2) == pytest.approx(float(kv.n_similarity(ws1, ws2)), abs=ATOL)
    rng = np.random.default_rng(1)
    for _ in range(20):
        words = [f"w{i}" for i in rng.choice(V, size=5, replace=False)]
        assert wv.doesnt_match(words) == kv.doesnt_match(words)
    with pytest.raises(ScratchlmError, match="non-empty"):
        wv.n_similarity([], ["w1"])
    with pytest.raises(KeyError, match="zzz"):
        wv.doesnt_match(["w1", "zzz"])


def test_ties_go_to_the_more_frequent_word():
    wv = WordVectors(("q", "b", "a", "c"), np.array([[1, 0], [1, 1], [1, 1], [0, 1]], np.float32))
    assert [w for w, _ in wv.most_similar("q", topn=2)] == ["b", "a"]
    assert [w for w, _ in wv.most_similar("q", topn=1)] == ["b"]


# ------------------------------------------------------------------------------ cosine_similarity


def test_cosine_similarity_vectors_batches_and_words():
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((3, 5)), rng.standard_normal((4, 5))
    expected = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in B] for a in A])  # float64
    np.testing.assert_allclose(cosine_similarity(A, B), expected, rtol=1e-12)
    np.testing.assert_allclose(cosine_similarity(A[0], B), expected[0], rtol=1e-12)
    np.testing.assert_allclose(cosine_similarity(A, B[1]), expected[:, 1], rtol=1e-12)
    assert cosine_similarity(A[0], B[0]) == pytest.approx(expected[0, 0], rel=1e-12)
    assert cosine_similarity(np.zeros(5), B[0]) == 0.0
    wv = WordVectors(("a", "b"), A[:2])  # stored in float32: agreement to float32 rounding
    expected_ab = A[0] @ A[1] / np.linalg.norm(A[0]) / np.linalg.norm(A[1])
    assert cosine_similarity(wv, "a", "b") == pytest.approx(expected_ab, abs=1e-6)
    with pytest.raises(ScratchlmError, match="same D"):
        cosine_similarity(A, np.zeros((2, 4)))


# ------------------------------------------------------------------------------ loading like gensim


def _words(n):
    return [f"w{i}" for i in range(n)]


@pytest.fixture
def small(tmp_path):
    rng = np.random.default_rng(3)
    wv = WordVectors(tuple(_words(12)), rng.standard_normal((12, 4)).astype(np.float32))
    return wv, tmp_path


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("limit", [1, 5, 12, 50])
def test_limit_equals_gensim(small, binary, limit):
    wv, tmp = small
    path = tmp / "v"
    save_word2vec(wv, path, binary=binary)
    ours = load_word2vec(path, binary=binary, limit=limit)
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=limit)
    assert list(ours.words) == kv.index_to_key == _words(min(limit, 12))
    np.testing.assert_array_equal(ours.vectors, kv.vectors)


def _keys(kv):
    return [k for k in kv.index_to_key if k is not None]


def _rows(wv, words):
    return "".join(f"{w} " + " ".join(f"{x:.9g}" for x in wv[w]) + "\n" for w in words)


def test_header_smaller_than_rows_reads_the_first_as_gensim(small):
    wv, tmp = small
    path = tmp / "v.txt"
    path.write_text("7 4\n" + _rows(wv, wv.words))
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path))
    with pytest.warns(UserWarning, match="header says 7 words but more rows follow"):
        ours = load_word2vec(path)
    assert list(ours.words) == kv.index_to_key == _words(7)
    np.testing.assert_array_equal(ours.vectors, kv.vectors)


def test_header_larger_than_rows_fails_as_gensim(small):
    wv, tmp = small
    path = tmp / "v.txt"
    path.write_text("20 4\n" + _rows(wv, wv.words))
    with pytest.raises(EOFError):
        gensim_kv.KeyedVectors.load_word2vec_format(str(path))
    with pytest.raises(ScratchlmError, match="header says 20 words, the file holds 12"):
        load_word2vec(path)
    assert len(load_word2vec(path, limit=12)) == 12  # a limit within the rows present reads them, as gensim


@pytest.mark.parametrize("binary", [False, True])
def test_duplicates_keep_the_first_as_gensim(small, binary):
    wv, tmp = small
    path = tmp / "dup"
    order = ["w0", "w1", "w2", "w1", "w3", "w0", "w4"]  # w1 and w0 repeated, with other vectors
    vectors = np.stack([wv[w] if k < 3 else wv[w] * 2 for k, w in enumerate(order)])
    with path.open("wb") as f:  # written by hand: WordVectors itself holds distinct words
        f.write(b"7 4\n")
        for w, v in zip(order, vectors):
            f.write(w.encode() + b" " + (v.astype("<f4").tobytes() + b"\n" if binary
                                         else " ".join(f"{x:.9g}" for x in v).encode() + b"\n"))
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    with pytest.warns(UserWarning, match=r"2 duplicate row\(s\).*\['w1', 'w0'\]"):
        ours = load_word2vec(path, binary=binary)
    # gensim 4.4 leaves a None in index_to_key for each duplicate's unused slot
    assert list(ours.words) == _keys(kv) == ["w0", "w1", "w2", "w3", "w4"]
    np.testing.assert_array_equal(ours.vectors, kv.vectors[: len(ours)])
    np.testing.assert_array_equal(ours["w1"], wv["w1"])  # the first vector, not the doubled one


def test_glove_limit_and_duplicates_as_gensim(small):
    wv, tmp = small
    path = tmp / "g.txt"
    path.write_text(_rows(wv, ["w0", "w1", "w0", "w2", "w3"]))
    for limit in (None, 2, 4):
        kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path), no_header=True, limit=limit)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ours = load_glove(path, limit=limit)
        assert [str(w.message) for w in caught if "duplicate" in str(w.message)] != [] or limit == 2
        assert list(ours.words) == _keys(kv)
        np.testing.assert_array_equal(ours.vectors, kv.vectors[: len(ours)])
    with pytest.raises(ScratchlmError, match="limit must be >= 1"):
        load_glove(path, limit=0)
