"""The one training loop: a jitted step over a ``TrainState``, evaluation, early stopping, checkpoints.

Every model (the sigmoid MLP and text classifier, the GRU language model, BERT's masked-LM
pretraining and its fine-tuning) trains through these pieces:

* :class:`TrainState`, a pytree of params, optax state, step and PRNG key;
* :func:`make_optimizer`, optax AdamW (or Adam/SGD) with warmup + linear/cosine decay, clipping,
  weight decay that skips biases and LayerNorm parameters, and freezing by a boolean mask;
* :func:`make_train_step`, which turns ``loss_fn(params, batch, key) -> (loss, metrics)`` into
  ``step(state, batch) -> (state, metrics)``, jitted once with the state donated;
* :func:`train`, which runs the step for ``LoopConfig.steps`` steps with ``batch = batch_fn(step)``,
  evaluates, stops early, logs JSON lines, shows a progress bar on a terminal, checkpoints
  atomically and resumes from the latest checkpoint bit for bit.

The data are a deterministic function of the step number, so a resumed run sees exactly the batches
an uninterrupted one would (the "data position" saved with a checkpoint is its step).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scratchlm import jsonio
from scratchlm.distributed.rules import path_names
from scratchlm.errors import NonFiniteLossError, ScratchlmError
from scratchlm.training import checkpoint as ckpt
from scratchlm.training.state import TrainState

logger = logging.getLogger("scratchlm.training")
LOG_SECONDS = 30.0  # without a terminal, a log line at least this often (and every 10 % of the steps)


def init_train_state(params: Any, optimizer: optax.GradientTransformation, key: jax.Array,
                     carry: Any = None) -> TrainState:
    """A fresh state at step 0 (``key`` may be a typed key or raw ``uint32[2]``; ``carry`` the initial carried
    state)."""
    return TrainState(params=params, opt_state=optimizer.init(params), step=jnp.zeros((), jnp.int32), key=key,
                      carry=carry)


# ----------------------------------------------------------------------------- optimizer


def weight_decay_mask(params: Any) -> Any:
    """True where AdamW's weight decay applies: matrices, not biases, LayerNorm params or scalars.

    Following BERT (Devlin et al. 2019, the released ``optimization.py``) and HuggingFace, decay is
    not applied to any leaf named ``bias`` (or ending in ``bias``), to any leaf under a
    ``LayerNorm``/``layer_norm`` path, nor to any scalar or vector (gains and biases by shape).
    """

    def decays(path, leaf) -> bool:
        names = [n.lower() for n in path_names(path)]
        if np.ndim(leaf) < 2 or (names and names[-1].endswith("bias")):
            return False
        return not any("layernorm" in n or "layer_norm" in n for n in names)

    return jax.tree_util.tree_map_with_path(decays, params)


def make_schedule(
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    schedule: str = "linear",
    end_learning_rate: float = 0.0,
) -> optax.Schedule:
    r"""Linear warmup from 0 to ``learning_rate`` over ``warmup_steps``, then constant / linear / cosine decay.

    .. math::  \eta_t = \eta\,\frac{t}{t_w} \ (t < t_w); \quad
               \eta_t = \eta_{end} + (\eta - \eta_{end}) \cdot \begin{cases}
                 1 & \text{constant} \\
                 1 - \frac{t - t_w}{T - t_w} & \text{linear (BERT)} \\
                 \tfrac12\left(1 + \cos\frac{\pi (t - t_w)}{T - t_w}\right) & \text{cosine (Loshchilov \& Hutter 2017)}
               \end{cases}

    Args: learning_rate peak rate; total_steps T; warmup_steps t_w; schedule name.
    """
    if warmup_steps < 0 or (total_steps <= warmup_steps and schedule != "constant"):
        raise ScratchlmError(f"need 0 <= warmup_steps < total_steps, got warmup {warmup_steps}, total {total_steps}")
    decay_steps = max(total_steps - warmup_steps, 1)
    if schedule == "constant":
        after = optax.constant_schedule(learning_rate)
    elif schedule == "linear":
        after = optax.linear_schedule(learning_rate, end_learning_rate, decay_steps)
    elif schedule == "cosine":
        alpha = end_learning_rate / learning_rate if learning_rate else 0.0
        after = optax.cosine_decay_schedule(learning_rate, decay_steps, alpha=alpha)
    else:
        raise ScratchlmError(f"unknown learning-rate schedule {schedule!r}; choose constant, linear or cosine")
    if warmup_steps == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup_steps), after], [warmup_steps])


def make_optimizer(
    *,
    name: str = "adamw",
    learning_rate: float,
    total_steps: int,
    warmup_steps: int = 0,
    schedule: str = "linear",
    end_learning_rate: float = 0.0,
    weight_decay: float = 0.0,
    clip_norm: float | None = None,
    trainable: Any = None,
    b1: float = 0.9,  # Kingma & Ba 2015, §2
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    r"""An optax optimizer: global-norm clipping, then Adam/AdamW/SGD on the scheduled learning rate.

    AdamW (Loshchilov & Hutter 2019) decouples weight decay from the gradient step:

    .. math::  \theta_t = \theta_{t-1}
               - \eta_t \left(\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon} + \lambda\, \theta_{t-1}\right)

    with :math:`\lambda` applied only where :func:`weight_decay_mask` is true.  Clipping rescales
    the gradient to :math:`g \cdot \min(1, c / \lVert g \rVert_2)` (Pascanu et al. 2013).  A
    ``trainable`` mask (a bool pytree like the params) freezes the False leaves: their updates are
    exactly zero, they hold no optimizer state, and they do not enter the clipping norm.

    Args: name "adamw" | "adam" | "sgd"; the schedule's arguments (see :func:`make_schedule`);
    weight_decay :math:`\lambda`; clip_norm :math:`c` or None; trainable bool pytree or None.
    """
    lr = make_schedule(learning_rate, total_steps, warmup_steps, schedule, end_learning_rate)
    if name == "adamw":
        core = optax.adamw(lr, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=weight_decay_mask)
    elif name == "adam":
        core = optax.adam(lr, b1=b1, b2=b2, eps=eps)
    elif name == "sgd":
        core = optax.sgd(lr)
    else:
        raise ScratchlmError(f"unknown optimizer {name!r}; choose adamw, adam or sgd")
    tx = optax.chain(optax.clip_by_global_norm(clip_norm), core) if clip_norm else core
    if trainable is None:
        return tx
    labels = jax.tree.map(lambda t: "train" if t else "frozen", trainable)
    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)


# ----------------------------------------------------------------------------- the step


def make_train_step(
    loss_fn: Callable[[Any, Any, jax.Array], tuple[jax.Array, dict]],
    optimizer: optax.GradientTransformation,
    *,
    trainable: Any = None,
    carry: bool = False,
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    r"""``step(state, batch) -> (state, metrics)``, jitted once, the incoming state donated.

    .. math::  (\ell, g) = (\mathcal{L}, \nabla_\theta \mathcal{L})(\theta_t; B_t, k_t), \quad
               k_t = \mathrm{fold\_in}(k, t), \quad
               \theta_{t+1} = \theta_t + \mathrm{update}(g, s_t, \theta_t)

    ``metrics`` is ``loss_fn``'s dict plus ``loss`` and ``grad_norm`` (before clipping).  Pass the
    same ``trainable`` mask as to :func:`make_optimizer` to keep frozen leaves bit-for-bit
    unchanged (they are passed through, not added to a zero update) and to skip their gradients.
    Donation means the ``state`` given to ``step`` must not be used afterwards.

    With ``carry=True`` the loss also reads and returns state carried between steps:
    ``loss_fn(params, batch, key, carry) -> (loss, (metrics, new_carry))`` gets ``state.carry`` and
    its ``new_carry`` becomes the next step's (truncated BPTT's hidden state), so the batches stay a
    deterministic function of the step and the carried state is checkpointed with the rest.
    """

    def step(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        k_t = jax.random.fold_in(state.key, state.step)
        params = state.params
        if trainable is not None:
            params = jax.tree.map(lambda p, t: p if t else jax.lax.stop_gradient(p), params, trainable)
        if carry:
            (loss, (metrics, new_carry)), g = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, k_t, state.carry)
        else:
            (loss, metrics), g = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, k_t)
            new_carry = state.carry
        updates, opt_state = optimizer.update(g, state.opt_state, state.params)
        if trainable is None:
            new_params = optax.apply_updates(state.params, updates)
        else:
            new_params = jax.tree.map(
                lambda p, u, t: (p + u).astype(p.dtype) if t else p, state.params, updates, trainable
            )
        metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(g)}
        return state.replace(params=new_params, opt_state=opt_state, step=state.step + 1, carry=new_carry), metrics

    return jax.jit(step, donate_argnums=0)


# ----------------------------------------------------------------------------- the loop


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """What :func:`train` does besides stepping; 0 or None switches a feature off."""

    steps: int  # train until state.step == steps (a resumed run continues the count)
    eval_every: int = 0  # evaluate every N steps and at the last step (needs eval_fn)
    log_every: int = 50  # a JSON line of averaged train metrics every N steps
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 0  # also checkpoint at the last step whenever checkpoint_dir is set
    checkpoint_seconds: float = 0.0  # also checkpoint when this much wall-clock time has passed since the last
    keep_checkpoints: int = 2
    resume: bool = True  # continue from the latest checkpoint in checkpoint_dir, if there is one
    early_stopping_metric: str | None = None  # a key of eval_fn's dict, e.g. "loss" or "accuracy"
    early_stopping_mode: str = "min"  # "min" for losses, "max" for accuracies
    patience: int = 0  # stop after this many evaluations without improvement (0 = never stop)
    restore_best: bool = True  # with early_stopping_metric: return the best evaluation's params
    metrics_path: str | Path | None = None  # JSON lines file (appended to, so a resume continues it)
    progress: bool | None = None  # tqdm bar; None = only when stderr is a terminal (else log lines); False: neither
    description: str = "training"  # what the bar and the log lines say is running


@dataclasses.dataclass
class TrainResult:
    state: TrainState  # params replaced by the best ones when restore_best applied
    history: list[dict]  # one dict per evaluation: {"step": ..., **eval_fn(params)}
    best_metric: float | None = None
    best_step: int | None = None
    stopped_early: bool = False
    last_checkpoint: Path | None = None


def _copy(tree):
    # The step donates its input, so best params must live in buffers of their own.
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _json_value(v):
    v = np.asarray(v)
    return v.item() if v.ndim == 0 else v.tolist()


def _logged_evaluations(metrics_path, upto: int) -> list[dict]:
    """A resumed run's history before its checkpoint, as its JSON-lines log holds it (``{"step", **scores}``
    per evaluation up to step ``upto``), so that it reports every evaluation, as an uninterrupted run does."""
    if not metrics_path or not Path(metrics_path).is_file():
        return []
    found = []
    for line in Path(metrics_path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill
            continue
        if isinstance(record, dict) and record.get("split") == "eval" and record.get("step", upto + 1) <= upto:
            found.append({k: v for k, v in record.items() if k != "split"})
    return found


def train(
    state: TrainState,
    step_fn: Callable[[TrainState, Any], tuple[TrainState, dict]],
    batch_fn: Callable[[int], Any],
    *,
    config: LoopConfig,
    eval_fn: Callable[[Any], dict] | None = None,
    extra: dict | None = None,
) -> TrainResult:
    """Run ``step_fn`` until ``state.step == config.steps``, with ``batch_fn(step)`` as the data.

    Resumes from the latest checkpoint in ``config.checkpoint_dir`` when ``config.resume`` (the
    result is bitwise the uninterrupted run's on CPU).  Evaluates ``eval_fn(params)`` every
    ``eval_every`` steps; with ``early_stopping_metric`` keeps the best params (also on disk, as
    ``best.msgpack``, so a resumed run remembers them) and stops after ``patience`` evaluations
    without improvement.  A NaN or infinite loss raises :class:`NonFiniteLossError` naming the step
    and the last good checkpoint.  ``extra`` (plain values) is saved in every checkpoint.
    """
    cfg = config
    if cfg.early_stopping_metric and (eval_fn is None or not cfg.eval_every):
        raise ScratchlmError("early stopping needs eval_fn and eval_every > 0")
    if cfg.early_stopping_mode not in ("min", "max"):
        raise ScratchlmError(f"early_stopping_mode must be 'min' or 'max', got {cfg.early_stopping_mode!r}")
    better = (lambda a, b: a < b) if cfg.early_stopping_mode == "min" else (lambda a, b: a > b)
    ckpt_dir = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    best_path = ckpt_dir / "best.msgpack" if ckpt_dir else None

    loop = {"best_metric": None, "best_step": None, "bad_evals": 0}
    last_ckpt = None
    best_params = None
    if ckpt_dir and cfg.resume and (found := ckpt.latest_checkpoint(ckpt_dir)) is not None:
        state = ckpt.restore_checkpoint(found, state)
        loop.update(ckpt.read_extra(found).get("loop", {}))
        last_ckpt = found
        if loop["best_step"] is not None and best_path.exists():
            best_params = ckpt.load_params(best_path, state.params)

    start = int(state.step)
    history = _logged_evaluations(cfg.metrics_path, start) if last_ckpt is not None else []
    metrics_file = open(cfg.metrics_path, "a") if cfg.metrics_path else None
    show = sys.stderr.isatty() if cfg.progress is None else cfg.progress
    bar = None
    if show and start < cfg.steps:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=start, unit="step", dynamic_ncols=True, desc=cfg.description)
    reported = {"time": time.perf_counter(), "step": start, "loss": None}
    log_stride = max(1, cfg.steps // 10)

    def report(done: int) -> None:
        """Without a bar: a plain log line every 10 % of the steps or LOG_SECONDS, whichever comes first."""
        now = time.perf_counter()
        if bar is None and (done - reported["step"] >= log_stride or now - reported["time"] >= LOG_SECONDS
                            or done == cfg.steps):
            loss = "" if reported["loss"] is None else f", loss {reported['loss']:.4g}"
            logger.info("%s: step %d of %d (%.0f %%)%s", cfg.description, done, cfg.steps, 100 * done / cfg.steps,
                        loss)
            reported.update(time=now, step=done)

    window: list[tuple[int, dict]] = []  # device-side metrics since the last flush (no per-step sync)
    t_window = time.perf_counter()

    def log(record: dict) -> None:
        if metrics_file:
            metrics_file.write(jsonio.dumps(record) + "\n")
            metrics_file.flush()

    def flush() -> None:
        """Fetch the window's metrics, stop on a non-finite loss, log their mean."""
        nonlocal t_window
        if not window:
            return
        fetched = jax.device_get(window)
        for s, m in fetched:
            loss = float(np.asarray(m["loss"]))
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss} at step {s} (batch_fn({s})); last good checkpoint: "
                    + (str(last_ckpt) if last_ckpt else "none (no checkpoint was written before it)")
                )
        now = time.perf_counter()
        record = {"step": fetched[-1][0] + 1, "split": "train"}
        for k in fetched[0][1]:
            record[k] = float(np.mean([np.asarray(m[k], np.float64) for _, m in fetched]))
        record["steps_per_s"] = len(fetched) / max(now - t_window, 1e-9)
        log(record)
        reported["loss"] = record.get("loss")
        if bar is not None:
            bar.set_postfix(loss=f"{record['loss']:.4g}", steps_s=f"{record['steps_per_s']:.1f}")
        window.clear()
        t_window = now

    def save(step: int) -> None:
        nonlocal last_ckpt
        flush()  # never write a checkpoint whose params came from a non-finite loss
        last_ckpt = ckpt.save_checkpoint(
            ckpt_dir, state, extra={**(extra or {}), "data_position": step, "loop": loop}, keep=cfg.keep_checkpoints
        )
        last_save[0] = time.perf_counter()

    last_save = [time.perf_counter()]

    stopped_early = False
    try:
        for t in range(start, cfg.steps):  # a Python counter: reading state.step would sync every step
            state, metrics = step_fn(state, batch_fn(t))
            window.append((t, metrics))
            done = t + 1
            if bar is not None:
                bar.update(1)
            if cfg.log_every and done % cfg.log_every == 0:
                flush()
            if eval_fn is not None and cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.steps):
                flush()
                scores = {k: _json_value(v) for k, v in eval_fn(state.params).items()}
                history.append({"step": done, **scores})
                log({"step": done, "split": "eval", **scores})
                name = cfg.early_stopping_metric
                if name:
                    if name not in scores:
                        raise ScratchlmError(f"early_stopping_metric {name!r} is not among eval_fn's keys "
                                             f"{sorted(scores)}")
                    value = float(scores[name])
                    if loop["best_metric"] is None or better(value, loop["best_metric"]):
                        loop.update(best_metric=value, best_step=done, bad_evals=0)
                        best_params = _copy(state.params)
                        if best_path:
                            ckpt.save_params(best_path, best_params)
                    else:
                        loop["bad_evals"] += 1
                        stopped_early = bool(cfg.patience) and loop["bad_evals"] >= cfg.patience
            on_cadence = (cfg.checkpoint_every and done % cfg.checkpoint_every == 0) or (
                cfg.checkpoint_seconds and time.perf_counter() - last_save[0] >= cfg.checkpoint_seconds)
            if ckpt_dir and (stopped_early or on_cadence or done == cfg.steps):
                save(done)
            if cfg.progress is None and not show:
                report(done)
            if stopped_early:
                break
        flush()
    finally:
        if bar is not None:
            bar.close()
        if metrics_file:
            metrics_file.close()

    if cfg.early_stopping_metric and cfg.restore_best and best_params is not None:
        state = state.replace(params=best_params)
    return TrainResult(
        state=state,
        history=history,
        best_metric=loop["best_metric"],
        best_step=loop["best_step"],
        stopped_early=stopped_early,
        last_checkpoint=last_ckpt,
    )
