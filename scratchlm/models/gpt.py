r"""GPT-2 (Radford et al. 2018, 2019): a decoder-only Transformer language model.

.. math::
    h^{(0)}_t = W_{te}[x_t] + W_{pe}[p_t], \qquad h^{(l)} = \mathrm{Block}_l(h^{(l-1)}), \qquad
    p(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}\big(\mathrm{LN}_f(h^{(L)}_t)\, W_{te}^\top\big)

The blocks are pre-LN (Radford et al. 2019, §2.3), their attention is
:func:`scratchlm.nn.attention.scaled_dot_product_attention` under :func:`~scratchlm.nn.attention.causal_mask`,
and the LM head is the token embedding :math:`W_{te}` itself (tied).  The parameter tree mirrors
HuggingFace's ``GPT2LMHeadModel`` names without the ``transformer.`` prefix, so
``transformer.h.3.attn.c_attn.weight`` is ``params["h"][3]["attn"]["c_attn"]["weight"]``; GPT-2's
``Conv1D`` stores weights ``[in, out]`` (the transpose of ``nn.Linear``), and so does this tree.

Positions, as HuggingFace computes them: ``apply`` uses ``batch["position_ids"]`` when given and
:math:`p_t = t` otherwise (``GPT2Model.forward``), which is right for right padding; a left-padded
batch needs :func:`position_ids_from_mask` (:math:`p_t = \sum_{s \le t} m_s - 1`), the positions
HuggingFace's ``generate`` builds, and :func:`generate` uses them.

Generation keeps a static-shape key/value cache (:func:`scratchlm.nn.attention.update_kv_cache`):
one prefill call over the prompt, then one jitted decoding step per token, compiled once per batch
size and maximum length.

Why one module over 400 lines: as in :mod:`scratchlm.models.bert`, the tree :func:`init` builds is the
checkpoint's name table, so the model, its generation through the same blocks and its checkpoint I/O
change together.  Sections in data order: config and init, forward, generation, checkpoints, FLOPs.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.errors import ScratchlmError
from scratchlm.io import read_text
from scratchlm.models import hub
from scratchlm.models.bert import check_tensors, flatten_params, unflatten_params
from scratchlm.nn.attention import (
    causal_mask,
    fused_attention,
    padding_mask,
    scaled_dot_product_attention,
    update_kv_cache,
)
from scratchlm.nn.functional import dropout, gelu, matmul
from scratchlm.nn.losses import linear_cross_entropy
from scratchlm.nn.sampling import sample_logits
from scratchlm.nn.transformer import apply_layer_norm, init_layer_norm, stored_gradient


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2's shape (HuggingFace ``GPT2Config`` field names) plus scratchlm's compute options."""

    vocab_size: int = 50257  # GPT-2's byte-level BPE vocabulary (Radford et al. 2019, §2.2)
    n_positions: int = 1024  # context length, idem §2.3
    n_embd: int = 768  # GPT-2 small (117M/124M)
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # feed-forward width; None is 4 * n_embd (Radford et al. 2018, §4.1)
    layer_norm_epsilon: float = 1e-5  # GPT2Config default
    resid_pdrop: float = 0.1  # Radford et al. 2018, §4.1: residual, embedding and attention dropout 0.1
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    initializer_range: float = 0.02  # N(0, 0.02^2), idem
    bos_token_id: int | None = 50256  # <|endoftext|>
    eos_token_id: int | None = 50256
    fused_attention: bool = False  # jax.nn.dot_product_attention (cuDNN flash on GPU) instead of the equations
    dtype: str = "float32"  # compute dtype; parameters stay float32 ("bfloat16" for mixed precision)

    def __post_init__(self):
        """Settings come from flags and config.json files: a bad one is a :class:`ScratchlmError` naming it."""
        if min(self.vocab_size, self.n_positions, self.n_embd, self.n_layer, self.n_head, self.inner) < 1:
            raise ScratchlmError("vocab_size, n_positions, n_embd, n_layer, n_head and n_inner must be positive, "
                                 f"got {self.vocab_size}, {self.n_positions}, {self.n_embd}, {self.n_layer}, "
                                 f"{self.n_head}, {self.inner}")
        if self.n_embd % self.n_head:
            raise ScratchlmError(f"n_embd {self.n_embd} must be divisible by n_head {self.n_head}")
        for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ScratchlmError(f"{name} is a drop probability in [0, 1), got {getattr(self, name)}")
        if self.dtype not in ("float32", "bfloat16", "float16", "float64"):
            raise ScratchlmError(f"dtype must be float32, bfloat16, float16 or float64, got {self.dtype!r}")

    @property
    def inner(self) -> int:
        return 4 * self.n_embd if self.n_inner is None else self.n_inner

    @property
    def compute_dtype(self):
        return jnp.dtype(self.dtype)

    @classmethod
    def from_hf_dict(cls, d: dict, **overrides) -> GPTConfig:
        """From a HuggingFace ``config.json`` dict; unknown keys are ignored, ``overrides`` win.  Options
        that change GPT-2's arithmetic and that scratchlm does not implement are refused by name."""
        unsupported = {"activation_function": "gelu_new", "scale_attn_weights": True,
                       "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
                       "add_cross_attention": False, "tie_word_embeddings": True}
        for name, want in unsupported.items():
            if name in d and d[name] != want:
                raise ScratchlmError(f"config.json sets {name}={d[name]!r}; scratchlm's GPT-2 supports only {want!r}")
        names = {f.name for f in dataclasses.fields(cls)} - {"dtype", "fused_attention"}
        kwargs = {k: v for k, v in d.items() if k in names}
        return cls(**{**kwargs, **overrides})

    def to_hf_dict(self) -> dict:
        """The ``config.json`` HuggingFace's ``GPT2Config`` reads."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("fused_attention", "dtype")}
        d.update(model_type="gpt2", activation_function="gelu_new", n_ctx=self.n_positions,
                 architectures=["GPT2LMHeadModel"], tie_word_embeddings=True)
        return d


# ---------------------------------------------------------------------------------------------- init


def init_conv1d(key: jax.Array, d_in: int, d_out: int, std: float) -> dict:
    """GPT-2's ``Conv1D``: ``W ~ N(0, std^2)`` stored ``[d_in, d_out]``, ``b = 0``."""
    return {"weight": std * jax.random.normal(key, (d_in, d_out), jnp.float32),
            "bias": jnp.zeros((d_out,), jnp.float32)}


