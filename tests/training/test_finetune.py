"""Fine-tuning: freezing, early stopping, overfitting one tiny batch per head, steps equal to
HuggingFace's, k-fold bookkeeping, and MiniLM on the polarity folds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.data import batching
from scratchlm.errors import ScratchlmError
from scratchlm.models import bert
from scratchlm.training import finetune as ft
from scratchlm.training.epoch_timing import epoch_timing
from scratchlm.training.freeze import trainable_mask
from tests.training.finetune_tiny import (
    BATCH,
    COMMAND_FLAGS,
    ENCODER,
    EPOCHS,
    LR,
    TINY,
    finetune_command,
    leaves,
    strict_json,
    tiny_sequence_data,
    tiny_token_data,
    with_head,
)

# all-but-top-1 freezes the embeddings and layer 0 and trains layer 1, the pooler and the
# classifier.  The other heads train everything ("none": every leaf must then move): the token
# labels and the command's good/bad task hang on word identity, which the frozen random 16-wide
# embeddings of this toy model do not expose well enough to learn in 20 steps.
HEADS = {"sequence-softmax": ("sequence", "softmax", "none"),
         "sequence-sigmoid": ("sequence", "sigmoid", "all-but-top-1"),
         "token-softmax": ("token", "softmax", "none")}


def overfit_config(name: str, **overrides) -> ft.FinetuneConfig:
    task, head, freeze = HEADS[name]
    return ft.FinetuneConfig(task=task, num_labels=3 if task == "token" else 2, head=head, freeze=freeze,
                             lr=LR, epochs=EPOCHS, batch_size=BATCH, dropout=0.0, warmup_fraction=0.0,
                             weight_decay=0.0, **overrides)


@pytest.mark.parametrize("name", list(HEADS))
def test_each_head_overfits_one_batch_and_frozen_parameters_stay_bitwise(base_params, name):
    """Catches the usual reasons a fine-tune does not learn (FIELD-NOTES): a wrong learning rate,
    frozen layers by mistake, labels misaligned with sub-tokens; and proves the freezing policy:
    every frozen leaf is bitwise unchanged, every trainable one moved."""
    config = overfit_config(name)
    if config.task == "token":
        data, n_words = tiny_token_data()
        tags = ("O", "B-X", "I-X")
    else:
        data, n_words, tags = tiny_sequence_data(), None, None
    params = with_head(base_params, config)
    before = leaves(params)
    marked = jax.tree_util.tree_leaves_with_path(trainable_mask(params, config.freeze))
    mask = {jax.tree_util.keystr(p): t for p, t in marked}
    result = ft.fit(params, data, None, encoder=ENCODER, config=config)
    after = leaves(result.params)
    assert set(mask) == set(before) == set(after)
    if config.freeze != "none":
        assert any(mask.values()) and not all(mask.values())
    for leaf, trainable in mask.items():
        if trainable:
            assert not np.array_equal(before[leaf], after[leaf]), f"{leaf} should have moved"
        else:
            assert np.array_equal(before[leaf], after[leaf]), f"{leaf} is frozen but changed"
    scores = ft.evaluate(result.params, data, encoder=ENCODER, config=config, tags=tags, n_words=n_words)
    assert scores["accuracy"] == 1.0
    if config.task == "token":
        assert scores["entity_f1"] == 1.0 and "pooler" not in result.params  # a token head has no pooler


@pytest.mark.parametrize("unpadded", [False, True])
@pytest.mark.parametrize("name", ["sequence-softmax", "token-softmax"])
def test_steps_equal_huggingface_steps_from_the_same_params_and_batch(base_params, name, unpadded, tmp_path):
    r"""scratchlm's step against the benchmark's PyTorch recipe (``benchmarks/finetune.py``: AdamW,
    clipping, linear decay) on ``BertFor{Sequence,Token}Classification`` loaded from the same weights:
    three steps on the same batch, dropout off; and the same tensors in AdamW's weight-decay group.
    The token batch's gradient norm (1.7) is above the clip, so clipping is exercised.

    Losses agree to float32 round-off (rtol 1e-5).  The parameter bound, from the arithmetic: Adam's
    step is :math:`\eta\, \hat m / (\sqrt{\hat v} + \epsilon)`, at the first step :math:`\eta\, g / (|g| + \epsilon)`,
    whose derivative in :math:`g` is :math:`\eta\,\epsilon / (|g| + \epsilon)^2 \le \eta / \epsilon`.  The two
    sides' gradients differ by float32 round-off, :math:`|\delta g| \le n\,u\,\max|\text{term}|` with unit
    round-off :math:`u = 2^{-24} \approx 6 \cdot 10^{-8}`, terms below 1e-4 (the sequence head's whole gradient
    norm is 4e-3) and a handful of terms per sum, so :math:`|\delta g| \lesssim 10^{-10}` and one step differs by
    at most :math:`\eta\,\delta g / \epsilon \approx 10^{-2}\,\eta`; three steps, each no more sensitive than the
    first (:math:`\hat v` only grows), give :math:`3 \cdot 10^{-2}\,\eta`.  Leaving out the clip on one side
    moved parameters by 0.2 :math:`\eta`, above that bound, so the test catches it.  ``unpadded``: scratchlm's
    step runs on the batch's real tokens only (:func:`scratchlm.data.batching.fit_shape`, as :func:`fit` does),
    the same function, so the same bounds hold."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from benchmarks import finetune as bench
    from scratchlm.training import loop

    config = overfit_config(name)
    data = tiny_token_data()[0] if config.task == "token" else tiny_sequence_data()
    params = with_head(base_params, config)
    step, _ = ft.programs(params, ENCODER, config, EPOCHS)  # the overfitting test's compiled step
    state = loop.init_train_state(jax.tree.map(jnp.copy, params), step.optimizer, jax.random.key(0, impl="rbg"))
    bert.save_pretrained(tmp_path, params, TINY)
    hf_class = (transformers.BertForTokenClassification if config.task == "token"
                else transformers.BertForSequenceClassification)
    model = hf_class.from_pretrained(str(tmp_path), num_labels=config.num_labels, hidden_dropout_prob=0.0,
                                     attention_probs_dropout_prob=0.0)
    optimizer, schedule = bench.hf_optimizer(model, config, EPOCHS)
    decayed = {n.removeprefix("bert.") for group in optimizer.param_groups if group["name"] == "decay"
               for n, p in model.named_parameters() if any(p is q for q in group["params"])}
    ours = {k for k, d in bert.flatten_params(loop.weight_decay_mask(params)).items() if d}
    assert decayed == ours
    model.train()
    for t in range(3):
        batch = batching.train_batch(data, t, BATCH, config.seed)
        state, metrics = step(state, batching.fit_shape(batch, ft.step_need(batch)) if unpadded else batch)
        theirs_loss = bench.hf_step(model, optimizer, schedule, batch, config)
        assert float(metrics["loss"]) == pytest.approx(theirs_loss, rel=1e-5)
    theirs = {k.removeprefix("bert."): v.numpy() for k, v in model.state_dict().items()}
    for k, v in bert.flatten_params(state.params).items():
        np.testing.assert_allclose(np.asarray(v), theirs[k], rtol=0, atol=3e-2 * LR, err_msg=k)


