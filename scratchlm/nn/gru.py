r"""The gated recurrent unit (Cho et al. 2014, §2.3), stacked, over a sequence with ``lax.scan``.

Two published variants, selected by ``GRUConfig.variant`` and recorded in the params:

``"cho"``   -- reset gate *before* the recurrent product, as in the paper (eqs. 5–8; d2l, haiku):

.. math::
    r_t &= \sigma(W_r x_t + U_r h_{t-1} + b_r) \\
    z_t &= \sigma(W_z x_t + U_z h_{t-1} + b_z) \\
    \tilde h_t &= \tanh(W_h x_t + U_h (r_t \odot h_{t-1}) + b_h) \\
    h_t &= z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t

``"cudnn"`` -- reset gate *after* the recurrent product, as in cuDNN, ``torch.nn.GRU``, flax and
equinox (the default: PyTorch weights load into it, and the three recurrent products fuse into one
matmul per step):

.. math::
    n_t = \tanh(W_n x_t + b_{in} + r_t \odot (U_n h_{t-1} + b_{hn})), \qquad
    h_t = z_t \odot h_{t-1} + (1 - z_t) \odot n_t

**Update-gate convention.**  :math:`z_t` multiplies the *old* state, as in Cho et al. 2014 (eq. 7)
and in PyTorch/cuDNN, so that one set of weights means the same thing in both variants and PyTorch's
weights load unchanged.  Chung et al. 2014 (and the issue text) write the flipped form
:math:`h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t`; it is the same model with
:math:`z \mapsto 1 - z`, i.e. :math:`W_z, U_z, b_z` negated, since :math:`1 - \sigma(a) = \sigma(-a)`.
Here :math:`z_t = 1` keeps the state.

Parameters are named as in ``torch.nn.GRU.state_dict()`` (``weight_ih_l0`` = :math:`[W_r; W_z; W_n]`
of shape [3H, D], ``weight_hh_l0`` = :math:`[U_r; U_z; U_n]` [3H, H], ``bias_ih_l0``, ``bias_hh_l0``,
``…_reverse`` for the backward direction), plus ``params["config"]``: the :class:`GRUConfig`, a
static pytree node (no leaves) so that ``jit``/``grad``/optax see only the arrays.  In the ``"cho"``
variant the two biases add up: :math:`b = b_{ih} + b_{hh}`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from scratchlm.errors import ScratchlmError
from scratchlm.nn.recurrent import load_torch_tensors, promote, register_config, stacked, torch_layout_params

VARIANTS = ("cho", "cudnn")


@register_config  # it travels inside params, and so inside checkpoints
@jax.tree_util.register_static
@dataclass(frozen=True)
class GRUConfig:
    input_size: int  # D
    hidden_size: int  # H
    num_layers: int = 1  # L, stacked; layer l > 0 reads layer l-1's outputs
    bidirectional: bool = False
    variant: str = "cudnn"  # "cudnn" (reset after U h, PyTorch) or "cho" (reset before, Cho et al. 2014)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ScratchlmError(f"GRUConfig.variant must be one of {VARIANTS}, got {self.variant!r}")
        if min(self.input_size, self.hidden_size, self.num_layers) < 1:
            raise ScratchlmError(f"GRUConfig sizes must be positive, got {self}")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1


@functools.partial(jax.jit, static_argnames=("config", "dtype"))
def init(key: jax.Array, config: GRUConfig, dtype: Any = jnp.float32) -> dict:
    r"""Parameters drawn as ``torch.nn.GRU`` draws them: every entry :math:`\sim U(-1/\sqrt{H}, 1/\sqrt{H})`.

    Returns ``{"config": config, "weight_ih_l0": [3H, D], "weight_hh_l0": [3H, H], "bias_ih_l0": [3H],
    "bias_hh_l0": [3H], ...}`` (layer l > 0 has input size H, or 2H when bidirectional).
    """
    return torch_layout_params(key, config, 3, dtype)


def params_from_torch(state_dict: Mapping[str, Any], *, variant: str = "cudnn") -> dict:
    """Params from ``torch.nn.GRU(...).state_dict()`` given as NumPy arrays (or anything ``np.asarray`` takes).

    The layer count, directions and sizes are read from the names and shapes; a missing tensor, an
    unexpected one or a mis-shaped one raises :class:`ScratchlmError` naming it.  PyTorch's GRU is the
    ``"cudnn"`` variant; ``variant="cho"`` loads the same tensors into the reset-before cell.
    """
    if "weight_ih_l0" not in state_dict:
        raise ScratchlmError(f"not a torch.nn.GRU state_dict: no 'weight_ih_l0' among {sorted(state_dict)}")
    num_layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in state_dict if k.startswith("weight_ih_l"))
    bidirectional = "weight_ih_l0_reverse" in state_dict
    three_h, D = np.shape(state_dict["weight_ih_l0"])
    if three_h % 3:
        raise ScratchlmError(f"state_dict['weight_ih_l0'] has {three_h} rows: a GRU has 3H (an LSTM has 4H)")
    if "weight_hh_l0" in state_dict and np.shape(state_dict["weight_hh_l0"]) != (three_h, three_h // 3):
        raise ScratchlmError(f"state_dict['weight_hh_l0'] has shape {np.shape(state_dict['weight_hh_l0'])}: "
                             f"a GRU's is [3H, H], here ({three_h}, {three_h // 3}) (an LSTM's is [4H, H])")
    config = GRUConfig(D, three_h // 3, num_layers, bidirectional, variant)
    return load_torch_tensors(state_dict, config, init, model="a GRU", unsupported="bias=False is not supported")


def input_projection(x: jax.Array, weight_ih: jax.Array, bias_ih: jax.Array, precision=None) -> jax.Array:
    r"""The input half of all three gates for every time step at once: one matmul before the scan.

    .. math::  [a^x_r;\ a^x_z;\ a^x_n]_t = [W_r; W_z; W_n]\, x_t + b_{ih}

    Args: x [T, B, D] time-major; weight_ih [3H, D]; bias_ih [3H].  Returns [T, B, 3H].
    """
    return jnp.einsum("tbd,gd->tbg", x, weight_ih, precision=precision) + bias_ih


def cell(a_x: jax.Array, h: jax.Array, weight_hh: jax.Array, bias_hh: jax.Array, *, variant: str,
         precision=None) -> jax.Array:
    r"""One GRU step given the input projection :math:`a^x_t` (see :func:`input_projection`).

    ``"cudnn"`` (one fused matmul for :math:`U_r, U_z, U_n`):

    .. math::
        [a^h_r; a^h_z; a^h_n] = [U_r; U_z; U_n]\, h_{t-1} + b_{hh}, \quad
        r_t = \sigma(a^x_r + a^h_r), \quad z_t = \sigma(a^x_z + a^h_z), \\
        n_t = \tanh(a^x_n + r_t \odot a^h_n), \qquad h_t = z_t \odot h_{t-1} + (1 - z_t) \odot n_t

    ``"cho"`` (Cho et al. 2014, eqs. 5–8; :math:`r_t` must exist before :math:`U_h` is applied, so
    the recurrent product splits into :math:`[U_r; U_z] h_{t-1}` and :math:`U_h (r_t \odot h_{t-1})`):

    .. math::
        \tilde h_t = \tanh(a^x_n + U_h (r_t \odot h_{t-1}) + b_{hn}), \qquad
        h_t = z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t

    Args: a_x [B, 3H]; h [B, H]; weight_hh [3H, H]; bias_hh [3H].  Returns h_t [B, H].
    """
    H = h.shape[-1]
    a_x_r, a_x_z, a_x_n = a_x[..., :H], a_x[..., H : 2 * H], a_x[..., 2 * H :]
    if variant == "cudnn":
        r, z, h_tilde, _ = _cudnn_gates(a_x, h, weight_hh, bias_hh, precision)
    else:
        a_h = jnp.dot(h, weight_hh[: 2 * H].T, precision=precision) + bias_hh[: 2 * H]  # [B, 2H]
        r = jax.nn.sigmoid(a_x_r + a_h[..., :H])
        z = jax.nn.sigmoid(a_x_z + a_h[..., H:])
        h_tilde = jnp.tanh(a_x_n + jnp.dot(r * h, weight_hh[2 * H :].T, precision=precision) + bias_hh[2 * H :])
    return z * h + (1.0 - z) * h_tilde


def _cudnn_gates(a_x, h, weight_hh, bias_hh, precision):
    """The gates :math:`r_t, z_t, n_t` and the recurrent part :math:`a^h_n` of the cuDNN cell
    (the equations of :func:`cell`)."""
    H = h.shape[-1]
    a_h = jnp.dot(h, weight_hh.T, precision=precision) + bias_hh  # [B, 3H]
    r = jax.nn.sigmoid(a_x[..., :H] + a_h[..., :H])
    z = jax.nn.sigmoid(a_x[..., H : 2 * H] + a_h[..., H : 2 * H])
    n = jnp.tanh(a_x[..., 2 * H :] + r * a_h[..., 2 * H :])
    return r, z, n, a_h[..., 2 * H :]


def _cudnn_forward(a_x, h0, weight_hh, bias_hh, mask, reverse, unroll, precision):
    """The cuDNN-variant recurrence over [T, B, 3H] input projections; also returns what the backward pass reads."""

    def step(h, inputs):
        a_x_t, m_t = inputs
        r, z, n, a_h_n = _cudnn_gates(a_x_t, h, weight_hh, bias_hh, precision)
        h_t = z * h + (1.0 - z) * n
        out = h_t
        if m_t is not None:  # a padded step keeps the state and emits zeros
            h_t, out = jnp.where(m_t[:, None], h_t, h), jnp.where(m_t[:, None], h_t, 0.0)
        return h_t, (out, (h, r, z, n, a_h_n))

    h_T, (outputs, saved) = lax.scan(step, h0, (a_x, mask), reverse=reverse, unroll=unroll)
    return (outputs, h_T), saved


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _cudnn_recurrence(a_x, h0, weight_hh, bias_hh, mask, reverse, unroll, precision):
    return _cudnn_forward(a_x, h0, weight_hh, bias_hh, mask, reverse, unroll, precision)[0]


def _cudnn_recurrence_fwd(a_x, h0, weight_hh, bias_hh, mask, reverse, unroll, precision):
    out, saved = _cudnn_forward(a_x, h0, weight_hh, bias_hh, mask, reverse, unroll, precision)
    return out, (saved, weight_hh, mask)


def _cudnn_recurrence_bwd(reverse, unroll, precision, residuals, cotangents):
    r"""Backpropagation through time for the cuDNN cell, the chain rule on :func:`cell`'s equations.

    With :math:`g_t = \partial L / \partial h_t` (from the output and from step t+1):

    .. math::
        \bar n = g (1 - z) (1 - n^2), \quad \bar a_z = g (h_{t-1} - n)\, z (1 - z), \quad
        \bar a_r = \bar n\, a^h_n\, r (1 - r), \\
        \bar a^x = [\bar a_r; \bar a_z; \bar n], \quad \bar a^h = [\bar a_r; \bar a_z; r \bar n], \quad
        \frac{\partial L}{\partial h_{t-1}} = g z + \bar a^h U

    The loop carries only :math:`\partial L/\partial h`; the recurrent weights' gradient
    :math:`\sum_t (\bar a^h_t)^\top h_{t-1}` is one matmul over all steps after it (autodiff of the
    scan would accumulate it step by step in small matmuls: about a third of the backward time on CPU).
    """
    (h_prev, r, z, n, a_h_n), weight_hh, mask = residuals
    d_outputs, d_h_T = cotangents

    def step(d_h, inputs):
        d_out_t, m_t, h, r, z, n, a_h_n = inputs
        g = d_h + d_out_t
        if m_t is not None:
            g = jnp.where(m_t[:, None], g, 0.0)  # a padded step passed the state through untouched
        d_n = g * (1.0 - z) * (1.0 - n * n)
        d_a_z = g * (h - n) * z * (1.0 - z)
        d_a_r = d_n * a_h_n * r * (1.0 - r)
        d_a_x = jnp.concatenate([d_a_r, d_a_z, d_n], axis=-1)  # [B, 3H]
        d_a_h = jnp.concatenate([d_a_r, d_a_z, r * d_n], axis=-1)  # [B, 3H]
        d_h_prev = g * z + jnp.dot(d_a_h, weight_hh, precision=precision)
        if m_t is not None:
            d_h_prev = d_h_prev + jnp.where(m_t[:, None], 0.0, d_h)
        return d_h_prev, (d_a_x, d_a_h)

    d_h0, (d_a_x, d_a_h) = lax.scan(step, d_h_T, (d_outputs, mask, h_prev, r, z, n, a_h_n),
                                    reverse=not reverse, unroll=unroll)
    d_weight_hh = jnp.einsum("tbg,tbh->gh", d_a_h, h_prev, precision=precision)  # [3H, H], all steps at once
    return d_a_x, d_h0, d_weight_hh, d_a_h.sum(axis=(0, 1)), None


_cudnn_recurrence.defvjp(_cudnn_recurrence_fwd, _cudnn_recurrence_bwd)


def _scan_direction(params, s, x, h0, mask, *, variant, reverse, unroll, precision):
    """One layer, one direction: x [T, B, D] time-major -> (outputs [T, B, H], h_T [B, H])."""
    a_x = input_projection(x, params["weight_ih" + s], params["bias_ih" + s], precision)  # [T, B, 3H]
    weight_hh, bias_hh = params["weight_hh" + s], params["bias_hh" + s]
    if variant == "cudnn":  # the same equations, with the backward pass written out for speed
        return _cudnn_recurrence(a_x, h0, weight_hh, bias_hh, mask, reverse, unroll, precision)

    def step(h, inputs):
        a_x_t, m_t = inputs
        h_t = cell(a_x_t, h, weight_hh, bias_hh, variant=variant, precision=precision)
        if m_t is not None:
            # A padded step leaves the state as it was and emits zeros (as PyTorch's packed sequences do).
            h_t = jnp.where(m_t[:, None], h_t, h)
            return h_t, jnp.where(m_t[:, None], h_t, 0.0)
        return h_t, h_t

    h_T, outputs = lax.scan(step, h0, (a_x, mask), reverse=reverse, unroll=unroll)
    return outputs, h_T


def apply(
    params: dict,
    x: jax.Array,
    h0: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    dropout: float = 0.0,
    key: jax.Array | None = None,
    train: bool = False,
    unroll: int | bool = 1,
    precision: Any = None,
) -> tuple[jax.Array, jax.Array]:
    r"""Run the stacked GRU over a batch of sequences, batch-first like ``torch.nn.GRU(batch_first=True)``.

    Layer :math:`l` reads :math:`\mathrm{dropout}(h^{(l-1)}_{1..T})` (dropout between layers only,
    as PyTorch does, drawn from ``key`` when ``train``); a bidirectional layer concatenates the
    forward and the backward direction's outputs (:func:`scratchlm.nn.recurrent.stacked`, the LSTM's too).
    Where ``mask[b, t]`` is false the step is padding: the state is carried unchanged and the output
    is zero, so padded steps anywhere change nothing (the backward direction starts at the last real
    token, like a packed sequence).

    Args:
      params: from :func:`init` or :func:`params_from_torch` (variant and sizes in ``params["config"]``).
      x: [B, T, D] inputs.
      h0: [L·dirs, B, H] initial states (zeros if omitted); index ``l·dirs + d`` as in PyTorch.
      mask: [B, T] bool, true at real steps.
      unroll: ``lax.scan``'s unroll factor (speed only, same result).
      precision: ``lax.Precision`` for the matmuls (e.g. ``"highest"`` to rule out TF32 on GPUs).

    Returns: outputs [B, T, dirs·H] of the top layer, h_n [L·dirs, B, H], in the dtype ``jnp`` promotes the
    weights, ``x`` and ``h0`` to (each gradient comes back in its own leaf's dtype).

    The ``"cudnn"`` variant's backward pass is written out as a custom VJP: differentiate it in reverse mode
    (``jax.grad``, ``vjp``, ``jacrev``), which ``jax.jvp``, ``jacfwd`` and ``hessian`` cannot run through;
    ``"cho"`` is differentiated by autodiff, both ways.
    """
    config: GRUConfig = params["config"]
    L, dirs, H = config.num_layers, config.num_directions, config.hidden_size
    if x.ndim != 3 or x.shape[-1] != config.input_size:
        raise ValueError(f"gru.apply: expected x [B, T, {config.input_size}], got {x.shape}")
    B, T, _ = x.shape
    if h0 is not None and h0.shape != (L * dirs, B, H):
        raise ValueError(f"gru.apply: expected h0 [{L * dirs}, {B}, {H}], got {h0.shape}")
    if mask is not None and mask.shape != (B, T):
        raise ValueError(f"gru.apply: expected mask [{B}, {T}], got {mask.shape}")
    params, x, (h0,) = promote(params, x, (h0,))  # one dtype for the scan's carry
    if h0 is None:
        h0 = jnp.zeros((L * dirs, B, H), x.dtype)

    def direction(s, layer_input, states, step_mask, reverse):
        out, h_T = _scan_direction(params, s, layer_input, states[0], step_mask, variant=config.variant,
                                   reverse=reverse, unroll=unroll, precision=precision)
        return out, (h_T,)

    outputs, (h_n,) = stacked(direction, config, x, (h0,), mask=mask, dropout=dropout, key=key, train=train)
    return outputs, h_n
