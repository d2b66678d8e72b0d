"""evaluate.py against gensim's own evaluation on the same vectors, plus worked examples."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings import evaluate
from scratchlm.embeddings.evaluate import (
    cosine_similarity,
    evaluate_analogies,
    evaluate_word_pairs,
    nearest_neighbours,
    spearman,
)
from scratchlm.embeddings.formats import WordVectors
from scratchlm.errors import ScratchlmError

gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
scipy_stats = pytest.importorskip("scipy.stats")

# gensim's most_similar_cosmul calls its own deprecated init_sims; scipy warns on constant input (NaN case tested)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore:An input array is constant")


@pytest.fixture(scope="module")
def planted():
    """200 random words (with case variants) and questions of which about half are planted:
    x_d = x_b - x_a + x_c + noise, so 3CosAdd solves them; the rest are random (mostly wrong)."""
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(190)] + ["W3", "W5", "Paris", "paris", "PARIS", "berlin", "Berlin",
                                             "a1", "b1", "c1"]
    V, D = len(words), 24
    x = rng.standard_normal((V, D)).astype(np.float32)
    questions = []
    for q in range(120):
        a, b, c, d = rng.choice(V, 4, replace=False)
        if q % 2 == 0:
            x[d] = x[b] - x[a] + x[c] + 0.3 * rng.standard_normal(D)
        questions.append(tuple(words[i] for i in (a, b, c, d)))
    questions += [("w1", "w2", "w3", "unknownword"), ("paris", "w7", "w8", "w9")]
    return WordVectors(tuple(words), x), {"planted": questions[:60], "more": questions[60:]}


def _gensim(wv):
    kv = gensim_kv.KeyedVectors(vector_size=wv.dim)
    kv.add_vectors(list(wv.words), wv.vectors)
    return kv


def _write_questions(path, questions):
    path.write_text("".join(f": {name}\n" + "".join(" ".join(q) + "\n" for q in qs) for name, qs in questions.items()))


@pytest.mark.parametrize("restrict", [120, 300_000])
@pytest.mark.parametrize("case_insensitive", [True, False])
def test_3cosadd_matches_gensim(planted, tmp_path, restrict, case_insensitive):
    wv, questions = planted
    _write_questions(tmp_path / "q.txt", questions)
    score, sections = _gensim(wv).evaluate_word_analogies(
        str(tmp_path / "q.txt"), restrict_vocab=restrict, case_insensitive=case_insensitive)
    ours = evaluate_analogies(wv, questions, restrict_vocab=restrict, case_insensitive=case_insensitive)
    total = sections[-1]
    assert ours.correct == len(total["correct"]) and ours.answered == len(total["correct"]) + len(total["incorrect"])
    assert ours.accuracy == pytest.approx(score, abs=1e-12)
    for section in sections[:-1]:
        assert ours.sections[section["section"]] == (len(section["correct"]),
                                                     len(section["correct"]) + len(section["incorrect"]))
    assert 0.2 < ours.accuracy < 0.8  # the planted half is solved, the random half mostly not: a real test


def test_3cosmul_matches_gensim_most_similar_cosmul(planted):
    wv, questions = planted
    kv = _gensim(wv)
    flat = [q for qs in questions.values() for q in qs if all(w in kv.key_to_index for w in q)]
    expected = 0
    for a, b, c, d in flat:
        top = kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=1)[0][0]  # excludes a, b, c
        expected += top == d
    ours = evaluate_analogies(wv, flat, method="3cosmul", epsilon=1e-6, case_insensitive=False)
    assert ours.correct == expected and ours.answered == len(flat)


@pytest.mark.parametrize("restrict", [100, 300_000])
def test_word_pairs_match_gensim(planted, tmp_path, restrict):
    wv, _ = planted
    rng = np.random.default_rng(2)
    pairs = [(wv.words[i].lower(), wv.words[j].upper(), float(rng.integers(0, 20)) / 2)
             for i, j in rng.integers(0, len(wv), (80, 2))]
    pairs.append(("w1", "nosuchword", 3.0))
    (tmp_path / "p.tsv").write_text("# comment\n" + "".join(f"{a}\t{b}\t{s}\n" for a, b, s in pairs))
    pearson, (rho, _), oov_ratio = _gensim(wv).evaluate_word_pairs(str(tmp_path / "p.tsv"), restrict_vocab=restrict)
    ours = evaluate_word_pairs(wv, pairs, restrict_vocab=restrict)
    assert ours.spearman == pytest.approx(rho, abs=1e-6)  # float32 cosines, ranks identical
    assert ours.pearson == pytest.approx(pearson[0], abs=1e-6)
    assert ours.oov_ratio == pytest.approx(oov_ratio, abs=1e-9)
    assert ours.oov >= 1


@settings(max_examples=30)
@given(st.lists(st.integers(0, 5), min_size=3, max_size=30), st.integers(0, 2**31 - 1))
def test_spearman_equals_scipy_with_ties(xs, seed):
    y = np.random.default_rng(seed).integers(0, 4, len(xs)).astype(float)
    x = np.asarray(xs, dtype=float)
    expected = scipy_stats.spearmanr(x, y).statistic
    if np.isnan(expected):
        assert np.isnan(spearman(x, y))
    else:
        assert spearman(x, y) == pytest.approx(expected, abs=1e-12)


def test_cosine_and_neighbours_worked_example():
    """x_a = (1, 0), x_b = (1, 1), x_c = (-1, 0): cos(a, b) = 1/sqrt(2), cos(a, c) = -1; a's neighbours b then c."""
    wv = WordVectors(("a", "b", "c"), np.array([[1, 0], [1, 1], [-1, 0]], np.float32))
    assert cosine_similarity(wv, "a", "b") == pytest.approx(2 ** -0.5, rel=1e-6)
    assert cosine_similarity(wv, "a", "c") == pytest.approx(-1.0, rel=1e-6)
    assert [w for w, _ in nearest_neighbours(wv, "a", k=5)] == ["b", "c"]
    assert [w for w, _ in nearest_neighbours(wv, "a", k=5, restrict_vocab=2)] == ["b"]
    with pytest.raises(ScratchlmError, match="not in the vocabulary"):
        cosine_similarity(wv, "a", "zzz")