@pytest.mark.parametrize("freeze,frozen", [("none", []), ("embeddings", ["embeddings"]),
                                           ("encoder", ["embeddings", "layer 0", "layer 1"]),
                                           ("all-but-top-1", ["embeddings", "layer 0"]),
                                           ("all-but-top-2", ["embeddings"])])
def test_freezing_policies_mark_the_right_parts(base_params, freeze, frozen):
    params = with_head(base_params, ft.FinetuneConfig(task="sequence", num_labels=2))
    mask = trainable_mask(params, freeze)
    parts = {"embeddings": mask["embeddings"], "layer 0": mask["encoder"]["layer"][0],
             "layer 1": mask["encoder"]["layer"][1], "pooler": mask["pooler"], "classifier": mask["classifier"]}
    for name, tree in parts.items():
        assert set(jax.tree.leaves(tree)) == {name not in frozen}, name


def test_trainable_mask_rejects_unknown_policies(base_params):
    params = base_params
    with pytest.raises(ScratchlmError, match="freeze must be"):
        trainable_mask(params, "top-2")
    with pytest.raises(ScratchlmError, match="only 2 layers"):
        trainable_mask(params, "all-but-top-3")


@pytest.mark.parametrize("field,value,match", [("freeze", "bogus", "freeze must be"), ("epochs", 0, "epochs"),
                                               ("head", "tanh", "head"), ("warmup_fraction", 1.5, "warmup-fraction"),
                                               ("class_weights", (1.0,), "class-weights"),
                                               ("class_weights", (-1.0, 1.0), "at least 0 and not all 0"),
                                               ("num_labels", 1, "a classifier needs at least 2"),
                                               ("schedule", "warmup", "--schedule must be one of"),
                                               ("compile_steps", -1.0, "compile_steps must be 0 or more")])
