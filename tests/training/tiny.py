"""A tiny logistic-regression problem shared by the loop tests and their fresh-process resume run.

Run as ``python -m tests.training.tiny CHECKPOINT_DIR STEPS OUT`` it resumes training from the
latest checkpoint in CHECKPOINT_DIR up to STEPS and writes the final params to OUT (msgpack).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.nn.functional import dropout
from scratchlm.nn.losses import bce_risk
from scratchlm.training.loop import LoopConfig, init_train_state, make_optimizer, make_train_step, train

D = 6
TOTAL = 40


def init_params() -> dict:
    rng = np.random.default_rng(0)
    return {"dense": {"kernel": jnp.asarray(rng.normal(size=(D, 1)), jnp.float32),
                      "bias": jnp.zeros((1,), jnp.float32)}}


def loss_fn(params, batch, key):
    x, y = batch
    x = dropout(x, 0.2, key=key, train=True)  # uses the per-step key, so a wrong key after resume shows
    z = (x @ params["dense"]["kernel"] + params["dense"]["bias"])[:, 0]
    loss = bce_risk(z, y)
    return loss, {"accuracy": jnp.mean((z > 0) == (y > 0.5))}


def batch_fn(step: int):
    rng = np.random.default_rng(1000 + step)
    x = rng.normal(size=(16, D)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.float32)
    return x, y


def optimizer():
    return make_optimizer(
        learning_rate=0.05, total_steps=TOTAL, warmup_steps=5, schedule="cosine", weight_decay=0.01, clip_norm=1.0
    )


_STEP = {}


def fresh_state():
    """A new state at step 0 and the step function (built once per process, so compiled once)."""
    if not _STEP:
        _STEP["tx"] = optimizer()
        _STEP["fn"] = make_train_step(loss_fn, _STEP["tx"])
    return init_train_state(init_params(), _STEP["tx"], jax.random.key(42)), _STEP["fn"]


def run(steps: int, checkpoint_dir=None, **kw):
    state, step_fn = fresh_state()
    config = LoopConfig(steps=steps, checkpoint_dir=checkpoint_dir, log_every=0, **kw)
    return train(state, step_fn, batch_fn, config=config)


if __name__ == "__main__":
    from scratchlm.training.checkpoint import save_params

    directory, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    save_params(out, run(steps, directory, checkpoint_every=5).state.params)
