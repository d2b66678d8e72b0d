r"""Low-rank adaptation, LoRA (Hu et al. 2021, §4.1): a frozen weight plus a trainable low-rank update.

.. math::  h = W_0 x + \Delta W x = W_0 x + \frac{\alpha}{r} B A x, \qquad
           B \in \mathbb{R}^{d \times r},\ A \in \mathbb{R}^{r \times k},\ r \ll \min(d, k)

Written as a transformation of a params pytree, so that any model of the library trains with it and
its ``apply`` stays as it is: :func:`init` makes the adapters of the dense layers chosen by name,
:func:`adapt` returns the params with :math:`W' = W_0 + \frac{\alpha}{r} BA` in place of each chosen
:math:`W_0` (what the model's ``apply`` then reads; :func:`wrap` makes that apply), :func:`merge` /
:func:`unmerge` fold the update into the weights and out again, and :func:`trainable_mask` marks what
the optimizer may change.

**Orientation.**  scratchlm's dense weights keep PyTorch's ``[out, in]`` layout
(:func:`scratchlm.nn.attention.dense`: :math:`y = x W^\top + b`), which is the paper's
:math:`W_0 \in \mathbb{R}^{d \times k}` with :math:`d` = out and :math:`k` = in.  So :math:`A`
``[r, in]`` is PEFT's ``lora_A.weight`` and :math:`B` ``[out, r]`` its ``lora_B.weight``, element
for element, without a transpose.  GPT-2's ``Conv1D`` stores its weight ``[in, out]``
(:func:`scratchlm.models.gpt.conv1d`: :math:`y = xW + b`); ``LoraConfig.fan_in_fan_out`` (PEFT's field,
which PEFT itself sets for ``Conv1D``) says so, and the update is then written as
:math:`(BA)^\top` onto that weight, :math:`A` and :math:`B` keeping the same shapes and PEFT's names.

**Adapters** are a dict from module name (HuggingFace's dotted name, e.g.
``"encoder.layer.0.attention.self.query"``) to ``{"lora_A": A [r, k], "lora_B": B [d, r]}``.  A params
tree that trains them carries them under ``params["lora"]`` (:data:`ADAPTERS`), beside the frozen
weights they adapt.

**Dropout** (PEFT's ``lora_dropout``) acts on the adapter's input only:
:math:`h = W_0 x + \frac{\alpha}{r} B A\, \mathrm{dropout}(x)`.  Per element of :math:`x` it needs
the activation, which a transformation of the weights never sees: :func:`lora_dense` is that exact
form for a model that calls its dense layers itself.  :func:`adapt` realises it on the weight: since
:math:`A\,(m \odot x) / (1-p) = (A \operatorname{diag}(m) / (1-p))\, x`, dropping columns of
:math:`A` with one mask :math:`m \in \{0,1\}^k` per adapted layer and step is input dropout whose
mask is shared by every token of the step (a feature mask, as dropout on :math:`x` broadcast over
batch and positions); the expectation is PEFT's, the variance larger.

Computing :math:`W'` costs :math:`d r k` per layer and step; the backward pass forms the dense
:math:`\partial\mathcal{L}/\partial W'` ``[d, k]`` of each adapted layer (not of the frozen rest), which
the activation form avoids: a memory trade for any-model generality, small at BERT sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from scratchlm.errors import ScratchlmError
from scratchlm.nn.attention import dense
from scratchlm.nn.functional import dropout

ADAPTERS = "lora"  # the key of a params tree under which its adapters train


@dataclass(frozen=True)
class LoraConfig:
    """LoRA's settings, under PEFT's ``LoraConfig`` field names and defaults."""

    r: int = 8  # rank of the update; PEFT's default (Hu et al. 2021, Table 6: r = 1..8 already suffice)
    lora_alpha: float = 8.0  # alpha: the update is scaled by alpha / r (Hu et al. 2021, §4.1); PEFT's default
    target_modules: tuple[str, ...] = ("query", "value")  # PEFT's default for BERT: W_q and W_v (Hu et al. §7.1)
    lora_dropout: float = 0.0  # dropout on the adapter's input; PEFT's default
    fan_in_fan_out: bool = False  # weights stored [in, out] (GPT-2's Conv1D); PEFT's field, True for Conv1D

    def __post_init__(self):
        if isinstance(self.target_modules, str) or not all(isinstance(t, str) for t in self.target_modules):
            raise ScratchlmError(f"target_modules must be a tuple of names, got {self.target_modules!r}")
        if not isinstance(self.r, int) or self.r < 1:
            raise ScratchlmError(f"--lora-rank must be an integer >= 1, got {self.r!r}")
        if not self.lora_alpha > 0:
            raise ScratchlmError(f"--lora-alpha must be > 0, got {self.lora_alpha}")
        if not self.target_modules:
            raise ScratchlmError("--lora-targets must name at least one layer")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ScratchlmError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout}")

    @property
    def scaling(self) -> float:
        r"""The update's scale :math:`\alpha / r` (Hu et al. 2021, §4.1)."""
        return self.lora_alpha / self.r


