r"""Word2Vec on a device mesh: its partition rules and its row-sharded SGD step.

The tables :math:`v, u` are split by rows (the vocabulary) over the mesh's ``model`` axis
(:data:`RULES`), each step's centre words over ``data``; :func:`make_sharded_word2vec_update` moves
only the rows a step touches, never a table.  The mesh, the placement and the multi-host helpers are
generic (:mod:`scratchlm.distributed`).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from scratchlm.distributed.rules import Rule, row_rules

#: Word2Vec's ``v`` and ``u``: rows (the vocabulary) over ``model``; everything else replicated.
RULES: tuple[Rule, ...] = row_rules(("v", "u"))


def make_sharded_word2vec_update(mesh: Mesh, update: Callable, *, normalize_duplicates: bool = False) -> Callable:
    r"""A Word2Vec SGD step over row-sharded tables: ``(params, context, context_mask, target, noise, alpha)``.

    ``update`` is :func:`~scratchlm.embeddings.word2vec.kernels.skipgram_update` or
    :func:`~scratchlm.embeddings.word2vec.kernels.cbow_update`; ``params`` are sharded by :data:`RULES`
    (device :math:`(d, m)` holds rows :math:`[mV/M, (m+1)V/M)` of :math:`v` and :math:`u`), the batch
    over ``data``.  Per step and device:

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
