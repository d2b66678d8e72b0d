"""Strict JSON for metrics files: JSON has no NaN or infinity, so a missing score is written as ``null``.

Python's ``json.dumps`` writes ``NaN`` by default, which ``jq``, JavaScript and most JSON readers
reject; a word-similarity set with every pair out of vocabulary (a small or foreign corpus) would
otherwise make ``metrics.json`` unreadable.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def finite_or_none(obj: Any) -> Any:
    """The same structure with every non-finite float (NaN, ±inf) replaced by ``None``."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def dumps(obj: Any, **kwargs) -> str:
    """``json.dumps`` that never writes ``NaN``/``Infinity`` (they become ``null``)."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
