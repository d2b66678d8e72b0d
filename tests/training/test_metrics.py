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


def test_sequence_metrics_match_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for C in (2, 3):
        y, y_hat = rng.integers(0, C, 50), rng.integers(0, C, 50)
        ours = metrics.sequence_metrics(y_hat, y, C)
        average = "binary" if C == 2 else "macro"
        P, R, F, _ = sk.precision_recall_fscore_support(y, y_hat, average=average, zero_division=0)
        assert ours["accuracy"] == pytest.approx(sk.accuracy_score(y, y_hat))
        assert [ours["precision"], ours["recall"]] == pytest.approx([P, R])
        if C == 2:
            assert ours["f1"] == pytest.approx(F)
        else:  # scikit-learn's macro F1 averages per-class F1 too
            assert ours["f1"] == pytest.approx(sk.f1_score(y, y_hat, average="macro"))


def test_sequence_metrics_by_hand_count_an_absent_class_as_zero():
    """3 labels, class 2 in neither predictions nor labels: pred 0 1 1 0, true 0 1 0 0.  Class 0: P 1, R 2/3,
    F1 4/5; class 1: P 1/2, R 1, F1 2/3; class 2: 0.  Macro over all three (num_labels, not the classes
    present): P 1/2, R 5/9, F1 22/45.  Binary (num_labels 2): class 1 only."""
    got = metrics.sequence_metrics([0, 1, 1, 0], [0, 1, 0, 0], 3)
    assert got == pytest.approx({"accuracy": 0.75, "precision": 0.5, "recall": 5 / 9, "f1": 22 / 45})
    got = metrics.sequence_metrics([0, 1, 1, 0], [0, 1, 0, 0], 2)
    assert got == pytest.approx({"accuracy": 0.75, "precision": 0.5, "recall": 1.0, "f1": 2 / 3})
