"""What every benchmark shares: device facts, honest timing, and the one JSON line it prints.

A benchmark script ``benchmarks/NAME.py`` defines ``main(argv=None) -> dict`` and ends with
``if __name__ == "__main__": main()``.  ``main`` measures scratchlm and its peer in the same run and
returns (and prints, as one JSON line) the dict built by :func:`report`::

    {"benchmark": "word2vec", "device": "cpu: 2 cores", "jax": "0.10.2", "date": "2026-11-22",
     "figures": [{"figure": "skip-gram words/s", "unit": "words/s", "scratchlm": 6.1e5,
                  "peer": 5.0e5, "peer_name": "gensim 4.4.0", "ratio": 1.22, "higher_is_better": true}],
     ...any extra keys (settings, compile seconds, quality scores)}

``ratio`` is always scratchlm / peer; whether higher is better is stated per figure.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def device_description() -> str:
    """The device JAX computes on, in words (``"gpu: NVIDIA H100 80GB HBM3"``, ``"cpu: 2 cores"``)."""
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return f"cpu: {os.cpu_count()} cores ({platform.processor() or platform.machine()})"
    return f"{device.platform}: {device.device_kind}"


def time_call(fn: Callable[[], Any], *, repeats: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs (compilation).

    ``fn`` must block until its result is ready (``jax.block_until_ready``); otherwise asynchronous
    dispatch is timed instead of the work.  The first warm-up call's time is reported as
    ``first_seconds`` (compile + one run).
    """
    first = None
    for _ in range(max(warmup, 0)):
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0 if first is None else first
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_seconds": statistics.median(times), "min_seconds": min(times),
            "first_seconds": first if first is not None else float("nan"), "repeats": repeats}


_RESULT = "@@result "


def in_own_process(module: str, function: str, **kwargs: Any) -> Any:
    """``module.function(**kwargs)`` run in a fresh Python process; its JSON-able result.

    Each side of a comparison is timed alone.  Timed one after the other in one process, the sides are not
    alike: what the first leaves behind (gigabytes of live buffers, the allocator's state) slows the second.
    HuggingFace's GPT-2 training ran at 197-222 tokens/s after scratchlm's steps in the same process and
    246-260 alone, its time in the kernel 22 s against 9 s for the same 3.7 M page faults (2 cores,
    2026-12-05).  ``kwargs`` and the result travel as JSON (no pickle); the child's stderr is passed on.
    """
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    code = (f"import json, sys\nfrom {module} import {function} as f\n"
            f"print({_RESULT!r} + json.dumps(f(**json.loads(sys.argv[1]))))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], env=env, stdout=subprocess.PIPE,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"{module}.{function} exited {done.returncode} in its own process")
    return json.loads([line for line in done.stdout.splitlines() if line.startswith(_RESULT)][-1][len(_RESULT):])


# The training recipe the throughput benchmarks (encoder.py, gpt.py) charge alike to scratchlm and its PyTorch
# peer: AdamW (Loshchilov & Hutter 2019) at 1e-4, linear warm-up over 100 steps, decay 0.01 off biases and
# LayerNorms, global-norm clip 1.0.
LEARNING_RATE, WARMUP_STEPS, WEIGHT_DECAY, CLIP_NORM = 1e-4, 100, 0.01, 1.0


def time_scratchlm_training(loss: Callable, params: Any, key: Any, batch: Any, steps: int, *,
                            settle: int) -> dict[str, Any]:
    """Train ``params`` on one ``batch`` kept on the device with the recipe above; time ``steps`` steps.

    ``loss(params, batch, key) -> (loss, metrics)`` as :func:`scratchlm.training.loop.make_train_step` takes
    it.  The first call's wall time (compilation and one step) is ``compile_seconds``; ``settle`` more
    untimed steps let autotuning and the allocator settle; the ``steps`` timed ones run with no host sync
    inside the loop, one block at its end.  Returns ``{"state", "loss" (the last step's), "compile_seconds",
    "seconds"}``.
    """
    import jax

    from scratchlm.training.loop import init_train_state, make_optimizer, make_train_step

    optimizer = make_optimizer(learning_rate=LEARNING_RATE, total_steps=10**6, warmup_steps=WARMUP_STEPS,
                               weight_decay=WEIGHT_DECAY, clip_norm=CLIP_NORM)
    step = make_train_step(loss, optimizer)
    state = init_train_state(params, optimizer, key)
    t0 = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m["loss"])
    compile_seconds = time.perf_counter() - t0
    for _ in range(settle):
        state, m = step(state, batch)
    jax.block_until_ready(m["loss"])
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, batch)
    jax.block_until_ready((state.params, m["loss"]))
    seconds = time.perf_counter() - t0
    return {"state": state, "loss": float(m["loss"]), "compile_seconds": compile_seconds, "seconds": seconds}


def time_torch_training(model: Any, loss: Callable[[], Any], steps: int, *, no_decay: Callable[[str], bool],
                        warmup: int, device: str) -> dict[str, Any]:
    """The PyTorch peer's side of :func:`time_scratchlm_training`: the same recipe, transcribed.

    ``loss()`` computes one step's loss on ``model`` (under autocast where the caller wants it);
    ``no_decay(name)`` says which named parameters AdamW leaves undecayed.  ``warmup`` untimed steps, then
    ``steps`` timed ones, the device synchronised before and after.  Returns ``{"loss" (the last step's, a
    float), "seconds"}``.
    """
    import torch

    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if not no_decay(n)], "weight_decay": WEIGHT_DECAY},
              {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=LEARNING_RATE, fused=device == "cuda")
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, s / WARMUP_STEPS))

    def step():
        value = loss()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        return value

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(warmup):
        value = step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        value = step()
    sync()
    return {"loss": float(value.detach()), "seconds": time.perf_counter() - t0}


def figure(name: str, scratchlm: float, peer: float | None, *, unit: str, peer_name: str | None,
           higher_is_better: bool = True) -> dict[str, Any]:
    """One row of the side-by-side table: scratchlm, the peer, and their ratio (scratchlm / peer)."""
    ratio = scratchlm / peer if peer not in (None, 0) else None
    return {"figure": name, "unit": unit, "scratchlm": scratchlm, "peer": peer,
            "peer_name": peer_name, "ratio": ratio, "higher_is_better": higher_is_better}


def report(benchmark: str, figures: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """Build, print (one JSON line on stdout) and return the benchmark's result."""
    import jax

    out = {"benchmark": benchmark, "device": device_description(), "jax": jax.__version__,
           "python": sys.version.split()[0], "date": datetime.date.today().isoformat(),
           "figures": figures, **extra}
    print(json.dumps(out, default=float), flush=True)
    return out
