"""The shared next-token sampler: support of top-k and nucleus draws, the tempered distribution, greedy."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.nn import sampling


@jax.jit
def _vmapped_sample(logits, keys, temperature, top_k, top_p):
    def one(key):
        return sampling.sample_logits(logits, key, temperature=temperature, top_k=top_k, top_p=top_p)

    return jax.vmap(one)(keys)


def _sample(logits, keys, temperature=1.0, top_k=0, top_p=1.0):
    """One draw per key: [1, V] logits, [N] keys -> [N, 1] token ids (settings as arrays of fixed dtype, and
    the tests' shapes [1, 6] and N = 20,000 the same: one compilation)."""
    return _vmapped_sample(logits, keys, jnp.float32(temperature), jnp.int32(top_k), jnp.float32(top_p))


@settings(max_examples=8)
@given(seed=st.integers(0, 2**31 - 1), top_k=st.integers(1, 6), top_p=st.sampled_from([0.3, 0.6, 0.95]))
def test_samples_stay_in_the_top_k_and_the_nucleus(seed, top_k, top_p):
    logits = jnp.asarray(2 * np.random.default_rng(seed).standard_normal((1, 6), dtype=np.float32))
    keys = jax.random.split(jax.random.key(seed), 20000)
    p = np.asarray(jax.nn.softmax(logits[0]))
    order = np.argsort(-p)
    allowed_k = set(order[:top_k].tolist())
    mass_before = np.cumsum(p[order]) - p[order]
    allowed_p = set(order[mass_before < top_p].tolist())
    got_k = set(np.asarray(_sample(logits, keys, top_k=top_k)).ravel().tolist())
    got_p = set(np.asarray(_sample(logits, keys, top_p=top_p)).ravel().tolist())
    assert got_k <= allowed_k and got_p <= allowed_p
    assert order[0] in got_p  # the most probable token is never cut


def test_sampling_follows_the_tempered_distribution():
    """20,000 draws at temperature 2: each token's frequency is within 5 standard errors of softmax(l/2)
    (s.e. = sqrt(p(1-p)/n) <= 0.0036); greedy (temperature 0), top_k=1 and a tiny top_p give the argmax."""
    logits = jnp.array([[2.0, 1.0, 0.0, -1.0, -2.0, -3.0]])
    keys = jax.random.split(jax.random.key(0), 20000)
    draws = np.asarray(_sample(logits, keys, temperature=2.0)).ravel()
    p = np.asarray(jax.nn.softmax(logits[0] / 2.0))
    freq = np.bincount(draws, minlength=6) / draws.size
    assert np.all(np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / draws.size))
    for kwargs in ({"temperature": 0.0}, {"top_k": 1}, {"top_p": 1e-3}):
        assert set(np.asarray(_sample(logits, keys, **kwargs)).ravel().tolist()) == {0}
