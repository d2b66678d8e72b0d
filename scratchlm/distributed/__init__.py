r"""Several devices and several hosts through JAX's own engine: meshes, partition rules, placement, the mesh
train step and multi-host helpers; generic, knowing no model.

:mod:`~scratchlm.distributed.mesh` (:func:`make_mesh`), :mod:`~scratchlm.distributed.rules` (path-pattern
partition rules), :mod:`~scratchlm.distributed.placement` (:func:`shard`, :func:`shard_batch`,
:func:`gather_to_host`), :mod:`~scratchlm.distributed.step` (:func:`on_mesh`) and
:mod:`~scratchlm.distributed.multihost` (:func:`initialize_distributed`, :func:`process_shard`,
:func:`allgather_arrays`, :func:`allgather_counts`); their public names are re-exported here.
A model declares its own rules and keeps its sharded step next to itself.

No parameter server and no process pool: a :class:`jax.sharding.Mesh` with two named axes,
``data`` (the batch is split along it) and ``model`` (parameters are split along it), and
:class:`~jax.sharding.NamedSharding` for every array.  ``jax.jit`` with in/out shardings lets XLA
insert the collectives (the gradient all-reduce of data parallelism, the all-gathers of FSDP);
the sharded embedding steps use ``jax.shard_map`` because there the communication must be explicit
to stay sparse.

**Strategies** (``--mesh``):

* ``--mesh data=8`` — data parallelism: params and optimizer state replicated, batch split over 8
  devices, gradients all-reduced by XLA (``psum`` of :math:`g = \frac1N\sum_i g_i`).
* ``--mesh data=4,model=2`` — the batch split 4 ways, every parameter and its Adam moments split 2
  ways along their largest divisible axis (FSDP / ZeRO-3 style, Rajbhandari et al. 2020): XLA
  all-gathers a weight where it is used and reduce-scatters its gradient.  :func:`fsdp_rules` can
  also shard over ``("data", "model")`` together (every device holds :math:`1/N` of the state).
* Word2Vec / GloVe (:func:`row_rules`, declared by each model): the tables :math:`v, u`
  (:math:`W, \tilde W`) split by rows (vocabulary) over ``model``, batches over ``data``;
  :func:`scratchlm.embeddings.word2vec.sharded.make_sharded_word2vec_update` and GloVe's sharded
  step move only the rows a step touches, never a table.

**Commands.**  ``scratchlm pretrain`` (``--arch bert`` and ``gpt``), ``scratchlm finetune``,
``scratchlm word2vec`` and ``scratchlm glove`` take ``--mesh`` and the multi-host flags
(:func:`scratchlm.commands.common.setup_parallel`); the first two wrap the shared loop's step with
:func:`on_mesh`, word2vec runs its sharded step inside its jitted steps, glove inside its jitted epochs.

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
(:func:`scratchlm.training.word2vec.read_corpus`, GloVe's co-occurrence reading).

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

from scratchlm.distributed.mesh import AXES, make_mesh, parse_mesh
from scratchlm.distributed.multihost import (
    allgather_arrays,
    allgather_bytes,
    allgather_counts,
    initialize_distributed,
    merge_counts,
    process_shard,
)
from scratchlm.distributed.placement import batch_sharding, divisible_batch, gather_to_host, place, shard, shard_batch
from scratchlm.distributed.rules import (
    DATA_PARALLEL_RULES,
    Largest,
    Rule,
    fsdp_rules,
    partition_specs,
    path_string,
    row_rules,
    rules_for,
    shardings,
)
from scratchlm.distributed.step import MeshStep, on_mesh, shard_train_step

__all__ = ["AXES", "DATA_PARALLEL_RULES", "Largest", "MeshStep", "Rule", "allgather_arrays", "allgather_bytes",
           "allgather_counts", "batch_sharding", "divisible_batch", "fsdp_rules", "gather_to_host",
           "initialize_distributed", "make_mesh", "merge_counts", "on_mesh", "parse_mesh", "partition_specs",
           "path_string", "place", "process_shard", "row_rules", "rules_for", "shard", "shard_batch",
           "shard_train_step", "shardings"]
