r"""Several devices and several hosts through JAX's own engine: a mesh, partition rules, sharded steps.

No parameter server and no process pool: a :class:`jax.sharding.Mesh` with two named axes,
``data`` (the batch is split along it) and ``model`` (parameters are split along it), and
:class:`~jax.sharding.NamedSharding` for every array.  ``jax.jit`` with in/out shardings lets XLA
insert the collectives (the gradient all-reduce of data parallelism, the all-gathers of FSDP);
the sharded Word2Vec step uses ``jax.shard_map`` because there the communication must be explicit
to stay sparse.

**Strategies** (``--mesh``):

* ``--mesh data=8`` — data parallelism: params and optimizer state replicated, batch split over 8
  devices, gradients all-reduced by XLA (``psum`` of :math:`g = \frac1N\sum_i g_i`).
* ``--mesh data=4,model=2`` — the batch split 4 ways, every parameter and its Adam moments split 2
  ways along their largest divisible axis (FSDP / ZeRO-3 style, Rajbhandari et al. 2020): XLA
  all-gathers a weight where it is used and reduce-scatters its gradient.  :func:`fsdp_rules` can
  also shard over ``("data", "model")`` together (every device holds :math:`1/N` of the state).
* Word2Vec / GloVe (:data:`EMBEDDING_RULES`): the tables :math:`v, u` (:math:`W, \tilde W`) split
  by rows (vocabulary) over ``model``, batches over ``data``; :func:`make_sharded_word2vec_update`
  and :func:`make_sharded_glove_update` move only the rows a step touches, never a table.

**Commands.**  ``scratchlm pretrain``, ``scratchlm finetune``, ``scratchlm word2vec`` and
``scratchlm glove`` take ``--mesh`` and the multi-host flags (:func:`setup`); the first two wrap the
shared loop's step with :func:`on_mesh`, word2vec runs :func:`make_sharded_word2vec_update` inside
its jitted steps, glove :func:`make_sharded_glove_update` inside its jitted epochs.

**Checkpoints** are written from host arrays (:func:`gather_to_host`, then
:func:`scratchlm.training.checkpoint.save_checkpoint` on process 0) and restored onto any mesh:
``restore_checkpoint(path, target)`` then :func:`shard` with the new mesh's rules.

**Multi-host launch.**  One JAX process per host (GPU: per node, seeing all its local GPUs; TPU:
per TPU VM host); every process runs the *same* command and sees the *global* device list after
:func:`initialize_distributed`; a mesh over ``jax.devices()`` then spans all hosts, and each
process feeds only its own slice of the batch (:func:`process_shard` for the corpus,
:func:`shard_batch` to assemble the global batch from the per-process pieces).  Word2Vec and GloVe
read their corpus share by share too: each process counts the words of its share and
:func:`allgather_counts` sums them, so every process cuts the same vocabulary; each encodes (Word2Vec)
or counts the co-occurrences of (GloVe) its share, and :func:`allgather_arrays` gathers the pieces
(``scratchlm.commands.word2vec.read_corpus``, ``scratchlm.commands.glove.read_cooccurrences``).

GPU cluster (e.g. 4 nodes × 8 GPUs, the coordinator on node 0, any free TCP port)::

    # on node i = 0..3 (by hand, by pdsh, or by SLURM: srun --ntasks-per-node=1 ...)
    scratchlm pretrain ... --mesh data=32 \
        --coordinator node0:12345 --num-processes 4 --process-id $i
    # FSDP for a model that does not fit one GPU: --mesh data=4,model=8 (model inside a node: NVLink)

Under SLURM or Open MPI the three flags may be left out: ``jax.distributed.initialize()`` reads
them from the environment (``SLURM_*`` / ``OMPI_*``).  Put the ``model`` axis inside a node (the
mesh's last axis varies fastest over ``jax.devices()``, which lists a host's devices together), so
FSDP's all-gathers run over NVLink and only the data-parallel all-reduce crosses the network.

TPU pod slice (e.g. v4-64: 8 hosts × 4 chips) — the same command on every host, no flags: on a
Cloud TPU VM ``jax.distributed.initialize()`` discovers coordinator, process count and id itself::

    gcloud compute tpus tpu-vm ssh my-pod --worker=all \
        --command="scratchlm pretrain ... --mesh data=8,model=4"

CPU (tests, laptops): ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` gives 8 host devices;
several CPU processes talk through gloo (:func:`initialize_distributed` selects it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from scratchlm.errors import ScratchlmError

AXES = ("data", "model")


# ------------------------------------------------------------------------------------------- the mesh


def parse_mesh(text: str) -> dict[str, int]:
    """``"data=4,model=2"`` -> ``{"data": 4, "model": 2}`` (missing axes are filled in by :func:`make_mesh`)."""
    sizes: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or name not in AXES or not value.strip().isdigit() or int(value) < 1:
            raise ScratchlmError(f"--mesh expects axis=size pairs over {AXES} like 'data=4,model=2'; got {text!r} "
                                 f"(bad part {part!r})")
        if name in sizes:
            raise ScratchlmError(f"--mesh names axis {name!r} twice in {text!r}")
        sizes[name] = int(value)
    return sizes


def make_mesh(data: int | None = None, model: int = 1, *, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(data, model)`` mesh over ``devices`` (default: every device of every process).

    ``data`` defaults to ``len(devices) // model``.  The ``model`` axis varies fastest, so its
    devices are neighbours in ``jax.devices()`` order (the same host, NVLink or ICI).
    """
    devices = list(jax.devices() if devices is None else devices)
    if data is None:
        data = len(devices) // model
    if data < 1 or model < 1 or data * model > len(devices):
        raise ScratchlmError(f"a mesh data={data} x model={model} needs {data * model} devices; "
                             f"{len(devices)} available ({devices[0].platform})")
    return Mesh(np.array(devices[: data * model]).reshape(data, model), AXES)


