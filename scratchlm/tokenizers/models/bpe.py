r"""The byte-pair encoding model (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with
Subword Units"; byte-level as in GPT-2, Radford et al. 2019): a vocabulary and ranked merges.
The merges are learnt by :func:`scratchlm.tokenizers.trainers.learn_merges`.

Encoding a word: split into symbols (characters, or GPT-2 bytes), then repeatedly merge the leftmost
occurrence of the adjacent pair of lowest merge rank, until no pair has a rank; cached per word by
the tokenizer.  Byte-level decoding is lossless (``decoders.ByteLevelDecoder``).

``byte_fallback``: a character missing from the vocabulary becomes the pieces ``<0xNN>`` of its UTF-8
bytes when the vocabulary has them all (Llama's files), before the unknown token is considered.
BPE-dropout (Provilkov et al. 2020, "BPE-Dropout: Simple and Effective Subword Regularization", §3): each
merge about to be applied is skipped with probability ``dropout``, drawn from the model's explicit
``numpy.random.Generator``; the skipped merges stay candidates after the next merge.
"""

from __future__ import annotations

import numpy as np

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers.models.base import Model


class BPE(Model):
    """The BPE model: a vocabulary and ranked merges; ``tokenize(word)`` applies them."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], *, unk_token: str | None = None,
                 continuing_subword_prefix: str | None = None, end_of_word_suffix: str | None = None,
                 fuse_unk: bool = False, ignore_merges: bool = False, byte_fallback: bool = False,
                 dropout: float | None = None, rng: np.random.Generator | None = None):
        super().__init__(vocab)
        if dropout is not None and not 0.0 <= dropout <= 1.0:
            raise ScratchlmError(f"BPE dropout must be in [0, 1], got {dropout}")
        if dropout and rng is None:
            raise ScratchlmError("BPE dropout needs an explicit rng (numpy.random.default_rng(seed))")
        self.byte_fallback = byte_fallback
        self.dropout = dropout
        self.rng = rng
        self.merges = [tuple(m) for m in merges]
        self.unk_token = unk_token
        self.prefix = continuing_subword_prefix
        self.suffix = end_of_word_suffix
        self.fuse_unk = fuse_unk
        self.ignore_merges = ignore_merges
        # (id_a, id_b) -> (rank, id_ab); the merged token drops b's continuation prefix.
        self.ranks: dict[tuple[int, int], tuple[int, int]] = {}
        n_prefix = len(self.prefix or "")
        for rank, (a, b) in enumerate(self.merges):
            merged = a + (b[n_prefix:] if self.prefix and b.startswith(self.prefix) else b)
            for token in (a, b, merged):
                if token not in self.vocab:
                    raise ScratchlmError(f"BPE merge {rank} ({a!r}, {b!r}): token {token!r} is not in the vocabulary")
            self.ranks[(self.vocab[a], self.vocab[b])] = (rank, self.vocab[merged])

    def tokenize(self, word: str) -> list[tuple[int, str, int, int]]:
        """``[(id, token, start, end), ...]`` for one word; offsets in characters of ``word``."""
        if self.ignore_merges and word in self.vocab:
            return [(self.vocab[word], word, 0, len(word))]
        vocab, unk = self.vocab, self.unk_token
        ids, spans = [], []
        n = len(word)
        dropped: set[int] = set()
        for i, ch in enumerate(word):
            s = ch
            if i > 0 and self.prefix:
                s = self.prefix + s
            if i == n - 1 and self.suffix:
                s = s + self.suffix
            t = vocab.get(s)
            if t is not None:
                ids.append(t)
                spans.append([i, i + 1])
            elif self.byte_fallback and None not in (fallback := [vocab.get(f"<0x{b:02X}>") for b in s.encode()]):
                ids += fallback
                spans += [[i, i + 1] for _ in fallback]
            elif unk is not None:
                if unk not in vocab:
                    raise ScratchlmError(f"BPE: the unknown token {unk!r} is not in the vocabulary")
                if self.fuse_unk and ids and ids[-1] == vocab[unk] and spans[-1][1] == i:
                    spans[-1][1] = i + 1
                else:
                    ids.append(vocab[unk])
                    spans.append([i, i + 1])
            else:  # HuggingFace drops a character it cannot represent
                dropped.add(i)
        ranks = self.ranks
        if self.dropout:
            self._merge_with_dropout(ids, spans)
        while not self.dropout and len(ids) > 1:
            best, best_at = None, -1
            for k in range(len(ids) - 1):
                r = ranks.get((ids[k], ids[k + 1]))
                if r is not None and (best is None or r[0] < best[0]):
                    best, best_at = r, k
            if best is None:
                break
            ids[best_at:best_at + 2] = [best[1]]
            spans[best_at:best_at + 2] = [[spans[best_at][0], spans[best_at + 1][1]]]
        inverse = self.inverse
        if dropped:
            spans = _shifted_spans(word, spans, dropped)
        return [(t, inverse[t], s, e) for t, (s, e) in zip(ids, spans)]

    def _merge_with_dropout(self, ids: list[int], spans: list[list[int]]) -> None:
        """Merges by rank (then position), each candidate skipped with probability ``dropout``; stop when all are."""
        ranks, rng, p = self.ranks, self.rng, self.dropout
        while len(ids) > 1:
            candidates = sorted((r[0], k, r[1]) for k in range(len(ids) - 1)
                                if (r := ranks.get((ids[k], ids[k + 1]))) is not None)
            for _, k, new in candidates:
                if rng.random() >= p:
                    ids[k:k + 2] = [new]
                    spans[k:k + 2] = [[spans[k][0], spans[k + 1][1]]]
                    break
            else:
                return

    def to_json(self) -> dict:
        return {"type": "BPE", "dropout": self.dropout, "unk_token": self.unk_token,
                "continuing_subword_prefix": self.prefix, "end_of_word_suffix": self.suffix,
                "fuse_unk": self.fuse_unk, "byte_fallback": self.byte_fallback, "ignore_merges": self.ignore_merges,
                "vocab": dict(sorted(self.vocab.items(), key=lambda kv: kv[1])),
                "merges": [list(m) for m in self.merges]}

    @classmethod
    def from_json(cls, spec: dict, *, rng: np.random.Generator | None = None) -> BPE:
        """A file's BPE; one with ``dropout`` needs ``rng`` (``hf_json.load(path, rng=...)``)."""
        dropout = spec.get("dropout")
        if dropout in (0, 0.0):
            dropout = None
        if dropout is not None and rng is None:
            raise ScratchlmError(f"BPE dropout {dropout}: pass an explicit rng to load this file "
                                 "(tokenizers.load(path, rng=numpy.random.default_rng(seed)))")
        merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in spec.get("merges", [])]
        return cls(spec["vocab"], merges, unk_token=spec.get("unk_token"),
                   continuing_subword_prefix=spec.get("continuing_subword_prefix"),
                   end_of_word_suffix=spec.get("end_of_word_suffix"), fuse_unk=spec.get("fuse_unk", False),
                   ignore_merges=spec.get("ignore_merges", False), byte_fallback=spec.get("byte_fallback", False),
                   dropout=dropout, rng=rng)



def _shifted_spans(word: str, spans: list[list[int]], dropped: set[int]) -> list[list[int]]:
    """HuggingFace's offsets when characters were dropped: its ``Word`` places each symbol at the running sum
    of the UTF-8 lengths of the kept symbols before it, so every dropped character shifts the later offsets
    left by its bytes; read back as characters of ``word``."""
    char_at_byte = [i for i, ch in enumerate(word) for _ in ch.encode("utf-8")]
    out, position = [], 0
    for start, end in spans:
        length = sum(len(word[i].encode("utf-8")) for i in range(start, end) if i not in dropped)
        out.append([char_at_byte[position], char_at_byte[position + length - 1] + 1])
        position += length
    return out
