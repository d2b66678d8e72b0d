r"""The unigram language model tokenizer (Kudo 2018, "Subword Regularization: Improving Neural Network
Translation Models with Multiple Subword Candidates"; SentencePiece's default model).

Every piece :math:`x` of the vocabulary :math:`V` has a log-probability :math:`\log p(x)` (its
*score*); a word :math:`X` is segmented into the pieces :math:`\mathbf{x} = (x_1, \dots, x_M)`,
:math:`x_1 \cdots x_M = X`, of highest likelihood (Kudo 2018, Eq. 1-2)

.. math::  \mathbf{x}^\ast = \arg\max_{\mathbf{x} \in S(X)} \sum_{i=1}^{M} \log p(x_i),

found by the Viterbi algorithm over the lattice of pieces (:func:`viterbi`).  A character no piece
starts with becomes the unknown piece with HuggingFace's (and SentencePiece's) score
:math:`\min_{x \in V} \log p(x) - 10`; adjacent unknown characters are fused into one unknown token
whose token string is the text it covers.  With ``byte_fallback`` an unknown stretch becomes the
pieces ``<0xNN>`` of its UTF-8 bytes, each spanning the whole stretch, when the vocabulary has them all.

Subword regularization (:meth:`Unigram.sample`): a segmentation drawn from the posterior sharpened by
:math:`\alpha` (Kudo 2018, §2.2).  The scores are learnt by
:func:`scratchlm.tokenizers.unigram_trainer.train_unigram_model` (EM, then pruning).
"""

from __future__ import annotations

import math

import numpy as np

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers.models.base import Model

UNK_PENALTY = 10.0  # HuggingFace's K_UNK_PENALTY, SentencePiece's kUnkPenalty


