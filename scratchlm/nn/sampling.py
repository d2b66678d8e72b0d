"""Drawing the next token from a language model's logits: greedy, temperature, top-k and nucleus (top-p).

One sampler for every language model (the GRU LM and GPT): it takes ``[B, V]`` logits and a key and
returns ``[B]`` token ids, with every setting a possibly traced value so that one compiled decoding
step serves every setting.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scratchlm.nn.functional import log_softmax


def sample_logits(logits: jax.Array, key: jax.Array, *, temperature: float | jax.Array = 1.0,
                  top_k: int | jax.Array = 0, top_p: float | jax.Array = 1.0) -> jax.Array:
    r"""Draw one token per row from :math:`\mathrm{softmax}(\ell / \tau)` restricted to the top-k, then to the nucleus.

    .. math::  p_i \propto \exp(\ell_i / \tau)\, [\,i \in K\,]\, [\,i \in P\,]

    with :math:`K` the ``top_k`` largest logits (all when 0; Fan et al. 2018) and :math:`P` the
    smallest set of most probable tokens (under the top-k distribution, as HuggingFace's warpers
    chain them) whose probability reaches ``top_p`` (nucleus sampling, Holtzman et al. 2020: token
    i stays when the mass strictly before it is below p, so the most probable token always stays).
    ``temperature == 0`` is greedy decoding.  All three settings may be traced values, so one
    compilation serves every setting.

    Args: logits [B, V]; key a PRNG key.  Returns [B] int32 token ids.
    """
    def draw(logits):
        logits = logits / jnp.where(temperature > 0, temperature, 1.0)
        V = logits.shape[-1]
        ranked = -jnp.sort(-logits, axis=-1)  # [B, V] largest first
        kth = jnp.take(ranked, jnp.clip(top_k - 1, 0, V - 1), axis=-1)[..., None]  # [B, 1] the k-th largest
        logits = jnp.where((top_k > 0) & (logits < kth), -jnp.inf, logits)
        order = jnp.argsort(-logits, axis=-1)  # [B, V] most probable first
        p_sorted = jnp.exp(log_softmax(jnp.take_along_axis(logits, order, axis=-1)))
        keep_sorted = jnp.cumsum(p_sorted, axis=-1) - p_sorted < top_p  # mass strictly before each token
        keep = jnp.zeros_like(keep_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
        return jax.random.categorical(key, jnp.where(keep, logits, -jnp.inf), axis=-1).astype(jnp.int32)

    # a branch, not a select: greedy decoding skips the two sorts over the vocabulary (most of a small
    # model's decoding step on a CPU); the draw is the same either way
    return jax.lax.cond(temperature > 0, draw, lambda logits: jnp.argmax(logits, axis=-1).astype(jnp.int32), logits)
