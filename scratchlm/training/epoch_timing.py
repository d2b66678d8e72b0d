"""Seconds per training epoch with evaluation and compilation kept apart (what ``scratchlm finetune`` reports).

An epoch that compiled the jitted step (the first one, or one with a new length bucket) measures
XLA rather than training, so :class:`EpochClock` marks it and :func:`epoch_timing` prefers the
median of the epochs that compiled nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


class EpochClock:
    """Training seconds of each epoch with evaluation excluded, and whether the epoch compiled.

    ``start`` is called with every batch request (the first one starts the clock, after any
    checkpoint was restored), ``stop`` where an epoch ends once the device has finished (the
    loop fetches the step's metrics before evaluating), ``restart`` when training continues.
    An epoch "compiled" when the jitted step's cache grew during it (a first call, or a new
    length bucket): such an epoch measures XLA, not training, so it is kept out of the median.
    """

    def __init__(self, jitted: Callable):
        self.jitted = jitted
        self.t0: float | None = None
        self.cached = 0
        self.seconds: list[float] = []
        self.compiled: list[bool] = []

    def _cache_size(self) -> int:
        size = getattr(self.jitted, "_cache_size", None)
        return size() if size is not None else -1  # unknown: every epoch counts as compiled below

    def start(self) -> None:
        if self.t0 is None:
            self.restart()

    def restart(self) -> None:
        self.t0, self.cached = time.perf_counter(), self._cache_size()

    def stop(self, epochs: int = 1) -> None:
        if self.t0 is None or epochs <= 0:
            return
        seconds, cached = time.perf_counter() - self.t0, self._cache_size()
        self.seconds += [seconds / epochs] * epochs
        self.compiled += [cached < 0 or cached > self.cached] * epochs
        self.t0 = None

    def steady(self) -> float | None:
        warm = [s for s, c in zip(self.seconds, self.compiled) if not c]
        return float(np.median(warm)) if warm else None


def epoch_timing(records: list[dict]) -> dict:
    """``seconds_per_epoch`` over runs (the k folds): the median of every epoch that compiled nothing.

    When no such epoch exists (one epoch per fold with a cold cache, or folds resumed at their last
    epoch), the median of the compiling epochs is given instead and
    ``seconds_per_epoch_includes_compilation`` says so; ``None`` when no epoch was timed at all
    (every fold read back from an earlier run that kept no per-epoch times).  Never NaN: metrics
    files are strict JSON.
    """
    warm, cold = [], []
    for r in records:
        for seconds, compiled in zip(r.get("epoch_seconds", []), r.get("epoch_compiled", [])):
            (cold if compiled else warm).append(seconds)
        old = r.get("seconds_per_epoch")
        if not r.get("epoch_seconds") and old is not None and np.isfinite(old):
            warm.append(r["seconds_per_epoch"])  # an older record: only its steady-state median
    timed = warm or cold
    return {"seconds_per_epoch": float(np.median(timed)) if timed else None,
            "seconds_per_epoch_includes_compilation": not warm and bool(cold), "epochs_timed": len(timed)}
