"""k-fold cross-validation: the one splitter every recipe uses (Stone 1974; Kohavi 1995).

Small labelled sets (the 200 polarity sentences) are scored by k-fold cross-validation: the
examples are cut into k test folds, a model is trained on the other k - 1 folds and predicts its
fold, so every example is predicted exactly once by a model that never saw it.

Two assignment rules, kept as a parameter because each recipe's results depend on its own rule
(the byte-identical guard of issue 22): ``stratify_by=labels`` deals each class round-robin to
the folds (the fine-tuning recipe), ``stratify_by=None`` cuts one seeded shuffle into k nearly equal
pieces (the embedding-bag classifier).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scratchlm.errors import ScratchlmError
from scratchlm.training import metrics


def kfold(n: int, k: int, seed: int, *, stratify_by=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` folds of ``range(n)``: ``[(train_index, test_index), ...]``; every index in exactly one test fold.

    ``stratify_by`` None: a seeded permutation of ``range(n)`` cut into k nearly equal pieces
    (``np.array_split``); each test fold keeps the permutation's order.  ``stratify_by`` labels [n]:
    each class's examples are shuffled with ``seed`` and dealt round-robin to the folds, continuing
    the deal where the last class stopped, so each fold keeps the class proportions (as
    scikit-learn's ``StratifiedKFold(shuffle=True)`` aims to) and folds differ in size by at most 1;
    its test folds are sorted.  ``train_index`` is always sorted.
    """
    if not 2 <= k <= n:
        raise ScratchlmError(f"the number of folds must be in [2, {n}] (the number of examples), got {k}")
    if stratify_by is None:
        tests = np.array_split(np.random.default_rng(seed).permutation(n), k)
        return [(np.setdiff1d(np.arange(n), test), test) for test in tests]
    labels = np.asarray(stratify_by)
    if len(labels) != n:
        raise ValueError(f"stratify_by holds {len(labels)} labels for {n} examples")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(n, int)
    offset = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold_of[members] = (np.arange(len(members)) + offset) % k
        offset += len(members)  # continue the deal where the last class stopped: folds stay equal in size
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]


def cross_validate(n: int, k: int, seed: int, run_fold: Callable[[int, np.ndarray, np.ndarray], Any], *,
                   stratify_by=None) -> list[Any]:
    """k-fold cross-validation: ``run_fold(f, train_index, test_index)`` for each fold of :func:`kfold`, in order.

    Every recipe scores through this one driver; what a fold does (train a fresh model on
    ``train_index``, predict ``test_index``, select a learning rate by an inner CV) is the recipe's
    ``run_fold``, and its records come back in fold order for the recipe to pool.
    """
    return [run_fold(f, train, test) for f, (train, test) in enumerate(kfold(n, k, seed, stratify_by=stratify_by))]


def dev_split(labels: np.ndarray, index: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a stratified ``fraction`` of ``index`` as the dev set for early stopping: (train, dev).

    The first fold of a stratified :func:`kfold` with ``k = round(1 / fraction)`` (at least 2, at
    most ``len(index)``: a set smaller than ``1 / fraction`` gives one example).
    """
    k = min(max(2, round(1 / fraction)), len(index))
    part = np.asarray(labels)[index]
    train, dev = kfold(len(part), k, seed, stratify_by=part)[0]
    return index[train], index[dev]


def score_fold(predictions, truth, train_labels) -> dict:
    """One binary test fold's accuracy, macro F1 and ``majority``: the accuracy of predicting the training part's
    majority class (its rounded mean label; the test fold's own majority would use its labels)."""
    return {
        "accuracy": metrics.accuracy(predictions, truth),
        "macro_f1": metrics.precision_recall_f1(predictions, truth, average="macro")["f1"],
        "majority": float(np.mean(truth == round(float(np.mean(train_labels))))),
    }


def pool_folds(scores: list[dict], labels) -> dict:
    """The folds' :func:`score_fold` records pooled, each weighted by its ``n_test``, beside the whole set's
    majority rate (``fold_majority``: the pooled training-part majorities)."""
    n = sum(s["n_test"] for s in scores)
    weighted = lambda key: sum(s[key] * s["n_test"] for s in scores) / n  # noqa: E731
    return {
        "accuracy": weighted("accuracy"),
        "macro_f1": weighted("macro_f1"),
        "majority": metrics.majority_rate(labels),
        "fold_majority": weighted("majority"),
        "folds": scores,
    }
