"""Fine-tuning: freezing, early stopping, overfitting one tiny batch per head, k-fold bookkeeping,
and MiniLM on the polarity folds."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.data import tasks
from scratchlm.models import bert
from scratchlm.training import finetune as ft

TINY = bert.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=64)
SPECIAL = tasks.SpecialIds(cls=1, sep=2, pad=0, unk=3)


def tiny_sequence_data(n=8, seed=0):
    """n random sentences of ids 4..39; label 1 iff the sentence holds id 4 (a learnable rule)."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n):
        words = rng.integers(5, 40, size=rng.integers(3, 9)).tolist()
        if i % 2:
            words[rng.integers(len(words))] = 4
        examples.append((" ".join(map(str, words)), None, i % 2))
    return tasks.encode_sequence_task(examples, lambda s: [int(w) for w in s.split()], SPECIAL, 64)


def tiny_token_data(n=8, seed=0):
    """Words are ids; tag 1 (B) on id 4, 2 (I) on the id 5 that follows it, 0 (O) on ids 6..39."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        words = rng.integers(6, 40, size=6).tolist()
        at = int(rng.integers(0, 5))
        words[at], words[at + 1] = 4, 5
        tags = [0] * 6
        tags[at], tags[at + 1] = 1, 2
        sentences.append(([str(w) for w in words], tags))
    return tasks.encode_token_task(sentences, lambda w: [int(w)], SPECIAL, 64), [6] * n


def leaves(params):
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(params)}


@pytest.fixture(scope="module")
def base_params():
    return bert.init(jax.random.key(0), TINY)


def with_head(base_params, config, seed=1):
    return ft.init_classifier(jax.random.key(seed), base_params, TINY, config)


def test_frozen_parameters_are_bitwise_unchanged_and_the_others_move(base_params):
    """all-but-top-1 freezes the embeddings and layer 0; layer 1, the pooler and the classifier train."""
    config = ft.FinetuneConfig(task="sequence", num_labels=2, freeze="all-but-top-1", learning_rate=1e-2, epochs=1,
                               batch_size=4, warmup_ratio=0.0)
    params = with_head(base_params, config)
    before = leaves(params)
    mask = {jax.tree_util.keystr(p): t for p, t in jax.tree_util.tree_leaves_with_path(ft.trainable_mask(params, config.freeze))}
    result = ft.fit(params, tiny_sequence_data(), None, bert_config=TINY, config=config)
    after = leaves(result.params)
    assert any(mask.values()) and not all(mask.values())
    for name, trainable in mask.items():
        if trainable:
            assert not np.array_equal(before[name], after[name]), f"{name} should have moved"
        else:
            assert np.array_equal(before[name], after[name]), f"{name} is frozen but changed"


@pytest.mark.parametrize("freeze,frozen", [("none", []), ("embeddings", ["embeddings"]),
                                           ("encoder", ["embeddings", "layer 0", "layer 1"]),
                                           ("all-but-top-1", ["embeddings", "layer 0"]),
                                           ("all-but-top-2", ["embeddings"])])
def test_freezing_policies_mark_the_right_parts(base_params, freeze, frozen):
    params = with_head(base_params, ft.FinetuneConfig(task="sequence", num_labels=2))
    mask = ft.trainable_mask(params, freeze)
    parts = {"embeddings": mask["embeddings"], "layer 0": mask["encoder"]["layer"][0],
             "layer 1": mask["encoder"]["layer"][1], "pooler": mask["pooler"], "classifier": mask["classifier"]}
    for name, tree in parts.items():
        assert set(jax.tree.leaves(tree)) == {name not in frozen}, name


def test_trainable_mask_rejects_unknown_policies(base_params):
    params = base_params
    with pytest.raises(ValueError, match="freeze must be"):
        ft.trainable_mask(params, "top-2")
    with pytest.raises(ValueError, match="only 2 layers"):
        ft.trainable_mask(params, "all-but-top-3")


def test_early_stopping_restores_the_best_dev_checkpoint(base_params):
    """Scripted dev accuracies 0.5, 0.8, 0.6, 0.7 with patience 2: the best is epoch 2, epochs 3 and
    4 do not beat it, so training stops after epoch 4 and returns epoch 2's params exactly."""
    config = ft.FinetuneConfig(task="sequence", num_labels=2, learning_rate=1e-2, epochs=10, batch_size=4, patience=2)
    scripted = iter([0.5, 0.8, 0.6, 0.7, 0.9, 0.9])
    seen = []

    def dev_eval(params):
        seen.append(jax.tree.map(lambda x: np.array(x, copy=True), params))
        return {"accuracy": next(scripted)}

    data = tiny_sequence_data()
    result = ft.fit(with_head(base_params, config), data, None, bert_config=TINY, config=config, dev_eval=dev_eval)
    per_epoch = ft.steps_per_epoch(data, 4)
    assert [h["accuracy"] for h in result.history] == [0.5, 0.8, 0.6, 0.7]
    assert result.stopped_early and result.best_step == 2 * per_epoch and result.best_metric == 0.8
    for got, want in zip(jax.tree.leaves(result.params), jax.tree.leaves(seen[1])):
        np.testing.assert_array_equal(np.asarray(got), want)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(seen[1]), jax.tree.leaves(seen[3])))