def test_oov_is_counted_not_a_crash():
    wv = WordVectors(("a", "b", "c", "d"), np.eye(4, dtype=np.float32))
    result = evaluate_analogies(wv, [("a", "b", "c", "x"), ("x", "y", "z", "w")])
    assert (result.answered, result.oov, result.oov_ratio, result.accuracy) == (0, 2, 100.0, 0.0)
    with pytest.raises(ScratchlmError, match="no word pair"):
        evaluate_word_pairs(wv, [("x", "y", 1.0)])
    pairs = evaluate_word_pairs(wv, [("a", "b", 1.0), ("a", "c", 2.0), ("b", "d", 3.0), ("q", "a", 1.0)])
    assert pairs.oov == 1 and pairs.oov_ratio == pytest.approx(25.0)


@settings(max_examples=50)
@given(st.lists(st.sampled_from(["a", "A", "b", "B", "bb", "Bb", "BB", "c"]), min_size=1, max_size=30, unique=True))
def test_each_words_banned_rows_are_exactly_its_case_variants(words):
    """The analogy search passes over ``{j : canonical[j] = r}`` for a question word r; ``_variants`` lists it by
    index (padded by repeating a member) instead of comparing all N rows with r."""
    wv = WordVectors(tuple(words), np.zeros((len(words), 2), np.float32))
    _, canonical = evaluate._vocab(wv, len(words), case_insensitive=True)
    variants = evaluate._variants(canonical)
    for r in np.unique(canonical):
        assert set(variants[r].tolist()) == set(np.flatnonzero(canonical == r).tolist())
        assert variants[r][0] == r  # the most frequent variant (the canonical row) first
