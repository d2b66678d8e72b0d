"""The training phase the two pretraining recipes share, on one device or on a mesh: masked-LM
(:func:`scratchlm.training.pretrain.pretrain`) and causal-LM (:func:`scratchlm.training.causal_lm.pretrain`).

A recipe prepares its rows, its loss and its held-out evaluation; from there both run the same steps:

* :func:`local_batch`: the rows this process feeds a step (``batch_size / processes``, the batch
  divisible by the mesh's ``data`` axis), each process reading its own share of the training
  documents (:func:`scratchlm.distributed.process_shard`; every process scores all held-out rows);
* :func:`train_on_mesh`: AdamW with warm-up and linear decay through the shared loop
  (:func:`scratchlm.training.loop.train`), the step placed on the mesh by
  :func:`scratchlm.distributed.on_mesh` (data parallel on ``data=N``, FSDP when ``model > 1``), the
  held-out evaluation run on one device from a host copy of the params (one program for every mesh,
  so a mesh run's first evaluation is the one-device run's to the bit), checkpoints and the log
  written by process 0, and the final params gathered to the host.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np

from scratchlm import distributed as par
from scratchlm.training.loop import (
    LoopConfig,
    TrainResult,
    init_train_state,
    make_optimizer,
    make_train_step,
    train,
)


def local_batch(batch_size: int, mesh) -> int:
    """The rows this process feeds a step: ``batch_size`` on one device; on a mesh ``batch_size / processes``,
    the batch divisible by the ``data`` axis and the number of processes
    (:func:`scratchlm.distributed.divisible_batch`, a :class:`~scratchlm.errors.ScratchlmError` naming
    ``--batch-size`` otherwise).  :class:`scratchlm.distributed.MeshStep` assembles the processes' rows into the
    global batch; each process reads its own share of the training documents
    (:func:`scratchlm.distributed.process_shard`)."""
    return batch_size if mesh is None else par.divisible_batch(batch_size, mesh)


@dataclass
class Trained:
    """What :func:`train_on_mesh` returns: the held-out scores before and after, the loop's result, the final
    params as host arrays, and the throughput figures every pretraining ``metrics.json`` reports."""

    before: dict
    after: dict
    result: TrainResult
    final: dict  # host (NumPy) arrays on a mesh, the state's own arrays on one device
    train_seconds: float
    tokens_per_s: float
    final_train_loss: float
    lead: bool  # process 0 (or the only process): the one that writes the run folder

    def placement(self, mesh) -> dict:
        """``{"device", "mesh", "processes"}`` for ``metrics.json``: where the run trained."""
        device = jax.devices()[0]
        return {"device": f"{device.platform}: {device.device_kind}",
                "mesh": None if mesh is None else dict(mesh.shape), "processes": jax.process_count()}


def train_on_mesh(params: Any, loss_fn: Callable, eval_fn: Callable[[Any], dict], batch_fn: Callable[[int], dict],
                  run, *, key: jax.Array, out: Path, mesh, progress: bool | None, checkpoint_seconds: float,
                  description: str) -> Trained:
    """Train ``params`` on ``loss_fn(params, batch, key) -> (loss, metrics)`` for ``run.steps`` steps (``run``: a
    :class:`scratchlm.training.pretrain.PretrainConfig`), ``batch_fn(step)`` giving this process's rows of the
    step (:func:`scratchlm.training.pretrain.batch_fn_for` with :func:`local_batch`'s rows), on ``mesh`` or
    one device.

    AdamW (Loshchilov & Hutter 2019) with ``run``'s rate, linear warm-up and decay, weight decay and
    global-norm clipping (:func:`scratchlm.training.loop.make_optimizer`).  ``eval_fn(params)`` scores the
    held-out rows at the start, every ``run.eval_every`` steps and at the end.  Process 0 logs to
    ``out/train_log.jsonl`` and checkpoints to ``out/checkpoints`` (a run that finds checkpoints there resumes
    from the latest, on any mesh: the loop restores host arrays and the mesh step places them); the other
    processes log to ``train_log.processN.jsonl``.  Tokens/s is the median of the logged windows after the
    first (which holds the compilation), times ``run.batch_size × run.seq_len``.
    """
    lead = jax.process_index() == 0
    optimizer = make_optimizer(name="adamw", learning_rate=run.lr, total_steps=run.steps,
                               warmup_steps=run.resolved_warmup_steps, schedule="linear",
                               weight_decay=run.weight_decay, clip_norm=run.clip_norm)
    step_fn = make_train_step(loss_fn, optimizer)
    if mesh is not None:  # one evaluation program for every call: host params onto one device
        eval_on_device = eval_fn

        def eval_fn(p):
            return eval_on_device(par.gather_to_host(p))

    before = eval_fn(params)
    state, step_fn = par.on_mesh(step_fn, init_train_state(params, optimizer, key), mesh)
    metrics_path = out / ("train_log.jsonl" if lead else f"train_log.process{jax.process_index()}.jsonl")
    checkpoint_dir = out / "checkpoints" if lead else None
    if checkpoint_dir is None or not checkpoint_dir.is_dir():  # a resumed run continues its log
        metrics_path.unlink(missing_ok=True)
    loop_config = LoopConfig(steps=run.steps, eval_every=run.eval_every, log_every=run.log_every,
                             checkpoint_dir=checkpoint_dir, checkpoint_every=0, resume=True,
                             checkpoint_seconds=checkpoint_seconds, metrics_path=metrics_path, progress=progress,
                             description=description)
    t0 = time.perf_counter()
    result = train(state, step_fn, batch_fn, config=loop_config, eval_fn=eval_fn if run.eval_every else None)
    train_seconds = time.perf_counter() - t0
    after = eval_fn(result.state.params)
    final = result.state.params if mesh is None else par.gather_to_host(result.state.params)

    windows = [json.loads(line) for line in metrics_path.read_text().splitlines()]
    rates = [w["steps_per_s"] for w in windows if w.get("split") == "train"][1:]  # the first holds the compilation
    steps_per_s = float(np.median(rates)) if rates else run.steps / train_seconds
    return Trained(before=before, after=after, result=result, final=final, train_seconds=train_seconds,
                   tokens_per_s=steps_per_s * run.batch_size * run.seq_len,
                   final_train_loss=next((w["loss"] for w in reversed(windows) if w.get("split") == "train"),
                                         math.nan),
                   lead=lead)
