"""LoRA through the one fine-tuning recipe and `scratchlm finetune --lora-rank`: only the adapters and the
classifier move, the optimizer holds state for them alone, and the run folder holds a PEFT adapter folder
beside the merged model."""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np
import pytest

from scratchlm.errors import ScratchlmError
from scratchlm.models import bert
from scratchlm.nn import lora
from scratchlm.training import finetune as ft
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
)

LORA = lora.LoraConfig(r=4, lora_alpha=8.0)


def lora_config(**overrides) -> ft.FinetuneConfig:
    return ft.FinetuneConfig(task="sequence", num_labels=2, lr=LR, epochs=EPOCHS, batch_size=BATCH, dropout=0.0,
                             warmup_fraction=0.0, weight_decay=0.0, **{"lora": LORA, **overrides})


def test_only_adapters_and_the_head_move_and_frozen_leaves_stay_bitwise(base_params):
    """20 steps on one batch: every base weight (the pooler included) is bitwise unchanged, every A, B and the
    classifier moved (A too: B leaves 0 after the first step, and then A's gradient s B^T G^T X is non-zero),
    and the training loss fell."""
    config = lora_config()
    data = tiny_sequence_data()
    params = ft.init_classifier(jax.random.key(1), base_params, ENCODER, config)
    assert set(params[lora.ADAPTERS]) == {f"encoder.layer.{i}.attention.self.{m}" for i in range(2)
                                          for m in ("query", "value")}
    before = leaves(params)
    result = ft.fit(params, data, None, encoder=ENCODER, config=config)
    after = leaves(result.params)
    assert set(before) == set(after)
    for leaf in before:
        moves = leaf.startswith("['lora']") or leaf.startswith("['classifier']")
        assert np.array_equal(before[leaf], after[leaf]) != moves, f"{leaf}: {'frozen' if not moves else 'trains'}"
    scores = ft.evaluate(result.params, data, encoder=ENCODER, config=config)
    assert scores["accuracy"] >= 0.75  # 8 examples, a random 16-wide encoder seen through rank-4 updates


def test_merged_params_predict_what_the_adapted_model_predicts(base_params):
    """`merged` folds the updates in (plain BERT params, no adapters) and gives the adapted model's logits;
    B drawn non-zero so that the update matters.  Both are the same weights W_0 + s B A, computed once in
    each path: equal to float32 rounding of a 2-layer forward pass (test_bert's 1e-5)."""
    config = lora_config()
    params = ft.init_classifier(jax.random.key(1), base_params, ENCODER, config)
    rng = np.random.default_rng(0)
    params[lora.ADAPTERS] = {m: {**a, "lora_B": 0.3 * rng.standard_normal(a["lora_B"].shape).astype(np.float32)}
                             for m, a in params[lora.ADAPTERS].items()}
    merged = ft.merged(params, config)
    assert lora.ADAPTERS not in merged and set(merged) == set(base_params) | {"classifier"}
    batch = {k: v for k, v in tiny_sequence_data().items() if k != "labels"}
    adapted = ft.logits(params, batch, encoder=ENCODER, config=config)
    plain = ft.logits(merged, batch, encoder=ENCODER, config=ft.FinetuneConfig(task="sequence", num_labels=2))
    base = ft.logits({**base_params, "classifier": params["classifier"]}, batch, encoder=ENCODER,
                     config=ft.FinetuneConfig(task="sequence", num_labels=2))
    np.testing.assert_allclose(np.asarray(adapted), np.asarray(plain), atol=1e-5, rtol=0)
    # the updates matter: BERT's N(0, 0.02^2) head keeps logits ~1e-2, and B moves them by ~1e-3, 100x the bound
    assert np.abs(np.asarray(adapted) - np.asarray(base)).max() > 1e-4


