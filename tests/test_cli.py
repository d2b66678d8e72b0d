"""The command line's own settings: JAX's persistent compilation cache (the CPU threads of a step:
tests/commands/test_common.py)."""

import os
import subprocess
import sys
from pathlib import Path

from scratchlm import cli

ROOT = Path(__file__).resolve().parents[1]


def test_compile_cache_defaults_under_xdg_cache_home_and_respects_the_user():
    environ = {"XDG_CACHE_HOME": "/somewhere"}
    cli.use_compile_cache(environ)
    assert environ["JAX_COMPILATION_CACHE_DIR"] == os.path.join("/somewhere", "scratchlm", "xla")
    assert environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] == "0"

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


def test_the_command_line_process_exits_with_the_commands_status_and_its_output_flushed(tmp_path):
    """``python -m scratchlm.cli`` (:func:`cli.console_main`) skips the interpreter's teardown: the exit status and
    the last line written, unflushed, to each stream must still come out."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    program = ("import sys; from scratchlm import cli; "
               "cli.main = lambda: (sys.stdout.write('to stdout'), sys.stderr.write('to stderr'), 3)[-1]; "
               "cli.console_main()")
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (3, "to stdout", "to stderr")
    done = subprocess.run([sys.executable, "-m", "scratchlm.cli", "word2vec", "--corpus", str(tmp_path / "none"),
                           "--out", str(tmp_path / "out")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("scratchlm word2vec: error: --corpus")
