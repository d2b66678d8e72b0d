"""Where a command's wall time goes: seconds per phase, and what XLA compiled or read from its cache.

A whole command is more than its training loop: starting Python, importing JAX, reading the corpus,
building the vocabulary, compiling, writing and scoring.  :class:`PhaseClock` times each named phase
of one command and, through ``jax.monitoring``'s events, counts the programs XLA compiled (and their
seconds) and the ones it read back from the persistent compilation cache (``~/.cache/scratchlm/xla``,
:func:`scratchlm.cli.use_compile_cache`).  The command writes :meth:`PhaseClock.report` into its
``metrics.json`` as ``timings``, a key the digest leaves out (wall-clock figures are not behaviour).
"""

from __future__ import annotations

import contextlib
import os
import time

_COMPILE = "/jax/core/compile/backend_compile_duration"
_TRACE = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration")
_HIT = "/jax/compilation_cache/cache_hits"


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``; None elsewhere): the interpreter's start and
    the imports before a command's first line, which no timer inside the command sees."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class PhaseClock:
    """Seconds of each named phase; XLA's compile seconds and persistent-cache hits while it listens.

    ``with clock.phase("train"): ...`` adds the block's seconds to ``train`` (a phase entered again
    accumulates).  ``with clock.listening(): ...`` counts compilations and cache hits inside the block
    (and stops listening after it, so a process running several commands keeps no stale listener).
    """

    def __init__(self, *, started: float | None = None):
        self.started = time.perf_counter() if started is None else started
        self.seconds: dict[str, float] = {}
        self.programs = 0
        self.compile_seconds = 0.0
        self.trace_seconds = 0.0
        self.cache_hits = 0
        self.marks: list[dict] = []

    @contextlib.contextmanager
    def phase(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0

    def mark(self, name: str) -> None:
        """Note a moment (a fold's end): seconds since the start and XLA's counts so far, for per-part figures."""
        self.marks.append({"mark": name, "at": round(time.perf_counter() - self.started, 4), "programs": self.programs,
                           "compile_or_cache_read_seconds": round(self.compile_seconds, 4),
                           "persistent_cache_hits": self.cache_hits})

    def _on_duration(self, event: str, duration: float, **_) -> None:
        if event == _COMPILE:
            self.programs += 1
            self.compile_seconds += duration
        elif event in _TRACE:
            self.trace_seconds += duration

    def _on_event(self, event: str, **_) -> None:
        if event == _HIT:
            self.cache_hits += 1

    @contextlib.contextmanager
    def listening(self):
        from jax import monitoring

        monitoring.register_event_duration_secs_listener(self._on_duration)
        monitoring.register_event_listener(self._on_event)
        try:
            yield self
        finally:
            monitoring.unregister_event_duration_listener(self._on_duration)
            monitoring.unregister_event_listener(self._on_event)

    def report(self) -> dict:
        """``{"phases": {name: seconds}, "since_start": s, "process_age": s | None, "xla": {...}}``:
        ``since_start`` counts from the clock's start, ``process_age`` from the process's (so their
        difference is the interpreter's start and the imports before the command ran)."""
        return {"phases": {k: round(v, 4) for k, v in self.seconds.items()},
                "since_start": round(time.perf_counter() - self.started, 4),
                "process_age": None if (age := process_age()) is None else round(age, 3),
                "xla": {"programs": self.programs, "compile_or_cache_read_seconds": round(self.compile_seconds, 4),
                        "trace_and_lower_seconds": round(self.trace_seconds, 4),
                        "persistent_cache_hits": self.cache_hits},
                **({"marks": self.marks} if self.marks else {})}
