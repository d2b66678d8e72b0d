r"""Classification heads shared by every encoder: sequence and token, softmax and sigmoid.

An encoder (BERT's pooled ``[CLS]`` vector or every position's :math:`h^{(L)}_t`, the GRU's final
state, the embedding bag's mean) gives features :math:`h`; a head turns them into logits and the
loss.  Two heads:

- **linear** (:func:`linear`): :math:`z = W\,\mathrm{dropout}(h) + b`, ``weight [C, H]`` in
  PyTorch's layout (HuggingFace's ``classifier`` of ``BertFor{Sequence,Token}Classification``).
  The same function serves sequence features [B, H] and token features [B, T, H].
- **logistic** (:func:`logistic`): :math:`z = w^\top h + b` with ``w [H]`` and a scalar ``b``: the
  one-logit output of design document 001 §5.2's ``Dense(1, sigmoid)``.

and two losses (:func:`loss`), chosen by ``kind``:

.. math::  \text{softmax:}\quad \mathcal L = -\frac{1}{N}\sum_i w_{y_i} \log\mathrm{softmax}(z_i)_{y_i}
           \qquad
           \text{sigmoid:}\quad \mathcal L = \frac{\sum_i r_i\,\ell(z_i, y_i)}{\sum_i r_i},\quad
           \ell(z, y) = -[y\log\sigma(z) + (1-y)\log\sigma(-z)]

(Devlin et al. 2019, §4; design document 004 §4.1).  The softmax loss skips positions labelled
``IGNORE`` (token tasks); the sigmoid loss reads the first logit of ``[B, 1]`` logits, with row
weights :math:`r_i` when the batch has them (:math:`r = 1`: the plain mean).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.data.batching import IGNORE
from scratchlm.errors import ScratchlmError
from scratchlm.nn.attention import dense
from scratchlm.nn.functional import dropout
from scratchlm.nn.losses import binary_cross_entropy_with_logits, softmax_cross_entropy
from scratchlm.nn.transformer import init_dense

KINDS = ("softmax", "sigmoid")


def outputs(kind: str, num_labels: int) -> int:
    """Width of the head: one logit for the sigmoid head (a binary task), ``num_labels`` for softmax."""
    return 1 if kind == "sigmoid" else num_labels


def init_normal(key: jax.Array, d_in: int, n_out: int, std: float) -> dict:
    """A linear head ``{weight [C, H] ~ N(0, std^2), bias [C] = 0}`` (HuggingFace BERT's initialiser)."""
    return init_dense(key, d_in, n_out, std)


def init_uniform(key: jax.Array, d_in: int, n_out: int) -> dict:
    """A linear head with weight and bias drawn together from :math:`U(-1/\\sqrt{H}, 1/\\sqrt{H})`
    (PyTorch's ``nn.Linear``)."""
    bound = 1.0 / np.sqrt(d_in)
    u = jax.random.uniform(key, (n_out, d_in + 1), minval=-bound, maxval=bound)
    return {"weight": u[:, :-1], "bias": u[:, -1]}


def init_logistic(d_in: int) -> dict:
    """``{"w": [H] = 0, "b": [] = 0}``: a zero output layer predicts 1/2 for every input."""
    return {"w": jnp.zeros((d_in,), jnp.float32), "b": jnp.zeros((), jnp.float32)}


def linear(head: dict, features: jax.Array, *, rate: float = 0.0, key: jax.Array | None = None,
           train: bool = False) -> jax.Array:
    r""":math:`z = W\,\mathrm{dropout}(h) + b`: features [..., H] -> logits [..., C] (float32 or wider)."""
    h = dropout(features, rate, key=key, train=train)
    return dense(head, h).astype(jnp.promote_types(h.dtype, jnp.float32))


def logistic(head: dict, features: jax.Array) -> jax.Array:
    r""":math:`z = w^\top h + b`: features [B, H] -> one logit per row [B]."""
    return features @ head["w"] + head["b"]


def loss(logits: jax.Array, labels: jax.Array, *, kind: str, class_weights=None,
         weights: jax.Array | None = None) -> tuple[jax.Array, dict]:
    """The head's loss and ``{"loss", "accuracy"}`` of a batch (see the module doc for the equations).

    Args: logits [B, C] or [B, T, C] (softmax), [B, 1] (sigmoid); labels [B] or [B, T] class ids
    (``IGNORE`` skipped), or [B] in {0, 1} (sigmoid); class_weights [C] (softmax) or None;
    weights [B] row weights (sigmoid) or None.
    """
    if kind == "sigmoid":
        _one_logit(logits)
        z = logits[:, 0]
        if weights is None:
            ell = jnp.mean(binary_cross_entropy_with_logits(z, labels))
            accuracy = jnp.sum((z > 0) == (labels == 1)) / jnp.maximum(labels.shape[0], 1)
        else:
            n = jnp.maximum(weights.sum(), 1.0)
            ell = jnp.sum(weights * binary_cross_entropy_with_logits(z, labels)) / n
            accuracy = jnp.sum(weights * ((z > 0) == (labels > 0.5))) / n
        return ell, {"loss": ell, "accuracy": accuracy}
    if kind != "softmax":
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    w = None if class_weights is None else jnp.asarray(class_weights, jnp.float32)
    ell = softmax_cross_entropy(logits, labels, class_weights=w, ignore_index=IGNORE)
    keep = labels != IGNORE
    correct, count = jnp.sum((jnp.argmax(logits, -1) == labels) & keep), jnp.sum(keep)
    return ell, {"loss": ell, "accuracy": correct / jnp.maximum(count, 1)}


def softmax_rows(head: dict, labels) -> dict:
    r"""A linear head as HuggingFace's ``*ForSequenceClassification`` reads it, one row per label: a sigmoid
    head's one row :math:`w, b` of a binary task becomes the rows :math:`(0, w), (0, b)`, whose softmax is
    its probability, :math:`\mathrm{softmax}(0, z)_1 = \sigma(z)` (Bishop 2006, §4.2).  A head without a
    bias (GPT-2's ``score``) keeps none.  NumPy arrays out."""
    C = int(head["weight"].shape[0])
    if labels is None or len(labels) == C:
        return head
    if C == 1 and len(labels) == 2:
        return {k: np.concatenate([np.zeros_like(v), v]) for k, v in
                ((k, np.asarray(head[k], np.float32)) for k in ("weight", "bias") if k in head)}
    raise ScratchlmError(f"{len(labels)} label names for a classifier of {C} outputs")


def _one_logit(logits) -> None:
    # a binary sigmoid head that went through save_pretrained comes back as softmax_rows' two rows (0, w): read
    # as a sigmoid head, its first logit would be the constant 0, and every prediction the same class
    if logits.shape[-1] != 1:
        raise ScratchlmError(f"the sigmoid head has one logit, got {logits.shape[-1]} (a binary sigmoid head "
                             "saved in HuggingFace's layout loads as the two softmax rows (0, w): use kind='softmax')")


def predict(logits, kind: str) -> np.ndarray:
    """Class ids from logits (NumPy): ``z > 0`` for the sigmoid head, the argmax for softmax."""
    z = np.asarray(logits)
    if kind == "sigmoid":
        _one_logit(z)
        return (z[..., 0] > 0).astype(np.int64)
    return z.argmax(-1)