class Unigram(Model):
    """The Unigram model: pieces with log-probabilities; ``tokenize(word)`` is the Viterbi segmentation."""

    def __init__(self, pieces: list[tuple[str, float]], *, unk_id: int | None = None, byte_fallback: bool = False):
        pieces = [(str(p), float(s)) for p, s in pieces]
        if unk_id is not None and not 0 <= unk_id < len(pieces):
            raise ScratchlmError(f"Unigram: unk_id {unk_id} is not in the vocabulary of {len(pieces)} pieces")
        vocab: dict[str, int] = {}
        for i, (piece, _) in enumerate(pieces):
            vocab[piece] = i  # a repeated piece keeps its last id, as HuggingFace's map does
        super().__init__(vocab)
        self.inverse = {i: p for i, (p, _) in enumerate(pieces)}
        self.pieces = pieces
        self.scores = [s for _, s in pieces]
        self.unk_id = unk_id
        self.byte_fallback = byte_fallback
        self.min_score = min((s for s in self.scores if s == s), default=math.inf)  # NaN never counts, as in HF
        self.unk_score = self.min_score - UNK_PENALTY
        # The trie's common-prefix search as two dicts: every proper prefix of a piece, and piece -> id.
        self._prefixes = {p[:k] for p, _ in pieces for k in range(1, len(p))}
        self._longest = max((len(p) for p, _ in pieces), default=0)

    @property
    def unk_token(self) -> str | None:
        return None if self.unk_id is None else self.pieces[self.unk_id][0]

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)

    def viterbi(self, word: str) -> list[tuple[int, int, int]]:
        r"""The best segmentation of ``word``: ``[(id, start, end), ...]`` maximising
        :math:`\sum_i \log p(x_i)` (Kudo 2018, Eq. 2), HuggingFace's ``encode_optimized``: positions left to
        right, candidate pieces shortest first, a later candidate replacing the best only when strictly
        better; the unknown piece (score :math:`\min \log p - 10`) where no piece is one character long."""
        n = len(word)
        vocab, prefixes, scores, longest = self.vocab, self._prefixes, self.scores, self._longest
        best = [-math.inf] * (n + 1)
        best[0] = 0.0
        back: list[tuple[int, int] | None] = [None] * (n + 1)  # (start, id) of the best piece ending here
        for start in range(n):
            here = best[start]
            single = False
            for end in range(start + 1, min(n, start + longest) + 1):
                piece = word[start:end]
                i = vocab.get(piece)
                if i is not None:
                    candidate = scores[i] + here
                    if back[end] is None or candidate > best[end]:
                        best[end], back[end] = candidate, (start, i)
                    if end == start + 1:
                        single = True
                if piece not in prefixes:
                    break
            if not single:
                if self.unk_id is None:
                    raise ScratchlmError(f"Unigram: {word[start]!r} is not in the vocabulary and the model has no "
                                         "unk_id")
                candidate = self.unk_score + here
                if back[start + 1] is None or candidate > best[start + 1]:
                    best[start + 1], back[start + 1] = candidate, (start, self.unk_id)
        out = []
        end = n
        while end > 0:
            start, i = back[end]
            if i == self.unk_id and out and out[-1][0] == i:  # fuse unknowns
                out[-1] = (i, start, out[-1][2])
            else:
                out.append((i, start, end))
            end = start
        out.reverse()
        return out

    def lattice(self, word: str) -> list[tuple[int, int, int, float]]:
        """The lattice: ``(start, end, id, score)`` for every piece at every position, and the unknown piece
        where no one-character piece starts."""
        vocab, prefixes, scores, n = self.vocab, self._prefixes, self.scores, len(word)
        nodes = []
        for start in range(n):
            single = False
            for end in range(start + 1, min(n, start + self._longest) + 1):
                piece = word[start:end]
                i = vocab.get(piece)
                if i is not None:
                    nodes.append((start, end, i, scores[i]))
                    single = single or end == start + 1
                if piece not in prefixes:
                    break
            if not single:
                if self.unk_id is None:
                    raise ScratchlmError(f"Unigram: {word[start]!r} is not in the vocabulary and the model has no "
                                         "unk_id")
                nodes.append((start, start + 1, self.unk_id, self.unk_score))
        return nodes

    def sample(self, word: str, rng: np.random.Generator, alpha: float = 0.1) -> list[tuple[int, int, int]]:
        r"""Subword regularization (Kudo 2018, §2.2, Eq. 5): a segmentation drawn with probability
        :math:`P(\mathbf{x} \mid X)^\alpha / \sum_{\mathbf{x}'} P(\mathbf{x}' \mid X)^\alpha`, by forward
        filtering, backward sampling over the lattice (every segmentation, not an n-best list);
        ``[(id, start, end), ...]``, unknown characters not fused.  ``rng`` is explicit (a NumPy Generator)."""
        n = len(word)
        nodes = self.lattice(word)
        forward = [-math.inf] * (n + 1)
        forward[0] = 0.0
        ending: list[list[tuple[int, int, float]]] = [[] for _ in range(n + 1)]
        for start, end, i, score in nodes:  # in order of start
            value = forward[start] + alpha * score
            forward[end] = np.logaddexp(forward[end], value)
            ending[end].append((start, i, value))
        out, end = [], n
        while end > 0:
            logits = np.array([v for _, _, v in ending[end]]) - forward[end]
            k = rng.choice(len(logits), p=np.exp(logits) / np.exp(logits).sum())
            start, i, _ = ending[end][k]
            out.append((i, start, end))
            end = start
        return out[::-1]

    def tokenize(self, word: str) -> list[tuple[int, str, int, int]]:
        """``[(id, token, start, end), ...]`` for one word.  An unknown token's string is the text it covers
        (HuggingFace's); with ``byte_fallback`` it becomes its ``<0xNN>`` bytes, each spanning the stretch."""
        out = []
        for i, start, end in self.viterbi(word):
            piece = word[start:end]
            if i == self.unk_id and piece not in self.vocab:
                if self.byte_fallback:
                    byte_ids = [self.vocab.get(f"<0x{b:02X}>") for b in piece.encode("utf-8")]
                    if None not in byte_ids:
                        out += [(b, self.inverse[b], start, end) for b in byte_ids]
                        continue
                out.append((i, piece, start, end))
            else:
                out.append((self.vocab[piece], piece, start, end))
        return out

    def to_json(self) -> dict:
        return {"type": "Unigram", "unk_id": self.unk_id, "vocab": [[p, s] for p, s in self.pieces],
                "byte_fallback": self.byte_fallback}

    @classmethod
    def from_json(cls, spec: dict) -> Unigram:
        return cls([tuple(p) for p in spec["vocab"]], unk_id=spec.get("unk_id"),
                   byte_fallback=spec.get("byte_fallback", False))