def test_finetune_config_raises_scratchlm_errors(field, value, match):
    with pytest.raises(ScratchlmError, match=match):
        ft.FinetuneConfig(**{"task": "sequence", "num_labels": 2, field: value})


@pytest.mark.parametrize("name", list(ft.SCHEDULES))
def test_each_schedule_is_huggingfaces_of_the_same_name(name):
    """``FinetuneConfig.schedule`` names HF's ``lr_scheduler_type``: the rate of every one of the T = 30 steps
    (10 % warm-up, as a 3-epoch polarity fold) equals ``transformers.get_scheduler(name)``'s, whose ``constant``
    ignores the warm-up it is given, as ours does.  optax computes in float32: 1e-6 relative (a few ulps)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from scratchlm.training import loop

    T, eta = 30, 5e-5
    config = ft.FinetuneConfig(task="sequence", num_labels=2, lr=eta, schedule=name)
    oc = ft.optimizer_config(config, T)
    ours = loop.make_schedule(oc.learning_rate, oc.steps, oc.warmup_steps, oc.schedule)
    sgd = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=eta)
    theirs = transformers.get_scheduler(name, sgd, num_warmup_steps=int(0.1 * T), num_training_steps=T)
    rates = []
    for _ in range(T):
        rates.append(sgd.param_groups[0]["lr"])
        sgd.step()
        theirs.step()
    np.testing.assert_allclose([float(ours(t)) for t in range(T)], rates, rtol=1e-6, atol=1e-12)
    assert (oc.warmup_steps == 0) == (name == "constant")


def test_command_rejects_a_bad_flag_before_loading_the_model(tmp_path, capsys):
    """`--freeze bogus` is one `error:` line (exit 2), and it comes before the model is read: --init names a
    folder that does not exist, which would be the error if the model were loaded first."""
    from scratchlm import cli

    argv = ["finetune", "--task", "polarity", "--init", str(tmp_path / "absent"), "--freeze", "bogus",
            "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("scratchlm finetune: error: --freeze must be one of") and "Traceback" not in err


def test_early_stopping_restores_the_best_dev_checkpoint(base_params):
    """Scripted dev accuracies 0.5, 0.8, 0.6, 0.7 with patience 2: the best is epoch 2, epochs 3 and
    4 do not beat it, so training stops after epoch 4 and returns epoch 2's params exactly.
    (The sequence-softmax overfitting run's hyper-parameters: its compiled step is reused.)"""
    config = overfit_config("sequence-softmax", patience=2)
    scripted = iter([0.5, 0.8, 0.6, 0.7, 0.9, 0.9])
    seen = []

    def dev_eval(params):
        seen.append(jax.tree.map(lambda x: np.array(x, copy=True), params))
        return {"accuracy": next(scripted)}

    data = tiny_sequence_data()
    result = ft.fit(with_head(base_params, config), data, None, encoder=ENCODER, config=config, dev_eval=dev_eval)
    per_epoch = batching.steps_per_epoch(len(data["labels"]), BATCH)
    assert [h["accuracy"] for h in result.history] == [0.5, 0.8, 0.6, 0.7]
    assert result.stopped_early and result.best_step == 2 * per_epoch and result.best_metric == 0.8
    for got, want in zip(jax.tree.leaves(result.params), jax.tree.leaves(seen[1])):
        np.testing.assert_array_equal(np.asarray(got), want)
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(seen[1]), jax.tree.leaves(seen[3])))
    # four epochs timed, training only: a finite figure, or None when every epoch compiled
    assert len(result.epoch_seconds) == len(result.epoch_compiled) == 4
    assert all(s > 0 for s in result.epoch_seconds)
    assert result.seconds_per_epoch is None or result.seconds_per_epoch > 0


