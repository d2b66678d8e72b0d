"""scratchlm.training.metrics: hand-worked examples and scikit-learn as the peer."""

import math

import numpy as np
import pytest

from scratchlm.training import metrics


def test_by_hand():
    """pred 1 1 0 0 1, true 1 0 0 1 1: TP 2, FP 1, FN 1 -> P = R = F1 = 2/3; accuracy 3/5.
    Class 0: TP 1, FP 1, FN 1 -> 1/2 each; macro = (2/3 + 1/2)/2 = 7/12."""
    p, y = [1, 1, 0, 0, 1], [1, 0, 0, 1, 1]
    assert metrics.accuracy(p, y) == pytest.approx(0.6)
    assert metrics.precision_recall_f1(p, y) == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert metrics.precision_recall_f1(p, y, average="macro")["f1"] == pytest.approx(7 / 12)
    assert metrics.majority_rate(y) == pytest.approx(0.6)
    assert metrics.perplexity(math.log(50.0)) == pytest.approx(50.0)


def test_zero_division_counts_as_zero():
    assert metrics.precision_recall_f1([0, 0], [1, 0]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def test_bad_input():
    with pytest.raises(ValueError, match="differ"):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(ValueError, match="average"):
        metrics.precision_recall_f1([1], [1], average="micro")


def test_against_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for _ in range(5):
        y, p = rng.integers(0, 3, 40), rng.integers(0, 3, 40)
        want = sk.precision_recall_fscore_support(y, p, average="macro", zero_division=0)[:3]
        got = metrics.precision_recall_f1(p, y, average="macro")
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx(list(want), abs=1e-12)
        yb, pb = y % 2, p % 2
        want = sk.precision_recall_fscore_support(yb, pb, average="binary", zero_division=0)[:3]
        got = metrics.precision_recall_f1(pb, yb)
        assert [got["precision"], got["recall"], got["f1"]] == pytest.approx(list(want), abs=1e-12)
        assert metrics.accuracy(p, y) == pytest.approx(sk.accuracy_score(y, p))
