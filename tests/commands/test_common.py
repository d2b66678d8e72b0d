"""scratchlm/commands/common.py: the CPU threads of a step, the multi-device flags and the mesh they select."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scratchlm.commands import common
from scratchlm.errors import ScratchlmError

ROOT = Path(__file__).resolve().parents[2]


def test_command_line_flags_build_the_mesh():
    parser = argparse.ArgumentParser()
    common.add_parallel_arguments(parser)
    assert common.setup_parallel(parser.parse_args([])) is None
    mesh = common.setup_parallel(parser.parse_args(["--mesh", "data=1,model=1"]))
    assert dict(mesh.shape) == {"data": 1, "model": 1}
    assert common.setup_parallel(argparse.Namespace()) is None  # a namespace without the flags: one device
    with pytest.raises(ScratchlmError, match="--num-processes"):
        common.setup_parallel(parser.parse_args(["--coordinator", "127.0.0.1:1"]))


def test_building_the_parser_imports_no_jax():
    """``scratchlm --help`` stays instant, and JAX is first imported after the compile cache is set."""
    program = "import sys; from scratchlm import cli; cli.build_parser(); print('jax' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"


_THREADS_PROGRAM = """
import collections, json, os

from scratchlm.commands import common
before = sorted(os.sched_getaffinity(0))
limited = common.limit_intra_op_threads(1)
import jax, jax.numpy as jnp
y = float((jnp.ones((64, 64)) @ jnp.ones((64, 64))).sum())
tasks = os.listdir("/proc/self/task")
masks = [sorted(os.sched_getaffinity(int(t))) for t in tasks]
names = collections.Counter(open(f"/proc/self/task/{t}/comm").read().strip() for t in tasks)
print(json.dumps({"before": before, "limited": limited, "again": common.limit_intra_op_threads(1), "y": y,
                  "masks": masks, "eigen": names.get("tf_XLAEigen")}))
"""


def _threads_run(**env_overrides):
    import json

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               **env_overrides)
    done = subprocess.run([sys.executable, "-c", _THREADS_PROGRAM], env=env, capture_output=True, text=True,
                          timeout=120)
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
    assert common.limit_intra_op_threads(0) is False
    assert common.limit_intra_op_threads(1, environ={"JAX_PLATFORMS": "cpu",
                                                   "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}) is False
    if hasattr(os, "sched_getaffinity"):
        assert common.limit_intra_op_threads(len(os.sched_getaffinity(0))) is False  # no fewer than allowed
    # a GPU/TPU plugin that JAX may pick: its runtime's pools must not start on the narrowed mask
    monkeypatch.setattr(common, "_accelerator_plugin_installed", lambda: True)
    assert common.limit_intra_op_threads(1, environ={"JAX_PLATFORMS": ""}) is False
