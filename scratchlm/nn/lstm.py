r"""Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000), stacked,
over a sequence with ``lax.scan``.

The cell of ``torch.nn.LSTM`` and cuDNN (no peepholes), gates in PyTorch's order i, f, g, o:

.. math::
    i_t &= \sigma(W_i x_t + b_{ii} + U_i h_{t-1} + b_{hi}) \\
    f_t &= \sigma(W_f x_t + b_{if} + U_f h_{t-1} + b_{hf}) \\
    g_t &= \tanh(W_g x_t + b_{ig} + U_g h_{t-1} + b_{hg}) \\
    o_t &= \sigma(W_o x_t + b_{io} + U_o h_{t-1} + b_{ho}) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
    h_t &= o_t \odot \tanh(c_t)

Hochreiter & Schmidhuber's original cell (1997, §4) has no :math:`f_t`: the cell state is carried
with weight 1 (the "constant error carousel"); Gers et al. 2000 (§3) multiply it by the forget gate
:math:`f_t` so that the cell can reset itself.  The peephole connections the same authors added later
(gates reading :math:`c_{t-1}`) are not part of PyTorch's (or cuDNN's) cell and are not here either.
The two bias vectors are PyTorch's: only their sum :math:`b_{ih} + b_{hh}` matters, and both exist so
that ``torch.nn.LSTM``'s weights load unchanged.

Parameters are named as in ``torch.nn.LSTM.state_dict()`` (``weight_ih_l0`` = :math:`[W_i; W_f; W_g; W_o]`
of shape [4H, D], ``weight_hh_l0`` = :math:`[U_i; U_f; U_g; U_o]` [4H, H], ``bias_ih_l0``, ``bias_hh_l0``
[4H], ``…_reverse`` for the backward direction), plus ``params["config"]``: the :class:`LSTMConfig`, a
static pytree node (no leaves) so that ``jit``/``grad``/optax see only the arrays.

Two implementations of one layer, held equal by a float64 test: the plain one writes the equations as
they read (:func:`input_projection`, one matmul before the scan, then :func:`cell` in a ``lax.scan``,
:func:`scan_recurrence`, differentiated by autodiff); the fast one, :func:`recurrence`, which
:func:`apply` runs, has its backward pass written out (:func:`_recurrence_bwd`) and works feature-major:
the layers hand each other [T, D, B] sequences (batch last), so that every matmul is a plain one in
XLA's CPU layout.  Inside the step, :math:`[W\ U]` times :math:`[x_t; h_{t-1}]` is one [4H, D + H]
weight times a [D + H, B] column block, which XLA's CPU matmul (YNNPACK) runs near its large-matmul rate
(the batch-major :math:`h_{t-1} U^\top` runs far below it), so the input projection moves into the step.
The backward scan's product :math:`U^\top \bar a_t` also gives the inputs' gradient :math:`W^\top \bar a_t`
in the same matmul (:math:`[U\ W]^\top \bar a_t`) when the inputs are differentiated; after the scan, the
weights' gradients are one plain matmul each over all steps (the gates' gradients [T, 4H, B] reordered to
[4H, T·B] by moving whole rows of B numbers).  Measured on 2 CPU cores (2 layers of 512 units, T 64, B 32,
forward and backward): 1.2–1.3x the batch-major layout with the projection outside the scan, and one
product per step in place of two, about 4 % more (round 11).
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
from jax.custom_derivatives import SymbolicZero

from scratchlm.errors import ScratchlmError
from scratchlm.nn.recurrent import load_torch_tensors, promote, register_config, stacked, torch_layout_params


@register_config  # it travels inside params, and so inside checkpoints
@jax.tree_util.register_static
@dataclass(frozen=True)
class LSTMConfig:
    input_size: int  # D
    hidden_size: int  # H
    num_layers: int = 1  # L, stacked; layer l > 0 reads layer l-1's outputs
    bidirectional: bool = False

    def __post_init__(self):
        if min(self.input_size, self.hidden_size, self.num_layers) < 1:
            raise ScratchlmError(f"LSTMConfig sizes must be positive, got {self}")

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1


@functools.partial(jax.jit, static_argnames=("config", "dtype"))
def init(key: jax.Array, config: LSTMConfig, dtype: Any = jnp.float32) -> dict:
    r"""Parameters drawn as ``torch.nn.LSTM`` draws them: every entry :math:`\sim U(-1/\sqrt{H}, 1/\sqrt{H})`.

    Returns ``{"config": config, "weight_ih_l0": [4H, D], "weight_hh_l0": [4H, H], "bias_ih_l0": [4H],
    "bias_hh_l0": [4H], ...}`` (layer l > 0 has input size H, or 2H when bidirectional).
    """
    return torch_layout_params(key, config, 4, dtype)


def params_from_torch(state_dict: Mapping[str, Any]) -> dict:
    """Params from ``torch.nn.LSTM(...).state_dict()`` given as NumPy arrays (or anything ``np.asarray`` takes).

    The layer count, directions and sizes are read from the names and shapes; a missing tensor, an
    unexpected one (``proj_size > 0``'s ``weight_hr``, or a GRU's) or a mis-shaped one raises
    :class:`ScratchlmError` naming it.
    """
    if "weight_ih_l0" not in state_dict:
        raise ScratchlmError(f"not a torch.nn.LSTM state_dict: no 'weight_ih_l0' among {sorted(state_dict)}")
    num_layers = 1 + max(int(k.split("_l")[1].split("_")[0]) for k in state_dict if k.startswith("weight_ih_l"))
    bidirectional = "weight_ih_l0_reverse" in state_dict
    four_h, D = np.shape(state_dict["weight_ih_l0"])
    if four_h % 4:
        raise ScratchlmError(f"state_dict['weight_ih_l0'] has {four_h} rows: an LSTM has 4H (a GRU has 3H)")
    config = LSTMConfig(D, four_h // 4, num_layers, bidirectional)
    return load_torch_tensors(state_dict, config, init, model="this LSTM",
                              unsupported="bias=False and proj_size > 0 are not supported")


def input_projection(x: jax.Array, weight_ih: jax.Array, bias_ih: jax.Array, precision=None) -> jax.Array:
    r"""The input half of all four gates for every time step at once: one matmul before the scan.

    .. math::  [a^x_i;\ a^x_f;\ a^x_g;\ a^x_o]_t = [W_i; W_f; W_g; W_o]\, x_t + b_{ih}

    Args: x [T, B, D] time-major; weight_ih [4H, D]; bias_ih [4H].  Returns [T, B, 4H].
    """
    return jnp.einsum("tbd,gd->tbg", x, weight_ih, precision=precision) + bias_ih


def _gates(a_x, h, weight_hh, bias_hh, precision):
    """The gates :math:`i_t, f_t, g_t, o_t` of :func:`cell` (one fused matmul for :math:`U_i, U_f, U_g, U_o`)."""
    H = h.shape[-1]
    a = a_x + jnp.dot(h, weight_hh.T, precision=precision) + bias_hh  # [B, 4H]
    i = jax.nn.sigmoid(a[..., :H])
    f = jax.nn.sigmoid(a[..., H : 2 * H])
    g = jnp.tanh(a[..., 2 * H : 3 * H])
    o = jax.nn.sigmoid(a[..., 3 * H :])
    return i, f, g, o


def cell(a_x: jax.Array, h: jax.Array, c: jax.Array, weight_hh: jax.Array, bias_hh: jax.Array, *,
         precision=None) -> tuple[jax.Array, jax.Array]:
    r"""One LSTM step given the input projection :math:`a^x_t` (see :func:`input_projection`)
    (Hochreiter & Schmidhuber 1997, §4; forget gate: Gers et al. 2000, §3):

    .. math::
        [a_i; a_f; a_g; a_o] = a^x_t + [U_i; U_f; U_g; U_o]\, h_{t-1} + b_{hh}, \quad
        i_t = \sigma(a_i), \ f_t = \sigma(a_f), \ g_t = \tanh(a_g), \ o_t = \sigma(a_o), \\
        c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t)

    Args: a_x [B, 4H]; h [B, H]; c [B, H]; weight_hh [4H, H]; bias_hh [4H].  Returns (h_t, c_t), each [B, H].
    """
    i, f, g, o = _gates(a_x, h, weight_hh, bias_hh, precision)
    c_t = f * c + i * g
    return o * jnp.tanh(c_t), c_t


def _masked(m_t, new, old):
    """A padded step (``m_t`` false) keeps ``old`` (as PyTorch's packed sequences do)."""
    return new if m_t is None else jnp.where(m_t[:, None], new, old)


def scan_recurrence(a_x, h0, c0, weight_hh, bias_hh, mask=None, reverse=False, unroll=1, precision=None):
    r"""The recurrence as the equations write it: :func:`cell` in a ``lax.scan``, differentiated by autodiff.

    A padded step (``mask[t, b]`` false) carries :math:`(h, c)` unchanged and emits zeros.

    Args: a_x [T, B, 4H]; h0, c0 [B, H]; weight_hh [4H, H]; bias_hh [4H]; mask [T, B] bool or None.
    Returns (outputs [T, B, H], h_T [B, H], c_T [B, H]).
    """

    def step(carry, inputs):
        h, c = carry
        a_x_t, m_t = inputs
        h_t, c_t = cell(a_x_t, h, c, weight_hh, bias_hh, precision=precision)
        out = _masked(m_t, h_t, 0.0)
        return (_masked(m_t, h_t, h), _masked(m_t, c_t, c)), out

    (h_T, c_T), outputs = lax.scan(step, (h0, c0), (a_x, mask), reverse=reverse, unroll=unroll)
    return outputs, h_T, c_T


def _forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reverse, unroll, precision):
    """:func:`recurrence`'s numbers, also returning what the backward pass reads.  Feature-major: x [T, D, B],
    h0, c0 [H, B]."""
    H = weight_hh.shape[1]
    # one product a step, [W U] [x_t; h_{t-1}]: one larger matmul runs faster than two (b_ih + b_hh summed
    # first: cell's numbers to float32 round-off)
    weight = jnp.concatenate([weight_ih, weight_hh], axis=1)  # [4H, D + H]
    bias = (bias_ih + bias_hh)[:, None]

    def step(carry, inputs):
        h, c = carry
        x_t, m_t = inputs
        a = jnp.dot(weight, jnp.concatenate([x_t, h]), precision=precision) + bias  # [4H, B]
        gates = jnp.concatenate([jax.nn.sigmoid(a[: 2 * H]), jnp.tanh(a[2 * H : 3 * H]), jax.nn.sigmoid(a[3 * H :])])
        i, f, g, o = gates[:H], gates[H : 2 * H], gates[2 * H : 3 * H], gates[3 * H :]
        c_t = f * c + i * g
        h_t = o * jnp.tanh(c_t)
        if m_t is None:
            return (h_t, c_t), (h_t, None, gates, c)
        m = m_t[None, :]
        h_carry, c_t = jnp.where(m, h_t, h), jnp.where(m, c_t, c)
        return (h_carry, c_t), (jnp.where(m, h_t, 0.0), h_carry, gates, c)

    (h_T, c_T), (outputs, h_carried, gates, c_prev) = lax.scan(step, (h0, c0), (x, mask), reverse=reverse,
                                                               unroll=unroll)
    return (outputs, h_T, c_T), (outputs if mask is None else h_carried, gates, c_prev)


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10))
def recurrence(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reverse, unroll, precision):
    r"""One layer's one direction, input projection included, with the backward pass written out
    (:func:`_recurrence_bwd`): :func:`input_projection` and then :func:`scan_recurrence`'s numbers, in the
    feature-major layout.

    Feature-major means the batch is the last axis: the step's products :math:`W x_t` and :math:`U h_{t-1}`
    are [4H, D] and [4H, H] weights times [D, B] and [H, B] column blocks, which XLA's CPU matmul (YNNPACK)
    runs near its large-matmul rate (64 steps of :math:`U h_{t-1}` at H 512, B 32 on 2 cores: 15–17 ms,
    against 20–22 ms for the batch-major :math:`h_{t-1} U^\top`, [B, H] by [H, 4H]), so the input
    projection moves into the step and costs no [T, B, 4H] array written and read back.

    Args: x [T, D, B]; h0, c0 [H, B]; weight_ih [4H, D]; weight_hh [4H, H]; bias_ih, bias_hh [4H];
    mask [T, B] bool or None.  Returns (outputs [T, H, B], h_T [H, B], c_T [H, B]), padded steps as
    :func:`scan_recurrence`'s.
    """
    return _forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reverse, unroll, precision)[0]


