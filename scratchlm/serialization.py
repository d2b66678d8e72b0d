"""Pytrees to msgpack bytes and back, in ``flax.serialization``'s format, without importing flax.

Every checkpoint and ``params.msgpack`` scratchlm writes goes through here.  The bytes are the ones
``flax.serialization.msgpack_serialize`` writes (flax 0.12), and files flax wrote read back, so
checkpoints cross versions and either library reads the other's (tested byte for byte in
``tests/test_serialization.py``).  We keep our own copy because ``import flax`` pulls in
``flax.linen`` and its dependencies (rich, yaml, etils): a tenth of a second and more at the start of
every command, for about a hundred lines of format.

The format (msgpack, https://github.com/msgpack/msgpack/blob/master/spec.md):

- a state dict is a tree of dicts with string keys: lists and tuples become ``{"0": .., "1": ..}``,
  a namedtuple ``{field: ..}``, a registered type what its ``to_state_dict`` returns
  (:func:`register_serialization_state`; :func:`register_dataclass` for frozen dataclass pytrees);
- :func:`msgpack_serialize` first rebuilds the tree with ``jax.tree_util.tree_map``, which orders
  every dict's keys (JAX flattens a dict in sorted-key order), then packs it with ``strict_types``:
- a NumPy or JAX array is ExtType 1 holding ``packb((shape, dtype name, C-order bytes))``; a NumPy
  scalar (``np.float32(1)``, and ``np.float64``, a ``float`` subclass) ExtType 3 of the same as a 0-d
  array; a Python ``complex`` ExtType 2 holding ``packb((real, imag))``; ``int``, ``float``, ``bool``,
  ``str``, ``bytes`` and ``None`` are msgpack's own types;
- an array above 1 GiB found through dicts is stored as ``{"__msgpack_chunked_array__": True,
  "shape": {..}, "chunks": {..}}`` of flat pieces of at most 1 GiB (one msgpack object holds < 2 GiB).

Nothing here unpickles: an unknown object is a ``TypeError`` when packing.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import jax
import msgpack
import numpy as np

_REGISTRY: dict[type, tuple[Callable, Callable]] = {}
_NDARRAY, _COMPLEX, _NPSCALAR = 1, 2, 3  # flax's ExtType codes
MAX_CHUNK_SIZE = 2**30  # bytes: msgpack's hard limit is 2**31 - 1 per object; flax leaves this margin
_CHUNKED = "__msgpack_chunked_array__"


class _Path(threading.local):
    def __init__(self):
        self.names: list[str] = []


_path = _Path()


def current_path() -> str:
    """Where :func:`from_state_dict` is in the tree, ``"./params/W"``-style, for error messages."""
    return "/".join(_path.names)


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def _kind(x) -> type:
    return _NamedTuple if _is_namedtuple(x) else type(x)


def register_serialization_state(ty: type, to_state: Callable, from_state: Callable, override: bool = False) -> None:
    """How instances of ``ty`` become a state dict (``to_state(x) -> dict``) and are rebuilt from one
    (``from_state(target, state) -> x``)."""
    if ty in _REGISTRY and not override:
        raise ValueError(f'a serialization handler for "{ty.__name__}" is already registered')
    _REGISTRY[ty] = (to_state, from_state)


def to_state_dict(target: Any) -> Any:
    """``target`` as nested dicts with string keys (leaves unchanged), as ``flax.serialization.to_state_dict``."""
    ty = _kind(target)
    if ty not in _REGISTRY:
        return target
    return _REGISTRY[ty][0](target)


def from_state_dict(target: Any, state: Any, name: str = ".") -> Any:
    """``state``'s leaves in ``target``'s structure: dict keys, list lengths and fields must match;
    a leaf of ``target`` is replaced by ``state``'s value unchecked (the caller checks shapes)."""
    ty = _kind(target)
    if ty not in _REGISTRY:
        return state
    _path.names.append(name)
    try:
        return _REGISTRY[ty][1](target, state)
    finally:
        _path.names.pop()


class _NamedTuple:
    """Registry key for every namedtuple (optax's states are namedtuples)."""


def _list_state(xs) -> dict[str, Any]:
    return {str(i): to_state_dict(x) for i, x in enumerate(xs)}


def _restore_list(xs, state: dict[str, Any]) -> list:
    if len(state) != len(xs):
        raise ValueError(f"The size of the list and the state dict do not match, got {len(xs)} and {len(state)} "
                         f"at path {current_path()}")
    return [from_state_dict(xs[i], state[str(i)], name=str(i)) for i in range(len(state))]


def _dict_state(xs: dict) -> dict[str, Any]:
    if len({str(k) for k in xs}) != len(xs):
        raise ValueError(f"Dict keys do not have a unique string representation: {list(xs)}")
    return {str(k): to_state_dict(v) for k, v in xs.items()}


def _restore_dict(xs: dict, state: dict[str, Any]) -> dict:
    missing = set(map(str, xs)).difference(state)
    if missing:
        raise ValueError(f"The target dict keys and state dict keys do not match, target dict contains keys "
                         f"{missing} which are not present in state dict at path {current_path()}")
    return {k: from_state_dict(v, state[str(k)], name=str(k)) for k, v in xs.items()}


def _restore_namedtuple(xs, state: dict[str, Any]):
    if set(state) != set(xs._fields):
        raise ValueError(f"The field names of the state dict and the named tuple do not match, got {set(state)} "
                         f"and {set(xs._fields)} at path {current_path()}")
    return type(xs)(**{k: from_state_dict(getattr(xs, k), v, name=k) for k, v in state.items()})


