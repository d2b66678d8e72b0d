"""Random parameter pytrees for tests, drawn by NumPy in the shapes a model's own ``init`` gives.

``jax.eval_shape`` reads the shapes without compiling anything; NumPy fills them.  Drawing with JAX
instead would compile a random kernel for every new shape (about half a second each on a 2-core CPU,
the bulk of the encoder tests' time before).  Every leaf is non-trivial, which suits tests better
than an initialisation does: biases are N(0, std^2) instead of 0 and layer-norm gains
1 + N(0, std^2) instead of 1, so a missing bias or a misplaced layer norm shows in the outputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def random_params(init, *args, seed: int = 0, std: float = 0.3):
    """``init(key, *args)``'s pytree (structure, shapes, dtypes) with NumPy-drawn values."""
    template = jax.eval_shape(lambda: init(jax.random.key(0), *args))
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        noise = std * rng.standard_normal(leaf.shape)
        names = [str(getattr(p, "key", getattr(p, "idx", ""))) for p in path]
        gain = "LayerNorm" in names and names[-1] == "weight"
        return jnp.asarray(1.0 + noise if gain else noise, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, template)
