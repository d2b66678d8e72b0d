r"""Partition rules: which leaf of a pytree is split over which mesh axes, found by its path.

A rule is ``(pattern, target)``: the first rule whose regular expression is found in a leaf's path
(``"opt_state/0/mu/encoder/layer/3/attention/self/query/weight"``) gives its
:class:`~jax.sharding.PartitionSpec`; no match means replicated (``P()``).  The rules here know no
model: :func:`fsdp_rules` (every leaf along its largest divisible axis) and :func:`row_rules` (named
tables by rows); a model declares its own rules next to itself (Word2Vec's
:data:`scratchlm.embeddings.word2vec.sharded.RULES`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from scratchlm.errors import ScratchlmError


@dataclasses.dataclass(frozen=True)
class Largest:
    """A rule's target: split the leaf's largest axis divisible by the mesh axes' size over ``axes`` (FSDP)."""

    axes: str | tuple[str, ...] = "model"


Rule = tuple[str, "P | Largest"]  # (regular expression searched in the leaf's path "a/b/0/c", its spec)

#: Data parallelism: everything replicated (no rule matches; the default is ``P()``).
DATA_PARALLEL_RULES: tuple[Rule, ...] = ()


def fsdp_rules(axes: str | tuple[str, ...] = "model") -> tuple[Rule, ...]:
    """Every leaf (params and the optimizer moments that mirror them) split along its largest axis."""
    return ((r".*", Largest(axes)),)


def row_rules(names: Sequence[str], axes: str | tuple[str, ...] = "model") -> tuple[Rule, ...]:
    """The leaves named ``names`` (the last part of their path: a table and the optimizer moments that
    mirror it) split by rows over ``axes``; everything else replicated.  Embedding tables use it."""
    return ((r"(^|/)(" + "|".join(re.escape(n) for n in names) + r")$", P(axes)),)


def rules_for(mesh: Mesh) -> tuple[Rule, ...]:
    """What ``--mesh`` selects for a dense model: FSDP over ``model`` if it has size > 1, else data parallel."""
    return fsdp_rules("model") if mesh.shape["model"] > 1 else DATA_PARALLEL_RULES


def path_names(path) -> list[str]:
    """The names along a pytree path (dict keys, attribute names, sequence indices), as strings."""
    names = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                names.append(str(getattr(entry, attr)))
                break
    return names


def path_string(path) -> str:
    """A pytree path as ``"opt_state/0/mu/encoder/layer/3/attention/self/query/weight"``."""
    return "/".join(path_names(path))


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
