"""The design documents' text classifier: embeddings, mean pooling over real tokens, a sigmoid output.

Design document 001 §5.2 (and 000 §5): ``Embedding -> GlobalAveragePooling1D -> Dense(1, sigmoid)``
trained with binary cross-entropy.  One deviation: Keras's pooling there averages over every
position, padding included, so a sentence's score would depend on how long the batch's longest
sentence is; here the mean runs over the non-padding tokens only.

The embedding table starts either random or from word vectors learned on other, unlabelled text
(:func:`embedding_from_vectors`: Word2Vec or GloVe files, or any :class:`WordVectors`), frozen or
fine-tuned: the documents' point that embeddings carry what a small labelled set cannot teach.

The model is the encoder :func:`pool` under the logistic head of :mod:`scratchlm.models.heads`;
:mod:`scratchlm.training.embedding_bag` trains it through the one classification recipe
(:mod:`scratchlm.training.classify`) with k-fold cross-validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.embeddings.formats import WordVectors
from scratchlm.errors import ScratchlmError
from scratchlm.models import heads
from scratchlm.nn.functional import dropout, sigmoid
from scratchlm.tokenizers.vocab import Vocab

INIT_RMS = 0.1  # entry scale of the random table; pretrained tables are rescaled to it (see embedding_from_vectors)


@dataclass(frozen=True)
class ClassifierConfig:
    vocab_size: int
    embed_dim: int = 16  # small: 160 training sentences cannot support many parameters
    pad_id: int = 0  # Vocab's "<pad>"
    unk_id: int = 1  # Vocab's "<unk>"
    dropout: float = 0.0  # drop rate on the token embeddings E_{x_t} while training

    def __post_init__(self):
        if self.vocab_size < 3 or self.embed_dim < 1:
            raise ScratchlmError(f"the classifier needs vocab_size >= 3 (<pad>, <unk> and a word) and embed_dim >= 1, "
                                 f"got {self.vocab_size} and {self.embed_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ScratchlmError(f"--dropout must be in [0, 1), got {self.dropout}")


def init(key: jax.Array, config: ClassifierConfig) -> dict:
    """``{"embedding": [V, D] ~ N(0, 0.1^2), "output": {"w": [D] = 0, "b": [] = 0}}``.

    A zero output layer makes the untrained model predict 1/2 for every sentence.  The ``<pad>``
    and ``<unk>`` rows start at 0: with ``min_count=1`` no training word maps to ``<unk>``, so a
    random row there would only add noise to the test sentences that hold unseen words.
    """
    E = INIT_RMS * jax.random.normal(key, (config.vocab_size, config.embed_dim), jnp.float32)
    E = E.at[jnp.array([config.pad_id, config.unk_id])].set(0.0)
    return {"embedding": E, "output": heads.init_logistic(config.embed_dim)}


def embedding_from_vectors(key: jax.Array, vocab: Vocab, wv: WordVectors, *,
                           rms: float = INIT_RMS) -> tuple[np.ndarray, int]:
    r"""An embedding table [len(vocab), D] whose rows are ``wv``'s vectors where it has the word.

    .. math::  E_w = \frac{r}{s}\, v(w) \ \text{ if } w \in \mathrm{wv}, \qquad
               E_w \sim \mathcal N(0, r^2) \text{ otherwise}, \qquad E_{\mathrm{pad}} = E_{\mathrm{unk}} = 0

    with :math:`r` the random table's scale and :math:`s` the root mean square of the entries of
    :math:`v(w)` over the vocabulary's counted words (count > 0: the training sentences' words, never
    the words only a test fold holds), so a pretrained and a random table differ in their directions
    only and the same learning rate suits both.  Returns the table and how many of the vocabulary's
    words ``wv`` had.
    """
    D = wv.dim
    E = rms * np.asarray(jax.random.normal(key, (len(vocab), D), jnp.float32))
    index = wv.index
    rows = [(i, index[w]) for i, w in enumerate(vocab.tokens) if w in index and w not in vocab.specials]
    if rows:
        mine, theirs = (np.array(r) for r in zip(*rows))
        counted = theirs[np.asarray(vocab.counts)[mine] > 0]
        v = wv.vectors[counted] if len(counted) else wv.vectors[theirs]
        E[mine] = rms / max(float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))), 1e-12) * wv.vectors[theirs]
    for special in vocab.specials:
        E[vocab.token_to_id(special)] = 0.0
    return E, len(rows)


def apply(params: dict, ids: jax.Array, *, config: ClassifierConfig, key: jax.Array | None = None,
          train: bool = False) -> jax.Array:
    r"""Logit of the positive class for each sentence.

    .. math::  h = \frac{1}{|\{t : x_t \neq \mathrm{pad}\}|} \sum_{t : x_t \neq \mathrm{pad}} E_{x_t},
               \qquad z = w^\top h + b, \qquad \hat y = \sigma(z)

    Args: ids [B, T] token ids, padded with ``config.pad_id``; ``key`` and ``train`` for dropout on
    the embeddings :math:`E_{x_t}`.  Returns z [B] (apply :func:`~scratchlm.nn.functional.sigmoid`
    for :math:`\hat y`).
    """
    return heads.logistic(params["output"], pool(params, ids, config=config, key=key, train=train))  # [B]


def pool(params: dict, ids: jax.Array, *, config: ClassifierConfig, key: jax.Array | None = None,
         train: bool = False) -> jax.Array:
    r"""The encoder: :math:`h = \frac{1}{|\{t : x_t \neq \mathrm{pad}\}|} \sum_{t : x_t \neq \mathrm{pad}} E_{x_t}`
    (dropout on :math:`E_{x_t}` while training).  Args: ids [B, T].  Returns h [B, D].
    """
    if ids.ndim != 2:
        raise ValueError(f"expected ids [B, T], got {ids.shape}")
    E = params["embedding"]
    m = (ids != config.pad_id).astype(E.dtype)  # [B, T]
    e = jnp.take(E, ids, axis=0)  # [B, T] -> [B, T, D]
    e = dropout(e, config.dropout, key=key, train=train)
    return jnp.einsum("bt,btd->bd", m, e) / jnp.maximum(m.sum(-1, keepdims=True), 1.0)  # [B, D]


_apply = jax.jit(apply, static_argnames=("config", "train"))


def predict_proba(params: dict, ids, *, config: ClassifierConfig) -> np.ndarray:
    """:math:`\\hat y = \\sigma(z)` for each sentence, as a NumPy array (jitted: one compile per ids shape)."""
    return np.asarray(sigmoid(_apply(params, jnp.asarray(ids), config=config)))
