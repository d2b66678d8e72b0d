"""scratchlm.serialization: the bytes flax.serialization writes, for every kind of leaf, and each reads the other's.

flax is the peer: our module is a copy of its msgpack format (flax 0.12's ``serialization.py``) without its
imports, so the comparison is exact equality of bytes, never a tolerance.
"""

from __future__ import annotations

import dataclasses
from collections import namedtuple
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchlm import serialization
from scratchlm.training.loop import init_train_state, make_optimizer
from scratchlm.training.state import TrainState

flax_serialization = pytest.importorskip("flax.serialization")
flax_struct = pytest.importorskip("flax.struct")

Pair = namedtuple("Pair", ["second", "first"])


def every_leaf_kind() -> dict:
    """A nested tree with each leaf kind a checkpoint or ``extra`` dict can hold, dict keys out of order."""
    return {
        "zeta": {"f32": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), "f64": np.array([np.pi, -0.0, np.nan]),
                 "i32": np.arange(-3, 3, dtype=np.int32), "bool": np.array([[True, False]]),
                 "u8": np.arange(5, dtype=np.uint8), "c64": np.array([1 + 2j], np.complex64)},
        "alpha": {"zero_d": np.array(2.5, np.float32), "zero_d_int": np.array(7, np.int64),
                  "empty": np.zeros((0,), np.float32), "empty_2d": np.zeros((2, 0), np.int32),
                  "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3))},
        "numpy_scalars": {"f32": np.float32(0.1), "f64": np.float64(1 / 3), "i64": np.int64(-2**40), "i8": np.int8(-3),
                          "bool": np.bool_(True), "u32": np.uint32(2**31)},
        "python": {"int": 3, "big": 2**62, "neg": -17, "float": 0.1, "true": True, "false": False, "none": None,
                   "str": "naïve ☃", "bytes": b"\x00\xff", "complex": 1.5 - 2j},
        "jax": {"f32": jnp.arange(4.0), "bf16": jnp.array([1.0, -2.5], jnp.bfloat16), "i32": jnp.array(5, jnp.int32),
                "bool": jnp.array([True])},
        "lists": [1, [2.0, "three"], np.arange(2), jnp.ones(2)],
        "10": 1, "9": 2, "b": {"y": 1, "x": 2},
    }


