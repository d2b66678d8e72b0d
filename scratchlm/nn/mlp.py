"""The sigmoid multilayer perceptron and the sigmoid word-embedding map of design document 000 §4.

Every layer is the same affine map followed by the logistic sigmoid; the network is their
composition.  Weights are stored as ``W_l`` of shape :math:`[d_l, d_{l-1}]` so that the code reads exactly
as the equation ``W_l · output_{l-1}`` (PyTorch's ``nn.Linear.weight`` layout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from scratchlm.errors import ScratchlmError
from scratchlm.nn.functional import sigmoid


def glorot_uniform(key: jax.Array, fan_out: int, fan_in: int, dtype=jnp.float32) -> jax.Array:
    r"""Glorot & Bengio (2010), eq. 16: the "normalized initialization".

    .. math::  W_{ij} \sim U\left[-\sqrt{\frac{6}{n_{in} + n_{out}}},\ \sqrt{\frac{6}{n_{in} + n_{out}}}\right],
               \qquad \mathrm{Var}(W_{ij}) = \frac{2}{n_{in} + n_{out}}

    Args: key; fan_out n_out rows; fan_in n_in columns.  Returns [fan_out, fan_in].
    """
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, (fan_out, fan_in), dtype, minval=-limit, maxval=limit)


@dataclass(frozen=True)
class MLPConfig:
    sizes: tuple[int, ...]  # (d_0, d_1, ..., d_L): input width, then each layer's width

    def __post_init__(self):
        if len(self.sizes) < 2 or any(d < 1 for d in self.sizes):
            raise ScratchlmError("MLPConfig.sizes needs an input width and at least one layer width, all >= 1; "
                                 f"got {self.sizes}")


def init(key: jax.Array, config: MLPConfig) -> dict:
    """``{"layers": [{"W": [d_l, d_{l-1}], "b": [d_l]}, ...]}`` with Glorot weights and zero biases."""
    keys = jax.random.split(key, len(config.sizes) - 1)
    return {
        "layers": [
            {"W": glorot_uniform(k, d_out, d_in), "b": jnp.zeros((d_out,), jnp.float32)}
            for k, d_in, d_out in zip(keys, config.sizes[:-1], config.sizes[1:])
        ]
    }


def apply(params: dict, x: jax.Array, *, logits: bool = False) -> jax.Array:
    r"""The sigmoid MLP (design document 000 §4.2–4.3).

    .. math::  z_l = W_l \cdot \mathrm{output}_{l-1} + b_l, \qquad
               \mathrm{output}_l = \sigma(z_l), \qquad \mathrm{output}_0 = x

    With ``logits=True`` the last layer's :math:`z_L` is returned instead of :math:`\sigma(z_L)`,
    for losses computed stably from logits (:func:`scratchlm.nn.losses.bce_risk`).

    Args: params from :func:`init`; x [..., d_0].  Returns [..., d_L].
    """
    layers = params["layers"]
    d_0 = layers[0]["W"].shape[1]
    if x.shape[-1:] != (d_0,):
        raise ValueError(f"MLP expects inputs [..., {d_0}], got {x.shape}")
    output = x
    for l, layer in enumerate(layers, start=1):
        z = output @ layer["W"].T + layer["b"]  # [..., d_{l-1}] -> [..., d_l]: W_l · output_{l-1} per example
        if logits and l == len(layers):
            return z
        output = sigmoid(z)
    return output


@dataclass(frozen=True)
class WordEmbeddingConfig:
    vocab_size: int
    input_dim: int  # width of v(w), the raw table row
    output_dim: int  # width of word_embedding(w)


def word_embedding_init(key: jax.Array, config: WordEmbeddingConfig) -> dict:
    """``{"v": [V, d_in], "W": [d_out, d_in], "b": [d_out]}``: v ~ N(0, 1) (as ``torch.nn.Embedding``), Glorot W,
    zero b."""
    k_v, k_w = jax.random.split(key)
    return {
        "v": jax.random.normal(k_v, (config.vocab_size, config.input_dim), jnp.float32),
        "W": glorot_uniform(k_w, config.output_dim, config.input_dim),
        "b": jnp.zeros((config.output_dim,), jnp.float32),
    }


def word_embedding(params: dict, w: jax.Array) -> jax.Array:
    r"""The document's embedding map of a word through a sigmoid layer (design document 000 §4.1).

    .. math::  \mathrm{word\_embedding}(w) = \sigma(W \cdot v(w) + b)

    where :math:`v(w)` is row :math:`w` of the table ``v``.

    Args: params from :func:`word_embedding_init`; w [...] integer word ids.  Returns [..., d_out].
    """
    v_w = jnp.take(params["v"], w, axis=0)  # [...] -> [..., d_in]
    return sigmoid(v_w @ params["W"].T + params["b"])  # [..., d_out]
