"""Evaluation metrics on the host (NumPy): accuracy, precision / recall / F1, perplexity.

Entity-level scores for token classification live in :mod:`scratchlm.training.seqeval`.
"""

from __future__ import annotations

import math

import numpy as np


def _pair(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(predictions).ravel(), np.asarray(labels).ravel()
    if p.shape != y.shape:
        raise ValueError(f"predictions and labels differ in size: {p.shape} vs {y.shape}")
    if p.size == 0:
        raise ValueError("no predictions to score")
    return p, y


def accuracy(predictions, labels) -> float:
    r"""Fraction of correct predictions.

    .. math::  \mathrm{acc} = \frac{1}{N} \sum_{i=1}^{N} [\hat y_i = y_i]
    """
    p, y = _pair(predictions, labels)
    return float(np.mean(p == y))


def majority_rate(labels) -> float:
    """Accuracy of always predicting the most frequent label: the baseline a classifier must beat."""
    _, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    return float(counts.max() / counts.sum())


def precision_recall_f1(predictions, labels, *, average: str = "binary", positive=1,
                        classes=None) -> dict[str, float]:
    r"""Precision, recall and F1 (van Rijsbergen 1979), for the positive class or macro-averaged.

    .. math::  P = \frac{TP}{TP + FP}, \qquad R = \frac{TP}{TP + FN}, \qquad F_1 = \frac{2PR}{P + R}

    ``average="binary"`` scores the class ``positive``; ``"macro"`` averages P, R and F1 over
    ``classes``, by default every class present in ``labels`` or ``predictions`` (scikit-learn's
    definitions; pass ``classes=range(C)`` to count a class that neither holds as 0).  A ratio whose
    denominator is 0 counts as 0, as scikit-learn's ``zero_division=0``.

    Args: predictions [N], labels [N] class ids.  Returns {"precision", "recall", "f1"}.
    """
    p, y = _pair(predictions, labels)
    if average == "binary":
        classes = [positive]
    elif average == "macro":
        classes = np.union1d(np.unique(p), np.unique(y)) if classes is None else list(classes)
    else:
        raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")
    rows = []
    for c in classes:
        tp = int(np.sum((p == c) & (y == c)))
        fp = int(np.sum((p == c) & (y != c)))
        fn = int(np.sum((p != c) & (y == c)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append((precision, recall, f1))
    precision, recall, f1 = (float(np.mean(col)) for col in zip(*rows))
    return {"precision": precision, "recall": recall, "f1": f1}


def sequence_metrics(predictions, labels, num_labels: int) -> dict[str, float]:
    """Accuracy and P/R/F1 of a sequence task: of the positive class (label 1) when ``num_labels == 2``,
    macro-averaged over all ``num_labels`` classes otherwise (a class absent from both counts as 0).

    Args: predictions [N], labels [N] class ids.  Returns {"accuracy", "precision", "recall", "f1"}.
    """
    if num_labels == 2:
        scores = precision_recall_f1(predictions, labels)
    else:
        scores = precision_recall_f1(predictions, labels, average="macro", classes=range(num_labels))
    return {"accuracy": accuracy(predictions, labels), **scores}


def perplexity(mean_nll: float) -> float:
    r"""Perplexity from the mean negative log-likelihood per token (in nats).

    .. math::  \mathrm{PPL} = \exp\left(-\frac{1}{T}\sum_{t=1}^{T} \log P(x_t \mid x_{<t})\right)
    """
    return math.exp(float(mean_nll))
