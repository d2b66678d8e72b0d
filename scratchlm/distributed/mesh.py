"""The device mesh: two named axes, ``data`` (the batch is split along it) and ``model`` (parameters are)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh

from scratchlm.errors import ScratchlmError

AXES = ("data", "model")


def parse_mesh(text: str) -> dict[str, int]:
    """``"data=4,model=2"`` -> ``{"data": 4, "model": 2}`` (missing axes are filled in by :func:`make_mesh`)."""
    sizes: dict[str, int] = {}
    if not text.strip():  # it ran on every device, as if --mesh had been left out
        raise ScratchlmError(f"--mesh expects axis=size pairs over {AXES} like 'data=4,model=2'; got {text!r}")
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or name not in AXES or not value.strip().isdigit() or int(value) < 1:
            raise ScratchlmError(f"--mesh expects axis=size pairs over {AXES} like 'data=4,model=2'; got {text!r} "
                                 f"(bad part {part!r})")
        if name in sizes:
            raise ScratchlmError(f"--mesh names axis {name!r} twice in {text!r}")
        sizes[name] = int(value)
    return sizes


def make_mesh(data: int | None = None, model: int = 1, *, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``(data, model)`` mesh over ``devices`` (default: every device of every process).

    ``data`` defaults to ``len(devices) // model``.  The ``model`` axis varies fastest, so its
    devices are neighbours in ``jax.devices()`` order (the same host, NVLink or ICI).
    """
    devices = list(jax.devices() if devices is None else devices)
    if data is None:
        data = max(1, len(devices) // model)  # model > devices: the message below names model's own count
    if data < 1 or model < 1 or data * model > len(devices):
        raise ScratchlmError(f"a mesh data={data} x model={model} needs {data * model} devices; "
                             f"{len(devices)} available ({devices[0].platform})")
    return Mesh(np.array(devices[: data * model]).reshape(data, model), AXES)