def init(key: jax.Array, config: GPTConfig) -> dict:
    r"""Params initialised as HuggingFace's ``GPT2LMHeadModel``: weights :math:`\sim N(0, 0.02^2)`,
    biases 0, layer-norm gains 1, and the residual projections ``c_proj`` scaled by
    :math:`1/\sqrt{2L}` (Radford et al. 2019, §2.3: "the weights of residual layers ... by a factor
    of :math:`1/\sqrt{N}`", :math:`N = 2L` residual layers)."""
    H, I, std = config.n_embd, config.inner, config.initializer_range
    std_proj = std / math.sqrt(2 * config.n_layer)
    k_te, k_pe, *k_layers = jax.random.split(key, 2 + config.n_layer)

    def block(k):
        k_attn, k_aproj, k_fc, k_mproj = jax.random.split(k, 4)
        return {"ln_1": init_layer_norm(H),
                "attn": {"c_attn": init_conv1d(k_attn, H, 3 * H, std), "c_proj": init_conv1d(k_aproj, H, H, std_proj)},
                "ln_2": init_layer_norm(H),
                "mlp": {"c_fc": init_conv1d(k_fc, H, I, std), "c_proj": init_conv1d(k_mproj, I, H, std_proj)}}

    return {"wte": {"weight": std * jax.random.normal(k_te, (config.vocab_size, H), jnp.float32)},
            "wpe": {"weight": std * jax.random.normal(k_pe, (config.n_positions, H), jnp.float32)},
            "h": [block(k) for k in k_layers],
            "ln_f": init_layer_norm(H)}


def init_score(key: jax.Array, config: GPTConfig, num_labels: int) -> dict:
    """``GPT2ForSequenceClassification``'s head ``score``: ``weight [C, H] ~ N(0, initializer_range^2)``, no
    bias (HuggingFace's ``nn.Linear(n_embd, num_labels, bias=False)``)."""
    return {"weight": config.initializer_range * jax.random.normal(key, (num_labels, config.n_embd), jnp.float32)}


# ------------------------------------------------------------------------------------------- forward


def conv1d(p: dict, x: jax.Array) -> jax.Array:
    r"""GPT-2's ``Conv1D``, an affine map with the weight stored ``[in, out]``: :math:`y = x W + b`.

    Args: p {"weight": [d_in, d_out], "bias": [d_out]}; x [..., d_in].  Returns [..., d_out] in x's dtype.
    """
    return matmul(x, p["weight"].astype(x.dtype)) + p["bias"].astype(x.dtype)


def position_ids_from_mask(attention_mask: jax.Array) -> jax.Array:
    r"""Positions of a left-padded batch as HuggingFace's ``generate`` builds them.

    .. math::  p_t = \sum_{s \le t} m_s - 1 \quad (m_t = 1), \qquad p_t = 1 \quad (m_t = 0)

    so each sequence's first real token is at position 0 wherever its padding ends.
    Args: attention_mask m [B, T] 1/0.  Returns int32 [B, T].
    """
    m = attention_mask.astype(jnp.int32)
    return jnp.where(m > 0, jnp.cumsum(m, axis=-1) - 1, 1)