# ------------------------------------------------------------------------------------------ the rules


@dataclasses.dataclass(frozen=True)
class Largest:
    """A rule's target: split the leaf's largest axis divisible by the mesh axes' size over ``axes`` (FSDP)."""

    axes: str | tuple[str, ...] = "model"


Rule = tuple[str, "P | Largest"]  # (regular expression searched in the leaf's path "a/b/0/c", its spec)

#: Word2Vec's ``v``/``u`` and GloVe's ``W``/``W_tilde``/``b``/``b_tilde``: rows (the vocabulary) over ``model``.
EMBEDDING_RULES: tuple[Rule, ...] = ((r"(^|/)(v|u|W|W_tilde|b|b_tilde)$", P("model")),)
#: Data parallelism: everything replicated (no rule matches; the default is ``P()``).
DATA_PARALLEL_RULES: tuple[Rule, ...] = ()


def fsdp_rules(axes: str | tuple[str, ...] = "model") -> tuple[Rule, ...]:
    """Every leaf (params and the optimizer moments that mirror them) split along its largest axis."""
    return ((r".*", Largest(axes)),)


def rules_for(mesh: Mesh, *, embedding: bool = False) -> tuple[Rule, ...]:
    """What ``--mesh`` selects: embedding tables by rows, else FSDP over ``model`` if it has size > 1, else DP."""
    if embedding:
        return EMBEDDING_RULES
    return fsdp_rules("model") if mesh.shape["model"] > 1 else DATA_PARALLEL_RULES


def path_string(path) -> str:
    """A pytree path as ``"opt_state/0/mu/encoder/layer/3/attention/self/query/weight"``."""
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
    return "/".join(names)


def _axes_size(mesh: Mesh, axes) -> int:
    return int(np.prod([mesh.shape[a] for a in ((axes,) if isinstance(axes, str) else axes)]))


