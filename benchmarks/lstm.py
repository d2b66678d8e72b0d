"""LSTM forward+backward steps/s: scratchlm's ``lax.scan`` LSTM beside ``torch.nn.LSTM`` (cuDNN on a GPU).

One step = forward over [B, T, D] through L layers, a scalar loss on the outputs and the final states
(h_n and c_n), and the gradients of every weight.  Both sides start from the same weights and inputs; the first
calls (JAX's compilation, cuDNN's plan selection) are excluded, every timed call blocks until the
result is on the host side of the device.

    python benchmarks/lstm.py                     # 2 layers, D 256, H 512, T 64, B 32
    python benchmarks/lstm.py --batch-size 256         # the large-batch figure
    python benchmarks/lstm.py --unroll 1,4,8 --precision highest
    python benchmarks/lstm.py --quick --no-peers   # a smoke run

On a GPU JAX's default float32 matmul precision may use TF32, as cuDNN's RNNs do by default in
PyTorch (``torch.backends.cudnn.allow_tf32 = True``); ``--precision highest`` rules it out for JAX and
the same flag turns TF32 off on the PyTorch side, so the two are compared at the same precision.
``one_layer_recurrence_seconds`` times one layer's recurrence with the hand-written backward pass beside
autodiff of the plain scan: whether writing it out pays.  The body is the GRU's too (``benchmarks/_recurrent.py``).
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
