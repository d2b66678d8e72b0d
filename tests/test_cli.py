"""The command line's own settings: JAX's persistent compilation cache, the CPU threads of a step."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scratchlm import cli

ROOT = Path(__file__).resolve().parents[1]


def test_compile_cache_defaults_under_xdg_cache_home_and_respects_the_user():
    environ = {"XDG_CACHE_HOME": "/somewhere"}
    cli.use_compile_cache(environ)
    assert environ["JAX_COMPILATION_CACHE_DIR"] == os.path.join("/somewhere", "scratchlm", "xla")
    assert environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0.5"

    environ = {"XDG_CACHE_HOME": "/somewhere", "JAX_COMPILATION_CACHE_DIR": "/mine",
               "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "3"}
    cli.use_compile_cache(environ)
    assert environ["JAX_COMPILATION_CACHE_DIR"] == "/mine"
    assert environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "3"


def test_compile_cache_is_written_and_read_back_by_a_fresh_process(tmp_path):
    """JAX reads the variables at import: a program compiled in one process is loaded from disk by the next."""
    program = ("import sys; from scratchlm import cli; cli.use_compile_cache(); import jax, jax.numpy as jnp; "
               "from jax._src import compilation_cache as cc; "
               "y = jax.jit(lambda x: jnp.tanh(x) @ x.T)(jnp.ones((3, 3))); "
               "print(cc.is_persistent_cache_enabled(), float(y.sum()))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_") or k == "JAX_PLATFORMS"}
    env.update(XDG_CACHE_HOME=str(tmp_path), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cache = tmp_path / "scratchlm" / "xla"
    outputs, entries = [], []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.split())
        entries.append(sorted(p.name for p in cache.iterdir()))
    assert outputs[0][0] == "True" and outputs[0] == outputs[1]
    assert entries[0], "nothing was written to the cache"
    assert entries[1] == entries[0], "the second process compiled a program the first had cached"


_THREADS_PROGRAM = """
import collections, json, os

from scratchlm import cli
before = sorted(os.sched_getaffinity(0))
limited = cli.limit_intra_op_threads(1)
import jax, jax.numpy as jnp
y = float((jnp.ones((64, 64)) @ jnp.ones((64, 64))).sum())
tasks = os.listdir("/proc/self/task")
masks = [sorted(os.sched_getaffinity(int(t))) for t in tasks]
names = collections.Counter(open(f"/proc/self/task/{t}/comm").read().strip() for t in tasks)
print(json.dumps({"before": before, "limited": limited, "again": cli.limit_intra_op_threads(1), "y": y,
                  "masks": masks, "eigen": names.get("tf_XLAEigen")}))
"""


def _threads_run(**env_overrides):
    import json

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               **env_overrides)
    done = subprocess.run([sys.executable, "-c", _THREADS_PROGRAM], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux's affinity control and two CPUs")
def test_intra_op_threads_are_limited_and_every_cpu_given_back():
    out = _threads_run()
    assert out["limited"] is True and out["again"] is False  # the backend starts once
    assert out["y"] == 64.0 * 64 * 64
    assert all(mask == out["before"] for mask in out["masks"])  # no thread is left on the narrowed mask
    if out["eigen"] is not None:  # XLA:CPU names its op pool's threads so (jaxlib 0.10); one of them now
        assert out["eigen"] == 1
    # several host devices share the one pool: left alone
    out = _threads_run(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert out["limited"] is False and all(mask == out["before"] for mask in out["masks"])


def test_intra_op_threads_not_limited_when_it_cannot_apply(monkeypatch):
    from jax._src import xla_bridge

    # each refusal below must come from its own condition, not from this process's started backend
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    assert cli.limit_intra_op_threads(0) is False
    assert cli.limit_intra_op_threads(1, environ={"JAX_PLATFORMS": "cpu",
                                                   "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}) is False
    if hasattr(os, "sched_getaffinity"):
        assert cli.limit_intra_op_threads(len(os.sched_getaffinity(0))) is False  # no fewer than allowed
    # a GPU/TPU plugin that JAX may pick: its runtime's pools must not start on the narrowed mask
    monkeypatch.setattr(cli, "_accelerator_plugin_installed", lambda: True)
    assert cli.limit_intra_op_threads(1, environ={"JAX_PLATFORMS": ""}) is False