def _spec(path: str, shape: tuple[int, ...], rules: Sequence[Rule], mesh: Mesh) -> P:
    for pattern, target in rules:
        if not re.search(pattern, path):
            continue
        if isinstance(target, Largest):
            n = _axes_size(mesh, target.axes)
            for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):  # largest first, ties: first axis
                if shape[axis] >= n and shape[axis] % n == 0:
                    return P(*([None] * axis), target.axes)
            return P()  # scalars, and leaves too small to split: replicated
        for axis, axes in enumerate(target):
            if axes is not None and (axis >= len(shape) or shape[axis] % _axes_size(mesh, axes)):
                raise ScratchlmError(f"rule {pattern!r} splits axis {axis} of {path} {list(shape)} over {axes!r} "
                                     f"(size {_axes_size(mesh, axes)}), which does not divide it; pad the vocabulary "
                                     f"to a multiple of the mesh")
        return target
    return P()


def partition_specs(tree: Any, rules: Sequence[Rule], mesh: Mesh) -> Any:
    """The :class:`PartitionSpec` of every leaf: the first rule whose pattern is found in its path, else ``P()``."""
    return jax.tree_util.tree_map_with_path(lambda p, x: _spec(path_string(p), np.shape(x), rules, mesh), tree)


def shardings(tree: Any, rules: Sequence[Rule], mesh: Mesh) -> Any:
    """:func:`partition_specs` as :class:`NamedSharding` s on ``mesh``."""
    return jax.tree.map(lambda s: NamedSharding(mesh, s), partition_specs(tree, rules, mesh),
                        is_leaf=lambda s: isinstance(s, P))


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


# ------------------------------------------------------------------------------------- sharded steps


def shard_train_step(step: Callable, state_shardings: Any, mesh: Mesh) -> Callable:
    """``step(state, batch)`` (from :func:`scratchlm.training.loop.make_train_step`) jitted with explicit shardings.

    The state keeps ``state_shardings`` from one step to the next (no drift, no recompilation) and
    is donated; the batch is split over ``data``.  XLA derives the collectives: for replicated
    params the gradient all-reduce, for FSDP the all-gather of each weight and the reduce-scatter
    of its gradient.
    """
    leaves, treedef = jax.tree.flatten(state_shardings)
    cache_key = (step, treedef, tuple(leaves), mesh)
    if cache_key not in _SHARDED_STEPS:  # k folds of fine-tuning, or a resumed run: one compilation
        if len(_SHARDED_STEPS) >= 8:
            _SHARDED_STEPS.pop(next(iter(_SHARDED_STEPS)))
        _SHARDED_STEPS[cache_key] = jax.jit(
            lambda state, batch: step(state, batch), in_shardings=(state_shardings, batch_sharding(mesh)),
            out_shardings=(state_shardings, NamedSharding(mesh, P())), donate_argnums=0)
    return _SHARDED_STEPS[cache_key]


_SHARDED_STEPS: dict = {}


