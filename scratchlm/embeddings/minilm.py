r"""Static word vectors from the input token embeddings of the shipped all-MiniLM-L6-v2 encoder.

.. math::  v(w) = \frac{1}{|P(w)|} \sum_{p \in P(w)} E_p

:math:`P(w)` are the WordPiece pieces of ``w`` (MiniLM's own uncased vocabulary) and :math:`E` the
encoder's input token embeddings (``embeddings.word_embeddings.weight``), learned on a large text
collection: only the table, no transformer layer.  A vector depends on the word alone, so building
them for every word a data set holds uses no statistic of any fold.
"""

from __future__ import annotations

import numpy as np

from scratchlm.data.corpora import minilm_path
from scratchlm.embeddings.formats import WordVectors
from scratchlm.tokenizers.models import WordPiece


def minilm_word_vectors(words) -> WordVectors:
    r""":math:`v(w) = \frac{1}{|P(w)|} \sum_{p \in P(w)} E_p` for each distinct word of ``words`` (sorted)."""
    from safetensors.numpy import load_file

    path = minilm_path()
    E = load_file(str(path / "model.safetensors"))["embeddings.word_embeddings.weight"]  # [30522, 384]
    pieces = WordPiece.from_vocab_file(path / "vocab.txt")
    words = sorted(set(words))
    return WordVectors(tuple(words), np.stack([E[[i for i, _, _, _ in pieces.tokenize(w)]].mean(0) for w in words]))
