r"""What the GRU (:mod:`scratchlm.nn.gru`) and the LSTM (:mod:`scratchlm.nn.lstm`) share around their cells:
PyTorch's parameter names, initialisation and loading, the configs' msgpack form, and the stacking of
layers and directions.

Each cell keeps its own equations, its own scan over time and its own written-out backward pass in
its module; here is only what does not depend on the cell: which tensor is whose (``weight_ih_l1_reverse``),
how they are drawn, and how layers and directions are wired (:func:`stacked`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm import serialization
from scratchlm.errors import ScratchlmError
from scratchlm.nn.functional import dropout as _dropout


def register_config(cls: type) -> type:
    """A frozen config dataclass that travels inside params, and so inside checkpoints: msgpack stores it as a
    plain dict; a field an older checkpoint lacks takes its default."""
    serialization.register_serialization_state(
        cls,
        lambda config: dataclasses.asdict(config),
        lambda target, state: cls(**{f.name: state.get(f.name, getattr(target, f.name))
                                     for f in dataclasses.fields(cls)}),
    )
    return cls


def param_suffix(layer: int, direction: int) -> str:
    return f"_l{layer}" + ("_reverse" if direction == 1 else "")


def torch_layout_params(key: jax.Array, config, gates: int, dtype: Any = jnp.float32) -> dict:
    r"""A stacked recurrent layer's parameters in PyTorch's names and layout, every entry
    :math:`\sim U(-1/\sqrt{H}, 1/\sqrt{H})` as ``torch.nn.GRU``/``LSTM`` draw them: per layer and direction
    ``weight_ih [gH, D]``, ``weight_hh [gH, H]``, ``bias_ih [gH]``, ``bias_hh [gH]`` for ``gates`` = g (3 for the
    GRU, 4 for the LSTM).  ``config`` has ``input_size``, ``hidden_size``, ``num_layers``, ``num_directions``."""
    H = config.hidden_size
    bound = 1.0 / np.sqrt(H)
    shapes = {}
    for layer in range(config.num_layers):
        D = config.input_size if layer == 0 else H * config.num_directions
        for direction in range(config.num_directions):
            s = param_suffix(layer, direction)
            shapes.update({"weight_ih" + s: (gates * H, D), "weight_hh" + s: (gates * H, H),
                           "bias_ih" + s: (gates * H,), "bias_hh" + s: (gates * H,)})
    sizes = [int(np.prod(shape)) for shape in shapes.values()]
    # One draw cut into the tensors: a random kernel per tensor would cost a compilation each (~0.3 s on CPU).
    u = jax.random.uniform(key, (sum(sizes),), dtype, -bound, bound)
    params: dict = {"config": config}
    for (name, shape), chunk in zip(shapes.items(), jnp.split(u, np.cumsum(sizes)[:-1]), strict=True):
        params[name] = chunk.reshape(shape)
    return params


def load_torch_tensors(state_dict: Mapping[str, Any], config, init: Callable, *, model: str,
                       unsupported: str) -> dict:
    """The tensors of a ``torch.nn.GRU``/``LSTM`` state_dict as params of ``config`` (float32): each one
    ``init`` draws must be there with its shape, and no other (a :class:`ScratchlmError` naming it otherwise;
    ``model`` and ``unsupported`` word the message about extra tensors)."""
    expected = jax.eval_shape(lambda: init(jax.random.key(0), config))
    # extra tensors first: proj_size's weight_hr also changes weight_hh's shape, and its name says why
    extra = sorted(set(state_dict) - set(expected))
    if extra:
        raise ScratchlmError(f"state_dict holds tensors {model} does not have: {extra} ({unsupported})")
    params: dict = {"config": config}
    for name, spec in expected.items():
        if name == "config":
            continue
        if name not in state_dict:
            raise ScratchlmError(f"state_dict lacks {name!r} (expected {spec.shape})"
                                 + (f"; {unsupported}" if name.startswith("bias") else ""))
        value = np.asarray(state_dict[name], dtype=np.float32)
        if value.shape != spec.shape:
            raise ScratchlmError(f"state_dict[{name!r}] has shape {value.shape}, expected {spec.shape}")
        params[name] = jnp.asarray(value)
    return params


def promote(params: dict, x: jax.Array, states: tuple) -> tuple[dict, jax.Array, tuple]:
    """The weights, the inputs and the initial states cast to the one dtype ``jnp`` promotes them to (float32
    weights and bfloat16 inputs run in float32), so that the scan's carry keeps one dtype; ``astype``'s own
    gradient returns each leaf's gradient in that leaf's dtype.  Arrays already of that dtype pass untouched."""
    arrays = {k: v for k, v in params.items() if k != "config"}
    dtype = jnp.result_type(x, *arrays.values(), *(s for s in states if s is not None))

    def cast(a):
        return a if a is None or a.dtype == dtype else a.astype(dtype)

    return {**params, **{k: cast(v) for k, v in arrays.items()}}, cast(x), tuple(cast(s) for s in states)


def stacked(
    direction: Callable[..., tuple[jax.Array, tuple[jax.Array, ...]]],
    config,
    x: jax.Array,
    initial_states: tuple[jax.Array, ...],
    *,
    mask: jax.Array | None = None,
    dropout: float = 0.0,
    key: jax.Array | None = None,
    train: bool = False,
    feature_major: bool = False,
) -> tuple[jax.Array, tuple[jax.Array, ...]]:
    r"""Layers and directions around one cell's recurrence: the deep RNN of Graves et al. 2013 (eq. 11, layer
    :math:`l` reads layer :math:`l-1`'s outputs) with each layer bidirectional (Schuster & Paliwal 1997;
    Graves et al. 2013, eqs. 8–9):

    .. math::
        \tilde x^{(1)} = x, \qquad \tilde x^{(l)} = \mathrm{dropout}(h^{(l-1)}) \ \ (l > 1), \\
        \overrightarrow{h}^{(l)}_{1..T} = \mathrm{RNN}^{(l)}_{\rightarrow}(\tilde x^{(l)}_{1..T}), \qquad
        \overleftarrow{h}^{(l)}_{1..T} = \mathrm{RNN}^{(l)}_{\leftarrow}(\tilde x^{(l)}_{1..T}), \qquad
        h^{(l)}_t = [\overrightarrow{h}^{(l)}_t; \overleftarrow{h}^{(l)}_t]

    Dropout falls between layers only (as PyTorch's), a fresh draw from ``key`` per layer when ``train``.
    ``direction(s, x, states, mask, reverse) -> (outputs, final_states)`` runs one layer's one direction
    over time, its parameters those named with the suffix ``s`` (``"_l1_reverse"``): x [T, B, D] time-major,
    states and final_states each a tuple of [B, H] (the GRU's ``(h,)``, the LSTM's ``(h, c)``), mask [T, B]
    bool or None, outputs [T, B, H].

    With ``feature_major`` the layers pass each other their sequences as [T, D, B] (features before the
    batch; :mod:`scratchlm.nn.lstm` runs its matmuls in that layout, see its module docstring):
    ``direction`` then receives x [T, D, B] and states of [H, B], and returns outputs [T, H, B] and final
    states of [H, B]; the arguments and results of ``stacked`` itself, and the dropout masks drawn, are the same
    in both layouts.

    Args: config with ``num_layers`` L and ``num_directions``; x [B, T, D] batch-first; initial_states
    a tuple of [L·dirs, B, H], index ``l·dirs + d`` as in PyTorch; mask [B, T] bool, true at real steps.
    Returns: outputs [B, T, dirs·H] of the top layer, the final states as a tuple of [L·dirs, B, H].
    """
    L, dirs = config.num_layers, config.num_directions
    if mask is not None:
        mask = jnp.swapaxes(mask.astype(bool), 0, 1)  # [B, T] -> [T, B]
    # scan runs over the leading axis: [B, T, D] -> [T, B, D], or [T, D, B] feature-major
    layer_input = jnp.transpose(x, (1, 2, 0) if feature_major else (1, 0, 2))
    feature_axis = 1 if feature_major else 2
    state_layout = (lambda s: s.T) if feature_major else (lambda s: s)  # [B, H] <-> [H, B]
    finals: list[list[jax.Array]] = [[] for _ in initial_states]
    for layer in range(L):
        if layer > 0:
            key, sub = jax.random.split(key) if key is not None else (None, None)
            if feature_major:  # the mask drawn for [T, B, D], as in the batch-major layout
                layer_input = jnp.swapaxes(_dropout(jnp.swapaxes(layer_input, 1, 2), dropout, key=sub, train=train),
                                           1, 2)
            else:
                layer_input = _dropout(layer_input, dropout, key=sub, train=train)
        outputs = []
        for d in range(dirs):
            k = layer * dirs + d
            out, last = direction(param_suffix(layer, d), layer_input,
                                  tuple(state_layout(s[k]) for s in initial_states), mask, d == 1)
            outputs.append(out)
            for states, state in zip(finals, last, strict=True):
                states.append(state_layout(state))
        layer_input = outputs[0] if dirs == 1 else jnp.concatenate(outputs, axis=feature_axis)  # dirs·H features
    outputs = jnp.transpose(layer_input, (2, 0, 1) if feature_major else (1, 0, 2))  # -> [B, T, dirs·H]
    return outputs, tuple(jnp.stack(states) for states in finals)
