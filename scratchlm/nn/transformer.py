"""The Transformer encoder layer and stack (Vaswani et al. 2017, §3.1; BERT's post-LN form, Devlin et al. 2019).

Parameters mirror HuggingFace's ``BertLayer`` names, so ``encoder.layer.N.attention.self.query.weight``
in a checkpoint is ``params["layer"][N]["attention"]["self"]["query"]["weight"]`` here:

    layer ─ attention ─ self ─ query | key | value          {weight [H, H], bias [H]}
          │           └ output ─ dense {weight [H, H]} ─ LayerNorm {weight, bias}
          ├ intermediate ─ dense  {weight [I, H], bias [I]}
          └ output ─ dense {weight [H, I]} ─ LayerNorm {weight, bias}

The stack is a Python loop over ``params["layer"]`` rather than ``lax.scan`` over stacked weights:
the list keeps each checkpoint tensor one-to-one with a leaf, and unrolling lets XLA fuse across
layer boundaries, at the price of a compile time linear in depth (seconds for 12 layers).  Fusing
across layers can also go too far: in a pre-LN stack XLA:CPU recomputed the residual stream's gradient
once per later layer, which :func:`stored_gradient` prevents.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from scratchlm.errors import ScratchlmError
from scratchlm.fusion import materialized
from scratchlm.nn.attention import dense, multi_head_attention
from scratchlm.nn.functional import dropout, gelu, layer_norm

_ACTIVATIONS = {"gelu": lambda x: gelu(x, approximate=False), "gelu_new": lambda x: gelu(x, approximate=True),
                "gelu_pytorch_tanh": lambda x: gelu(x, approximate=True), "relu": jax.nn.relu}


@dataclass(frozen=True)
class TransformerConfig:
    """Encoder shape and options; field names are HuggingFace ``BertConfig``'s where one exists."""

    hidden_size: int = 768  # BERT-base (Devlin et al. 2019, §3)
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072  # 4 H, Vaswani et al. 2017 §3.3
    hidden_act: str = "gelu"  # exact erf GELU, as BERT
    hidden_dropout_prob: float = 0.1  # Devlin et al. 2019, appendix A.2
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12  # HuggingFace BertConfig default
    initializer_range: float = 0.02  # std of the truncated-free normal init, BertConfig default
    pre_layer_norm: bool = False  # False: BERT's post-LN; True: pre-LN (Xiong et al. 2020) + final LN
    fused_attention: bool = False  # jax.nn.dot_product_attention (cuDNN flash on GPU) instead of the equations
    dtype: str = "float32"  # compute dtype; parameters stay float32 ("bfloat16" for mixed precision)

    def __post_init__(self):
        """Settings come from flags and config.json files: a bad one is a :class:`ScratchlmError` naming it."""
        if min(self.hidden_size, self.num_hidden_layers, self.num_attention_heads, self.intermediate_size) < 1:
            raise ScratchlmError(f"hidden_size, num_hidden_layers, num_attention_heads and intermediate_size must "
                                 f"be positive, got {self.hidden_size}, {self.num_hidden_layers}, "
                                 f"{self.num_attention_heads}, {self.intermediate_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ScratchlmError(f"hidden_size {self.hidden_size} must be divisible by "
                                 f"num_attention_heads {self.num_attention_heads}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ScratchlmError(f"{name} is a drop probability in [0, 1), got {getattr(self, name)}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ScratchlmError(f"hidden_act {self.hidden_act!r} not supported; choose from {sorted(_ACTIVATIONS)}")
        if self.dtype not in ("float32", "bfloat16", "float16", "float64"):
            raise ScratchlmError(f"dtype must be float32, bfloat16, float16 or float64, got {self.dtype!r}")

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)


def init_dense(key: jax.Array, d_in: int, d_out: int, std: float) -> dict:
    """``W ~ N(0, std^2)`` in PyTorch's ``[d_out, d_in]`` layout, ``b = 0`` (HuggingFace BERT's init)."""
    return {"weight": std * jax.random.normal(key, (d_out, d_in), jnp.float32),
            "bias": jnp.zeros((d_out,), jnp.float32)}


def init_layer_norm(H: int) -> dict:
    return {"weight": jnp.ones((H,), jnp.float32), "bias": jnp.zeros((H,), jnp.float32)}


