"""The fine-tuning baselines (scratchlm/training/probe.py): the majority rate and the frozen-encoder linear probe,
on real data (MiniLM's features of the shipped polarity sentences and silver NER sentences)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from scratchlm.data.batching import IGNORE
from scratchlm.training import probe


@functools.cache
def minilm():
    from scratchlm.training.encoders import load_init

    return load_init("minilm")


@functools.cache
def polarity(n=48):
    from scratchlm.data.tasks import encode_task as encode
    from scratchlm.data.tasks import load_task

    task = load_task("polarity", None)
    task["examples"] = task["examples"][::200 // n][:n]  # both classes (the file is sorted by label)
    return encode(task, minilm()[2], 32)


@functools.cache
def ner(n=30):
    from scratchlm.data.tasks import encode_task as encode
    from scratchlm.data.tasks import load_task

    task = load_task("wikiner", None)
    task["splits"] = {k: v[:n] for k, v in task["splits"].items()}
    return encode(task, minilm()[2], 32), task["labels"]


def objective(Z, y, W, b, lam):
    """The probe's objective in float64: mean cross-entropy + lam/2 ||W||^2 (and its gradient in W, b)."""
    z = Z @ W + b
    z = z - z.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    value = -np.mean(np.log(p[np.arange(len(y)), y])) + 0.5 * lam * np.sum(W ** 2)
    p[np.arange(len(y)), y] -= 1
    return value, np.concatenate([(Z.T @ p / len(y) + lam * W).ravel(), p.mean(0)])


def test_the_probe_minimises_the_same_objective_as_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    data = ner()[0]["train"][0]
    config, params, _ = minilm()
    X = probe.features(params, data, config=config, pooled=False).astype(np.float64)
    _, y = np.unique(data["labels"][data["labels"] != IGNORE], return_inverse=True)  # the classes present, 0..C-1
    C = int(y.max()) + 1
    assert C >= 3 and len(X) == len(y)  # a multinomial problem (a binary one is parametrised differently)
    fitted = probe.logistic_regression(X, y, C)
    Z = (X - fitted["mean"]) / fitted["scale"]
    lam = 1.0 / len(y)
    # scikit-learn's C=1 objective, sum of losses + 1/2 ||W||^2, is N times ours: the same minimiser
    peer = sklearn.LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(Z, y)
    ours, grad = objective(Z, y, fitted["weight"].astype(np.float64), fitted["bias"], lam)
    theirs, _ = objective(Z, y, peer.coef_.T, peer.intercept_, lam)
    # The objective is convex; float32 L-BFGS stops where its steps reach float32 round-off of the objective
    # (~1e-7 relative, on a value ~0.1-1), far below 1e-5; scikit-learn's float64 solve to tol 1e-10 is the reference.
    assert ours <= theirs + 1e-5
    # and near-stationarity: float32 gradients carry ~1e-7 * ||Z|| * N-summed round-off, below 1e-3 in norm here
    assert np.linalg.norm(grad) < 1e-3
    assert np.mean(probe.probe_predict(fitted, X) == peer.predict(Z)) > 0.99  # the same decisions, ties aside


def test_pooled_features_are_bert_mean_pooled_sentence_embeddings():
    import jax.numpy as jnp

    from scratchlm.models import bert

    config, params, _ = minilm()
    data = polarity()
    X = probe.features(params, data, config=config, pooled=True, batch_size=16)
    batch = {k: jnp.asarray(data[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    want = np.asarray(bert.sentence_embeddings(params, batch, config=config))
    # the same float32 computation at another padded width: masked positions add exact zeros to the attention
    # sums, so only the summation order differs (~1e-6 of |h| <~ 1 per layer over 6 layers)
    np.testing.assert_allclose(X, want, atol=1e-4)


def test_token_features_are_the_first_sub_tokens_of_each_word():
    from scratchlm.models import bert

    config, params, _ = minilm()
    data, words = ner()[0]["test"]
    X = probe.features(params, data, config=config, pooled=False, batch_size=8)
    labelled = data["labels"] != IGNORE
    assert len(X) == labelled.sum() == sum(min(n, r.sum()) for n, r in zip(words, labelled))
    rows = {k: data[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    h = np.asarray(bert.apply(params, rows, config=config)["last_hidden_state"])
    # every sentence's positions, in data order, although the pass runs the sentences shortest first
    want = np.concatenate([h[i][labelled[i]] for i in range(len(h))])
    np.testing.assert_allclose(X, want, atol=1e-4)  # as above


def test_the_majority_rate_skips_ignored_positions():
    assert probe.majority_rate(np.array([1, 1, 0, 1])) == 0.75
    assert probe.majority_rate(np.array([[0, IGNORE, 0], [2, 0, IGNORE]])) == 0.75


def test_sequence_baselines_predict_every_tested_row_once_with_the_runs_folds():
    from scratchlm.training.cv import kfold
    from scratchlm.training.metrics import accuracy

    config, params, _ = minilm()
    data = polarity()
    folds = kfold(len(data["labels"]), 3, 0, stratify_by=data["labels"])
    out = probe.sequence_baselines(params, data, config=config, num_classes=2, folds=folds)
    X = probe.features(params, data, config=config, pooled=True)
    predicted = probe.sequence_probe(X, data["labels"], 2, folds)
    assert set(np.unique(predicted)) <= {0, 1}  # every row predicted (-1 marks a row no fold tested)
    assert out["linear_probe_accuracy"] == accuracy(predicted, data["labels"])
    assert out["majority_rate"] == np.bincount(data["labels"]).max() / len(data["labels"])


def test_token_baselines_score_all_o_as_entity_f1_zero():
    config, params, _ = minilm()
    data, tags = ner()
    test, words = data["test"]
    out = probe.token_baselines(params, data["train"][0], test, words, tags, config=config)
    assert out["majority_entity_f1"] == 0.0
    gold = [t for labels, n in zip(test["labels"], words) for t in labels[labels != IGNORE][:n]]
    cut = sum(words) - len(gold)  # words past --max-length: tag O on both sides (tasks.word_predictions)
    assert out["majority_rate"] == pytest.approx((np.sum(np.asarray(gold) == 0) + cut) / sum(words))
    assert 0.0 <= out["linear_probe_entity_f1"] <= 1.0 and 0.0 <= out["linear_probe_accuracy"] <= 1.0
