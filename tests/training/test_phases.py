"""scratchlm/training/phases.py: the per-phase clock the commands write into metrics.json as ``timings``."""

import time

import jax
import jax.numpy as jnp

from scratchlm.training.phases import PhaseClock, process_age


def test_a_phase_entered_twice_accumulates_and_the_report_names_it():
    clock = PhaseClock()
    for _ in range(2):
        with clock.phase("write"):
            time.sleep(0.01)
    report = clock.report()
    assert report["phases"]["write"] >= 0.02  # two sleeps of 10 ms each, at least
    assert report["since_start"] >= report["phases"]["write"]
    age = process_age()
    assert age is None or age >= report["since_start"]  # the process began before the clock


def test_listening_counts_the_programs_compiled_and_stops_after_the_block():
    clock = PhaseClock()
    x = jnp.arange(7.0)
    with clock.listening():
        jax.jit(lambda v: jnp.sin(v) * 3.0 + 1.0)(x).block_until_ready()  # a new program: one compilation
    inside = clock.programs
    assert inside >= 1 and clock.compile_seconds > 0
    jax.jit(lambda v: jnp.cos(v) - 2.0)(x).block_until_ready()  # after the block: not counted
    assert clock.programs == inside
    clock.mark("end")
    assert clock.report()["marks"][0]["programs"] == inside
