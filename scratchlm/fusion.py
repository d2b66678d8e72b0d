"""A value XLA computes once and stores, where its CPU compiler would otherwise recompute it in every consumer.

Not an equation but a cost.  XLA fuses a cheap producer into each of its consumers; on CPU, for a chain of
sums (a pre-LN stack's residual gradient) or a window sum read by several products (CBOW's mean
context), that recomputes the value once per consumer.  ``lax.optimization_barrier`` would say "store
this", but XLA's CPU compiler strips barriers before it fuses; a conditional is never fused.  So on CPU
:func:`materialized` passes the value through one, both branches the identity, its predicate data so
that XLA cannot fold it away; elsewhere it is the identity.

A module of its own, below the layers: ``nn`` (:func:`scratchlm.nn.transformer.stored_gradient`, and
:func:`scratchlm.nn.functional.matmul` for the transposed activations a weight's gradient reads) and
``embeddings`` (CBOW's kernel) both use it, and neither may import the other.
"""

from __future__ import annotations

import jax


def materialized(x: jax.Array) -> jax.Array:
    """``x``, computed once into a buffer of its own (on CPU through a conditional, which XLA never fuses)."""
    if x.size == 0:  # nothing to store, and no element to test
        return x

    def through_a_conditional(x):  # the predicate is data, so XLA cannot fold the conditional away
        first = x.ravel()[0]
        return jax.lax.cond(first == first, lambda x: x, lambda x: x + 0, x)

    return jax.lax.platform_dependent(x, cpu=through_a_conditional, default=lambda x: x)
