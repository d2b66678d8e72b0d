r"""Word vectors as data, and gensim's everyday queries on them.

The API every embedding model shares
------------------------------------
:class:`WordVectors` is a frozen pair ``(words, vectors)``: ``words`` a tuple of ``V`` distinct
strings, ``vectors`` a float32 NumPy array ``[V, D]`` whose row ``i`` belongs to ``words[i]``, rows
ordered by **descending corpus frequency** (the order the C tools and gensim keep, which is what
``restrict_vocab=N``, "search the N most frequent words", relies on).  Word2Vec and GloVe both hand
their result over as a ``WordVectors``; the evaluation functions and the writers of
:mod:`scratchlm.embeddings.formats` take one; its readers return one.  Build one from plain arrays
with ``WordVectors(words=tuple(words), vectors=np.asarray(matrix, np.float32))``.

The queries a gensim user types
-------------------------------
The methods keep gensim's ``KeyedVectors`` names, arguments and results::

    wv.most_similar(positive=["king", "woman"], negative=["man"], topn=10)   # 3CosAdd
    wv.most_similar_cosmul(positive=["king", "woman"], negative=["man"])     # 3CosMul
    wv.similar_by_vector(v, topn=5); wv.similar_by_word("paris")
    wv.most_similar("paris", topn=None)    # every similarity, a float32 array [V] (or [restrict_vocab])
    wv.similarity("paris", "france"); wv["paris"]; "paris" in wv

Results are ``[(word, similarity), ...]`` best first, the query's own words left out; ties go to the
more frequent (lower-row) word.  A word outside the vocabulary raises :class:`~scratchlm.errors.
WordNotInVocabularyError`, a :class:`~scratchlm.errors.ScratchlmError` that is also a ``KeyError``
(what gensim raises).  All arithmetic is float32 on unit rows computed once and kept.  Where scratchlm
differs from gensim 4.4, the method's docstring says so.  Nothing here imports JAX.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from scratchlm.errors import ScratchlmError, WordNotInVocabularyError


def unit_rows(x: np.ndarray) -> np.ndarray:
    r"""Rows scaled to unit length, :math:`\hat x_i = x_i / \lVert x_i \rVert` (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.promote_types(np.asarray(x).dtype, np.float32))
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, np.finfo(x.dtype).tiny)