def _recurrence_fwd(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reverse, unroll, precision):
    # symbolic zeros: each argument arrives as (value, perturbed), so the backward pass computes the inputs'
    # gradient only where something differentiates them (not for a first layer reading data, say)
    with_d_x = x.perturbed
    x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask = (
        None if a is None else a.value for a in (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask))
    out, (h_carried, gates, c_prev) = _forward(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh, mask, reverse,
                                               unroll, precision)
    # [U W]^T: the backward step's one product gives both dL/dh_{t-1} and dL/dx_t; U^T alone when x̄ is unused
    weight_t = (jnp.concatenate([weight_hh, weight_ih], axis=1) if with_d_x else weight_hh).T
    return out, (x, h0, h_carried, gates, c_prev, out[2], weight_t, mask)


def _recurrence_bwd(reverse, unroll, precision, residuals, cotangents):
    r"""Backpropagation through time for the LSTM cell, the chain rule on :func:`cell`'s equations.

    With :math:`\bar h_t = \partial L/\partial h_t` (from the output and from step t+1) and
    :math:`\bar c^{\,\prime}_t` the cell state's gradient from step t+1:

    .. math::
        \bar c_t = \bar c^{\,\prime}_t + \bar h_t\, o_t (1 - \tanh^2 c_t), \quad
        \bar a_i = \bar c_t\, g_t\, i_t (1 - i_t), \quad \bar a_f = \bar c_t\, c_{t-1} f_t (1 - f_t), \\
        \bar a_g = \bar c_t\, i_t (1 - g_t^2), \quad \bar a_o = \bar h_t \tanh(c_t)\, o_t (1 - o_t), \\
        \frac{\partial L}{\partial c_{t-1}} = \bar c_t \odot f_t, \qquad
        \frac{\partial L}{\partial h_{t-1}} = U^\top [\bar a_i; \bar a_f; \bar a_g; \bar a_o]

    The loop carries only :math:`(\bar h, \bar c)` (and :math:`c_t`, whose tanh it recomputes).  Its one
    product :math:`[U\ W]^\top \bar a_t` gives :math:`\partial L/\partial h_{t-1}` and the inputs' gradient
    :math:`\partial L/\partial x_t = W^\top \bar a_t` together (:math:`U^\top \bar a_t` alone when nothing
    differentiates the inputs).  The weights' gradients :math:`\sum_t \bar a_t x_t^\top`,
    :math:`\sum_t \bar a_t h_{t-1}^\top` and the biases' :math:`\sum_t \bar a_t` are one matmul each over
    all steps after it (autodiff of the scan accumulates them step by step in small matmuls).
    """
    x, h0, h_carried, gates, c_prev, c_T, weight_t, mask = residuals
    # an output nothing reads arrives as a symbolic zero
    d_outputs, d_h_T, d_c_T = (jnp.zeros(a.shape, a.dtype) if isinstance(a, SymbolicZero) else a for a in cotangents)
    T, D, B = x.shape
    H = h0.shape[0]
    with_d_x = weight_t.shape[0] > H  # weight_t: [U W]^T [H + D, 4H], or U^T [H, 4H]

    def step(carry, inputs):
        d_h, d_c, c = carry
        d_out_t, gates_t, c_p, m_t = inputs
        i, f, g, o = gates_t[:H], gates_t[H : 2 * H], gates_t[2 * H : 3 * H], gates_t[3 * H :]
        tanh_c = jnp.tanh(c)
        d_h_t = d_h + d_out_t
        d_c_t = d_c + d_h_t * o * (1.0 - tanh_c * tanh_c)
        if m_t is not None:  # a padded step passed the state through untouched: no gradient reaches its gates
            m = m_t[None, :]
            d_h_t, d_c_t = jnp.where(m, d_h_t, 0.0), jnp.where(m, d_c_t, 0.0)
        d_a = jnp.concatenate([d_c_t * g * i * (1.0 - i), d_c_t * c_p * f * (1.0 - f), d_c_t * i * (1.0 - g * g),
                               d_h_t * tanh_c * o * (1.0 - o)])  # [4H, B]
        d_hx = jnp.dot(weight_t, d_a, precision=precision)  # [U^T ā; W^T ā], or U^T ā
        d_h_prev = d_hx[:H]
        d_c_prev = d_c_t * f
        if m_t is not None:
            d_h_prev = d_h_prev + jnp.where(m, 0.0, d_h)
            d_c_prev = d_c_prev + jnp.where(m, 0.0, d_c)
        return (d_h_prev, d_c_prev, c_p), (d_a, d_hx[H:] if with_d_x else None)

    (d_h0, d_c0, _), (d_a, d_x) = lax.scan(step, (d_h_T, d_c_T, c_T), (d_outputs, gates, c_prev, mask),
                                           reverse=not reverse, unroll=unroll)
    # [T, F, B] -> [F, T·B] (whole 4-byte·B rows move): every product below is one plain matmul over all steps
    d_a, x = (jnp.swapaxes(a, 0, 1).reshape(a.shape[1], T * B) for a in (d_a, x))
    h_carried = jnp.swapaxes(h_carried, 0, 1)  # [H, T, B]; shifted by one step (one copy with the swap):
    h_prev = jnp.concatenate([h_carried[:, 1:], h0[:, None]] if reverse else [h0[:, None], h_carried[:, :-1]], axis=1)
    h_prev = h_prev.reshape(H, T * B)  # the state each step read
    over_steps = (((1,), (1,)), ((), ()))
    d_weight_ih = lax.dot_general(d_a, x, over_steps, precision=precision)  # [4H, D]
    d_weight_hh = lax.dot_general(d_a, h_prev, over_steps, precision=precision)  # [4H, H]
    d_bias = d_a.sum(axis=1)
    return d_x, d_h0, d_c0, d_weight_ih, d_weight_hh, d_bias, d_bias, None


