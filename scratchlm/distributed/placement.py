"""Placing pytrees and batches on a mesh, and bringing them back to the host."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from scratchlm.distributed.rules import Rule, shardings
from scratchlm.errors import ScratchlmError


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _put(x, sharding: NamedSharding):
    if jax.process_count() == 1:
        return jax.device_put(x, sharding)
    if _is_key(x):  # typed keys cross processes as their raw words
        return jax.random.wrap_key_data(_put(jax.random.key_data(x), sharding), impl=jax.random.key_impl(x))
    host = np.asarray(x)  # every process holds the same value; each places the pieces its devices own
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def shard(tree: Any, mesh: Mesh, rules: Sequence[Rule]) -> Any:
    """Place a pytree (params, a whole ``TrainState``, a restored checkpoint) on ``mesh`` by ``rules``."""
    return jax.tree.map(_put, tree, shardings(tree, rules, mesh))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Examples (the leading axis) split over ``data``, replicated over ``model``."""
    return NamedSharding(mesh, P("data"))


def shard_batch(local_batch: Any, mesh: Mesh) -> Any:
    """The global batch from each process's own examples (one process: the batch itself, split over ``data``).

    Each process passes ``[B / num_processes, ...]`` arrays; the result is ``[B, ...]`` spread over
    the mesh, with no copy between hosts.
    """
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), local_batch)


def gather_to_host(tree: Any) -> Any:
    """NumPy copies of a (possibly multi-host) sharded pytree, identical on every process (for checkpoints)."""
    from jax.experimental import multihost_utils

    def get(x):
        if _is_key(x):
            return jax.random.wrap_key_data(get(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return np.asarray(jax.device_get(x))

    return jax.tree.map(get, tree)


def place(tree: Any, target: Any) -> Any:
    """Each leaf of ``tree`` on its sharding in ``target`` (a pytree of :class:`NamedSharding`); leaves already
    there are kept as they are (no copy).  Used for a state restored from a checkpoint (host or one-device
    arrays) that must continue on a mesh."""
    return jax.tree.map(lambda x, s: x if getattr(x, "sharding", None) == s else _put(x, s), tree, target)


def divisible_batch(batch_size: int, mesh: Mesh, what: str = "--batch-size") -> int:
    """The batch each process feeds (``batch_size / process_count``), checking that ``data`` divides the batch."""
    n = mesh.shape["data"]
    if batch_size % n or batch_size % jax.process_count():
        raise ScratchlmError(f"{what} {batch_size} must be a multiple of the mesh's data axis ({n}) and of the "
                             f"number of processes ({jax.process_count()})")
    return batch_size // jax.process_count()