def apply_layer_norm(p: dict, x: jax.Array, eps: float) -> jax.Array:
    """Layer norm with float32 statistics whatever the compute dtype; the output keeps x's dtype."""
    stats_dtype = jnp.promote_types(x.dtype, jnp.float32)
    return layer_norm(x.astype(stats_dtype), p["weight"].astype(stats_dtype), p["bias"].astype(stats_dtype),
                      eps).astype(x.dtype)


def init_layer(key: jax.Array, config: TransformerConfig) -> dict:
    H, I, std = config.hidden_size, config.intermediate_size, config.initializer_range
    k_q, k_k, k_v, k_o, k_i, k_f = jax.random.split(key, 6)
    return {
        "attention": {
            "self": {"query": init_dense(k_q, H, H, std), "key": init_dense(k_k, H, H, std),
                     "value": init_dense(k_v, H, H, std)},
            "output": {"dense": init_dense(k_o, H, H, std), "LayerNorm": init_layer_norm(H)},
        },
        "intermediate": {"dense": init_dense(k_i, H, I, std)},
        "output": {"dense": init_dense(k_f, I, H, std), "LayerNorm": init_layer_norm(H)},
    }


def feed_forward(p: dict, x: jax.Array, *, config: TransformerConfig) -> jax.Array:
    r"""Position-wise feed-forward network (Vaswani et al. 2017, eq. 2, with BERT's GELU for ReLU).

    .. math::  \mathrm{FFN}(x) = \mathrm{GELU}(x W_1^\top + b_1)\, W_2^\top + b_2

    Args: p the layer's params (``intermediate.dense`` = W_1, ``output.dense`` = W_2); x [B, T, H].
    Returns [B, T, H].
    """
    return dense(p["output"]["dense"], _ACTIVATIONS[config.hidden_act](dense(p["intermediate"]["dense"], x)))


def encoder_layer(p: dict, x: jax.Array, mask: jax.Array | None, *, config: TransformerConfig,
                  key: jax.Array | None = None, train: bool = False, keep_first: int | None = None,
                  layout: dict | None = None) -> jax.Array:
    r"""One encoder layer: post-LN as in BERT (Vaswani et al. 2017 §3.1; Devlin et al. 2019), or pre-LN.

    Post-LN (default):

    .. math::  u = \mathrm{LN}_1\big(x + \mathrm{dropout}(\mathrm{MultiHead}(x))\big), \qquad
               y = \mathrm{LN}_2\big(u + \mathrm{dropout}(\mathrm{FFN}(u))\big)

    Pre-LN (Xiong et al. 2020, eq. in §3; ``config.pre_layer_norm``):

    .. math::  u = x + \mathrm{dropout}(\mathrm{MultiHead}(\mathrm{LN}_1(x))), \qquad
               y = u + \mathrm{dropout}(\mathrm{FFN}(\mathrm{LN}_2(u)))

    :math:`\mathrm{LN}_1` is ``attention.output.LayerNorm``, :math:`\mathrm{LN}_2` is ``output.LayerNorm``.

    Args: p one layer's params; x [B, T, H] in the compute dtype; mask bool broadcastable to
    [B, h, T, T]; key required when training with dropout; keep_first: compute the output at the first
    ``keep_first`` positions only (every position is still attended to), ``[B, keep_first, H]``, the
    first rows of the full output with the same dropout masks; layout: x is unpadded, [1, N, H]
    (:mod:`scratchlm.nn.unpadding`; only attention sees the [B, T] grid, and ``mask`` is the grid's),
    and ``keep_first`` then B, each text's first token.  Returns [B, T, H] ([1, N, H] unpadded).
    """
    k_att, k_drop1, k_drop2 = jax.random.split(key, 3) if key is not None else (None, None, None)
    ln_1, ln_2 = p["attention"]["output"]["LayerNorm"], p["output"]["LayerNorm"]
    eps, rate = config.layer_norm_eps, config.hidden_dropout_prob
    full = x.shape  # the dropout masks are the full layer's, restricted to the kept positions
    x_q = x if keep_first is None else x[:, :keep_first]  # the positions whose output is computed

    def attend(h):
        return multi_head_attention(p["attention"], h, mask, num_heads=config.num_attention_heads,
                                    dropout_rate=config.attention_probs_dropout_prob, key=k_att, train=train,
                                    fused=config.fused_attention, queries=keep_first, layout=layout)

    def drop(h, k):
        return dropout(h, rate, key=k, train=train, of_shape=full)

    if config.pre_layer_norm:
        u = x_q + drop(attend(apply_layer_norm(ln_1, x, eps)), k_drop1)
        return u + drop(feed_forward(p, apply_layer_norm(ln_2, u, eps), config=config), k_drop2)
    u = apply_layer_norm(ln_1, x_q + drop(attend(x), k_drop1), eps)
    return apply_layer_norm(ln_2, u + drop(feed_forward(p, u, config=config), k_drop2), eps)


