"""scratchlm.jsonio: metrics files are strict JSON (no NaN/Infinity tokens), finite values unchanged."""

import json
import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from scratchlm import jsonio

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20)


def _same_with_none(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_with_none(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_with_none(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and not math.isfinite(a):
        return b is None
    return a == b


@given(values)
def test_non_finite_floats_become_null_and_the_rest_round_trips(obj):
    text = jsonio.dumps(obj)
    parsed = json.loads(text, parse_constant=lambda name: (_ for _ in ()).throw(AssertionError(name)))
    assert _same_with_none(obj, parsed)


def test_numpy_scalars_are_plain_numbers():
    assert json.loads(jsonio.dumps({"x": np.float32(0.5), "n": np.int64(7), "bad": np.float64("nan")})) == \
        {"x": 0.5, "n": 7, "bad": None}
