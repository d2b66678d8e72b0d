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
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import figure, report, time_call  # noqa: E402


def _torch_step(args, state_dict, x, g_out, g_h):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = args.precision != "highest"
        torch.backends.cuda.matmul.allow_tf32 = args.precision != "highest"
    model = torch.nn.GRU(args.input, args.hidden, num_layers=args.layers, batch_first=True).to(device)
    model.load_state_dict({k: torch.tensor(v) for k, v in state_dict.items()})
    x_t, g_out_t, g_h_t = (torch.tensor(a, device=device) for a in (x, g_out, g_h))

    def step():
        model.zero_grad(set_to_none=True)
        outputs, h_n = model(x_t)
        loss = (outputs * g_out_t).sum() + (h_n * g_h_t).sum()
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

    from scratchlm.nn import gru

    config = gru.GRUConfig(args.input, args.hidden, args.layers)
    params = gru.init(jax.random.key(0), config)
    rng = np.random.default_rng(0)
    B, T = args.batch_size, args.seq
    x = rng.standard_normal((B, T, args.input), dtype=np.float32)
    g_out = rng.standard_normal((B, T, args.hidden), dtype=np.float32)
    g_h = rng.standard_normal((args.layers, B, args.hidden), dtype=np.float32)
    precision = None if args.precision == "default" else args.precision

    def loss(params, x, g_out, g_h, unroll):
        outputs, h_n = gru.apply(params, x, unroll=unroll, precision=precision)
        return jnp.sum(outputs * g_out) + jnp.sum(h_n * g_h)

    grad_step = jax.jit(jax.value_and_grad(loss), static_argnums=4)
    device_args = [jax.device_put(a) for a in (x, g_out, g_h)]
    by_unroll = {}
    for unroll in (int(u) for u in args.unroll.split(",")):
        def run(unroll=unroll):
            return jax.block_until_ready(grad_step(params, *device_args, unroll))

        by_unroll[unroll] = time_call(run, repeats=args.repeats, warmup=2)
    best_unroll = min(by_unroll, key=lambda u: by_unroll[u]["median_seconds"])
    ours = by_unroll[best_unroll]
    ours_rate = 1.0 / ours["median_seconds"]

    peer_rate, peer_name, peer = None, None, None
    if not args.no_peers:
        state_dict = {k: np.asarray(v) for k, v in params.items() if k != "config"}
        torch_step, peer_name = _torch_step(args, state_dict, x, g_out, g_h)
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
        "gru", figures,
        settings={"layers": args.layers, "input": args.input, "hidden": args.hidden, "seq": T, "batch": B,
                  "unroll": best_unroll, "precision": args.precision, "variant": config.variant,
                  "threads": os.cpu_count()},
        compile_seconds=ours["first_seconds"] - ours["median_seconds"],
        scratchlm_median_seconds=ours["median_seconds"],
        steps_per_s_by_unroll={u: 1.0 / t["median_seconds"] for u, t in by_unroll.items()},
        peer_median_seconds=peer["median_seconds"] if peer else None,
    )


if __name__ == "__main__":
    main()