def _dense_weights(params: dict) -> dict[str, jax.Array]:
    """``{module name: W}`` for every rank-2 leaf named ``weight`` (a dense layer's ``[out, in]`` matrix, or
    ``[in, out]`` under ``fan_in_fan_out``)."""
    found = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        names = [str(getattr(p, "key", getattr(p, "idx", p))) for p in path]
        if names[-1] == "weight" and jnp.ndim(leaf) == 2 and names[0] != ADAPTERS:
            found[".".join(names[:-1])] = leaf
    return found


def is_target(module: str, target_modules: tuple[str, ...]) -> bool:
    """PEFT's rule for a list of names: the module's dotted name equals a target or ends with ``.target``."""
    return any(module == t or module.endswith("." + t) for t in target_modules)


def targets(params: dict, config: LoraConfig) -> list[str]:
    """The names of the dense layers ``config.target_modules`` selects, in ``jax.tree`` order of the leaves.

    A target that selects nothing is a :class:`ScratchlmError` naming the layers there are."""
    weights = _dense_weights(params)
    chosen = [m for m in weights if is_target(m, config.target_modules)]
    missing = [t for t in config.target_modules if not any(is_target(m, (t,)) for m in weights)]
    if missing:
        last = sorted({m.rsplit(".", 1)[-1] for m in weights})
        raise ScratchlmError(f"--lora-targets {','.join(missing)} matched no dense layer; the model's dense layers "
                             f"end in: {', '.join(last)}")
    return chosen


def init(key: jax.Array, params: dict, config: LoraConfig) -> dict:
    r"""Adapters for the target layers, initialised as PEFT does (Hu et al. 2021, §4.1: :math:`B = 0`).

    .. math::  A_{ij} \sim \mathcal{U}\!\left(-\tfrac{1}{\sqrt{k}}, \tfrac{1}{\sqrt{k}}\right), \qquad B = 0

    PEFT calls ``kaiming_uniform_(A, a=sqrt(5))``: bound :math:`\mathrm{gain}\sqrt{3/k}` with
    :math:`\mathrm{gain} = \sqrt{2/(1+a^2)} = \sqrt{1/3}`, i.e. :math:`1/\sqrt{k}` for fan-in :math:`k`.
    :math:`B = 0` makes :math:`\Delta W = 0`: the adapted model starts as the base model.

    Args: key; params the model's params; config.  Returns ``{module: {"lora_A" [r, k], "lora_B" [d, r]}}``.
    """
    weights = _dense_weights(params)
    adapters = {}
    for i, module in enumerate(targets(params, config)):
        d, k = weights[module].shape[::-1] if config.fan_in_fan_out else weights[module].shape
        bound = 1.0 / math.sqrt(k)
        A = jax.random.uniform(jax.random.fold_in(key, i), (config.r, k), jnp.float32, -bound, bound)
        adapters[module] = {"lora_A": A, "lora_B": jnp.zeros((d, config.r), jnp.float32)}
    return adapters


def delta(adapter: dict, scaling: float, fan_in_fan_out: bool = False) -> jax.Array:
    r"""The low-rank update (Hu et al. 2021, eq. 3): :math:`\Delta W = \frac{\alpha}{r} B A`, ``[d, k]``;
    its transpose ``[k, d]`` for a weight stored ``[in, out]`` (``fan_in_fan_out``, PEFT's ``transpose``)."""
    update = scaling * (adapter["lora_B"] @ adapter["lora_A"])
    return update.T if fan_in_fan_out else update


def lora_dense(p: dict, adapter: dict, x: jax.Array, *, scaling: float, rate: float = 0.0,
               key: jax.Array | None = None, train: bool = False) -> jax.Array:
    r"""A dense layer with its adapter, in activation form (Hu et al. 2021, eq. 3, PEFT's ``Linear.forward``).

    .. math::  h = W_0 x + b + \frac{\alpha}{r} B A\, \mathrm{dropout}_p(x)

    The dropout mask is drawn per element of :math:`x` (PEFT's ``lora_dropout``); without dropout
    this equals :func:`scratchlm.nn.attention.dense` on the merged weight :math:`W_0 + \frac{\alpha}{r}BA`.

    Args: p {"weight" W_0 [d, k], "bias" [d]}; adapter {"lora_A" [r, k], "lora_B" [d, r]}; x [..., k];
    scaling :math:`\alpha/r`; rate p.  Returns [..., d].
    """
    A, B = adapter["lora_A"].astype(x.dtype), adapter["lora_B"].astype(x.dtype)
    x_drop = dropout(x, rate, key=key, train=train)
    return dense(p, x) + scaling * jnp.einsum("...r,dr->...d", jnp.einsum("...k,rk->...r", x_drop, A), B)


