r"""GloVe's minibatch step over a device mesh: the tables split by rows, the minibatch split by entries.

The row-sharded form of :func:`scratchlm.embeddings.glove.kernels.row_update`, itself the fast form
of the objective's :func:`~scratchlm.embeddings.glove.objective.entry_gradients` summed per row:
each device computes ``jax.vmap(entry_gradients)`` of its own entries, and the per-row sums are
``psum`` ed over ``data``.  ``tests/embeddings/glove/test_kernels.py`` checks the per-row gradient
against the objective in float64; ``tests/test_parallel_glove.py`` checks the step on 8 host devices
against the one-device step.  The mesh, placement and multi-host helpers are generic
(:mod:`scratchlm.distributed`); what is GloVe's is here: its partition rules and its step.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from scratchlm.distributed.rules import partition_specs, row_rules
from scratchlm.embeddings.glove.kernels import _is_params, unique_rows
from scratchlm.embeddings.glove.objective import ROW_OF, entry_gradients

#: ``W, b, W̃, b̃`` and the AdaGrad accumulators that mirror them: rows (the vocabulary) over ``model``.
PARTITION_RULES = row_rules(("W", "W_tilde", "b", "b_tilde"))


def make_sharded_glove_update(mesh: Mesh, optimizer, *, entrywise: bool = False) -> Callable:
    r"""GloVe's AdaGrad row step over row-sharded tables: ``(params, opt_state, (i, j, log_x, f))`` ->
    ``(params, opt_state, cost)``.

    The sharded form of :func:`scratchlm.embeddings.glove.kernels.row_update` (Pennington et al. 2014, §4.2):
    ``params`` (:math:`W, b, \tilde W, \tilde b`) and the AdaGrad accumulators :math:`G` that mirror
    them are split by rows over ``model`` (:data:`PARTITION_RULES`), the minibatch of non-zeros over
    ``data``.  Per step and device:

    1. the global minibatch's ids (``all_gather`` over ``data``, :math:`2B` integers) give the
       unique rows :math:`\mathcal R` it touches, the same on every device;
    2. *lookup*: the rows of :math:`\mathcal R` each model shard owns, zeros elsewhere, ``psum`` over
       ``model``: :math:`w_r = \sum_m [r \in m]\, w^{(m)}_r`, exact;
    3. each device's own entries give :func:`~scratchlm.embeddings.glove.objective.entry_gradients`, summed per
       row of :math:`\mathcal R` and ``psum`` ed over ``data``:
       :math:`\nabla_{w_r} J = \sum_{d} \sum_{e \in d,\, i_e = r} 2 f(X_e)\,\delta_e\,\tilde w_{j_e}`
       (and :math:`\sum_e (\nabla J_e)^2` when ``entrywise``);
    4. AdaGrad (``optimizer``, :func:`~scratchlm.embeddings.glove.kernels.make_optimizer`) on those rows,
       :math:`G_r \leftarrow G_r + (\nabla_r J)^2,\ \theta_r \leftarrow \theta_r - \nabla_r J / \sqrt{G_r}`,
       each device reading and writing :math:`G_r, \theta_r` only for the rows it owns.

    Traffic per device and step: :math:`O(\min(B, V)\,D)` floats, independent of :math:`V` once
    :math:`V > B`; no table is ever gathered.  Equal to the one-device step up to the order in which
    a row's entry gradients (and the cost) are summed.  Returns the jitted step.
    """

    def local(params, opt_state, i, j, log_x, f):
        rows_per, b = params["W"].shape[0], i.shape[0]
        lo = jax.lax.axis_index("model") * rows_per  # first row this device owns
        V = rows_per * mesh.shape["model"]
        ids = {"i": jax.lax.all_gather(i, "data", tiled=True), "j": jax.lax.all_gather(j, "data", tiled=True)}  # [B]
        size = min(ids["i"].shape[0], V)
        seg_uniq = {r: unique_rows(x, size, fill=V) for r, x in ids.items()}  # padding slots: row V, owned by none
        mine = {r: (u - lo >= 0) & (u - lo < rows_per) for r, (_, u) in seg_uniq.items()}
        at = {r: jnp.where(mine[r], u - lo, rows_per) for r, (_, u) in seg_uniq.items()}  # rows_per: out of bounds
        own_rows = lambda t: {k: v.at[at[ROW_OF[k]]].get(mode="clip") for k, v in t.items()}  # noqa: E731
        scatter = lambda t, new: {k: v.at[at[ROW_OF[k]]].set(new[k], mode="drop") for k, v in t.items()}  # noqa: E731

        def lookup(name, shard):  # rows of the full table, [size, ...]
            m = mine[ROW_OF[name]].reshape((-1,) + (1,) * (shard.ndim - 1))
            return jax.lax.psum(jnp.where(m, shard.at[at[ROW_OF[name]]].get(mode="clip"), 0.0), "model")

        p_u = {k: lookup(k, v) for k, v in params.items()}
        # accumulators only where this device writes: the other slots' results are dropped
        s_u = jax.tree.map(lambda t: own_rows(t) if _is_params(t) else t, opt_state, is_leaf=_is_params)
        start = jax.lax.axis_index("data") * b
        seg = {r: jax.lax.dynamic_slice_in_dim(s, start, b) for r, (s, _) in seg_uniq.items()}  # this shard's entries
        p_e = {k: v[seg[ROW_OF[k]]] for k, v in p_u.items()}
        cost, g = jax.vmap(entry_gradients)(p_e["W"], p_e["b"], p_e["W_tilde"], p_e["b_tilde"], log_x, f)

        def row_sums(terms):  # per unique row, over the global minibatch: [size, ...]
            return {k: jax.lax.psum(jax.ops.segment_sum(v, seg[ROW_OF[k]], num_segments=size), "data")
                    for k, v in terms.items()}

        extra = {"squared_grads": row_sums(jax.tree.map(jnp.square, g))} if entrywise else {}
        updates, s_u = optimizer.update(row_sums(g), s_u, p_u, **extra)
        params = scatter(params, optax.apply_updates(p_u, updates))
        opt_state = jax.tree.map(lambda t, new: scatter(t, new) if _is_params(t) else new, opt_state, s_u,
                                 is_leaf=_is_params)
        return params, opt_state, jax.lax.psum(jnp.sum(cost), "data")

    def step(params, opt_state, batch):
        p_spec, s_spec = partition_specs((params, opt_state), PARTITION_RULES, mesh)
        batch_spec = (P("data"),) * 4
        sharded = jax.shard_map(local, mesh=mesh, in_specs=(p_spec, s_spec, *batch_spec),
                                out_specs=(p_spec, s_spec, P()), check_vma=False)  # psum'ed rows are replicated
        return sharded(params, opt_state, *batch)

    return jax.jit(step, donate_argnums=(0, 1))
