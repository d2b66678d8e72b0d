"""Atomic, resumable checkpoints: one msgpack file per step, never a pickle (:mod:`scratchlm.serialization`,
flax's format).

A checkpoint holds a whole training-state pytree (params, optimizer state, step, PRNG key) plus an
``extra`` dict of plain values (data position, loop bookkeeping, model config).  It is written to a
temporary file in the same directory, flushed to disk (``fsync``) and renamed over its final name
with ``os.replace``, which is atomic on POSIX: a process killed in the middle of writing leaves
only a stray ``*.tmp<pid>`` file (:func:`scratchlm.io.atomic_write_bytes`),
never a half-written checkpoint, so the previous one stays usable.
"""

from __future__ import annotations

import concurrent.futures
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm import serialization
from scratchlm.errors import ScratchlmError
from scratchlm.io import atomic_write_bytes
from scratchlm.training import run as run_folder

_NAME = re.compile(r"^ckpt_(\d{8,})\.msgpack$")


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """``directory/ckpt_<step, 8 digits>.msgpack``: names sort in step order."""
    return Path(directory) / f"ckpt_{int(step):08d}.msgpack"


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _keys_to_data(tree):
    """Typed PRNG keys as their raw uint32 words, which msgpack can hold."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def save_checkpoint(directory: str | Path, state: Any, *, extra: dict | None = None, keep: int | None = 2) -> Path:
    """Save ``state`` (any pytree with an integer ``step`` field or attribute) and ``extra``.

    Returns the checkpoint's path.  Only the ``keep`` most recent checkpoints are kept (``None``
    keeps all); older ones are deleted after the new one is safely in place.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    step = int(state.step)
    payload = {
        "state": serialization.to_state_dict(jax.device_get(_keys_to_data(state))),
        "extra": dict(extra or {}),
    }
    path = checkpoint_path(directory, step)
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))
    if keep is not None:
        for old in list_checkpoints(directory)[:-keep]:
            old.unlink(missing_ok=True)
    run_folder.checkpoint_written(path)
    return path


class BackgroundSaver:
    """:func:`save_checkpoint` off the training thread: one write at a time, in the order asked.

    :meth:`save` copies the state to host memory before it returns (the next step may donate or
    overwrite the device buffers), then serialising, ``fsync`` and the rename run in a background
    thread while training goes on.  A save waits for the previous one, and :meth:`wait` (or leaving
    the ``with`` block, also on an error) for the last; a write's error is raised there.  Each
    checkpoint is as atomic as :func:`save_checkpoint` makes it: a kill mid-write leaves the previous one.
    """

    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="scratchlm-checkpoint")
        self._pending: concurrent.futures.Future | None = None

    def save(self, directory: str | Path, state: Any, **kwargs) -> None:
        host = jax.tree.map(lambda x: np.array(x, copy=True), jax.device_get(_keys_to_data(state)))
        self.wait()
        self._pending = self._pool.submit(save_checkpoint, directory, host, **kwargs)

    def wait(self) -> Path | None:
        """Block until the last save is on disk; its path (None if none was asked)."""
        pending, self._pending = self._pending, None
        return None if pending is None else pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first (temporary files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint with the highest step in ``directory``, or ``None`` when there is none."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def _read(path: Path) -> dict:
    try:
        return serialization.msgpack_restore(Path(path).read_bytes())
    except FileNotFoundError:
        raise ScratchlmError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # msgpack raises several unrelated types for a damaged file
        raise ScratchlmError(f"checkpoint {path} is damaged or not a scratchlm checkpoint "
                             f"({type(err).__name__}: {err})") from None


def _dtype(x) -> np.dtype:
    return np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x)


def _check_like(path: Path, restored, target) -> None:
    flat_r = jax.tree_util.tree_flatten_with_path(restored)[0]
    flat_t = jax.tree.leaves(target)
    for (where, r), t in zip(flat_r, flat_t):
        if np.shape(r) != np.shape(t) or _dtype(r) != _dtype(t):
            raise ScratchlmError(
                f"checkpoint {path} holds {jax.tree_util.keystr(where)} as {_dtype(r)}{list(np.shape(r))} "
                f"but the model expects {_dtype(t)}{list(np.shape(t))}: was it written by another configuration?"
            )


def restore_checkpoint(path: str | Path, target: Any) -> Any:
    """Read the state saved at ``path`` into the structure of ``target`` (same pytree, shapes, dtypes).

    PRNG keys come back typed when ``target``'s are.  A mismatch in structure, shape or dtype is
    reported with the leaf's path.  Read the ``extra`` dict with :func:`read_extra`.
    """
    path = Path(path)
    raw_target = _keys_to_data(target)
    try:
        restored = serialization.from_state_dict(raw_target, _read(path)["state"])
    except (ValueError, KeyError, TypeError) as err:
        raise ScratchlmError(f"checkpoint {path} does not match the training state's structure: {err}") from None
    _check_like(path, restored, raw_target)
    restored = jax.tree.map(jnp.asarray, restored)
    return jax.tree.map(
        lambda r, t: jax.random.wrap_key_data(r, impl=jax.random.key_impl(t)) if _is_key(t) else r,
        restored,
        target,
    )


def read_extra(path: str | Path) -> dict:
    """The ``extra`` dict saved with a checkpoint (data position, loop bookkeeping, configuration)."""
    return _read(Path(path)).get("extra", {})


def save_params(path: str | Path, params: Any) -> None:
    """Atomically save a params pytree alone (e.g. the best parameters seen by early stopping)."""
    atomic_write_bytes(path, serialization.msgpack_serialize(serialization.to_state_dict(jax.device_get(params))))


def load_params(path: str | Path, target: Any) -> Any:
    """Read params saved by :func:`save_params` into the structure of ``target``."""
    path = Path(path)
    restored = serialization.from_state_dict(target, _read(path))
    _check_like(path, restored, target)
    return jax.tree.map(jnp.asarray, restored)