@jax.custom_vjp
def stored_gradient(x: jax.Array) -> jax.Array:
    r"""The identity, :math:`y = x`, whose gradient :math:`\partial L/\partial x` XLA computes once and stores.

    Not an equation but a cost: in a pre-LN stack the residual stream's gradient is a chain of sums
    across the layers, :math:`\bar h^{(l-1)} = \bar h^{(l)} + (\text{the block's contribution})`, with no
    reduction to end it.  XLA's CPU compiler fuses that chain into each layer's consumers (the
    transposed copy a weight gradient reads) and so recomputes it once per layer: :math:`O(L^2)` work,
    1.7 of 6.3 seconds of a GPT-2-small training step on two cores.  ``lax.optimization_barrier``
    would say this, but the CPU compiler strips barriers before fusing; a conditional is never fused,
    so on CPU the gradient passes through one (:func:`scratchlm.fusion.materialized`).  Elsewhere it
    is the identity both ways.  Call it on the residual stream between layers.
    """
    return x


stored_gradient.defvjp(lambda x: (x, None), lambda _, g: (materialized(g),))


def init_encoder(key: jax.Array, config: TransformerConfig) -> dict:
    """``{"layer": [layer_0, ..., layer_{L-1}]}`` (+ a final ``LayerNorm`` for pre-LN, whose output needs one)."""
    params = {"layer": [init_layer(k, config) for k in jax.random.split(key, config.num_hidden_layers)]}
    if config.pre_layer_norm:
        params["LayerNorm"] = init_layer_norm(config.hidden_size)
    return params


def encoder(p: dict, x: jax.Array, mask: jax.Array | None, *, config: TransformerConfig,
            key: jax.Array | None = None, train: bool = False, keep_first: int | None = None,
            layout: dict | None = None) -> jax.Array:
    r"""The stack of :math:`L` encoder layers, :math:`h^{(l)} = \mathrm{Layer}_l(h^{(l-1)})`, :math:`h^{(0)} = x`.

    With pre-LN the residual stream is un-normalised, so a final :math:`\mathrm{LN}(h^{(L)})` follows
    (``encoder.LayerNorm``, Xiong et al. 2020).

    ``keep_first``: the last layer computes its output at the first ``keep_first`` positions only. A head
    that reads only the ``[CLS]`` state (BERT's pooler, Devlin et al. 2019 §3) needs no more: position
    t's last-layer output is read by nothing else, so its queries, attention output, feed-forward
    network and layer norms are skipped, while every position's keys and values are still computed.
    The result is the first rows of the full stack's, with the same dropout masks (:func:`dropout`'s
    ``of_shape``); the same numbers up to the rounding of products over fewer rows.  For MiniLM (6
    layers) it is about 14 % fewer matrix-product FLOPs in a fine-tuning step.

    ``layout``: x is unpadded, [1, N, H], the real tokens of a [B, T] grid end to end
    (:mod:`scratchlm.nn.unpadding`): every layer's position-wise work runs on the N tokens, and only
    attention on the grid.  The same function of the real tokens as the padded stack's, for about N/(BT)
    of its matrix-product work; ``keep_first`` is then B (each text's first token leads the rows).

    Args: p {"layer": [...]}; x [B, T, H] (or [1, N, H] with ``layout``); mask bool broadcastable to
    [B, h, T, T].  Returns x's shape ([B, keep_first, H] or [1, keep_first, H] with ``keep_first``).
    """
    if len(p["layer"]) != config.num_hidden_layers:
        raise ValueError(f"config says {config.num_hidden_layers} layers, params hold {len(p['layer'])}")
    keys = jax.random.split(key, len(p["layer"])) if key is not None else [None] * len(p["layer"])
    last = len(p["layer"]) - 1
    for i, (p_l, k_l) in enumerate(zip(p["layer"], keys)):
        x = encoder_layer(p_l, x, mask, config=config, key=k_l, train=train,
                          keep_first=keep_first if i == last else None, layout=layout)
        if config.pre_layer_norm:  # post-LN ends each layer's gradient chain in a layer norm's reductions
            x = stored_gradient(x)
    if config.pre_layer_norm:
        x = apply_layer_norm(p["LayerNorm"], x, config.layer_norm_eps)
    return x
