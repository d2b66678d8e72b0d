"""The shared loop's train step on a mesh: explicit shardings, the state kept in place from step to step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from scratchlm.distributed.placement import batch_sharding, place, shard_batch
from scratchlm.distributed.rules import Rule, rules_for, shardings


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


class MeshStep:
    """A loop step ``step(state, local_batch) -> (state, metrics)`` that runs on ``mesh``.

    Wraps a step from :func:`scratchlm.training.loop.make_train_step` for
    :func:`scratchlm.training.loop.train` unchanged: the state keeps the shardings that ``rules``
    give it (:func:`shard_train_step`), each process's batch becomes its slice of the global batch
    (:func:`~scratchlm.distributed.placement.shard_batch`), and a state that arrives elsewhere — the
    loop's resume reads a checkpoint into one-device arrays — is first placed on the mesh
    (:func:`~scratchlm.distributed.placement.place`), so resuming works on any mesh shape.
    Attributes of the wrapped step (``.optimizer``) stay reachable.
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

    ``rules`` default to :func:`~scratchlm.distributed.rules.rules_for` (data parallel on ``data=N``,
    FSDP when ``model > 1``).
    """
    if mesh is None:
        return state, step
    wrapped = MeshStep(step, state, mesh, rules_for(mesh) if rules is None else rules)
    return wrapped.place(state), wrapped