def test_epoch_timing_is_never_nan():
    """Folds that only compiled (one epoch each, or resumed at their last epoch) still give a time,
    marked as including compilation; nothing timed gives None; an older NaN record is skipped."""
    cold = [{"epoch_seconds": [3.0], "epoch_compiled": [True]}, {"epoch_seconds": [5.0], "epoch_compiled": [True]}]
    assert epoch_timing(cold) == {"seconds_per_epoch": 4.0, "seconds_per_epoch_includes_compilation": True,
                                     "epochs_timed": 2}
    warm = cold + [{"epoch_seconds": [9.0, 0.5, 0.7], "epoch_compiled": [True, False, False]}]
    assert epoch_timing(warm) == {"seconds_per_epoch": 0.6, "seconds_per_epoch_includes_compilation": False,
                                     "epochs_timed": 2}
    old = [{"seconds_per_epoch": float("nan")}, {"seconds_per_epoch": None}]
    assert epoch_timing(old) == {"seconds_per_epoch": None, "seconds_per_epoch_includes_compilation": False,
                                    "epochs_timed": 0}
    assert epoch_timing(old + [{"seconds_per_epoch": 2.0}])["seconds_per_epoch"] == 2.0


@pytest.mark.slow  # 2 x 4 epochs of MiniLM steps (minutes on 2 cores); the command tests above cover the same code path
def test_minilm_on_polarity_folds_beats_the_majority_rate(tmp_path):
    """The full demo's recipe: 2-fold cross-validation, 4 epochs of batch 8 at T <= 32, lr 1e-4; every
    sentence is predicted once by a model that never saw it.  The set is balanced (majority rate
    0.5); with 200 predictions a rate of 0.6 is about 2.8 binomial standard deviations above
    chance, so 0.6 is "clearly above"."""
    from scratchlm.commands import finetune as command

    parser = __import__("argparse").ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--task", "polarity", "--folds", "2", "--epochs", "4", "--max-length", "32",
                              "--batch-size", "8", "--lr", "1e-4", "--seed", "0", "--out", str(tmp_path)])
    assert command.run(args) == 0
    metrics = __import__("json").loads((tmp_path / "metrics.json").read_text())
    assert metrics["majority_rate"] == 0.5
    assert metrics["accuracy"] >= 0.6
    assert (tmp_path / "report.txt").exists() and (tmp_path / "best" / "model.safetensors").exists()


