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
import sys
import time
from collections.abc import Callable
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