def causal_self_attention(p: dict, x: jax.Array, mask: jax.Array, *, config: GPTConfig, cache: dict | None = None,
                          index: int | jax.Array = 0, key: jax.Array | None = None,
                          train: bool = False) -> tuple[jax.Array, dict | None]:
    r"""Masked multi-head self-attention of a GPT block (Vaswani et al. 2017, §3.2.2-3.2.3).

    .. math::  [Q, K, V] = x W^{attn} + b^{attn}, \qquad
               y = \mathrm{Concat}_i\big(\mathrm{softmax}(Q_i K_i^\top/\sqrt{d_k} + M)\, V_i\big) W^{proj} + b^{proj}

    with :math:`M` the causal mask (and padding).  With a ``cache`` the new :math:`K, V` are written at
    positions ``index ...`` first (:func:`scratchlm.nn.attention.update_kv_cache`) and the queries attend
    to the whole cache, ``mask`` hiding the positions not yet written.

    Args: p {"c_attn", "c_proj"}; x [B, T, H]; mask bool broadcastable to [B, h, T, S] (S = T, or the
    cache length).  Returns (y [B, T, H], the updated cache or None).
    """
    B, T, H = x.shape
    h = config.n_head
    Q, K, V = jnp.split(conv1d(p["c_attn"], x), 3, axis=-1)  # [B, T, 3H] -> 3 x [B, T, H]
    Q, K, V = (a.reshape(B, T, h, H // h) for a in (Q, K, V))  # [B, T, H] -> [B, T, h, d_k]
    if cache is not None:
        cache = update_kv_cache(cache, K, V, index)
        K, V = cache["k"], cache["v"]  # [B, S, h, d_k]
    if config.fused_attention and not (train and config.attn_pdrop > 0):
        heads = fused_attention(Q, K, V, mask)
    else:
        heads = scaled_dot_product_attention(Q, K, V, mask, dropout_rate=config.attn_pdrop, key=key, train=train)
    return conv1d(p["c_proj"], heads.reshape(B, T, H)), cache  # [B, T, h, d_k] -> [B, T, H]


def mlp(p: dict, x: jax.Array) -> jax.Array:
    r"""GPT-2's feed-forward network with the tanh-approximated GELU (Radford et al. 2018, §3.1; Hendrycks &
    Gimpel 2016): :math:`\mathrm{FFN}(x) = \mathrm{GELU}_{\tanh}(x W_{fc} + b_{fc})\, W_{proj} + b_{proj}`.

    Args: p {"c_fc", "c_proj"}; x [B, T, H].  Returns [B, T, H].
    """
    return conv1d(p["c_proj"], gelu(conv1d(p["c_fc"], x), approximate=True))


def decoder_block(p: dict, x: jax.Array, mask: jax.Array, *, config: GPTConfig, cache: dict | None = None,
                  index: int | jax.Array = 0, key: jax.Array | None = None,
                  train: bool = False) -> tuple[jax.Array, dict | None]:
    r"""One pre-LN decoder block (Radford et al. 2019, §2.3: layer norm moved to each sub-block's input).

    .. math::  u = x + \mathrm{dropout}\big(\mathrm{MaskedMHA}(\mathrm{LN}_1(x))\big), \qquad
               y = u + \mathrm{dropout}\big(\mathrm{FFN}(\mathrm{LN}_2(u))\big)

    Args: p one block's params {"ln_1", "attn", "ln_2", "mlp"}; x [B, T, H]; mask as
    :func:`causal_self_attention`.  Returns (y [B, T, H], the updated cache or None).
    """
    k_att, k_1, k_2 = jax.random.split(key, 3) if key is not None else (None, None, None)
    eps, rate = config.layer_norm_epsilon, config.resid_pdrop
    a, cache = causal_self_attention(p["attn"], apply_layer_norm(p["ln_1"], x, eps), mask, config=config,
                                     cache=cache, index=index, key=k_att, train=train)
    u = x + dropout(a, rate, key=k_1, train=train)
    return u + dropout(mlp(p["mlp"], apply_layer_norm(p["ln_2"], u, eps)), rate, key=k_2, train=train), cache


def decoder(params: dict, input_ids: jax.Array, position_ids: jax.Array, mask: jax.Array, *, config: GPTConfig,
            cache: list | None = None, index: int | jax.Array = 0, key: jax.Array | None = None,
            train: bool = False) -> tuple[jax.Array, list | None]:
    r"""Embeddings, the :math:`L` blocks and the final layer norm: :math:`\mathrm{LN}_f(h^{(L)})`, with
    :math:`h^{(0)}_t = \mathrm{dropout}(W_{te}[x_t] + W_{pe}[p_t])` (Radford et al. 2018, eq. 2).

    Args: input_ids [B, T]; position_ids [B, T] or [1, T]; mask bool broadcastable to [B, h, T, S];
    cache a list of one {"k", "v"} per block, or None.  Returns (hidden [B, T, H], the updated cache).
    """
    if len(params["h"]) != config.n_layer:
        raise ScratchlmError(f"config says {config.n_layer} layers, params hold {len(params['h'])}")
    k_emb, *k_blocks = jax.random.split(key, 1 + config.n_layer) if key is not None else [None] * (1 + config.n_layer)
    x = params["wte"]["weight"][input_ids] + params["wpe"]["weight"][position_ids]  # [B, T, H]
    x = dropout(x.astype(config.compute_dtype), config.embd_pdrop, key=k_emb, train=train)
    new_cache = [] if cache is not None else None
    for l, p_l in enumerate(params["h"]):
        x, c = decoder_block(p_l, x, mask, config=config, cache=None if cache is None else cache[l], index=index,
                             key=k_blocks[l], train=train)
        x = stored_gradient(x)  # pre-LN: the residual stream's gradient, once per layer
        if cache is not None:
            new_cache.append(c)
    return apply_layer_norm(params["ln_f"], x, config.layer_norm_epsilon), new_cache


def lm_logits(params: dict, hidden: jax.Array) -> jax.Array:
    r"""The LM head tied to the token embeddings (Radford et al. 2018, eq. 2): :math:`z = h\, W_{te}^\top`.

    Args: hidden [..., H].  Returns [..., V] in float32 or wider (the softmax statistics need it).
    """
    W_te = params["wte"]["weight"].astype(hidden.dtype)
    return jnp.einsum("...h,vh->...v", hidden, W_te, preferred_element_type=jnp.promote_types(hidden.dtype,
                                                                                              jnp.float32))


def validate_batch(batch: dict, config: GPTConfig) -> None:
    """Raise :class:`ScratchlmError` for a batch the model cannot read (shapes, length, ids out of range);
    the value checks run only on concrete arrays."""
    if "input_ids" not in batch:
        raise ScratchlmError(f"batch needs 'input_ids' [B, T]; got keys {sorted(batch)}")
    ids = batch["input_ids"]
    if ids.ndim != 2:
        raise ScratchlmError(f"expected input_ids [B, T], got shape {tuple(ids.shape)}")
    B, T = ids.shape
    for name in ("attention_mask", "position_ids"):
        if batch.get(name) is not None and tuple(batch[name].shape) != (B, T):
            raise ScratchlmError(f"expected {name} [B, T] = {(B, T)} like input_ids, got {tuple(batch[name].shape)}")
    if T > config.n_positions:
        raise ScratchlmError(f"sequence length {T} exceeds the position table ({config.n_positions} positions)")
    if not isinstance(ids, jax.core.Tracer) and ids.size:
        x = np.asarray(ids)
        if x.min() < 0 or x.max() >= config.vocab_size:
            bad = int(x.min()) if x.min() < 0 else int(x.max())
            raise ScratchlmError(f"input_ids holds {bad}, outside [0, {config.vocab_size}) (the model's vocabulary)")


def apply(params: dict, batch: dict, *, config: GPTConfig, key: jax.Array | None = None,
          train: bool = False) -> dict:
    r"""Next-token logits at every position (``GPT2LMHeadModel.forward``).

    .. math::  z_t = \mathrm{LN}_f\big(h^{(L)}_t\big)\, W_{te}^\top, \qquad M_{ts} = 0 \iff s \le t \wedge m_s = 1

    Args: batch {"input_ids": [B, T], "attention_mask": [B, T] 1/0 (default all 1), "position_ids":
    [B, T] (default :math:`0 \ldots T-1`, as HuggingFace; pass :func:`position_ids_from_mask` for left
    padding)}; key a PRNG key, required when training with dropout.
    Returns {"logits": [B, T, V] float32, "last_hidden_state": [B, T, H]}.  Logits at padding positions
    are not meaningful (a padding query may see no key).

    Differentiate it in reverse mode (``jax.grad``, ``vjp``, ``jacrev``): its products and residual stream
    have custom VJPs (:func:`scratchlm.nn.functional.matmul`, :func:`scratchlm.nn.transformer.stored_gradient`),
    which ``jax.jvp``, ``jacfwd`` and ``hessian`` cannot run through.
    """
    h = _hidden(params, batch, config=config, key=key, train=train)
    return {"logits": lm_logits(params, h), "last_hidden_state": h}


def _hidden(params: dict, batch: dict, *, config: GPTConfig, key: jax.Array | None, train: bool) -> jax.Array:
    """:func:`apply`'s batch checked and read (positions and masks defaulted as HuggingFace does), through
    :func:`decoder`: the final hidden states [B, T, H]."""
    validate_batch(batch, config)
    input_ids = batch["input_ids"]
    T = input_ids.shape[1]
    position_ids = batch.get("position_ids")
    position_ids = jnp.arange(T)[None] if position_ids is None else position_ids
    mask = causal_mask(T)  # [1, 1, T, T]
    if batch.get("attention_mask") is not None:
        mask = mask & padding_mask(batch["attention_mask"])  # [B, 1, T, T]
    return decoder(params, input_ids, position_ids, mask, config=config, key=key, train=train)[0]


def causal_lm_loss(params: dict, batch: dict, *, config: GPTConfig, key: jax.Array | None = None,
                   train: bool = False) -> jax.Array:
    r"""Mean next-token cross-entropy (Radford et al. 2018, eq. 1), over targets that are real tokens.

    .. math::  \mathcal{L} = -\frac{1}{N}\sum_{b,\, t:\, m_{b,t+1} = 1} \log p(x_{b,t+1} \mid x_{b,\le t})

    Args: batch as :func:`apply` (right padding).  Returns a scalar.
    """
    h = _hidden(params, batch, config=config, key=key, train=train)
    targets = batch["input_ids"][:, 1:]
    if batch.get("attention_mask") is not None:
        targets = jnp.where(batch["attention_mask"][:, 1:] > 0, targets, -100)
    # position t predicts x_{t+1}; the last position predicts nothing.  Shifting the targets instead of
    # slicing h keeps the hidden states whole (no copy), and the head and the loss run fused
    # (:func:`~scratchlm.nn.losses.linear_cross_entropy`: the [B, T, V] logits are never made whole)
    targets = jnp.pad(targets, ((0, 0), (0, 1)), constant_values=-100)  # [B, T]
    return linear_cross_entropy(h, params["wte"]["weight"].astype(h.dtype), targets)


def last_token_state(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
    r"""The state of each sequence's last real token, :math:`h_{b,\,t_b}` with :math:`t_b = \max\{t : m_{b,t} = 1\}`:
    under the causal mask the only position that has seen the whole sequence (``GPT2ForSequenceClassification``
    pools so; right or left padding).

    Args: hidden [B, T, H]; attention_mask [B, T].  Returns [B, H].
    """
    T = hidden.shape[1]
    t_b = jnp.max(jnp.where(attention_mask > 0, jnp.arange(T)[None], -1), axis=-1)  # [B]
    return jnp.take_along_axis(hidden, jnp.maximum(t_b, 0)[:, None, None], axis=1)[:, 0]


def sequence_state(params: dict, batch: dict, *, config: GPTConfig, key: jax.Array | None = None,
                   train: bool = False) -> jax.Array:
    r"""The sequence's features for classification: :math:`\mathrm{LN}_f(h^{(L)})_{b,\,t_b}`, the state of its
    last real token (:func:`last_token_state`; under the causal mask the only position that has read the
    whole text, as ``GPT2ForSequenceClassification`` pools).  Positions come from the mask
    (:func:`position_ids_from_mask`), so right and left padding give the same features.

    Args: batch {"input_ids": [B, T], "attention_mask": [B, T] 1/0}.  Returns [B, H].
    """
    mask = batch["attention_mask"].astype(jnp.int32)
    inputs = {"input_ids": batch["input_ids"], "attention_mask": mask, "position_ids": position_ids_from_mask(mask)}
    h = apply(params, inputs, config=config, key=key, train=train)["last_hidden_state"]
    return last_token_state(h, mask)


# ---------------------------------------------------------------------------------------- generation


def init_cache(config: GPTConfig, B: int, S: int) -> list:
    """An empty key/value cache: per block {"k", "v"} zeros [B, S, h, d_k] in the compute dtype."""
    shape = (B, S, config.n_head, config.n_embd // config.n_head)
    return [{"k": jnp.zeros(shape, config.compute_dtype), "v": jnp.zeros(shape, config.compute_dtype)}
            for _ in range(config.n_layer)]


@functools.partial(jax.jit, static_argnames="config", donate_argnames="cache")
def prefill(params: dict, input_ids: jax.Array, attention_mask: jax.Array, cache: list, *,
            config: GPTConfig) -> tuple[jax.Array, list]:
    r"""Run the prompt once, filling cache positions :math:`0 \ldots T_0-1`; return the last position's logits.

    Args: input_ids [B, T0] (left-padded); attention_mask [B, S] over the whole cache (the prompt's
    mask, then ones); cache from :func:`init_cache`.  Returns (logits [B, V], cache).
    """
    T0, S = input_ids.shape[1], attention_mask.shape[1]
    position_ids = position_ids_from_mask(attention_mask)[:, :T0]
    mask = causal_mask(T0, S) & padding_mask(attention_mask)  # [B, 1, T0, S]
    h, cache = decoder(params, input_ids, position_ids, mask, config=config, cache=cache, index=0)
    return lm_logits(params, h[:, -1]), cache


@functools.partial(jax.jit, static_argnames="config", donate_argnames="cache")
def decode_step(params: dict, token: jax.Array, index: jax.Array, attention_mask: jax.Array, cache: list, *,
                config: GPTConfig) -> tuple[jax.Array, list]:
    r"""One decoding step: the token at position ``index`` attends to the cache :math:`K_{\le t}, V_{\le t}`.

    .. math::  K^{cache}_{[:, t]} \leftarrow k_t,\quad V^{cache}_{[:, t]} \leftarrow v_t, \qquad
               z_t = \mathrm{LN}_f(h^{(L)}_t)\, W_{te}^\top

    Compiled once per (B, S): ``index`` is traced.  Args: token [B]; index t; attention_mask [B, S];
    cache.  Returns (logits [B, V], cache).
    """
    S = attention_mask.shape[1]
    position_ids = jax.lax.dynamic_slice_in_dim(position_ids_from_mask(attention_mask), index, 1, axis=1)  # [B, 1]
    mask = causal_mask(1, S, index) & padding_mask(attention_mask)  # [B, 1, 1, S]
    h, cache = decoder(params, token[:, None], position_ids, mask, config=config, cache=cache, index=index)
    return lm_logits(params, h[:, -1]), cache


_sample = jax.jit(sample_logits)


def generate(params: dict, input_ids, *, config: GPTConfig, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, key: jax.Array | None = None,
             attention_mask=None, eos_token_id: int | None = None, pad_token_id: int | None = None) -> np.ndarray:
    r"""Continue each (left-padded) prompt by up to ``max_new_tokens`` tokens through the key/value cache.

    One :func:`prefill` call, then per token one :func:`sample_logits` draw and one :func:`decode_step`.
    Greedy (HuggingFace's ``do_sample=False``) when ``key`` is None or ``temperature == 0``; otherwise
    sampling from :math:`\mathrm{softmax}(z/\tau)` cut to ``top_k`` and the ``top_p`` nucleus.  A row that
    emitted ``eos_token_id`` continues with ``pad_token_id`` (default: the eos id), as HuggingFace does,
    and generation stops when every row has.

    Args: input_ids [B, T0] (or [T0]); attention_mask [B, T0] 1/0, padding on the left.
    Returns int32 [B, N] new tokens, N <= max_new_tokens (or [N]).
    """
    ids = np.asarray(input_ids)
    single = ids.ndim == 1
    ids = ids[None] if single else ids
    if ids.ndim != 2 or ids.shape[1] == 0:
        raise ScratchlmError(f"expected a non-empty prompt [B, T0], got shape {np.asarray(input_ids).shape}")
    B, T0 = ids.shape
    mask = np.ones((B, T0), np.int32) if attention_mask is None else np.asarray(attention_mask, np.int32)
    if mask.shape != (B, T0):
        raise ScratchlmError(f"attention_mask {mask.shape} must match input_ids {(B, T0)}")
    if np.any(mask[:, -1] == 0):
        raise ScratchlmError("generate needs left padding: each prompt's last position must be a real token")
    if T0 >= config.n_positions:
        raise ScratchlmError(f"the prompt's {T0} tokens leave no room to generate: the model has "
                             f"{config.n_positions} positions")
    if max_new_tokens < 1 or T0 + max_new_tokens > config.n_positions:
        raise ScratchlmError(f"max_new_tokens must be in [1, {config.n_positions - T0}] (n_positions "
                             f"{config.n_positions} minus the prompt's {T0}), got {max_new_tokens}")
    greedy = key is None or temperature == 0
    top_k, top_p = 0 if top_k is None else top_k, 1.0 if top_p is None else top_p
    if temperature < 0 or not 0.0 < top_p <= 1.0 or not 0 <= top_k <= config.vocab_size:
        raise ScratchlmError(f"need temperature >= 0, 0 < top_p <= 1, 0 <= top_k <= {config.vocab_size}; "
                             f"got {temperature}, {top_p}, {top_k}")
    validate_batch({"input_ids": ids}, config)
    settings = {"temperature": jnp.float32(0.0 if greedy else temperature), "top_k": jnp.int32(top_k),
                "top_p": jnp.float32(top_p)}
    key = jax.random.key(0) if key is None else key
    pad = eos_token_id if pad_token_id is None else pad_token_id
    S = T0 + max_new_tokens
    full_mask = jnp.asarray(np.concatenate([mask, np.ones((B, max_new_tokens), np.int32)], axis=1))
    logits, cache = prefill(params, jnp.asarray(ids, jnp.int32), full_mask, init_cache(config, B, S), config=config)
    done = np.zeros(B, bool)
    new = []
    for i in range(max_new_tokens):
        w = np.asarray(_sample(logits, jax.random.fold_in(key, i), **settings))
        if eos_token_id is not None:
            w = np.where(done, pad, w)
            done |= w == eos_token_id
        new.append(w)
        if done.all() or i == max_new_tokens - 1:
            break
        logits, cache = decode_step(params, jnp.asarray(w, jnp.int32), jnp.int32(T0 + i), full_mask, cache,
                                    config=config)
    out = np.stack(new, axis=1).astype(np.int32)
    return out[0] if single else out


def generate_text(params: dict, prompt: str, *, config: GPTConfig, tokenizer, key: jax.Array | None,
                  max_new_tokens: int = 40, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.9,
                  samples: int = 1) -> list[str]:
    """``samples`` continuations of ``prompt`` (its text followed by the generated tokens, up to the
    end-of-text id), through :func:`generate`; ``tokenizer`` a :class:`scratchlm.tokenizers.Tokenizer`
    (the defaults: Holtzman et al. 2020's nucleus 0.9 at temperature 1; ``temperature=0`` is greedy)."""
    ids = tokenizer.encode(prompt, add_special_tokens=False).ids
    if not ids:
        raise ScratchlmError(f"the prompt {prompt!r} holds no token: give some text to continue")
    if samples < 1:
        raise ScratchlmError(f"samples must be at least 1, got {samples}")
    if 0 < config.n_positions - len(ids) < max_new_tokens:  # HuggingFace's generate warns, and stops there too
        warnings.warn(f"max_new_tokens {max_new_tokens} cut to {config.n_positions - len(ids)}: the model has "
                      f"{config.n_positions} positions and the prompt takes {len(ids)}", stacklevel=2)
        max_new_tokens = config.n_positions - len(ids)
    new = generate(params, np.tile(np.asarray(ids, np.int32), (samples, 1)), config=config, key=key,
                   max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                   eos_token_id=config.eos_token_id)
    eos = config.eos_token_id
    return [tokenizer.decode(ids + [int(w) for w in row[: list(row).index(eos) if eos in row else len(row)]])
            for row in new]


# -------------------------------------------------------------------------------------- checkpoints

# Buffers old GPT-2 checkpoints carry that are no parameters: the causal-mask tables of each block.
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def _expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    shapes = jax.eval_shape(lambda k: init(k, config), jax.random.key(0))
    return {name: tuple(s.shape) for name, s in flatten_params(shapes).items()}


def from_pretrained(path: str | Path, **config_overrides) -> tuple[GPTConfig, dict]:
    """Load a HuggingFace GPT-2 folder (``config.json`` + ``model.safetensors``), ``GPT2LMHeadModel``,
    ``GPT2Model`` (with or without the ``transformer.`` prefix) or ``GPT2ForSequenceClassification`` layout
    (its head ``score.weight`` loads as ``params["score"]``).

    ``lm_head.weight``, when written, must equal ``wte.weight`` (the head is tied).  Any tensor missing,
    left over, or of the wrong shape raises :class:`ScratchlmError` naming every such tensor.
    ``config_overrides`` set compute options (``dtype``, ``fused_attention``, dropout).  ``path`` is a folder
    or a HuggingFace Hub id (``"gpt2"``), found in the Hub cache or fetched through ``huggingface_hub`` when
    installed, as :func:`scratchlm.models.bert.from_pretrained` takes it (:func:`scratchlm.models.hub.resolve`).
    Returns (config, params) with float32 parameters.
    """
    from safetensors.numpy import load_file

    path = hub.resolve(path)
    config_file, weights_file = path / "config.json", path / "model.safetensors"
    for f in (config_file, weights_file):
        if not f.is_file():
            raise ScratchlmError(f"{f} not found: a pretrained folder needs config.json and model.safetensors")
    try:
        hf = json.loads(read_text(config_file))
    except json.JSONDecodeError as err:
        raise ScratchlmError(f"{config_file} is damaged: invalid JSON at line {err.lineno} column {err.colno}"
                             ) from None
    if not isinstance(hf, dict) or hf.get("model_type", "gpt2") != "gpt2":
        raise ScratchlmError(f"{config_file}: not a GPT-2 config (model_type {hf.get('model_type')!r})"
                             if isinstance(hf, dict) else f"{config_file} is not a model config")
    config = GPTConfig.from_hf_dict(hf, **config_overrides)
    try:
        raw = load_file(str(weights_file))
    except Exception as err:  # safetensors raises its own SafetensorError (or an OSError) for a damaged file
        raise ScratchlmError(f"{weights_file} is damaged or not a safetensors file ({err})") from None
    flat = {(k[len("transformer."):] if k.startswith("transformer.") else k): v for k, v in raw.items()
            if not k.endswith(_BUFFER_SUFFIXES)}
    score = flat.pop("score.weight", None)
    head = flat.pop("lm_head.weight", None)
    if head is not None and "wte.weight" in flat and not np.array_equal(head, flat["wte.weight"]):
        raise ScratchlmError(f"{weights_file}: lm_head.weight differs from transformer.wte.weight; scratchlm ties "
                             "them (an untied head is not supported)")
    expected = _expected_shapes(config)
    check_tensors(flat, expected, weights_file, config_file)
    params = unflatten_params({k: jnp.asarray(v, jnp.float32) for k, v in flat.items()})
    if score is not None:
        if score.ndim != 2 or score.shape[1] != config.n_embd:
            raise ScratchlmError(f"{weights_file}: score.weight {tuple(score.shape)}, config expects [C, "
                                 f"{config.n_embd}]")
        params["score"] = {"weight": jnp.asarray(score, jnp.float32)}
    return config, params


def save_pretrained(path: str | Path, params: dict, config: GPTConfig, *, tokenizer=None,
                    labels: list[str] | tuple[str, ...] | None = None, pad_token_id: int | None = None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` as ``GPT2LMHeadModel.save_pretrained`` does (names
    ``transformer.*``; the tied ``lm_head.weight`` left out, as HuggingFace leaves it).  Returns the folder.

    With a ``score`` head the folder is ``GPT2ForSequenceClassification``'s, as
    :func:`scratchlm.models.bert.save_pretrained` writes ``BertForSequenceClassification``'s: ``score.weight``
    (a sigmoid head's one row as the two rows :math:`(0, w)`, :func:`scratchlm.models.heads.softmax_rows`),
    ``num_labels``, ``id2label`` / ``label2id`` from ``labels`` and ``pad_token_id``, by which HuggingFace
    finds each row's last real token.  With ``tokenizer`` (a :class:`scratchlm.tokenizers.Tokenizer`) its
    files too, ``pad_token_id``'s token named as its ``pad_token`` (and ``eos_token``, ``bos_token`` the
    config's), so ``transformers.pipeline("text-classification", model=path)`` runs as it is."""
    from safetensors.numpy import save

    from scratchlm.io import atomic_write_bytes, atomic_write_text
    from scratchlm.models import heads

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    hf = config.to_hf_dict()
    if "score" in params:
        params = {**params, "score": heads.softmax_rows(params["score"], labels)}
        C = int(params["score"]["weight"].shape[0])
        names = [f"LABEL_{i}" for i in range(C)] if labels is None else [str(name) for name in labels]
        hf.update(architectures=["GPT2ForSequenceClassification"], num_labels=C, pad_token_id=pad_token_id,
                  id2label={str(i): name for i, name in enumerate(names)},
                  label2id={name: i for i, name in enumerate(names)})
    flat = {(k if k.split(".")[0] == "score" else f"transformer.{k}"): np.ascontiguousarray(np.asarray(v, np.float32))
            for k, v in flatten_params(params).items()}
    atomic_write_bytes(path / "model.safetensors", save(flat, metadata={"format": "pt"}))
    atomic_write_text(path / "config.json", json.dumps(hf, indent=2) + "\n")
    if tokenizer is not None:
        roles = {"bos_token": config.bos_token_id, "eos_token": config.eos_token_id, "pad_token": pad_token_id}
        tokenizer.save_pretrained(path, model_max_length=config.n_positions,
                                  special_tokens={role: tokenizer.id_to_token(i) for role, i in roles.items()
                                                  if i is not None and tokenizer.id_to_token(i) is not None})
    return path


def flops_per_token(config: GPTConfig, seq_len: int) -> float:
    r"""Training FLOPs per token (Kaplan et al. 2020, §2.1; PaLM's appendix B; nanoGPT's ``estimate_mfu``).

    .. math::  6N + 12\, L\, H\, T, \qquad N = L\,(4H^2 + 2HI) + VH

    :math:`N` counts the matmul weights: per block :math:`W^{attn}` (:math:`3H^2`), :math:`W^{proj}`
    (:math:`H^2`), :math:`W_{fc}, W_{proj}` (:math:`2HI`), and the tied LM head (:math:`VH`); each costs
    2 FLOPs per token forward and 4 backward.  Attention scores and the weighted sum add :math:`4TH` per
    layer forward, tripled with the backward pass (the causal half is counted whole, as PaLM does).
    """
    H, L, I, V = config.n_embd, config.n_layer, config.inner, config.vocab_size
    N = L * (4 * H * H + 2 * H * I) + V * H
    return 6 * N + 12 * L * H * seq_len
