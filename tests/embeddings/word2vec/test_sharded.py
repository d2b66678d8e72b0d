"""sharded.py on this process's one device (a 1x1 mesh): the row-sharded step is still the objective's
gradient scattered (float64, duplicate rows; tolerance as in test_kernels.py).  Its equality with the
one-device kernels on 8 devices and 4x2 meshes, and its traffic, are tests/test_parallel.py's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm import distributed
from scratchlm.embeddings.word2vec import kernels, sharded
from tests.embeddings.word2vec.test_kernels import (
    ALPHA,
    K,
    _all_outputs,
    _assert_equal,
    _batch,
    _cbow_reference,
    _skipgram_reference,
)


@pytest.mark.parametrize("update", ["skipgram_update", "cbow_update"])
def test_sharded_step_is_vmap_of_the_objective(x64, update):
    params, context, mask, target, noise = _batch(0)
    B, J = context.shape
    mesh = distributed.make_mesh(1, 1, devices=jax.devices()[:1])
    step = sharded.make_sharded_word2vec_update(mesh, getattr(kernels, update))
    placed = distributed.shard(jax.tree.map(jnp.array, params), mesh, sharded.RULES)  # a copy: the step donates it
    got = step(placed, *map(jnp.asarray, (context, mask, target, noise)), ALPHA)
    if update == "skipgram_update":
        expected = _skipgram_reference(params, context.reshape(-1), np.repeat(target, J), np.repeat(noise, J, axis=0),
                                       mask.reshape(-1), False, _all_outputs(target, noise))
        n_terms, n_examples = B * J * (K + 2), B * J
    else:
        expected = _cbow_reference(params, context, mask, target, noise, False, _all_outputs(target, noise))
        n_terms, n_examples = B * (J + K + 1) + J, B
    _assert_equal(*got, *expected, params, n_terms=n_terms, n_examples=n_examples)