def test_command_cross_validation_on_a_jsonl_task_learns_and_resumes(tiny_checkpoint, tmp_path):
    """The polarity command's path (k-fold cross-validation through `scratchlm finetune`) on a task a
    tiny random model can learn: the label is the word good/bad.  3 folds of 24 texts, each
    predicted by a model that never saw it; the majority rate is 0.5, and 18 of 24 right by chance
    has probability 0.011 (binomial), so >= 0.75 is clearly above it."""
    import json

    fillers = ["film", "plot", "cast", "story", "music", "ending"]
    lines = [json.dumps({"text": f"{w} {fillers[i % 6]} {'is' if i < 6 else 'was'} {w}", "label": w})
             for i in range(12) for w in ("good", "bad")]
    (tmp_path / "task.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["--task", str(tmp_path / "task.jsonl"), "--init", str(tiny_checkpoint), "--folds", "3",
            "--freeze", "none", *COMMAND_FLAGS, "--out", str(tmp_path / "run")]
    assert finetune_command(argv) == 0
    metrics = strict_json(tmp_path / "run" / "metrics.json")
    assert metrics["majority_rate"] == 0.5 and metrics["accuracy"] >= 0.75
    assert 0.0 <= metrics["linear_probe_accuracy"] <= 1.0  # the frozen random encoder's probe, same folds
    assert {"f1", "precision", "recall"} <= set(metrics) and len(metrics["per_fold"]) == 3
    assert metrics["seconds_per_epoch"] > 0 and metrics["epochs_timed"] > 0
    assert (tmp_path / "run" / "best" / "model.safetensors").exists() and (tmp_path / "run" / "report.txt").exists()
    (tmp_path / "run" / "metrics.json").unlink()  # as if killed after the last fold, before the end
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    (tmp_path / "run" / "run.json").write_text(json.dumps({**record, "status": "running"}))
    assert finetune_command(argv) == 0  # resumes: every fold is read back, nothing is retrained
    again = strict_json(tmp_path / "run" / "metrics.json")
    assert again["accuracy"] == metrics["accuracy"] and again["seconds_per_epoch"] == metrics["seconds_per_epoch"]


def test_command_token_task_from_conll(tiny_checkpoint, tmp_path):
    """A CoNLL file split 80/10/10 in file order: entity-level report, per-tag report and both plots.

    The ten sentences are five repeated twice, so the test sentence (number 0: "Ada Lovelace wrote
    notes") is also training sentence 5; the 8 training sentences are one batch, and 20 epochs fit a
    batch (the overfitting test above: every head by about epoch 12), so its one entity must be found:
    entity F1 exactly 1.  A recipe that misaligned tags and sub-tokens, or scored the wrong split, fails."""
    rows = ["Ada B-PER\nLovelace I-PER\nwrote O\nnotes O\n", "Alan B-PER\nTuring I-PER\nmet O\nAda B-PER\n",
            "Grace B-PER\nHopper I-PER\nwas O\nin O\nParis O\n", "the O\nfilm O\nwas O\ngood O\n",
            "Turing B-PER\nwrote O\nnotes O\nin O\nLondon O\n"] * 2
    (tmp_path / "task.conll").write_text("\n".join(rows))
    assert finetune_command(["--task", str(tmp_path / "task.conll"), "--init", str(tiny_checkpoint), "--freeze", "none",
                     *COMMAND_FLAGS, "--out", str(tmp_path / "run")]) == 0
    metrics = strict_json(tmp_path / "run" / "metrics.json")
    assert metrics["entity_f1"] == 1.0 and metrics["labels"] == ["O", "B-PER", "I-PER"]
    # the baselines: all-O tags get "wrote notes" right, "Ada Lovelace" wrong, and find no entity
    assert metrics["majority_rate"] == 0.5 and metrics["majority_entity_f1"] == 0.0
    assert 0.0 <= metrics["linear_probe_entity_f1"] <= 1.0
    assert len(metrics["history"]) == EPOCHS and metrics["seconds_per_epoch"] > 0
    report = (tmp_path / "run" / "report.txt").read_text()
    assert "PER" in report and "B-PER" in report and "weighted avg" in report
    assert (tmp_path / "run" / "curves.png").exists() and (tmp_path / "run" / "confusion.png").exists()


def _untimed(value):
    """A JSON value without its wall-clock figures (keys naming seconds, rates, compilation or timings)."""
    timing = ("seconds", "per_s", "compiled", "wall", "timings", "timed")
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if not any(t in k for t in timing)}
    return [_untimed(v) for v in value] if isinstance(value, list) else value


def _read(path):
    import json

    if path.suffix == ".jsonl":
        return [_untimed(json.loads(line)) for line in path.read_text().splitlines()]
    return _untimed(json.loads(path.read_text())) if path.suffix == ".json" else path.read_bytes()