def test_optimizer_state_holds_only_the_trainable_leaves(base_params):
    """AdamW keeps two float32 moments per trainable number: 8 bytes each, plus a few scalar step counts.
    LoRA r=4 on query and value of 2 layers of width 16: 2 x 2 x (4x16 + 16x4) = 512 adapter numbers, plus the
    classifier's 2x16 + 2 = 34."""
    config = lora_config()
    params = ft.init_classifier(jax.random.key(1), base_params, ENCODER, config)
    cost = ft.training_cost(params, config, encoder=ENCODER)
    assert cost["trainable_params"] == 512 + 34
    assert cost["total_params"] == bert.count_params(params)
    assert cost["trainable_fraction"] == pytest.approx(546 / bert.count_params(params))
    assert 0 <= cost["optimizer_state_bytes"] - 8 * 546 <= 64  # the scalar counts
    full_config = lora_config(lora=None)
    full = ft.training_cost(ft.merged(params, config), full_config, encoder=ENCODER)
    n_full = bert.count_params(ft.merged(params, config))
    assert full["trainable_fraction"] == 1.0 and 0 <= full["optimizer_state_bytes"] - 8 * n_full <= 64


def test_lora_and_a_freezing_policy_do_not_combine():
    with pytest.raises(ScratchlmError, match="--freeze encoder cannot be combined"):
        lora_config(freeze="encoder")


def test_command_writes_the_adapter_folder_merged_model_and_costs(tiny_checkpoint, tmp_path):
    """`--lora-rank 4 --folds 2` on the good/bad task: metrics.json gains the costs, adapter/ holds PEFT's
    files (loaded by peft in tests/models/test_peft_format.py) and best/ the merged model, which scratchlm
    reads back as plain BERT; run.json records the LoRA flags."""
    lines = [json.dumps({"text": f"{w} film {'is' if i < 3 else 'was'} {w}", "label": w})
             for i in range(6) for w in ("good", "bad")]
    (tmp_path / "task.jsonl").write_text("\n".join(lines) + "\n")
    argv = ["--task", str(tmp_path / "task.jsonl"), "--init", str(tiny_checkpoint), "--folds", "2",
            *COMMAND_FLAGS, "--lora-rank", "4", "--out", str(tmp_path / "run")]
    assert finetune_command(argv) == 0
    run = tmp_path / "run"
    metrics = strict_json(run / "metrics.json")
    assert 0 < metrics["trainable_fraction"] < 0.1 and metrics["trainable_params"] == 546
    assert metrics["optimizer_state_bytes"] < metrics["full_finetune_optimizer_state_bytes"] / 10
    assert metrics["settings"]["lora_rank"] == 4 and metrics["settings"]["lora_targets"] == "query,value"
    adapter = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["base_model_name_or_path"] == str(tiny_checkpoint)
    assert adapter["modules_to_save"] == ["classifier"]  # the checkpoint has a pooler: it stays frozen
    _, merged = bert.from_pretrained(run / "best")
    assert "classifier" in merged and lora.ADAPTERS not in merged


def test_command_lora_flags_need_a_rank(tmp_path, capsys):
    from scratchlm import cli

    argv = ["finetune", "--task", "polarity", "--lora-alpha", "16", "--out", str(tmp_path / "run")]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.startswith("scratchlm finetune: error: --lora-alpha need --lora-rank")


