"""scratchlm.training.checkpoint: round trips, keys, bookkeeping, clear errors, and a kill mid-write."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.errors import ScratchlmError
from scratchlm.training import checkpoint as ckpt
from scratchlm.training.loop import init_train_state, make_optimizer

REPO = Path(__file__).resolve().parents[2]


def make_state(step=0, scale=1.0):
    params = {"w": jnp.arange(6.0).reshape(2, 3) * scale, "b": jnp.array([-0.0, 1.5]), "n": jnp.array(3, jnp.int32)}
    tx = make_optimizer(learning_rate=0.1, total_steps=10, warmup_steps=2, weight_decay=0.1, clip_norm=1.0,
                        trainable={"w": True, "b": True, "n": False})
    state = init_train_state(params, tx, jax.random.key(7))
    return state.replace(step=jnp.asarray(step, jnp.int32))


def leaves_bitwise_equal(a, b):
    a = ckpt._keys_to_data(a)
    b = ckpt._keys_to_data(b)
    return all(np.array_equal(np.asarray(x).tobytes(), np.asarray(y).tobytes())
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def test_round_trip_is_bitwise_and_keeps_typed_keys_and_extra(tmp_path):
    state = make_state(step=4, scale=0.3)
    path = ckpt.save_checkpoint(tmp_path, state, extra={"data_position": 4, "vocab": ["a", "b"], "note": None})
    assert path == tmp_path / "ckpt_00000004.msgpack"
    restored = ckpt.restore_checkpoint(path, make_state())
    assert leaves_bitwise_equal(restored, state)
    assert jax.dtypes.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
    assert int(restored.step) == 4
    assert ckpt.read_extra(path) == {"data_position": 4, "vocab": ["a", "b"], "note": None}


def test_raw_uint32_keys_round_trip(tmp_path):
    state = make_state(step=1).replace(key=jax.random.PRNGKey(3))
    restored = ckpt.restore_checkpoint(ckpt.save_checkpoint(tmp_path, state), state)
    np.testing.assert_array_equal(restored.key, jax.random.PRNGKey(3))


def test_latest_and_keep(tmp_path):
    assert ckpt.latest_checkpoint(tmp_path / "none") is None
    for step in (1, 2, 10, 3):
        ckpt.save_checkpoint(tmp_path, make_state(step), keep=3)
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [
        "ckpt_00000002.msgpack", "ckpt_00000003.msgpack", "ckpt_00000010.msgpack"]
    assert ckpt.latest_checkpoint(tmp_path).name == "ckpt_00000010.msgpack"


def test_mismatched_target_is_reported_with_the_leaf(tmp_path):
    path = ckpt.save_checkpoint(tmp_path, make_state(step=1))
    wrong = make_state()
    wrong = wrong.replace(params={**wrong.params, "w": jnp.zeros((3, 3))})
    with pytest.raises(ScratchlmError, match=r"\['w'\].*float32\[2, 3\].*float32\[3, 3\]"):
        ckpt.restore_checkpoint(path, wrong)


def test_damaged_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt_00000001.msgpack"
    path.write_bytes(b"\x93not a checkpoint")
    with pytest.raises(ScratchlmError, match="damaged"):
        ckpt.restore_checkpoint(path, make_state())
    with pytest.raises(ScratchlmError, match="does not exist"):
        ckpt.restore_checkpoint(tmp_path / "missing.msgpack", make_state())


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from tests.training.test_checkpoint import make_state
    from scratchlm import io
    from scratchlm.training import checkpoint as ckpt
    directory = sys.argv[1]
    ckpt.save_checkpoint(directory, make_state(step=1, scale=2.0))
    def die(fd):  # the new file's bytes are written but not yet renamed into place
        os.kill(os.getpid(), signal.SIGKILL)
    io.os.fsync = die  # every file goes through scratchlm.io.atomic_write_bytes
    ckpt.save_checkpoint(directory, make_state(step=2, scale=5.0))
    """
)


def test_a_kill_in_the_middle_of_writing_leaves_the_previous_checkpoint_usable(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path)], cwd=REPO,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == -9  # killed, as intended
    assert any(".tmp" in p.name for p in tmp_path.iterdir())  # the interrupted write's debris
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest.name == "ckpt_00000001.msgpack"
    assert leaves_bitwise_equal(ckpt.restore_checkpoint(latest, make_state()), make_state(step=1, scale=2.0))


def test_params_alone_round_trip(tmp_path):
    params = {"a": {"kernel": jnp.ones((2, 2), jnp.bfloat16)}, "b": jnp.arange(3, dtype=jnp.int32)}
    ckpt.save_params(tmp_path / "p.msgpack", params)
    back = ckpt.load_params(tmp_path / "p.msgpack", params)
    assert back["a"]["kernel"].dtype == jnp.bfloat16 and leaves_bitwise_equal(back, params)


def test_background_saver_writes_the_state_as_it_was_when_asked_in_order(tmp_path):
    """The state is copied before save() returns: changing it afterwards (as a donated step would) does
    not reach the file, and the files are byte-identical to synchronous saves."""
    states = [make_state(step, scale=step + 0.5) for step in (1, 2, 3)]
    host = [jax.tree.map(lambda x: np.array(x), ckpt._keys_to_data(s)) for s in states]
    with ckpt.BackgroundSaver() as saver:
        for state in host:
            saver.save(tmp_path / "bg", state, extra={"step": int(state.step)}, keep=2)
            state.params["w"][...] = -1.0  # overwritten right after asking
    for state in states:
        ckpt.save_checkpoint(tmp_path / "sync", state, extra={"step": int(state.step)}, keep=2)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path / "bg")]
    assert names == ["ckpt_00000002.msgpack", "ckpt_00000003.msgpack"]
    for name in names:
        assert (tmp_path / "bg" / name).read_bytes() == (tmp_path / "sync" / name).read_bytes()
    assert leaves_bitwise_equal(ckpt.restore_checkpoint(tmp_path / "bg" / names[-1], make_state()), states[-1])


def test_background_saver_raises_a_writes_error_when_waited_on(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(OSError):
        with ckpt.BackgroundSaver() as saver:
            saver.save(blocker / "ckpts", make_state(1))