recurrence.defvjp(_recurrence_fwd, _recurrence_bwd, symbolic_zeros=True)


def apply(
    params: dict,
    x: jax.Array,
    initial_state: tuple[jax.Array, jax.Array] | None = None,
    *,
    mask: jax.Array | None = None,
    dropout: float = 0.0,
    key: jax.Array | None = None,
    train: bool = False,
    unroll: int | bool = 1,
    precision: Any = None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    r"""Run the stacked LSTM over a batch of sequences, batch-first like ``torch.nn.LSTM(batch_first=True)``.

    Layer :math:`l` reads :math:`\mathrm{dropout}(h^{(l-1)}_{1..T})` (dropout between layers only,
    as PyTorch does, drawn from ``key`` when ``train``); a bidirectional layer concatenates the
    forward and the backward direction's outputs (:func:`scratchlm.nn.recurrent.stacked`, the GRU's too).
    Where ``mask[b, t]`` is false the step is padding: :math:`(h, c)` are carried unchanged and the
    output is zero, so padded steps anywhere change nothing (the backward direction starts at the last
    real token, like a packed sequence).

    Args:
      params: from :func:`init` or :func:`params_from_torch` (sizes in ``params["config"]``).
      x: [B, T, D] inputs.
      initial_state: ``(h0, c0)``, each [L·dirs, B, H] (zeros if omitted); index ``l·dirs + d`` as in PyTorch.
      mask: [B, T] bool, true at real steps.
      unroll: ``lax.scan``'s unroll factor (speed only, same result).
      precision: ``lax.Precision`` for the matmuls (e.g. ``"highest"`` to rule out TF32 on GPUs).

    Returns: outputs [B, T, dirs·H] of the top layer, ``(h_n, c_n)`` each [L·dirs, B, H], in the dtype ``jnp``
    promotes the weights, ``x`` and the initial state to (each gradient comes back in its own leaf's dtype).

    Differentiate it in reverse mode (``jax.grad``, ``vjp``, ``jacrev``; second order too): its backward pass
    is written out as a custom VJP, which ``jax.jvp``, ``jacfwd`` and ``hessian`` cannot run through; for those,
    :func:`scan_recurrence` is the same layer differentiated by autodiff.
    """
    config: LSTMConfig = params["config"]
    L, dirs, H = config.num_layers, config.num_directions, config.hidden_size
    if x.ndim != 3 or x.shape[-1] != config.input_size:
        raise ValueError(f"lstm.apply: expected x [B, T, {config.input_size}], got {x.shape}")
    B, T, _ = x.shape
    h0, c0 = (None, None) if initial_state is None else initial_state
    if initial_state is not None and (h0.shape != (L * dirs, B, H) or c0.shape != (L * dirs, B, H)):
        raise ValueError(f"lstm.apply: expected initial_state (h0, c0) each [{L * dirs}, {B}, {H}], "
                         f"got {h0.shape} and {c0.shape}")
    if mask is not None and mask.shape != (B, T):
        raise ValueError(f"lstm.apply: expected mask [{B}, {T}], got {mask.shape}")
    params, x, (h0, c0) = promote(params, x, (h0, c0))  # one dtype for the scan's carry
    if h0 is None:
        h0 = c0 = jnp.zeros((L * dirs, B, H), x.dtype)

    def direction(s, layer_input, states, step_mask, reverse):
        out, h_T, c_T = recurrence(layer_input, *states, params["weight_ih" + s], params["weight_hh" + s],
                                   params["bias_ih" + s], params["bias_hh" + s], step_mask, reverse, unroll, precision)
        return out, (h_T, c_T)

    outputs, (h_n, c_n) = stacked(direction, config, x, (h0, c0), mask=mask, dropout=dropout, key=key, train=train,
                                  feature_major=True)
    return outputs, (h_n, c_n)