def assert_same_tree(a: Any, b: Any, where: str = "") -> None:
    """Same containers, same leaf types, dtypes, shapes and bits."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}/{i}")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    else:
        assert a == b, where


def test_every_leaf_kind_gives_flaxs_bytes_and_each_reads_the_others():
    tree = every_leaf_kind()
    ours = serialization.msgpack_serialize(tree)
    assert ours == flax_serialization.msgpack_serialize(tree)
    read_by_flax = flax_serialization.msgpack_restore(ours)
    assert_same_tree(serialization.msgpack_restore(ours), read_by_flax)
    assert list(read_by_flax) == sorted(tree)  # dict keys sorted, as JAX orders them
    np.testing.assert_array_equal(read_by_flax["zeta"]["f32"], tree["zeta"]["f32"])
    assert read_by_flax["jax"]["bf16"].dtype == jnp.bfloat16
    assert read_by_flax["numpy_scalars"]["f64"] == np.float64(1 / 3) and read_by_flax["python"]["complex"] == 1.5 - 2j


def test_to_bytes_keeps_the_state_dicts_order_and_tuples_become_dicts():
    tree = {"b": (np.float32(1), [np.arange(3)]), "a": Pair(second=jnp.zeros(2), first=None)}
    ours = serialization.to_bytes(tree)
    assert ours == flax_serialization.to_bytes(tree)
    assert list(serialization.msgpack_restore(ours)) == ["b", "a"]
    restored = serialization.from_bytes(tree, ours)
    assert isinstance(restored["b"], tuple) and isinstance(restored["a"], Pair)
    assert_same_tree(restored["b"][1], [np.arange(3)])


@flax_struct.dataclass
class FlaxTrainState:
    """What TrainState was before it left flax: the same fields as a flax.struct dataclass."""

    params: Any
    opt_state: Any
    step: Any
    key: Any
    carry: Any = None


def test_a_train_state_with_optax_state_writes_the_bytes_flaxs_struct_dataclass_wrote():
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.array([-0.0, 1.5]), "n": jnp.array(3, jnp.int32)}
    tx = make_optimizer(learning_rate=0.1, total_steps=10, warmup_steps=2, weight_decay=0.1, clip_norm=1.0,
                        trainable={"w": True, "b": True, "n": False})
    state = init_train_state(params, tx, jax.random.key_data(jax.random.key(7)))
    old = FlaxTrainState(**{f.name: getattr(state, f.name) for f in dataclasses.fields(state)})
    assert jax.tree.structure(old).num_leaves == jax.tree.structure(state).num_leaves
    extra = {"epoch": 1, "vocab": ["a", "b"]}
    ours = serialization.msgpack_serialize({"state": serialization.to_state_dict(state), "extra": extra})
    theirs = flax_serialization.msgpack_serialize({"state": flax_serialization.to_state_dict(old), "extra": extra})
    assert ours == theirs
    blank = init_train_state(jax.tree.map(jnp.zeros_like, params), tx, jnp.zeros(2, jnp.uint32))
    restored = serialization.from_state_dict(blank, serialization.msgpack_restore(theirs)["state"])
    assert isinstance(restored, TrainState) and isinstance(restored.opt_state, type(state.opt_state))
    for x, y in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True):
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_restoring_names_a_missing_key_and_a_missing_field():
    with pytest.raises(ValueError, match="'w'.*not present"):
        serialization.from_state_dict({"w": 0, "b": 0}, {"b": 1})
    state = TrainState(params={}, opt_state=optax.EmptyState(), step=0, key=0)
    with pytest.raises(ValueError, match="Missing field.*'carry'.*TrainState"):
        serialization.from_state_dict(state, {"params": {}, "opt_state": {}, "step": 1, "key": 2})


def test_arrays_over_the_chunk_size_are_chunked_as_flax_chunks_them(monkeypatch):
    # 1 GiB arrays in a unit test would be slow: both modules read the limit at call time
    monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 40)
    monkeypatch.setattr(flax_serialization, "MAX_CHUNK_SIZE", 40)
    tree = {"big": np.arange(36, dtype=np.float32).reshape(3, 12), "small": np.arange(3, dtype=np.float32),
            "inner": {"big": jnp.arange(11, dtype=jnp.int32)}}
    ours = serialization.msgpack_serialize(tree)
    assert ours == flax_serialization.msgpack_serialize(tree)
    assert serialization.msgpack_serialize(tree["big"]) == flax_serialization.msgpack_serialize(tree["big"])
    assert_same_tree(serialization.msgpack_restore(ours), flax_serialization.msgpack_restore(ours))
    np.testing.assert_array_equal(serialization.msgpack_restore(ours)["big"], tree["big"])


def test_an_object_array_or_an_unknown_object_is_refused():
    with pytest.raises(ValueError, match="Object"):
        serialization.msgpack_serialize({"a": np.array([object()])})
    with pytest.raises(TypeError):
        serialization.msgpack_serialize({"a": object()})


_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int32, np.int64, np.uint16, np.bool_]


@st.composite
def trees(draw, depth=2):
    leaf = st.one_of(
        st.sampled_from(_DTYPES).flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3,
                                                                                     min_side=0, max_side=3))),
        st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=False), st.booleans(), st.none(), st.text(max_size=5),
        st.sampled_from(_DTYPES).flatmap(lambda dt: hnp.from_dtype(np.dtype(dt)).map(dt)))
    if depth == 0:
        return draw(leaf)
    node = st.one_of(leaf, st.dictionaries(st.text(max_size=3), trees(depth - 1), max_size=3),
                     st.lists(trees(depth - 1), max_size=3))
    return draw(node)


@settings(max_examples=60)
@given(trees())
def test_any_tree_gives_flaxs_bytes(tree):
    ours = serialization.msgpack_serialize(tree)
    assert ours == flax_serialization.msgpack_serialize(tree)
    assert_same_tree(serialization.msgpack_restore(ours), flax_serialization.msgpack_restore(ours))