def make_sharded_word2vec_update(mesh: Mesh, update: Callable, *, normalize_duplicates: bool = False) -> Callable:
    r"""A Word2Vec SGD step over row-sharded tables: ``(params, context, context_mask, target, noise, alpha)``.

    ``update`` is :func:`scratchlm.embeddings.word2vec.skipgram_update` or ``cbow_update``;
    ``params`` are sharded by :data:`EMBEDDING_RULES` (device :math:`(d, m)` holds rows
    :math:`[mV/M, (m+1)V/M)` of :math:`v` and :math:`u`), the batch over ``data``.  Per step and device:

    1. *lookup*: each model shard reads the rows it owns for its data shard's ids (zeros elsewhere),
       and ``psum`` over ``model`` assembles them: :math:`v_{c} = \sum_m [c \in m]\, v^{(m)}_{c}`,
       exact, since all but one term are zero;
    2. ``update`` runs on the gathered rows as if they were the tables (ids renumbered to row
       positions, a noise word equal to its target keeps pointing at the target's row, so the
       skip rule sees the same equalities);
    3. *write*: the row changes :math:`\Delta = v' - v` of all data shards are ``all_gather`` ed over
       ``data`` and each device adds those of its own rows (``normalize_duplicates`` divides a row's
       summed change by :math:`\sqrt{m}`, :math:`m` its occurrences in the global batch).

    Traffic per device and step: :math:`O(B (J + K + 1) D)` floats, independent of :math:`V`; no
    table is ever gathered.  Equal to the one-device step up to the order in which duplicate rows'
    updates are summed.  Returns the jitted step ``-> (params, summed loss, pairs)``.
    """
    table_spec, batch_spec = P("model"), P("data")

    def local(params, context, context_mask, target, noise, alpha):
        rows_per = params["v"].shape[0]
        lo = jax.lax.axis_index("model") * rows_per  # first row this device owns

        def owned(ids):
            i = ids - lo
            return (i >= 0) & (i < rows_per), i

        def lookup(table, ids):  # table[ids] of the full table, from the row shards
            mine, i = owned(ids)
            rows = jnp.where(mine[..., None], table[jnp.where(mine, i, 0)], 0.0)
            return jax.lax.psum(rows, "model")

        def write(table, ids, delta):  # table[ids] += delta for the global batch's rows this device owns
            ids = jax.lax.all_gather(ids.reshape(-1), "data", tiled=True)  # [B J]
            delta = jax.lax.all_gather(delta, "data", tiled=True)  # [B J, D]
            mine, i = owned(ids)
            i = jnp.where(mine, i, rows_per)  # rows_per is out of bounds: dropped below
            if normalize_duplicates:
                m = jnp.zeros(rows_per, delta.dtype).at[i].add(1.0, mode="drop")
                delta = delta * jax.lax.rsqrt(jnp.maximum(m.at[i].get(mode="fill", fill_value=1.0), 1.0))[:, None]
            return table.at[i].add(delta, mode="drop")

        b, J = context.shape
        out = jnp.concatenate([target[:, None], noise], axis=1)  # [b, K+1]
        v_c = lookup(params["v"], context).reshape(b * J, -1)  # [b J, D]
        u_out = lookup(params["u"], out).reshape(out.size, -1)  # [b (K+1), D]
        c_idx = jnp.arange(b * J, dtype=jnp.int32).reshape(b, J)
        o_idx = jnp.arange(out.size, dtype=jnp.int32).reshape(out.shape)
        n_idx = jnp.where(noise == target[:, None], o_idx[:, :1], o_idx[:, 1:])
        new, loss, pairs = update({"v": v_c, "u": u_out}, c_idx, context_mask, o_idx[:, 0], n_idx, alpha)
        # fl(fl(x + y) - x) is exact (Sterbenz), so a row that occurs once ends bit-identical
        params = {"v": write(params["v"], context, new["v"] - v_c), "u": write(params["u"], out, new["u"] - u_out)}
        return params, jax.lax.psum(loss, "data"), jax.lax.psum(pairs, "data")

    tables = {"v": table_spec, "u": table_spec}
    step = jax.shard_map(local, mesh=mesh, in_specs=(tables, batch_spec, batch_spec, batch_spec, batch_spec, P()),
                         out_specs=(tables, P(), P()), check_vma=False)  # all_gather'ed rows are replicated
    return jax.jit(step, donate_argnums=0)


def place(tree: Any, target: Any) -> Any:
    """Each leaf of ``tree`` on its sharding in ``target`` (a pytree of :class:`NamedSharding`); leaves already
    there are kept as they are (no copy).  Used for a state restored from a checkpoint (host or one-device
    arrays) that must continue on a mesh."""
    return jax.tree.map(lambda x, s: x if getattr(x, "sharding", None) == s else _put(x, s), tree, target)


def divisible_batch(batch_size: int, mesh: Mesh, what: str = "--batch") -> int:
    """The batch each process feeds (``batch_size / process_count``), checking that ``data`` divides the batch."""
    n = mesh.shape["data"]
    if batch_size % n or batch_size % jax.process_count():
        raise ScratchlmError(f"{what} {batch_size} must be a multiple of the mesh's data axis ({n}) and of the "
                             f"number of processes ({jax.process_count()})")
    return batch_size // jax.process_count()