@pytest.mark.parametrize("head,task", [("softmax", "sequence"), ("sigmoid", "sequence"), ("softmax", "token")])
def test_one_tiny_batch_is_overfit_by_each_head(base_params, head, task):
    """Catches the usual reasons a fine-tune does not learn (FIELD-NOTES): a wrong learning rate,
    frozen layers by mistake, labels misaligned with sub-tokens.  One batch of 8, 40 steps."""
    num_labels = 3 if task == "token" else 2
    config = ft.FinetuneConfig(task=task, num_labels=num_labels, head=head, learning_rate=3e-3, epochs=40,
                               batch_size=8, dropout=0.0, warmup_ratio=0.0, weight_decay=0.0)
    if task == "token":
        data, n_words = tiny_token_data()
        tags = ("O", "B-X", "I-X")
    else:
        data, n_words, tags = tiny_sequence_data(), None, None
    result = ft.fit(with_head(base_params, config), data, None, bert_config=TINY, config=config)
    scores = ft.evaluate(result.params, data, bert_config=TINY, config=config, tags=tags, n_words=n_words)
    assert scores["accuracy"] == 1.0
    if task == "token":
        assert scores["entity_f1"] == 1.0


@settings(max_examples=30)
@given(st.lists(st.integers(0, 2), min_size=6, max_size=60), st.integers(2, 6), st.integers(0, 3))
def test_kfold_predicts_every_example_once_with_stratified_folds(labels, k, seed):
    labels = np.asarray(labels)
    k = min(k, len(labels))
    folds = ft.kfold_splits(labels, k, seed)
    tested = np.concatenate([test for _, test in folds])
    assert sorted(tested.tolist()) == list(range(len(labels)))
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == len(labels)
        for c in np.unique(labels):
            assert abs(np.sum(labels[test] == c) - np.sum(labels == c) / k) < 1 + 1e-9
    assert max(len(t) for _, t in folds) - min(len(t) for _, t in folds) <= 1


def test_sequence_metrics_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for C in (2, 3):
        y, y_hat = rng.integers(0, C, 50), rng.integers(0, C, 50)
        ours = ft.sequence_metrics(y, y_hat, C)
        average = "binary" if C == 2 else "macro"
        P, R, F, _ = metrics.precision_recall_fscore_support(y, y_hat, average=average, zero_division=0)
        assert ours["accuracy"] == pytest.approx(metrics.accuracy_score(y, y_hat))
        assert [ours["precision"], ours["recall"]] == pytest.approx([P, R])
        if C == 2:
            assert ours["f1"] == pytest.approx(F)
        else:  # scikit-learn's macro F1 averages per-class F1 too
            assert ours["f1"] == pytest.approx(metrics.f1_score(y, y_hat, average="macro"))


@pytest.mark.slow  # about 60 MiniLM steps; run with -m slow (the tiny-model tests cover the same code paths)
def test_minilm_on_polarity_folds_beats_the_majority_rate(tmp_path):
    """2-fold cross-validation, 6 epochs at T <= 32: every sentence is predicted once by a model that
    never saw it.  The set is balanced (majority rate 0.5); with 200 predictions a rate of 0.6 is
    about 2.8 binomial standard deviations above chance, so 0.6 is "clearly above"."""
    from scratchlm.commands import finetune as command

    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--task", "polarity", "--folds", "2", "--epochs", "6", "--max-length", "32",
                              "--batch", "16", "--lr", "1e-4", "--seed", "0", "--out", str(tmp_path)])
    assert command.run(args) == 0
    metrics = __import__("json").loads((tmp_path / "metrics.json").read_text())
    assert metrics["majority_rate"] == 0.5
    assert metrics["accuracy"] >= 0.6
    assert (tmp_path / "report.txt").exists() and (tmp_path / "best" / "model.safetensors").exists()


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random BERT with MiniLM's vocabulary and tokenizer, saved as `scratchlm pretrain` would."""
    from scratchlm.data import corpora

    config = bert.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                             max_position_embeddings=64)
    path = tmp_path_factory.mktemp("tiny") / "model"
    bert.save_pretrained(path, bert.init(jax.random.key(0), config), config)
    (path / "tokenizer.json").write_bytes((corpora.minilm_path() / "tokenizer.json").read_bytes())
    return path


def _command(argv):
    import argparse

    from scratchlm.commands import finetune as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def test_command_smoke_cross_validation_on_a_jsonl_task_and_resume(tiny_checkpoint, tmp_path):
    import json

    lines = [json.dumps({"text": f"{w} film number {i}", "label": w}) for i in range(12) for w in ("good", "bad")]
    (tmp_path / "task.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["--task", str(tmp_path / "task.jsonl"), "--init", str(tiny_checkpoint), "--folds", "2", "--epochs", "1",
            "--batch", "4", "--max-length", "16", "--out", str(tmp_path / "run")]
    assert _command(argv) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"accuracy", "f1", "per_fold", "majority_rate"} <= set(metrics) and len(metrics["per_fold"]) == 2
    assert (tmp_path / "run" / "best" / "model.safetensors").exists() and (tmp_path / "run" / "report.txt").exists()
    (tmp_path / "run" / "metrics.json").unlink()
    assert _command(argv) == 0  # resumes: both folds are read back, nothing is retrained
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]


def test_command_smoke_token_task_from_conll(tiny_checkpoint, tmp_path):
    import json

    rows = ["Ada B-PER\nLovelace I-PER\nwrote O\nnotes O\n", "Paris B-LOC\nis O\nlarge O\n"] * 10
    (tmp_path / "task.conll").write_text("\n".join(rows))
    assert _command(["--task", str(tmp_path / "task.conll"), "--init", str(tiny_checkpoint), "--epochs", "1",
                     "--batch", "4", "--max-length", "16", "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["entity_f1"] <= 1.0 and metrics["labels"] == ["O", "B-LOC", "B-PER", "I-PER"]
    report = (tmp_path / "run" / "report.txt").read_text()
    assert "B-PER" in report and "weighted avg" in report
    assert (tmp_path / "run" / "curves.png").exists() and (tmp_path / "run" / "confusion.png").exists()