register_serialization_state(dict, _dict_state, _restore_dict)
register_serialization_state(list, _list_state, _restore_list)
register_serialization_state(tuple, _list_state, lambda xs, state: tuple(_restore_list(list(xs), state)))
register_serialization_state(_NamedTuple, lambda nt: {k: to_state_dict(getattr(nt, k)) for k in nt._fields},
                             _restore_namedtuple)


def register_dataclass(cls: type) -> type:
    """A frozen dataclass as a JAX pytree (every field a child, ``jax.tree_util.register_dataclass``) whose state
    dict is ``{field: state}``, every field required when restoring: what ``flax.struct.dataclass`` makes of it."""
    names = [f.name for f in dataclasses.fields(cls)]
    jax.tree_util.register_dataclass(cls, data_fields=names, meta_fields=[])

    def restore(target, state: dict[str, Any]):
        missing, unknown = set(names) - set(state), set(state) - set(names)
        if missing or unknown:
            raise ValueError(f"Missing field(s) {sorted(missing)} or unknown field(s) {sorted(unknown)} in state dict "
                             f"while restoring an instance of {cls.__name__} at path {current_path()}")
        return dataclasses.replace(target, **{n: from_state_dict(getattr(target, n), state[n], name=n)
                                              for n in names})

    register_serialization_state(cls, lambda x: {n: to_state_dict(getattr(x, n)) for n in names}, restore)
    return cls


# ----------------------------------------------------------------------------- bytes


def _ndarray_bytes(x) -> bytes:
    arr = np.asarray(x)
    if arr.dtype.hasobject or arr.dtype.isalignedstruct:
        raise ValueError("Object and structured dtypes not supported for serialization of ndarrays.")
    return msgpack.packb((arr.shape, arr.dtype.name, arr.tobytes("C")), use_bin_type=True)


def _ext_pack(x):
    if isinstance(x, (np.ndarray, jax.Array)):
        return msgpack.ExtType(_NDARRAY, _ndarray_bytes(x))
    if isinstance(x, np.generic):
        return msgpack.ExtType(_NPSCALAR, _ndarray_bytes(np.asarray(x)))
    if isinstance(x, complex):
        return msgpack.ExtType(_COMPLEX, msgpack.packb((x.real, x.imag)))
    return x  # msgpack then raises TypeError: it calls default once


def _dtype(name: bytes) -> np.dtype:
    try:
        return np.dtype(name.decode())
    except TypeError:  # bfloat16 and the other ml_dtypes types have no NumPy name
        import ml_dtypes

        return np.dtype(getattr(ml_dtypes, name.decode()))


def _ndarray_from_bytes(data: bytes) -> np.ndarray:
    shape, name, buffer = msgpack.unpackb(data, raw=True)
    return np.frombuffer(buffer, dtype=_dtype(name)).reshape(shape, order="C")


def _ext_unpack(code: int, data: bytes):
    if code == _NDARRAY:
        return _ndarray_from_bytes(data)
    if code == _COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    if code == _NPSCALAR:
        return _ndarray_from_bytes(data)[()]
    return msgpack.ExtType(code, data)


def _chunk(arr: np.ndarray) -> dict[str, Any]:
    size = max(1, int(MAX_CHUNK_SIZE / arr.dtype.itemsize))
    flat = arr.reshape(-1)
    chunks = [flat[i : i + size] for i in range(0, flat.size, size)]
    return {_CHUNKED: True, "shape": {str(i): n for i, n in enumerate(arr.shape)},
            "chunks": {str(i): c for i, c in enumerate(chunks)}}


def _to_packable(d):
    """JAX arrays as NumPy and arrays over 1 GiB chunked, in the dicts of ``d`` (a fresh copy): lists are left to
    the packer, as flax leaves them."""
    if isinstance(d, dict):
        return {k: _to_packable(v) if isinstance(v, (dict, jax.Array, np.ndarray)) else v for k, v in d.items()}
    if isinstance(d, jax.Array):
        d = np.array(d)
    if isinstance(d, np.ndarray) and d.size * d.dtype.itemsize > MAX_CHUNK_SIZE:
        return _chunk(d)
    return d


def _unchunk(d):
    if isinstance(d, dict):
        if _CHUNKED in d:
            shape = tuple(d["shape"][str(i)] for i in range(len(d["shape"])))
            return np.concatenate([d["chunks"][str(i)] for i in range(len(d["chunks"]))]).reshape(shape)
        for k, v in d.items():
            if isinstance(v, dict):
                d[k] = _unchunk(v)
    return d


def msgpack_serialize(pytree: Any) -> bytes:
    """``pytree`` (dicts, lists, Python and NumPy scalars, arrays) as msgpack bytes, dict keys sorted:
    byte for byte ``flax.serialization.msgpack_serialize``."""
    pytree = jax.tree_util.tree_map(lambda x: x, pytree)  # a copy with every dict's keys in sorted order
    return msgpack.packb(_to_packable(pytree), default=_ext_pack, strict_types=True)


def msgpack_restore(encoded: bytes) -> Any:
    """The tree :func:`msgpack_serialize` (or flax's) wrote: arrays come back as read-only NumPy arrays."""
    return _unchunk(msgpack.unpackb(encoded, ext_hook=_ext_unpack, raw=False, strict_map_key=False))


def to_bytes(target: Any) -> bytes:
    """``target``'s state dict as msgpack bytes, keys in the state dict's order (``flax.serialization.to_bytes``)."""
    return msgpack.packb(_to_packable(to_state_dict(target)), default=_ext_pack, strict_types=True)


def from_bytes(target: Any, encoded: bytes) -> Any:
    """Bytes from :func:`to_bytes` or :func:`msgpack_serialize` read into ``target``'s structure."""
    return from_state_dict(target, msgpack_restore(encoded))
