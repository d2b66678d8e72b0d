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
autodiff of the plain scan: whether writing it out pays.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import figure, report, time_call  # noqa: E402


def _torch_step(args, state_dict, x, g_out, g_h, g_c):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = args.precision != "highest"
        torch.backends.cuda.matmul.allow_tf32 = args.precision != "highest"
    model = torch.nn.LSTM(args.input, args.hidden, num_layers=args.layers, batch_first=True).to(device)
    model.load_state_dict({k: torch.tensor(v) for k, v in state_dict.items()})
    x_t, g_out_t, g_h_t, g_c_t = (torch.tensor(a, device=device) for a in (x, g_out, g_h, g_c))

    def step():
        model.zero_grad(set_to_none=True)
        outputs, (h_n, c_n) = model(x_t)
        loss = (outputs * g_out_t).sum() + (h_n * g_h_t).sum() + (c_n * g_c_t).sum()
        loss.backward()
        if device == "cuda":
            torch.cuda.synchronize()
        return loss

    if device == "cuda":
        where = f"cuDNN {torch.backends.cudnn.version()} ({torch.cuda.get_device_name()})"
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    name = f"torch {torch.__version__} " + where
    return step, name


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--input", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--unroll", default="1",
                        help="lax.scan unroll factor(s), comma-separated: each is timed, the best is the figure")
    parser.add_argument("--precision", default="default", choices=["default", "high", "highest"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--no-peers", action="store_true", help="time scratchlm only")
    parser.add_argument("--quick", action="store_true", help="a smoke run: batch 8, sequence 16, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.seq, args.repeats = 8, 16, 3

    # JAX and PyTorch share one GPU here: JAX must not take 75% of its memory up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    import jax.numpy as jnp
    import numpy as np

    from scratchlm.nn import lstm

    config = lstm.LSTMConfig(args.input, args.hidden, args.layers)
    params = lstm.init(jax.random.key(0), config)
    rng = np.random.default_rng(0)
    B, T = args.batch_size, args.seq
    x = rng.standard_normal((B, T, args.input), dtype=np.float32)
    g_out = rng.standard_normal((B, T, args.hidden), dtype=np.float32)
    g_h, g_c = rng.standard_normal((2, args.layers, B, args.hidden), dtype=np.float32)
    precision = None if args.precision == "default" else args.precision

    def loss(params, x, g_out, g_h, g_c, unroll):
        outputs, (h_n, c_n) = lstm.apply(params, x, unroll=unroll, precision=precision)
        return jnp.sum(outputs * g_out) + jnp.sum(h_n * g_h) + jnp.sum(c_n * g_c)

    grad_step = jax.jit(jax.value_and_grad(loss), static_argnums=5)
    device_args = [jax.device_put(a) for a in (x, g_out, g_h, g_c)]
    by_unroll = {}
    for unroll in (int(u) for u in args.unroll.split(",")):
        def run(unroll=unroll):
            return jax.block_until_ready(grad_step(params, *device_args, unroll))

        by_unroll[unroll] = time_call(run, repeats=args.repeats, warmup=2)
    best_unroll = min(by_unroll, key=lambda u: by_unroll[u]["median_seconds"])
    ours = by_unroll[best_unroll]
    ours_rate = 1.0 / ours["median_seconds"]

    # Does the hand-written backward pass pay?  One layer's recurrence, forward + backward, against autodiff of the
    # plain scan of the cell (lstm.scan_recurrence), at the same B, T, H and the best unroll.
    a_x = jax.device_put(rng.standard_normal((T, B, 4 * args.hidden), dtype=np.float32))
    zeros = jnp.zeros((B, args.hidden), jnp.float32)
    w_hh, b_hh = params["weight_hh_l0"], params["bias_hh_l0"]

    def recurrence_seconds(fn):
        def one_layer(a_x, w_hh, b_hh):
            outputs, h_T, c_T = fn(a_x, zeros, zeros, w_hh, b_hh, None, False, best_unroll, precision)
            return jnp.sum(outputs * g_out.swapaxes(0, 1)) + jnp.sum(h_T * g_h[0]) + jnp.sum(c_T * g_c[0])

        step = jax.jit(jax.grad(one_layer, argnums=(0, 1, 2)))
        return time_call(lambda: jax.block_until_ready(step(a_x, w_hh, b_hh)), repeats=args.repeats,
                         warmup=2)["median_seconds"]

    hand, autodiff = recurrence_seconds(lstm.recurrence), recurrence_seconds(lstm.scan_recurrence)

    peer_rate, peer_name, peer = None, None, None
    if not args.no_peers:
        state_dict = {k: np.asarray(v) for k, v in params.items() if k != "config"}
        torch_step, peer_name = _torch_step(args, state_dict, x, g_out, g_h, g_c)
        peer = time_call(torch_step, repeats=args.repeats, warmup=2)
        peer_rate = 1.0 / peer["median_seconds"]

    tokens = B * T
    figures = [
        figure(f"fwd+bwd steps/s (L{args.layers} D{args.input} H{args.hidden} T{T} B{B})", ours_rate, peer_rate,
               unit="steps/s", peer_name=peer_name),
        figure("fwd+bwd tokens/s", ours_rate * tokens, peer_rate * tokens if peer_rate else None,
               unit="tokens/s", peer_name=peer_name),
    ]
    return report(
        "lstm", figures,
        settings={"layers": args.layers, "input": args.input, "hidden": args.hidden, "seq": T, "batch": B,
                  "unroll": best_unroll, "precision": args.precision, "threads": os.cpu_count()},
        compile_seconds=ours["first_seconds"] - ours["median_seconds"],
        scratchlm_median_seconds=ours["median_seconds"],
        steps_per_s_by_unroll={u: 1.0 / t["median_seconds"] for u, t in by_unroll.items()},
        peer_median_seconds=peer["median_seconds"] if peer else None,
        one_layer_recurrence_seconds={"hand_written_backward": hand, "autodiff_of_the_scan": autodiff},
    )


if __name__ == "__main__":
    main()