class MeshStep:
    """A loop step ``step(state, local_batch) -> (state, metrics)`` that runs on ``mesh``.

    Wraps a step from :func:`scratchlm.training.loop.make_train_step` for
    :func:`scratchlm.training.loop.train` unchanged: the state keeps the shardings that ``rules``
    give it (:func:`shard_train_step`), each process's batch becomes its slice of the global batch
    (:func:`shard_batch`), and a state that arrives elsewhere — the loop's resume reads a checkpoint
    into one-device arrays — is first placed on the mesh (:func:`place`), so resuming works on any
    mesh shape.  Attributes of the wrapped step (``.optimizer``) stay reachable.
    """

    def __init__(self, step: Callable, state: Any, mesh: Mesh, rules: Sequence[Rule]):
        self.inner, self.mesh, self.rules = step, mesh, tuple(rules)
        self.state_shardings = shardings(state, self.rules, mesh)
        self.sharded = shard_train_step(step, self.state_shardings, mesh)
        self._last = None

    def place(self, state: Any) -> Any:
        return place(state, self.state_shardings)

    def __call__(self, state, batch):
        if state is not self._last:  # the loop hands back what the step returned: nothing to check then
            state = self.place(state)
        self._last, metrics = self.sharded(state, shard_batch(batch, self.mesh))
        return self._last, metrics

    def __getattr__(self, name):  # e.g. finetune's step.optimizer
        return getattr(self.inner, name)


def on_mesh(step: Callable, state: Any, mesh: Mesh | None, rules: Sequence[Rule] | None = None) -> tuple[Any, Callable]:
    """``(state, step)`` ready for the loop on ``mesh`` (unchanged when ``mesh`` is None).

    ``rules`` default to :func:`rules_for` (data parallel on ``data=N``, FSDP when ``model > 1``).
    """
    if mesh is None:
        return state, step
    wrapped = MeshStep(step, state, mesh, rules_for(mesh) if rules is None else rules)
    return wrapped.place(state), wrapped


# ---------------------------------------------------------------------------------------- multi-host


def initialize_distributed(coordinator: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None, *, timeout_s: int = 300) -> None:
    """``jax.distributed.initialize`` before any other JAX call; on CPU, collectives over gloo.

    With all three arguments ``None`` JAX detects them (SLURM, Open MPI, Cloud TPU).  ``timeout_s``
    bounds the wait for the other processes, so a missing host fails loudly instead of hanging.
    """
    if coordinator is not None and (num_processes is None or process_id is None):
        raise ScratchlmError("--coordinator needs --num-processes and --process-id")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ScratchlmError(f"--process-id must be in [0, {num_processes}), got {process_id}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # used only by the CPU backend
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
                               initialization_timeout=timeout_s, heartbeat_timeout_seconds=timeout_s,
                               shutdown_timeout_seconds=timeout_s)


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


def add_arguments(parser) -> None:
    """``--mesh``, ``--coordinator``, ``--num-processes``, ``--process-id`` for a training command."""
    from scratchlm.cli import add_parallel_arguments

    add_parallel_arguments(parser)


def setup(args) -> Mesh | None:
    """From parsed :func:`add_arguments` flags: initialise multi-host JAX if asked, and build the mesh (or None).

    Call it before any other JAX call of the command.  A namespace without the flags (a demo step
    building its own) means one device.  Multi-host without ``--mesh`` puts every device of every
    process on ``data``.
    """
    coordinator, count = getattr(args, "coordinator", None), getattr(args, "num_processes", None)
    if coordinator is not None or count is not None:
        if not jax.distributed.is_initialized():
            initialize_distributed(coordinator, count, getattr(args, "process_id", None))
    spec = getattr(args, "mesh", None)
    if spec is None:
        return make_mesh() if jax.process_count() > 1 else None
    return make_mesh(**parse_mesh(spec))
