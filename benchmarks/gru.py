"""GRU forward+backward steps/s: scratchlm's ``lax.scan`` GRU beside ``torch.nn.GRU`` (cuDNN on a GPU).

One step = forward over [B, T, D] through L layers, a scalar loss on the outputs and the final state,
and the gradients of every weight.  Both sides start from the same weights and inputs; the first
calls (JAX's compilation, cuDNN's plan selection) are excluded, every timed call blocks until the
result is on the host side of the device.

    python benchmarks/gru.py                      # 2 layers, D 256, H 512, T 64, B 32
    python benchmarks/gru.py --batch-size 256          # the large-batch figure
    python benchmarks/gru.py --unroll 1,4,8 --precision highest
    python benchmarks/gru.py --quick --no-peers    # a smoke run

On a GPU JAX's default float32 matmul precision may use TF32, as cuDNN's RNNs do by default in
PyTorch (``torch.backends.cudnn.allow_tf32 = True``); ``--precision highest`` rules it out for JAX and
the same flag turns TF32 off on the PyTorch side, so the two are compared at the same precision.
The body is the LSTM's too (``benchmarks/_recurrent.py``).
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
