"""Strict JSON for every file scratchlm writes: JSON has no NaN or infinity, so such a value is written as
``null`` and the file says why (:func:`write`).

Python's ``json.dumps`` writes ``NaN`` by default, which ``jq``, JavaScript and most JSON readers
reject; a word-similarity set with every pair out of vocabulary (a small or foreign corpus) would
otherwise make ``metrics.json`` unreadable.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from scratchlm.io import atomic_write_text

NOTE_KEY = "not_finite"  # where write() lists the values it wrote as null


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


def non_finite_paths(obj: Any, where: str = "") -> list[str]:
    """The paths (``a.b[2]``) of the non-finite floats in ``obj``, in order."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in non_finite_paths(v, f"{where}.{k}" if where else str(k))]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in non_finite_paths(v, f"{where}[{i}]")]
    if isinstance(obj, (float, np.floating)) and not math.isfinite(obj):
        return [f"{where} ({float(obj)})"]
    return []


def write(path: str | Path, obj: Any, *, indent: int | None = 2) -> None:
    """Write ``obj`` as strict JSON, atomically, ending in a newline.

    A dict with NaN or infinite values gets them as ``null`` and a ``"not_finite"`` entry listing
    each one's path and value (e.g. ``"valid_perplexity (inf)"``), so a reader sees why it is null.
    """
    if isinstance(obj, dict) and (bad := non_finite_paths(obj)):
        obj = {**obj, NOTE_KEY: ["written as null, not a finite number: " + ", ".join(bad)]}
    atomic_write_text(path, dumps(obj, indent=indent, default=float) + "\n")
