"""The design documents' text classifier: embeddings, mean pooling over real tokens, a sigmoid output.

Design document 001 §5.2 (and 000 §5): ``Embedding -> GlobalAveragePooling1D -> Dense(1, sigmoid)``
trained with binary cross-entropy.  One deviation: Keras's pooling there averages over every
position, padding included, so a sentence's score would depend on how long the batch's longest
sentence is; here the mean runs over the non-padding tokens only.

:func:`cross_validate` trains it through the shared loop (:mod:`scratchlm.training.loop`) with
k-fold cross-validation, the honest estimate for a set as small as the 200 polarity sentences.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.data.corpora import word_tokens
from scratchlm.nn.functional import sigmoid
from scratchlm.nn.losses import bce_risk
from scratchlm.tokenizers.vocab import Vocab
from scratchlm.training import metrics
from scratchlm.training.loop import LoopConfig, init_train_state, make_optimizer, make_train_step, train


@dataclass(frozen=True)
class ClassifierConfig:
    vocab_size: int
    embed_dim: int = 16  # small: 160 training sentences cannot support many parameters
    pad_id: int = 0  # Vocab's "<pad>"


def init(key: jax.Array, config: ClassifierConfig) -> dict:
    """``{"embedding": [V, D] ~ N(0, 0.1^2), "output": {"w": [D] = 0, "b": [] = 0}}``.

    A zero output layer makes the untrained model predict 1/2 for every sentence.
    """
    return {
        "embedding": 0.1 * jax.random.normal(key, (config.vocab_size, config.embed_dim), jnp.float32),
        "output": {"w": jnp.zeros((config.embed_dim,), jnp.float32), "b": jnp.zeros((), jnp.float32)},
    }


def apply(params: dict, ids: jax.Array, *, config: ClassifierConfig) -> jax.Array:
    r"""Logit of the positive class for each sentence.

    .. math::  h = \frac{1}{|\{t : x_t \neq \mathrm{pad}\}|} \sum_{t : x_t \neq \mathrm{pad}} E_{x_t},
               \qquad z = w^\top h + b, \qquad \hat y = \sigma(z)

    Args: ids [B, T] token ids, padded with ``config.pad_id``.  Returns z [B] (apply
    :func:`~scratchlm.nn.functional.sigmoid` for :math:`\hat y`).
    """
    if ids.ndim != 2:
        raise ValueError(f"expected ids [B, T], got {ids.shape}")
    E = params["embedding"]
    m = (ids != config.pad_id).astype(E.dtype)  # [B, T]
    e = jnp.take(E, ids, axis=0)  # [B, T] -> [B, T, D]
    h = jnp.einsum("bt,btd->bd", m, e) / jnp.maximum(m.sum(-1, keepdims=True), 1.0)  # [B, D]
    return h @ params["output"]["w"] + params["output"]["b"]  # [B]


def loss_fn(params: dict, batch: tuple, key: jax.Array, *, config: ClassifierConfig) -> tuple[jax.Array, dict]:
    """BCE risk of a batch ``(ids [B, T], y [B])`` and its accuracy (the loop's ``loss_fn``)."""
    ids, y = batch
    z = apply(params, ids, config=config)
    return bce_risk(z, y), {"accuracy": jnp.mean((z > 0) == (y > 0.5))}


def predict_proba(params: dict, ids, *, config: ClassifierConfig) -> np.ndarray:
    """:math:`\\hat y = \\sigma(z)` for each sentence, as a NumPy array."""
    return np.asarray(sigmoid(apply(params, jnp.asarray(ids), config=config)))


# ----------------------------------------------------------------------------- data and evaluation


def encode(texts, vocab: Vocab, length: int | None = None) -> np.ndarray:
    """Word ids of each text (``corpora.word_tokens``), right-padded with ``<pad>`` (id 0) to [N, length].

    ``length`` defaults to the longest text; longer texts are cut to it.
    """
    rows = [vocab.encode(word_tokens(t)) for t in texts]
    T = length or max(1, max(len(r) for r in rows))
    out = np.zeros((len(rows), T), np.int32)
    for i, r in enumerate(rows):
        out[i, : min(len(r), T)] = r[:T]
    return out


@dataclass(frozen=True)
class CVConfig:
    folds: int = 5
    embed_dim: int = 16
    steps: int = 100  # full-batch steps per fold
    learning_rate: float = 0.01  # chosen among 6 settings on this same CV (a small optimistic bias)
    weight_decay: float = 0.01
    min_count: int = 1  # words of the training folds seen fewer times map to <unk>
    seed: int = 0


def fold_indices(n: int, folds: int, seed: int) -> list[np.ndarray]:
    """A seeded shuffle of range(n) cut into ``folds`` nearly equal test folds."""
    return np.array_split(np.random.default_rng(seed).permutation(n), folds)


@functools.lru_cache(maxsize=8)
def _optimizer_and_step(model: ClassifierConfig, steps: int, learning_rate: float, weight_decay: float):
    """AdamW with linear decay and its jitted step, built once per setting so repeated runs compile once."""
    tx = make_optimizer(learning_rate=learning_rate, total_steps=steps, schedule="linear", weight_decay=weight_decay)
    return tx, make_train_step(functools.partial(loss_fn, config=model), tx)


def cross_validate(texts, labels, config: CVConfig = CVConfig(), *, metrics_dir=None) -> dict:
    """k-fold cross-validated accuracy of the classifier, trained through the shared loop.

    For each fold the vocabulary is built from the training sentences only (test words they never
    contain become ``<unk>``), the model is trained full-batch with AdamW, and it is scored on the
    held-out fold.  Returns per-fold and mean accuracy, macro F1 and the majority-class rate.
    """
    labels = np.asarray(labels, np.float32)
    texts = list(texts)
    tokens = [word_tokens(t) for t in texts]
    # One table size and one padded length for every fold, so the train step compiles once; the
    # sizes come from the whole set's word count and longest sentence, never from its labels.
    T = max(len(t) for t in tokens)
    model = ClassifierConfig(vocab_size=len({w for t in tokens for w in t}) + 2, embed_dim=config.embed_dim)
    tx, step = _optimizer_and_step(model, config.steps, config.learning_rate, config.weight_decay)
    scores = []
    for k, test_idx in enumerate(fold_indices(len(texts), config.folds, config.seed)):
        train_idx = np.setdiff1d(np.arange(len(texts)), test_idx)
        vocab = Vocab.from_corpus((tokens[i] for i in train_idx), min_count=config.min_count)
        x_train = jnp.asarray(encode([texts[i] for i in train_idx], vocab, T))
        y_train = jnp.asarray(labels[train_idx])
        key = jax.random.fold_in(jax.random.key(config.seed), k)
        state = init_train_state(init(key, model), tx, key)
        loop = LoopConfig(
            steps=config.steps,
            log_every=25,
            metrics_path=None if metrics_dir is None else f"{metrics_dir}/fold{k}.jsonl",
            progress=False,
        )
        result = train(state, step, lambda t: (x_train, y_train), config=loop)
        p = predict_proba(result.state.params, encode([texts[i] for i in test_idx], vocab, T), config=model)
        predictions, truth = (p > 0.5).astype(int), labels[test_idx].astype(int)
        scores.append({
            "fold": k,
            "n_test": len(test_idx),
            "accuracy": metrics.accuracy(predictions, truth),
            "macro_f1": metrics.precision_recall_f1(predictions, truth, average="macro")["f1"],
            "majority": float(np.mean(truth == round(float(np.mean(labels[train_idx]))))),
        })
    n = sum(s["n_test"] for s in scores)
    weighted = lambda key: sum(s[key] * s["n_test"] for s in scores) / n  # noqa: E731
    return {
        "accuracy": weighted("accuracy"),
        "macro_f1": weighted("macro_f1"),
        "majority": metrics.majority_rate(labels),
        "fold_majority": weighted("majority"),
        "folds": scores,
        "evaluation": f"{config.folds}-fold cross-validation",
    }
