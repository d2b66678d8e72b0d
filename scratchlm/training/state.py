"""The training state every loop carries: a frozen dataclass that is a JAX pytree (it passes through ``jit``
whole) and has a msgpack form (:mod:`scratchlm.serialization`), so a checkpoint holds it field by field.

It lives apart from :mod:`scratchlm.training.loop` so that a recipe with its own step (Word2Vec, GloVe) uses
it without importing optax and the loop.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from scratchlm import serialization


@serialization.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything that changes during training; a pytree, so it passes through ``jit`` whole."""

    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: the number of updates applied so far
    key: jax.Array  # the run's PRNG key; step t uses fold_in(key, t)
    # State a loss hands from one step to the next (the GRU LM's hidden state under truncated BPTT,
    # see make_train_step(carry=True)); checkpointed with the rest, so a resume continues it exactly.
    carry: Any = None

    def replace(self, **updates) -> TrainState:
        """A copy with ``updates`` (field name -> value) in place of those fields."""
        return dataclasses.replace(self, **updates)