@pytest.mark.parametrize("checkpoint_flags", [[], ["--checkpoint-every", "1e-9"]], ids=["folds-only", "asked"])
def test_cross_validation_cut_mid_fold_resumes_to_an_uninterrupted_runs_bytes(tiny_checkpoint, tmp_path,
                                                                             monkeypatch, checkpoint_flags):
    """Without --checkpoint-every or --keep-checkpoints a fold writes no checkpoint and no best.msgpack: a run
    stopped in fold 1's second epoch (an exception from its dev evaluation, where a kill would leave the same
    files: everything a fold writes before its end is its log) starts fold 1 again and ends on the bytes of an
    uninterrupted run.  Given --checkpoint-every, folds checkpoint as before and the run resumes from them.

    The one-sentence dev sets score 0.0 in every epoch of both folds: best/ must still be fold 0's on resuming
    (a fold read back with best_dev 0.0 was once taken for a fold without a score, and fold 1 overwrote best/)."""
    import json

    from scratchlm.training import checkpoint as ckpt

    words = ["film", "plot", "cast", "story"]
    lines = [json.dumps({"text": f"{w} {words[i % 4]} was {w}", "label": w}) for i in range(8) for w in ("good", "bad")]
    (tmp_path / "task.jsonl").write_text("\n".join(lines) + "\n")

    def argv(out):
        return ["--task", str(tmp_path / "task.jsonl"), "--init", str(tiny_checkpoint), "--folds", "2",
                *COMMAND_FLAGS, "--epochs", "3", *checkpoint_flags, "--out", str(out)]

    written = []
    for name in ("save_checkpoint", "save_params"):
        original = getattr(ckpt, name)
        monkeypatch.setattr(ckpt, name, lambda path, *a, _f=original, **k: written.append(path) or _f(path, *a, **k))
    assert finetune_command(argv(tmp_path / "straight")) == 0
    assert bool(written) == bool(checkpoint_flags), written

    calls = []
    evaluate = ft.evaluate

    def cut(*args, **kwargs):  # fold 0's three evaluations, then fold 1's first; its second never returns
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt("cut mid-fold")
        return evaluate(*args, **kwargs)

    killed = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(ft, "evaluate", cut)
        with pytest.raises(KeyboardInterrupt):
            finetune_command(argv(killed))
    assert (killed / "fold_0" / "result.json").exists() and not (killed / "fold_1" / "result.json").exists()
    assert json.loads((killed / "run.json").read_text())["status"] == "running"
    assert [json.loads(line)["split"] for line in (killed / "fold_1" / "metrics.jsonl").read_text().splitlines()
            ].count("eval") == 1  # fold 1 was cut after its first epoch's evaluation
    assert bool(list(killed.rglob("ckpt_*.msgpack"))) == bool(checkpoint_flags)
    assert finetune_command(argv(killed)) == 0
    for f in ("best/model.safetensors", "fold_0/result.json", "fold_1/result.json", "fold_1/metrics.jsonl",
              "metrics.json", "report.txt"):
        if f == "metrics.json":  # the settings hold --out
            a, b = (_read(out / f) for out in (killed, tmp_path / "straight"))
            assert {**a, "settings": None} == {**b, "settings": None}
        else:
            assert _read(killed / f) == _read(tmp_path / "straight" / f), f
    assert not list(killed.rglob("ckpt_*.msgpack")) and not list(killed.rglob("best.msgpack"))


@pytest.mark.parametrize("argv,unpad", [([], True), (["--unpad"], True), (["--no-unpad"], False)])
def test_unpad_flag_sets_the_config_and_is_recorded(argv, unpad):
    """``--no-unpad`` runs the padded grid; left out, FinetuneConfig's default, which the run's settings then name."""
    from scratchlm import cli
    from scratchlm.commands import finetune as command

    args = cli.build_parser("finetune").parse_args(["finetune", "--task", "polarity", "--out", "run", *argv])
    assert command.finetune_config(args, "sequence", 2).unpad is unpad and args.unpad is unpad
