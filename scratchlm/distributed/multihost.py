"""Several hosts: starting JAX's distributed runtime, each process's share of the corpus, gathering
what the processes computed (bytes, NumPy arrays, word counts) through JAX's own collectives."""

from __future__ import annotations

import os
from collections.abc import Sequence

import jax
import numpy as np

from scratchlm.errors import ScratchlmError


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, *, timeout_s: int = 300) -> None:
    """``jax.distributed.initialize`` before any other JAX call; on CPU, collectives over gloo.

    With all three arguments ``None`` JAX detects them (SLURM, Open MPI, Cloud TPU).  ``timeout_s``
    bounds the wait for the other processes, so a missing host fails loudly instead of hanging.
    Process 0 runs the coordination service on ``coordinator``'s address only
    (:func:`coordinator_bind_address`), not on every interface as JAX does by default.
    """
    if coordinator is not None and (num_processes is None or process_id is None):
        raise ScratchlmError("--coordinator needs --num-processes and --process-id")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ScratchlmError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    bind = None if coordinator is None else coordinator_bind_address(coordinator)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # used only by the CPU backend
    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                                   process_id=process_id, initialization_timeout=timeout_s,
                                   heartbeat_timeout_seconds=timeout_s, shutdown_timeout_seconds=timeout_s,
                                   coordinator_bind_address=bind)
    except ValueError as err:  # JAX found no cluster to read the missing ones from (SLURM, Open MPI, Cloud TPU)
        raise ScratchlmError(f"cannot start the processes ({err}): give --coordinator HOST:PORT, --num-processes and "
                             "--process-id, or run under a cluster manager JAX reads them from") from None


def coordinator_bind_address(coordinator: str, environ=os.environ) -> str:
    """Where process 0's coordination service listens: ``--coordinator HOST:PORT`` itself.

    ``jax.distributed.initialize`` binds the service to ``[::]:PORT`` (every interface) unless told
    otherwise, so any machine that can reach the host could join the job or disturb it.  Binding to
    HOST keeps it on the interface the other processes were told to use (``127.0.0.1:PORT`` for one
    machine).  ``JAX_COORDINATOR_BIND_ADDRESS``, when set, is the user's explicit choice and wins.
    """
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ScratchlmError(f"--coordinator must be HOST:PORT with a port in 1..65535, got {coordinator!r}")
    return environ.get("JAX_COORDINATOR_BIND_ADDRESS") or coordinator


def process_shard(items: Sequence, index: int | None = None, count: int | None = None) -> Sequence:
    """This process's contiguous share of the corpus: ``items[i N / P : (i+1) N / P]``.

    Shares differ in size by at most one item; every item belongs to exactly one process.
    """
    index = jax.process_index() if index is None else index
    count = jax.process_count() if count is None else count
    if not 0 <= index < count:
        raise ScratchlmError(f"process index {index} outside [0, {count})")
    n = len(items)
    return items[index * n // count:(index + 1) * n // count]


def allgather_bytes(data: bytes) -> list[bytes]:
    """Every process's ``data``, in process order, through JAX's own collective (``process_allgather``).

    The bytes travel as a uint8 array padded to the longest process's length (lengths first, as int32:
    at most 2 GiB a process).  One process: ``[data]``, with no collective.
    """
    if jax.process_count() == 1:
        return [bytes(data)]
    from jax.experimental import multihost_utils

    lengths = np.asarray(multihost_utils.process_allgather(np.array([len(data)], np.int32))).reshape(-1)
    buffer = np.zeros(max(int(lengths.max()), 1), np.uint8)
    buffer[: len(data)] = np.frombuffer(data, np.uint8)
    everything = np.asarray(multihost_utils.process_allgather(buffer))  # [P, longest]
    return [everything[p, : int(n)].tobytes() for p, n in enumerate(lengths)]


def allgather_arrays(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Every process's dict of NumPy arrays (any dtypes and lengths), in process order.

    Sent as ``.npz`` bytes and read back with ``allow_pickle=False``: int64 and float64 keep their
    width, which a JAX array would not without x64.
    """
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    out = []
    for blob in allgather_bytes(buffer.getvalue()):
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            out.append({k: npz[k] for k in npz.files})
    return out


def merge_counts(shares: Sequence[dict[str, int]]) -> dict[str, int]:
    """Word counts of consecutive shares of a corpus, summed; a word's place is its first appearance.

    Merged in share order, so ties in a vocabulary sorted by count fall as they would over the
    whole corpus read share after share (:func:`process_shard` gives contiguous shares).
    """
    import collections

    merged: collections.Counter[str] = collections.Counter()
    for share in shares:
        merged.update(share)  # adds counts; a new word goes last
    return merged


def allgather_counts(counts: dict[str, int]) -> dict[str, int]:
    """The word counts of every process's share of a corpus, summed (:func:`merge_counts` in process order)."""
    import json

    blobs = allgather_bytes(json.dumps(list(counts.items())).encode("utf-8"))
    return merge_counts([dict(json.loads(blob.decode("utf-8"))) for blob in blobs])
