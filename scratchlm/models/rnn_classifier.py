r"""Design document 002's sentiment model: embedding → LSTM(128, the sequence) → LSTM(128, the last state) →
one sigmoid unit.

Document 002 §5.2 writes it in Keras as ``Embedding(V, 64)``, ``LSTM(128, return_sequences=True)``,
``LSTM(128)``, ``Dense(1, activation="sigmoid")``, trained with binary cross-entropy and Adam.  Two
LSTM layers where the first returns its whole sequence and the second its last state are one stacked
LSTM of :math:`L = 2` layers (:mod:`scratchlm.nn.lstm`, no dropout between them) read at its top
layer's final state:

.. math::  z = w^\top h^{(2)}_{T_b} + b, \qquad p(y = 1 \mid x) = \sigma(z)

with :math:`T_b` sentence b's last real token: padding is masked (the state is carried through it),
where Keras without ``mask_zero=True`` would run the LSTM over the padding too, so that a sentence's
score would depend on the length of the longest sentence in its batch.  ``cell="gru"`` puts GRUs
(:mod:`scratchlm.nn.gru`, PyTorch's variant) in the same two places, for contrast.

The head is the one-logit :func:`scratchlm.models.heads.logistic` (the document's ``Dense(1, sigmoid)``),
not a two-class softmax: the document's loss is the binary cross-entropy of one sigmoid unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from scratchlm.errors import ScratchlmError
from scratchlm.models import heads
from scratchlm.nn import gru, lstm

CELLS = ("lstm", "gru")


@dataclass(frozen=True)
class RNNClassifierConfig:
    vocab_size: int
    embed_dim: int = 64  # design document 002 §5.2: EMBEDDING_DIM = 64
    hidden_size: int = 128  # document 002 §5.2: LSTM(128), twice
    num_layers: int = 2  # document 002 §5.2: two LSTM layers, the first returning its sequence
    cell: str = "lstm"  # "lstm" (the document's) or "gru"
    pad_id: int = 0  # Vocab's "<pad>"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ScratchlmError(f"the recurrent cell must be one of {CELLS}, got {self.cell!r}")
        if self.vocab_size < 3 or min(self.embed_dim, self.hidden_size, self.num_layers) < 1:
            raise ScratchlmError(f"the recurrent classifier needs vocab_size >= 3 and positive sizes, got {self}")

    @property
    def rnn(self) -> lstm.LSTMConfig | gru.GRUConfig:
        layer = lstm.LSTMConfig if self.cell == "lstm" else gru.GRUConfig
        return layer(self.embed_dim, self.hidden_size, self.num_layers)


def init(key: jax.Array, config: RNNClassifierConfig) -> dict:
    """``{"embedding": [V, E] ~ U(-0.05, 0.05), "rnn": ..., "output": {"w": [H] = 0, "b": [] = 0}}``.

    The table is drawn as Keras's ``Embedding`` draws it (the document's model: ``uniform``, ±0.05);
    the recurrent layers as PyTorch draws them (:func:`scratchlm.nn.lstm.init`); a zero output layer
    predicts 1/2 for every sentence.
    """
    k_embed, k_rnn = jax.random.split(key)
    E = jax.random.uniform(k_embed, (config.vocab_size, config.embed_dim), jnp.float32, -0.05, 0.05)
    layer = lstm if config.cell == "lstm" else gru
    return {"embedding": E, "rnn": layer.init(k_rnn, config.rnn), "output": heads.init_logistic(config.hidden_size)}


def final_state(params: dict, ids: jax.Array, mask: jax.Array, *, config: RNNClassifierConfig) -> jax.Array:
    r"""The top layer's state :math:`h^{(L)}_{T_b}` at each sentence's last real token.

    Args: ids [B, T] token ids; mask [B, T] bool, true at real tokens.  Returns [B, H].
    """
    e = params["embedding"][ids]  # [B, T] -> [B, T, E]
    if config.cell == "lstm":
        _, (h_n, _) = lstm.apply(params["rnn"], e, mask=mask)
    else:
        _, h_n = gru.apply(params["rnn"], e, mask=mask)
    return h_n[-1]  # [L, B, H] -> [B, H]
