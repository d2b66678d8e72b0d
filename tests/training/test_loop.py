"""scratchlm.training.loop: optimizer pieces, the jitted step, early stopping, logging, NaN, resume."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.errors import NonFiniteLossError
from scratchlm.training import checkpoint as ckpt
from scratchlm.training.loop import (
    LoopConfig,
    init_train_state,
    make_optimizer,
    make_schedule,
    make_train_step,
    train,
    weight_decay_mask,
)
from tests.training import tiny

REPO = Path(__file__).resolve().parents[2]


def assert_trees_bitwise_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x).view(np.uint32), np.asarray(y).view(np.uint32))


def test_weight_decay_mask_skips_biases_layer_norm_and_vectors():
    params = {
        "encoder": {"dense": {"kernel": jnp.ones((3, 3)), "bias": jnp.ones(3)},
                    "LayerNorm": {"weight": jnp.ones((3, 3))}},
        "layer_norm": {"gamma": jnp.ones(3)},
        "embeddings": jnp.ones((5, 3)),
        "b_hh_bias": jnp.ones((2, 3)),
        "scale": jnp.ones(()),
    }
    mask = weight_decay_mask(params)
    assert mask == {
        "encoder": {"dense": {"kernel": True, "bias": False}, "LayerNorm": {"weight": False}},
        "layer_norm": {"gamma": False},
        "embeddings": True,
        "b_hh_bias": False,
        "scale": False,
    }


def test_schedules_by_hand():
    """eta = 1, T = 10, t_w = 2: warmup 0, 0.5, then linear 1 - (t-2)/8, cosine (1 + cos(pi (t-2)/8))/2."""
    lin = make_schedule(1.0, 10, 2, "linear")
    cos = make_schedule(1.0, 10, 2, "cosine")
    const = make_schedule(1.0, 10, 2, "constant")
    for t, want in [(0, 0.0), (1, 0.5), (2, 1.0), (6, 0.5), (10, 0.0)]:
        assert float(lin(t)) == pytest.approx(want, abs=1e-7)
    for t in (2, 4, 6, 9):
        assert float(cos(t)) == pytest.approx(0.5 * (1 + np.cos(np.pi * (t - 2) / 8)), abs=1e-6)
    assert float(const(1)) == pytest.approx(0.5) and float(const(9)) == pytest.approx(1.0)


def test_adamw_decays_only_the_masked_leaves():
    """With zero gradients Adam's step is 0/(0 + eps) = 0, so AdamW leaves theta (1 - eta lambda) where decay
    applies."""
    params = {"w": jnp.full((2, 2), 2.0), "bias": jnp.full((2,), 2.0)}
    tx = make_optimizer(learning_rate=0.1, total_steps=10, schedule="constant", weight_decay=0.5)
    step = make_train_step(lambda p, b, k: (0.0 * jnp.sum(p["w"]) + 0.0 * jnp.sum(p["bias"]), {}), tx)
    state, _ = step(init_train_state(params, tx, jax.random.key(0)), None)
    np.testing.assert_allclose(state.params["w"], 2.0 * (1 - 0.1 * 0.5), rtol=1e-7)
    np.testing.assert_array_equal(state.params["bias"], 2.0)


def test_clipping_bounds_the_first_adam_free_step():
    """SGD with clip c: theta_1 = theta_0 - eta * g * min(1, c/|g|); here g = 2 theta_0 = (6, 8), |g| = 10, c = 1."""
    tx = make_optimizer(name="sgd", learning_rate=1.0, total_steps=5, schedule="constant", clip_norm=1.0)
    step = make_train_step(lambda p, b, k: (jnp.sum(p**2), {}), tx)
    state, metrics = step(init_train_state(jnp.array([3.0, 4.0]), tx, jax.random.key(0)), None)
    np.testing.assert_allclose(state.params, [3.0 - 0.6, 4.0 - 0.8], rtol=1e-6)
    assert float(metrics["grad_norm"]) == pytest.approx(10.0)


def test_frozen_params_stay_bitwise_unchanged():
    params = {"top": {"kernel": jnp.ones((3, 1)), "bias": jnp.zeros(1)},
              "bottom": {"kernel": jnp.array([[-0.0, 1e-30, 3.0]]), "bias": jnp.array([-0.0])}}
    trainable = {"top": {"kernel": True, "bias": True}, "bottom": {"kernel": False, "bias": False}}
    frozen_before = jax.tree.map(np.array, params["bottom"])
    tx = make_optimizer(learning_rate=0.1, total_steps=10, weight_decay=0.1, trainable=trainable)

    def loss_fn(p, batch, key):
        h = jnp.tanh(batch @ p["bottom"]["kernel"] + p["bottom"]["bias"])  # [B, 3]
        return jnp.mean((h @ p["top"]["kernel"] + p["top"]["bias"] - 1.0) ** 2), {}

    step = make_train_step(loss_fn, tx, trainable=trainable)
    state = init_train_state(params, tx, jax.random.key(0))
    for _ in range(3):
        state, _ = step(state, jnp.ones((4, 1)))
    assert_trees_bitwise_equal(state.params["bottom"], frozen_before)
    assert not np.allclose(state.params["top"]["kernel"], 1.0)


def test_step_compiles_once_and_donates_the_state():
    state, step = tiny.fresh_state()
    for t in range(3):
        old = state
        state, metrics = step(state, tiny.batch_fn(t))
    assert step._cache_size() == 1  # shared by the module's tests: still one compilation
    assert old.params["dense"]["kernel"].is_deleted()  # donated buffers are reused, not copied
    assert int(state.step) == 3 and set(metrics) >= {"loss", "accuracy", "grad_norm"}


def test_a_step_changes_every_trainable_param():
    """Step 0 has learning rate 0 (warmup starts at 0), so step 1 is the first that moves anything."""
    state, step = tiny.fresh_state()
    state, _ = step(state, tiny.batch_fn(0))
    before = jax.tree.map(np.array, state.params)
    state, _ = step(state, tiny.batch_fn(1))
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state.params)):
        assert np.all(a != np.asarray(b))


def test_early_stopping_restores_the_best_params(tmp_path):
    """Scripted scores 3, 2, 2.5, 2.6 (min mode, patience 2): best at the 2nd evaluation (step 4), stop at the 4th
    (step 8)."""
    scores = iter([3.0, 2.0, 2.5, 2.6, 9.9])
    state, step_fn = tiny.fresh_state()
    config = LoopConfig(
        steps=40, eval_every=2, log_every=3, early_stopping_metric="score", patience=2,
        metrics_path=tmp_path / "m.jsonl",
    )
    result = train(state, step_fn, tiny.batch_fn, config=config, eval_fn=lambda p: {"score": next(scores)})
    assert result.stopped_early and result.best_step == 4 and result.best_metric == 2.0
    assert int(result.state.step) == 8 and [h["step"] for h in result.history] == [2, 4, 6, 8]
    assert_trees_bitwise_equal(result.state.params, tiny.run(4).state.params)
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "eval"] == [2, 4, 6, 8]
    # a train record at every evaluation (steps 2, 4, 6, 8) and every log_every = 3 steps, each the mean of the
    # losses since the previous record: replayed here step by step from the same fresh state (evaluations
    # change no state)
    train_records = [r for r in records if r["split"] == "train"]
    state, step_fn = tiny.fresh_state()
    losses = []
    for t in range(8):
        state, metrics = step_fn(state, tiny.batch_fn(t))
        losses.append(float(metrics["loss"]))
    ends = [2, 3, 4, 6, 8]
    assert [r["step"] for r in train_records] == ends
    want = [np.mean(losses[a:b]) for a, b in zip([0, *ends[:-1]], ends)]
    np.testing.assert_allclose([r["loss"] for r in train_records], want, rtol=1e-12)
    assert all(r["steps_per_s"] > 0 for r in train_records)


def test_without_a_terminal_no_bar_but_plain_log_lines(capsys, caplog):
    """Output to a file: no tqdm bar, a ``logging`` line every 10 % of the steps (here every step) instead."""
    with caplog.at_level(logging.INFO, logger="scratchlm.training"):
        tiny.run(3)
    assert "it/s" not in capsys.readouterr().err and "step/s" not in capsys.readouterr().err
    lines = [r.getMessage() for r in caplog.records if r.name == "scratchlm.training"]
    assert lines == ["training: step 1 of 3 (33 %)", "training: step 2 of 3 (67 %)", "training: step 3 of 3 (100 %)"]


def test_non_finite_loss_names_the_step_and_the_last_checkpoint(tmp_path):
    def batch_fn(step):
        x, y = tiny.batch_fn(step)
        return (x * np.nan if step == 7 else x), y

    state, step_fn = tiny.fresh_state()
    config = LoopConfig(steps=20, checkpoint_dir=tmp_path, checkpoint_every=5, log_every=0)
    with pytest.raises(NonFiniteLossError, match=r"step 7 .*ckpt_00000005\.msgpack"):
        train(state, step_fn, batch_fn, config=config)
    assert ckpt.latest_checkpoint(tmp_path).name == "ckpt_00000005.msgpack"  # nothing written after the NaN


def test_resume_in_a_fresh_process_is_bitwise_identical(tmp_path):
    """2N = 20 steps straight == N = 10 steps, then a new Python process restoring and doing 10 more."""
    straight = tiny.run(20).state.params
    first = tiny.run(10, tmp_path / "ck", checkpoint_every=5)
    assert first.last_checkpoint.name == "ckpt_00000010.msgpack"
    out = tmp_path / "resumed.msgpack"
    subprocess.run(
        [sys.executable, "-m", "tests.training.tiny", str(tmp_path / "ck"), "20", str(out)],
        cwd=REPO, check=True, env={**__import__("os").environ, "JAX_PLATFORMS": "cpu"},
    )
    resumed = ckpt.load_params(out, straight)
    assert_trees_bitwise_equal(resumed, straight)
    halfway = np.asarray(first.state.params["dense"]["kernel"])
    assert not np.array_equal(halfway, np.asarray(straight["dense"]["kernel"]))


def test_a_resumed_run_reports_the_evaluations_before_its_checkpoint(tmp_path):
    """The history a resumed run returns is the uninterrupted run's: the evaluations up to the checkpoint come
    back from the JSON-lines log (a line after it, or one cut by a kill, is not taken)."""
    scores = {}

    def eval_fn(params):  # a score that depends on the params only, so both runs see the same ones
        return {"score": float(np.sum(np.asarray(params["dense"]["kernel"])))}

    def run(steps, log):
        state, step_fn = tiny.fresh_state()
        config = LoopConfig(steps=steps, eval_every=2, log_every=0, checkpoint_dir=tmp_path / log / "ck",
                            checkpoint_every=4, metrics_path=tmp_path / log / "m.jsonl")
        (tmp_path / log).mkdir(exist_ok=True)
        return train(state, step_fn, tiny.batch_fn, config=config, eval_fn=eval_fn)

    scores["straight"] = run(8, "straight").history
    run(5, "resumed")  # checkpoints at steps 4 and 5; evaluations at 2 and 4 are logged
    with open(tmp_path / "resumed" / "m.jsonl", "a") as log:
        log.write('{"step": 6, "split": "eval", "score": 1.0}\n{"step": 7, "spl\n')  # past the checkpoint; a cut line
    (tmp_path / "resumed" / "ck" / "ckpt_00000005.msgpack").unlink()  # back to step 4
    scores["resumed"] = run(8, "resumed").history
    assert [h["step"] for h in scores["straight"]] == [2, 4, 6, 8]
    assert scores["resumed"] == scores["straight"]