def cosine_similarity(a, b) -> float | np.ndarray:
    r"""Cosine similarity of two vectors, of a vector and a batch, or of every pair of two batches.

    .. math::  \cos(a, b) = \frac{a^\top b}{\lVert a \rVert\,\lVert b \rVert}

    Args: ``a`` [D] or [N, D]; ``b`` [D] or [M, D] (NumPy or JAX arrays, lists).  Returns a float for two
    vectors, [M] or [N] for a vector and a batch, and the matrix [N, M] of all pairs for two batches
    (as ``sentence_transformers.util.cos_sim`` and scikit-learn's ``cosine_similarity``).  A zero
    vector has similarity 0 with everything.  Computed in float32, or float64 for float64 inputs.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2) or a.shape[-1] != b.shape[-1]:
        raise ScratchlmError(f"cosine_similarity expects [D] or [N, D] arrays of the same D, got {a.shape} and "
                             f"{b.shape}")
    out = unit_rows(a) @ unit_rows(b).T  # [N, M], [N], [M] or a scalar
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class WordVectors:
    """Words and their vectors, ``words`` [V] ordered by descending frequency, ``vectors`` [V, D] float32."""

    words: tuple[str, ...]
    vectors: np.ndarray

    def __post_init__(self):
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ScratchlmError(f"expected vectors [V, D], got shape {vectors.shape}")
        if len(self.words) != vectors.shape[0]:
            raise ScratchlmError(f"{len(self.words)} words but {vectors.shape[0]} vector rows")
        if len(set(self.words)) != len(self.words):
            raise ScratchlmError("words must be distinct")
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "vectors", vectors)

    @cached_property
    def index(self) -> dict[str, int]:
        """word -> row (gensim's ``key_to_index``), built once."""
        return {w: i for i, w in enumerate(self.words)}

    @cached_property
    def unit(self) -> np.ndarray:
        r"""The rows scaled to unit length, :math:`\hat x_w` [V, D] (gensim's ``get_normed_vectors()``), built once."""
        return unit_rows(self.vectors)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def __contains__(self, word) -> bool:
        return word in self.index

    def row(self, word: str) -> int:
        """The row of ``word``; :class:`WordNotInVocabularyError` (a ``KeyError``) when it has none."""
        try:
            return self.index[word]
        except (KeyError, TypeError):
            raise WordNotInVocabularyError(f"word {word!r} is not in the vocabulary ({len(self)} words)") from None

    def __getitem__(self, words: str | Sequence[str]) -> np.ndarray:
        """``wv["paris"]`` -> [D]; ``wv[["paris", "rome"]]`` -> [n, D] (gensim's indexing)."""
        if isinstance(words, str):
            return self.vectors[self.row(words)]
        return self.vectors[[self.row(w) for w in words]]

    def similarity(self, w1: str, w2: str) -> float:
        r""":math:`\cos(w_1, w_2) = \hat x_{w_1}^\top \hat x_{w_2}` (gensim's ``similarity``)."""
        return float(self.unit[self.row(w1)] @ self.unit[self.row(w2)])

    # gensim's KeyedVectors names, for readers arriving from it
    @property
    def key_to_index(self) -> dict[str, int]:
        """word -> row, gensim's name for :attr:`index`."""
        return self.index

    @property
    def index_to_key(self) -> tuple[str, ...]:
        """row -> word, gensim's name for :attr:`words`."""
        return self.words

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        r"""gensim's ``get_vector``: :math:`x_w`, or :math:`\hat x_w` with ``norm``."""
        return (self.unit if norm else self.vectors)[self.row(word)]

    def n_similarity(self, ws1: Sequence[str], ws2: Sequence[str]) -> float:
        r"""gensim's ``n_similarity``: the cosine of the two sets' mean vectors (of the raw vectors, as gensim),

        .. math::  \cos\Big(\tfrac{1}{|S_1|} \textstyle\sum_{w \in S_1} x_w,\ \tfrac{1}{|S_2|} \sum_{w \in S_2} x_w\Big)

        A word without a vector raises, as :meth:`similarity` does (gensim leaves it out of the mean)."""
        if not (len(ws1) and len(ws2)):
            raise ScratchlmError("n_similarity needs two non-empty lists of words")
        return float(cosine_similarity(self[list(ws1)].mean(0), self[list(ws2)].mean(0)))

    def doesnt_match(self, words: Sequence[str]) -> str:
        r"""gensim's ``doesnt_match``: the word least similar to the centre of them all,
        :math:`\arg\min_w \hat x_w^\top \hat c`, :math:`c = \frac{1}{n} \sum_w \hat x_w`.  A word without a
        vector raises (gensim leaves it out with a warning)."""
        if not len(words):
            raise ScratchlmError("doesnt_match needs at least one word")
        unit = self.unit[[self.row(w) for w in words]]
        return list(words)[int(np.argmin(unit @ unit_rows(unit.mean(0))))]

    # ---------------------------------------------------------------------------------- queries

    def most_similar(self, positive=None, negative=None, topn: int | None = 10,
                     restrict_vocab: int | None = None) -> list[tuple[str, float]] | np.ndarray:
        r"""The words closest to the weighted mean of ``positive`` minus ``negative`` (3CosAdd).

        Mikolov et al. 2013 ("Linguistic regularities in continuous space word representations", §4)
        answer ``a : b :: c : ?`` by the vector offset; gensim's ``most_similar`` generalises it to any
        weighted lists of words :math:`P` and :math:`N` (weights :math:`+1` and :math:`-1` unless given
        as ``(word, weight)`` pairs; a vector may stand for a word and is used as given):

        .. math::  q = \frac{\sum_{i \in P \cup N} w_i\, \hat x_i}{\left\lVert \sum_{i \in P \cup N} w_i\,
                   \hat x_i \right\rVert}, \qquad
                   \mathrm{sim}(d) = \hat x_d^\top q, \qquad
                   \text{result} = \operatorname{top}_{k}\,\{ (d, \mathrm{sim}(d)) : d \notin P \cup N,\ d < N_r \}

        (gensim divides the sum by :math:`\sum_i |w_i|` before normalising, which the normalisation
        cancels).  ``positive`` and ``negative`` may each be one word or vector.  ``restrict_vocab=N_r``
        searches the first :math:`N_r` (most frequent) words only.  ``topn=None`` returns
        :math:`\mathrm{sim}(d)` for every searched word as a float32 array [V] (or [N_r]), the query's
        own words included, as gensim does; ``topn < 1`` returns ``[]``.
        """
        if topn is not None and topn < 1:
            return []
        terms = self._terms(positive, negative, allow_weights=True)
        if not terms:
            raise ScratchlmError("most_similar needs at least one word or vector (positive= or negative=)")
        q = sum(np.float32(w) * (self.unit[self.row(t)] if isinstance(t, str) else self._as_vector(t))
                for t, w in terms)
        q = unit_rows(np.asarray(q, np.float32))  # [D]
        n = self._searched(restrict_vocab)
        return self._best(self.unit[:n] @ q, topn, terms)

    def most_similar_cosmul(self, positive=None, negative=None, topn: int | None = 10,
                            restrict_vocab: int | None = None, *,
                            epsilon: float = 1e-6) -> list[tuple[str, float]] | np.ndarray:
        r"""The words that maximise the product of shifted cosines with ``positive`` over those with
        ``negative`` (3CosMul: Levy & Goldberg 2014, "Linguistic regularities in sparse and explicit word
        representations", eq. 4; cosines shifted to [0, 1] as in their footnote 7):

        .. math::  \mathrm{sim}(d) = \frac{\prod_{p \in P} \cos'(d, p)}{\prod_{n \in N} \cos'(d, n) + \varepsilon},
                   \qquad \cos'(d, x) = \frac{1 + \hat x_d^\top \hat x}{2}

        with gensim's :math:`\varepsilon = 10^{-6}` (the paper uses :math:`10^{-3}`, as
        :func:`scratchlm.embeddings.evaluate.evaluate_analogies` does); an empty product is 1.
        Arguments and results as :meth:`most_similar` (no weights).  Two differences from gensim 4.4,
        both where gensim departs from the paper: a vector in ``positive`` / ``negative`` is scaled to
        unit length (gensim uses it as given, so the two agree on unit vectors), and ``restrict_vocab``
        is honoured (gensim accepts it and searches every word).
        """
        if topn is not None and topn < 1:
            return []
        terms = self._terms(positive, negative, allow_weights=False)
        if not any(w > 0 for _, w in terms):
            raise ScratchlmError("most_similar_cosmul needs at least one positive word or vector")
        n = self._searched(restrict_vocab)
        U = self.unit[:n]  # [n, D]

        def shifted_cos(t):
            x = self.unit[self.row(t)] if isinstance(t, str) else unit_rows(self._as_vector(t))
            return (1 + U @ x) / 2  # [n]

        ones = np.ones(n, np.float32)
        numerator = np.prod([shifted_cos(t) for t, w in terms if w > 0] or [ones], axis=0)
        denominator = np.prod([shifted_cos(t) for t, w in terms if w < 0] or [ones], axis=0)
        return self._best(numerator / (denominator + np.float32(epsilon)), topn, terms)

    def similar_by_vector(self, vector, topn: int | None = 10,
                          restrict_vocab: int | None = None) -> list[tuple[str, float]] | np.ndarray:
        r"""The words closest to ``vector`` [D], :math:`\operatorname{top}_k\, \hat x_d^\top \hat v`, none left out."""
        return self.most_similar(positive=[self._as_vector(vector)], topn=topn, restrict_vocab=restrict_vocab)

    def similar_by_word(self, word: str, topn: int | None = 10,
                        restrict_vocab: int | None = None) -> list[tuple[str, float]] | np.ndarray:
        """``most_similar(positive=[word], ...)``: the word's nearest neighbours, itself left out."""
        return self.most_similar(positive=[word], topn=topn, restrict_vocab=restrict_vocab)

    # ---------------------------------------------------------------------------------- helpers

    def _as_vector(self, v) -> np.ndarray:
        v = np.asarray(v, dtype=np.float32)
        if v.shape != (self.dim,):
            raise ScratchlmError(f"expected a vector [D] = [{self.dim}], got shape {v.shape}")
        return v

    def _terms(self, positive, negative, *, allow_weights: bool) -> list[tuple[object, float]]:
        """``[(word or vector, weight), ...]``: positive terms weigh +1 and negative -1 unless given as pairs."""
        out = []
        for items, default in ((positive, 1.0), (negative, -1.0)):
            if items is None:
                continue
            if isinstance(items, str) or (isinstance(items, np.ndarray) and items.ndim == 1):
                items = [items]
            for item in items:
                if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
                    if not allow_weights:
                        raise ScratchlmError(f"most_similar_cosmul takes no weights, got {item!r}")
                    out.append((item[0], float(item[1])))
                else:
                    out.append((item, default))
        return out

    def _searched(self, restrict_vocab: int | None) -> int:
        if restrict_vocab is None:
            return len(self)
        if restrict_vocab < 1:
            raise ScratchlmError(f"restrict_vocab must be >= 1 (the number of most frequent words searched), "
                                 f"got {restrict_vocab}")
        return min(restrict_vocab, len(self))

    def _best(self, sims: np.ndarray, topn: int | None, terms) -> list[tuple[str, float]] | np.ndarray:
        """The ``topn`` highest of ``sims`` [n], the query's words left out; ties to the lower row."""
        if topn is None:
            return sims
        left_out = {self.row(t) for t, _ in terms if isinstance(t, str)}
        k = min(topn + len(left_out), len(sims))
        candidates = np.argpartition(-sims, k - 1)[:k] if k < len(sims) else np.arange(len(sims))
        # the k-th value may be tied with rows argpartition left out: take every row tied with it
        candidates = np.flatnonzero(sims >= sims[candidates].min())
        order = candidates[np.lexsort((candidates, -sims[candidates]))]
        return [(self.words[i], float(sims[i])) for i in order if i not in left_out][:topn]


__all__ = ["WordVectors", "cosine_similarity", "unit_rows"]