def test_lora_steps_equal_peft_steps_from_the_same_params_and_batch(base_params, tmp_path):
    r"""scratchlm's LoRA step against PEFT's ``get_peft_model`` on transformers' ``BertForSequenceClassification``
    with the fine-tuning benchmark's PyTorch optimizer (AdamW, clipping, schedule): the same A (B = 0 on both
    sides), the same classifier, three steps on the same batch, dropout off.  PEFT's trainable state, named as
    PEFT saves it (``get_peft_model_state_dict``), equals :func:`scratchlm.models.peft_format.adapter_state_dict`
    of scratchlm's params.

    Losses agree to float32 round-off (rtol 1e-5).  The parameter bound is the full fine-tuning parity test's
    (test_finetune.py), :math:`3 \cdot 10^{-2}\,\eta` over three steps: Adam's step moves by at most
    :math:`\eta\,\delta g/\epsilon` for a gradient difference :math:`\delta g` of float32 round-off
    (:math:`\lesssim 10^{-10}` here).  At step 1 A's gradient :math:`s B^\top G^\top X` is exactly 0 on both
    sides (B = 0), so A first moves at step 2: a wrong scale :math:`\alpha/r` or a transposed A or B would
    move B by :math:`\eta` at step 1 already in the wrong direction, far outside the bound."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    import torch

    from benchmarks import finetune as bench
    from scratchlm.data import batching
    from scratchlm.models import peft_format
    from scratchlm.training import loop

    config = lora_config()
    data = tiny_sequence_data()
    params = ft.init_classifier(jax.random.key(1), base_params, ENCODER, config)
    step, _ = ft.programs(params, ENCODER, config, EPOCHS)  # the first test's compiled step
    state = loop.init_train_state(jax.tree.map(jax.numpy.copy, params), step.optimizer, jax.random.key(0, impl="rbg"))
    bert.save_pretrained(tmp_path, ft.merged(params, config), TINY)  # B = 0: the merged model is the base
    model = transformers.BertForSequenceClassification.from_pretrained(
        str(tmp_path), num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = peft.get_peft_model(model, peft.LoraConfig(r=LORA.r, lora_alpha=LORA.lora_alpha,
                                                       target_modules=list(LORA.target_modules), task_type="SEQ_CLS"))
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.startswith("base_model.model.bert.") and hasattr(module, "lora_A") and "default" in module.lora_A:
                A = params[lora.ADAPTERS][name.removeprefix("base_model.model.bert.")]["lora_A"]
                module.lora_A["default"].weight.copy_(torch.from_numpy(np.asarray(A)))
    optimizer, schedule = bench.hf_optimizer(model, config, EPOCHS)
    model.train()
    for t in range(3):
        batch = batching.train_batch(data, t, BATCH, config.seed)
        state, metrics = step(state, batch)
        theirs_loss = bench.hf_step(model, optimizer, schedule, batch, config)
        assert float(metrics["loss"]) == pytest.approx(theirs_loss, rel=1e-5)
    theirs = {k: v.detach().numpy() for k, v in peft.get_peft_model_state_dict(model).items()}
    ours = peft_format.adapter_state_dict(state.params, ("classifier",))
    assert set(ours) == set(theirs)
    for k, v in ours.items():
        np.testing.assert_allclose(v, theirs[k], rtol=0, atol=3e-2 * LR, err_msg=k)
    assert not np.array_equal(ours[next(k for k in ours if k.endswith("lora_A.weight"))],
                              np.asarray(params[lora.ADAPTERS]["encoder.layer.0.attention.self.query"]["lora_A"]))


def test_lora_takes_its_own_default_rate_and_epochs():
    """``lr``/``epochs`` left None resolve to LoRA's recipe with adapters, full fine-tuning's without; a given
    value is kept either way, and the resolved values are what the config records (and replace copies)."""
    full = ft.FinetuneConfig(task="sequence", num_labels=2)
    adapted = ft.FinetuneConfig(task="sequence", num_labels=2, lora=lora.LoraConfig(r=8))
    assert (full.lr, full.epochs) == (ft.FULL.lr, ft.FULL.epochs)
    assert (adapted.lr, adapted.epochs) == (ft.LORA.lr, ft.LORA.epochs)
    assert ft.LORA.lr > ft.FULL.lr and ft.LORA.epochs > ft.FULL.epochs
    given = ft.FinetuneConfig(task="sequence", num_labels=2, lr=3e-4, epochs=2, lora=lora.LoraConfig(r=8))
    assert (given.lr, given.epochs) == (3e-4, 2)
    assert dataclasses.replace(adapted, seed=1).lr == ft.LORA.lr
