r"""Intrinsic evaluation of word vectors: cosine similarity, neighbours, analogies, word-pair correlation.

Every function takes a :class:`~scratchlm.embeddings.vectors.WordVectors` (``words`` [V] ordered by
descending frequency, ``vectors`` [V, D]), so Word2Vec, GloVe and vectors loaded from a file are
scored by the same code.  The conventions are gensim's (``KeyedVectors.evaluate_word_analogies`` and
``evaluate_word_pairs``), which follow the C tool's ``compute-accuracy``, so the figures compare:

- ``restrict_vocab=N`` keeps only the ``N`` most frequent words: a question or pair with a word
  outside them is skipped and counted as out-of-vocabulary (OOV), and analogy answers are searched
  among those ``N`` words only.
- ``case_insensitive=True`` upper-cases both the evaluation words and the vocabulary; where several
  case variants of a word exist, the most frequent one's vector is used.  A predicted answer that is
  a case variant of a question word is passed over, as gensim does.  (gensim looks only at its top 5
  candidates for that; we pass over all case variants, which differs only if more than five variants
  of the question words outrank every other word.)
- Accuracy is correct / answered (OOV questions excluded); ``oov_ratio`` is a percentage, as in gensim.

Nothing here imports JAX: a [Q, D] x [D, N] product in NumPy answers all questions in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from scratchlm.embeddings import vectors
from scratchlm.embeddings.vectors import WordVectors, unit_rows
from scratchlm.errors import ScratchlmError

Question = tuple[str, str, str, str]


def cosine_similarity(a, b, c=None) -> float | np.ndarray:
    r"""Cosine similarity of two vectors or batches, or of two words of a table.

    .. math::  \cos(a, b) = \frac{a^\top b}{\lVert a \rVert\,\lVert b \rVert}

    ``cosine_similarity(a, b)``: ``a`` [D] or [N, D], ``b`` [D] or [M, D]; a float for two vectors, [M] or
    [N] for a vector and a batch, the matrix [N, M] of all pairs for two batches
    (:func:`scratchlm.embeddings.vectors.cosine_similarity`).  ``cosine_similarity(wv, w1, w2)``: the
    cosine of two words' vectors in a :class:`WordVectors` (``wv.similarity(w1, w2)``).
    """
    if isinstance(a, WordVectors):
        return a.similarity(b, c)
    if c is not None:
        raise ScratchlmError("cosine_similarity takes two vectors or batches, or (word_vectors, word1, word2)")
    return vectors.cosine_similarity(a, b)


def nearest_neighbours(wv: WordVectors, word: str, k: int = 10, *,
                       restrict_vocab: int | None = None) -> list[tuple[str, float]]:
    r"""The ``k`` words of highest cosine similarity to ``word`` (itself excluded), best first:
    ``wv.most_similar(word, topn=k, restrict_vocab=...)``.

    .. math::  \operatorname{top}_k \; \{ \cos(w, w') : w' \ne w,\ w' \in \text{first } N \text{ words} \}
    """
    return wv.most_similar(positive=[word], topn=k, restrict_vocab=restrict_vocab)


def _vocab(wv: WordVectors, restrict_vocab: int, case_insensitive: bool) -> tuple[dict[str, int], np.ndarray]:
    """key -> row over the first N words (the most frequent case variant wins), and row -> that key's row."""
    fold = str.upper if case_insensitive else (lambda s: s)
    ok: dict[str, int] = {}
    for i, w in enumerate(wv.words[:restrict_vocab]):
        ok.setdefault(fold(w), i)
    canonical = np.array([ok[fold(w)] for w in wv.words[:restrict_vocab]], dtype=np.int64)
    return ok, canonical


def _variants(canonical: np.ndarray) -> np.ndarray:
    """[N, m]: row r lists the rows whose canonical row is r (its case variants, r first), padded by repeating r;
    m is the most variants any word has.  Indexing it by a question's words bans m cells a question instead of
    comparing all N rows with each word."""
    rows = np.arange(len(canonical))
    order = np.lexsort((rows, canonical))  # rows grouped by canonical row, each group in row order
    starts = np.searchsorted(canonical[order], rows)  # where each canonical row's group begins in `order`
    sizes = np.bincount(canonical, minlength=len(canonical))
    m = int(sizes.max()) if len(sizes) else 1
    slot = np.minimum(np.arange(m)[None, :], np.maximum(sizes, 1)[:, None] - 1)  # [N, m], the last one repeated
    out = order[np.minimum(starts[:, None] + slot, len(order) - 1)]
    return np.where(sizes[:, None] > 0, out, rows[:, None])


@dataclass(frozen=True)
class AnalogyResult:
    accuracy: float  # correct / answered (0.0 when none answered)
    correct: int
    answered: int
    oov: int  # questions skipped for a word outside the restricted vocabulary
    oov_ratio: float  # percent of all questions
    sections: dict[str, tuple[int, int]]  # section -> (correct, answered)


def evaluate_analogies(wv: WordVectors, questions: Mapping[str, Sequence[Question]] | Sequence[Question], *,
                       restrict_vocab: int = 300_000, case_insensitive: bool = True, method: str = "3cosadd",
                       epsilon: float = 1e-3, chunk: int = 512) -> AnalogyResult:
    r"""Answer ``a : b :: c : ?`` over the first ``restrict_vocab`` words (Mikolov et al. 2013a; Levy & Goldberg 2014).

    3CosAdd (the vector offset):

    .. math::  d^* = \arg\max_{d \notin \{a,b,c\}} \cos(d, b - a + c)
               \;\equiv\; \arg\max_d \hat x_d^\top (\hat x_b - \hat x_a + \hat x_c)

    3CosMul (Levy & Goldberg 2014, eq. 4, cosines shifted to [0, 1] as in their footnote 7):

    .. math::  d^* = \arg\max_{d \notin \{a,b,c\}}
               \frac{\cos'(d, b)\,\cos'(d, c)}{\cos'(d, a) + \varepsilon}, \qquad \cos' = (1 + \cos)/2

    with :math:`\varepsilon = 10^{-3}` as in the paper (gensim's ``most_similar_cosmul`` uses 1e-6).

    Args: ``questions`` either ``{section: [(a, b, c, d), ...]}`` (as
    :func:`scratchlm.data.corpora.analogy_questions` returns) or a flat sequence of 4-tuples.
    """
    if method not in ("3cosadd", "3cosmul"):
        raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
    if not isinstance(questions, Mapping):
        questions = {"all": questions}
    fold = str.upper if case_insensitive else (lambda s: s)
    ok, canonical = _vocab(wv, restrict_vocab, case_insensitive)
    U = unit_rows(wv.vectors[: len(canonical)])  # [N, D]
    ids, section_of, oov, total = [], [], 0, 0
    for name, qs in questions.items():
        for q in qs:
            total += 1
            keys = [fold(w) for w in q]
            if all(k in ok for k in keys):
                ids.append([ok[k] for k in keys])
                section_of.append(name)
            else:
                oov += 1
    hits = np.zeros(len(ids), dtype=bool)
    if ids:
        variants = _variants(canonical)
        ids_arr = np.asarray(ids, dtype=np.int64)  # [Q, 4] rows of a, b, c, expected
        for start in range(0, len(ids_arr), chunk):
            a, b, c, d = ids_arr[start : start + chunk].T
            if method == "3cosadd":
                scores = (U[b] - U[a] + U[c]) @ U.T  # [q, N]
            else:
                cos_a, cos_b, cos_c = ((1.0 + U[x] @ U.T) / 2.0 for x in (a, b, c))
                scores = cos_b * cos_c / (cos_a + epsilon)
            # pass over the question words and every case variant of them
            banned = np.concatenate([variants[a], variants[b], variants[c]], axis=1)  # [q, 3m] rows
            scores[np.arange(len(banned))[:, None], banned] = -np.inf
            predicted = canonical[np.argmax(scores, axis=1)]
            hits[start : start + chunk] = predicted == d
    sections: dict[str, list[int]] = {name: [0, 0] for name in questions}
    for name, hit in zip(section_of, hits):
        sections[name][0] += int(hit)
        sections[name][1] += 1
    answered = len(ids)
    return AnalogyResult(
        accuracy=float(hits.mean()) if answered else 0.0, correct=int(hits.sum()), answered=answered, oov=oov,
        oov_ratio=100.0 * oov / total if total else 0.0,
        sections={name: (c, n) for name, (c, n) in sections.items()})


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata's 'average')."""
    order = np.argsort(x, kind="stable")
    sorted_x = x[order]
    starts = np.r_[True, sorted_x[1:] != sorted_x[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(x)] - 1
    ranks = np.empty(len(x))
    ranks[order] = (first[group] + last[group]) / 2.0 + 1.0
    return ranks


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    r""":math:`r = \frac{\sum_i (x_i - \bar x)(y_i - \bar y)}{\sqrt{\sum_i (x_i - \bar x)^2
    \sum_i (y_i - \bar y)^2}}`."""
    x = np.asarray(x, dtype=np.float64) - np.mean(x)
    y = np.asarray(y, dtype=np.float64) - np.mean(y)
    denom = np.sqrt((x @ x) * (y @ y))
    return float(x @ y / denom) if denom > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    r"""Spearman's :math:`\rho`: the Pearson correlation of the ranks (ties averaged)."""
    return pearson(_ranks(np.asarray(x, dtype=np.float64)), _ranks(np.asarray(y, dtype=np.float64)))


@dataclass(frozen=True)
class WordPairResult:
    spearman: float
    pearson: float
    pairs: int  # pairs scored
    oov: int  # pairs skipped for a word outside the restricted vocabulary
    oov_ratio: float  # percent of all pairs, as gensim reports it


def evaluate_word_pairs(wv: WordVectors, pairs: Iterable[tuple[str, str, float]], *,
                        restrict_vocab: int = 300_000, case_insensitive: bool = True) -> WordPairResult:
    r"""Correlate the model's cosine similarities with human scores (WordSim-353, SimLex-999).

    .. math::  \rho = \operatorname{Spearman}\big(\{\cos(w_1^{(i)}, w_2^{(i)})\}_i,\ \{s^{(i)}\}_i\big)

    over the pairs whose two words are among the first ``restrict_vocab`` words; the others are skipped
    and counted (``oov``, ``oov_ratio`` in percent), as gensim's ``evaluate_word_pairs`` does.
    """
    fold = str.upper if case_insensitive else (lambda s: s)
    ok, _ = _vocab(wv, restrict_vocab, case_insensitive)
    U = unit_rows(wv.vectors[: restrict_vocab])
    gold, model, oov = [], [], 0
    for w1, w2, score in pairs:
        k1, k2 = fold(w1), fold(w2)
        if k1 in ok and k2 in ok:
            gold.append(float(score))
            model.append(float(U[ok[k1]] @ U[ok[k2]]))
        else:
            oov += 1
    if not gold:
        raise ScratchlmError(f"no word pair has both words in the first {restrict_vocab} words of the vocabulary")
    return WordPairResult(spearman=spearman(model, gold), pearson=pearson(model, gold), pairs=len(gold),
                          oov=oov, oov_ratio=100.0 * oov / (len(gold) + oov))


def standard_scores(wv: WordVectors, *, restrict_vocab: int = 30_000) -> dict[str, float]:
    """The shipped evaluation sets in one dict: Google analogies (3CosAdd), WordSim-353, SimLex-999
    (a set with no pair in the vocabulary scores NaN with an OOV ratio of 100)."""
    from scratchlm.data import corpora

    analogies = evaluate_analogies(wv, corpora.analogy_questions(), restrict_vocab=restrict_vocab)
    out = {"analogy_accuracy": analogies.accuracy, "analogy_answered": analogies.answered,
           "analogy_oov_ratio": analogies.oov_ratio}
    for name in ("wordsim353", "simlex999"):
        try:
            result = evaluate_word_pairs(wv, corpora.word_pairs(name), restrict_vocab=restrict_vocab)
            out[f"{name}_spearman"], out[f"{name}_oov_ratio"] = result.spearman, result.oov_ratio
        except ScratchlmError:  # every pair out of vocabulary (a small or foreign corpus): no score, not a crash
            out[f"{name}_spearman"], out[f"{name}_oov_ratio"] = float("nan"), 100.0
    return out
