"""scratchlm.training.cv: both fold rules put every example in exactly one test fold; the stratified one keeps
class proportions; bad fold counts are user errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.errors import ScratchlmError
from scratchlm.training.cv import dev_split, kfold


@settings(max_examples=30)
@given(st.lists(st.integers(0, 2), min_size=6, max_size=60), st.integers(2, 6), st.integers(0, 3))
def test_kfold_predicts_every_example_once_with_stratified_folds(labels, k, seed):
    labels = np.asarray(labels)
    k = min(k, len(labels))
    folds = kfold(len(labels), k, seed, stratify_by=labels)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(labels)))
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == len(labels)
        for c in np.unique(labels):
            assert abs(np.sum(labels[test] == c) - np.sum(labels == c) / k) < 1 + 1e-9
    assert max(len(t) for _, t in folds) - min(len(t) for _, t in folds) <= 1


@settings(max_examples=30)
@given(st.integers(2, 60), st.integers(2, 6), st.integers(0, 3))
def test_unstratified_folds_are_one_shuffle_cut_in_k(n, k, seed):
    """The embedding-bag rule: the folds, concatenated in order, are one permutation of range(n), cut into
    pieces of floor(n/k) or ceil(n/k) (the first n mod k pieces the longer); train is the sorted rest."""
    k = min(k, n)
    folds = kfold(n, k, seed)
    order = np.concatenate([test for _, test in folds])
    assert sorted(order.tolist()) == list(range(n))
    assert [len(t) for _, t in folds] == [n // k + (f < n % k) for f in range(k)]
    for train, test in folds:
        np.testing.assert_array_equal(train, np.setdiff1d(np.arange(n), test))
    assert np.array_equal(order, np.concatenate([t for _, t in kfold(n, k, seed)]))  # a function of the seed


def test_bad_fold_counts_are_user_errors():
    with pytest.raises(ScratchlmError, match="number of folds"):
        kfold(10, 1, 0)
    with pytest.raises(ScratchlmError, match="number of folds"):
        kfold(3, 4, 0, stratify_by=[0, 1, 0])


def test_dev_split_holds_out_a_stratified_tenth():
    """40 examples, 30 of class 0 and 10 of class 1: a 0.1 dev set is the first of 10 stratified folds, 4
    examples, 3 and 1 of each class; train and dev partition the index."""
    labels = np.array([0] * 30 + [1] * 10)
    index = np.arange(100, 140)  # positions into a larger set: dev_split returns members of index
    train, dev = dev_split(np.concatenate([np.zeros(100, int), labels]), index, 0.1, seed=0)
    assert len(dev) == 4 and sorted(np.concatenate([train, dev]).tolist()) == index.tolist()
    assert np.sum(labels[dev - 100] == 1) == 1