def _replace(params: dict, new_weights: dict[str, jax.Array]) -> dict:
    """``params`` with the ``weight`` of each named module replaced (the rest shared, not copied)."""

    def walk(node, prefix):
        if isinstance(node, dict):
            if prefix[:-1] in new_weights and "weight" in node:
                return {**node, "weight": new_weights[prefix[:-1]]}
            return {k: walk(v, f"{prefix}{k}.") for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return type(node)(walk(v, f"{prefix}{i}.") for i, v in enumerate(node))
        return node

    return walk(params, "")


def merge(params: dict, adapters: dict, config: LoraConfig) -> dict:
    r"""The weights with their updates folded in (Hu et al. 2021, §4.1, "no additional inference latency").

    .. math::  W = W_0 + \frac{\alpha}{r} B A

    Args: params with the base weights :math:`W_0`; adapters from :func:`init`.  Returns params of the
    same structure (any ``params["lora"]`` passed through), each adapted weight replaced.
    """
    weights = _dense_weights(params)
    return _replace(params, {m: weights[m] + delta(a, config.scaling, config.fan_in_fan_out).astype(weights[m].dtype)
                             for m, a in adapters.items()})


def unmerge(params: dict, adapters: dict, config: LoraConfig) -> dict:
    r"""The inverse of :func:`merge`: :math:`W_0 = W - \frac{\alpha}{r} B A` (exact up to float rounding)."""
    weights = _dense_weights(params)
    return _replace(params, {m: weights[m] - delta(a, config.scaling, config.fan_in_fan_out).astype(weights[m].dtype)
                             for m, a in adapters.items()})


def adapt(params: dict, adapters: dict, config: LoraConfig, *, key: jax.Array | None = None,
          train: bool = False) -> dict:
    r"""The params a model's unchanged ``apply`` reads while training its adapters (Hu et al. 2021, eq. 3).

    .. math::  W' = W_0 + \frac{\alpha}{r} B \left(A \operatorname{diag}(m) / (1-p)\right), \qquad
               m_j \sim \mathrm{Bernoulli}(1-p)

    With ``train=False`` or ``lora_dropout == 0`` this is :func:`merge`.  With dropout it drops
    columns of :math:`A`, one mask per adapted layer from ``fold_in(key, i)``: input dropout whose
    mask every token of the step shares (see the module's docstring; :func:`lora_dense` is the
    per-element form).  Gradients reach :math:`A` and :math:`B` through :math:`W'`.

    Args: params; adapters; config; key (required when training with dropout).  Returns params.
    """
    p = config.lora_dropout
    if not train or p == 0.0:
        return merge(params, adapters, config)
    if key is None:
        raise ValueError("adapt with train=True and lora_dropout > 0 needs a PRNG key (key=...)")
    weights = _dense_weights(params)
    new = {}
    for i, (m, a) in enumerate(adapters.items()):
        keep = dropout(jnp.ones((a["lora_A"].shape[1],), a["lora_A"].dtype), p, key=jax.random.fold_in(key, i),
                       train=True)  # m / (1 - p), [k]
        dropped = {"lora_A": a["lora_A"] * keep[None, :], "lora_B": a["lora_B"]}
        new[m] = weights[m] + delta(dropped, config.scaling, config.fan_in_fan_out).astype(weights[m].dtype)
    return _replace(params, new)


def wrap(apply_fn: Callable, config: LoraConfig) -> Callable:
    r"""``apply_fn`` (a model's ``apply(params, ..., key=None, train=False, ...)``) over params that carry their
    adapters under ``params["lora"]``: the model reads :func:`adapt`'s :math:`W' = W_0 + \frac{\alpha}{r}BA`,
    its own code unchanged.  The key is split, the first half for the adapters' dropout."""

    def apply(params: dict, *args, key: jax.Array | None = None, train: bool = False, **kwargs):
        k_lora, key = jax.random.split(key) if key is not None else (None, None)
        base = {k: v for k, v in params.items() if k != ADAPTERS}
        return apply_fn(adapt(base, params[ADAPTERS], config, key=k_lora, train=train), *args, key=key, train=train,
                        **kwargs)

    return apply


def trainable_mask(params: dict, modules_to_save: tuple[str, ...] = ()) -> dict:
    """A bool pytree like ``params``: True for the adapters (``params["lora"]``) and for every leaf of a
    module named in ``modules_to_save`` (PEFT's matching: the dotted name equals it or ends with
    ``.name``, e.g. ``classifier``); False for everything else, the frozen base model."""

    def trains(path, _) -> bool:
        names = [str(getattr(p, "key", getattr(p, "idx", p))) for p in path]
        prefixes = (".".join(names[:n]) for n in range(1, len(names)))
        return names[0] == ADAPTERS or any(is_target(m, modules_to_save) for m in prefixes)

    return jax.tree_util.tree_map_with_path(trains, params)


__all__ = ["ADAPTERS", "LoraConfig", "is_target", "targets", "init", "delta", "lora_dense", "merge", "unmerge",
           "adapt", "wrap", "trainable_mask"]
