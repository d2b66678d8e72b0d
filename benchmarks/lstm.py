"""LSTM forward+backward steps/s: scratchlm's ``lax.scan`` LSTM beside ``torch.nn.LSTM`` (cuDNN on a GPU).

    python benchmarks/lstm.py                          # 2 layers, D 256, H 512, T 64, B 32
    python benchmarks/lstm.py --batch-size 256         # the large-batch figure
    python benchmarks/lstm.py --unroll 1,4,8 --precision highest
    python benchmarks/lstm.py --quick --no-peers       # a smoke run

What a step is and how it is timed: ``benchmarks/_recurrent.py``, the body shared with the GRU's benchmark.
``one_layer_recurrence_seconds`` times one layer (input projection and recurrence) the way ``lstm.apply`` runs
it (``lstm.recurrence``: feature-major, the backward pass written out) beside autodiff of the plain scan
(``lstm.input_projection`` then ``lstm.scan_recurrence``): whether writing it out pays.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _recurrent  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """The LSTM's figures; the flags ("--quick", "--no-peers", ...) are :func:`benchmarks._recurrent.main`'s."""
    return _recurrent.main("lstm", __doc__, argv)


if __name__ == "__main__":
    main()
