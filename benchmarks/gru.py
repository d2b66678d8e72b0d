"""GRU forward+backward steps/s: scratchlm's ``lax.scan`` GRU beside ``torch.nn.GRU`` (cuDNN on a GPU).

    python benchmarks/gru.py                           # 2 layers, D 256, H 512, T 64, B 32
    python benchmarks/gru.py --batch-size 256          # the large-batch figure
    python benchmarks/gru.py --unroll 1,4,8 --precision highest
    python benchmarks/gru.py --quick --no-peers        # a smoke run

What a step is and how it is timed: ``benchmarks/_recurrent.py``, the body shared with the LSTM's benchmark.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _recurrent  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    """The GRU's figures; the flags ("--quick", "--no-peers", ...) are :func:`benchmarks._recurrent.main`'s."""
    return _recurrent.main("gru", __doc__, argv)


if __name__ == "__main__":
    main()
