"""Matrix products alone: XLA's CPU kernels (YNNPACK) beside PyTorch's (MKL), on the models' own shapes.

    python -m benchmarks.matmul               # GPT-2, MiniLM and LSTM shapes, 2 rounds
    python -m benchmarks.matmul --quick       # two small shapes, 1 round

Products are 70-85 % of a GPT-2, LSTM or MiniLM training step on either side. So how fast each side's kernel
runs the same product bounds how close a whole step can come to the peer's. For each ``M × K × N``, a
dense layer's three products, with W stored ``[N, K]`` as in ``torch.nn.Linear``:

- ``fwd``: y = xWᵀ, [M, K]·[K, N];
- ``dW``: W̄ = ȳᵀx, contracting the M rows;
- ``dx``: x̄ = ȳW.

Each is jitted on JAX's side and eager on torch's (2 threads on 2 cores). The figure per shape is the
three products' FLOPs over their summed median time, in GFLOP/s. Each side runs in a process of its own
(:func:`benchmarks.common.in_own_process`), alternating over ``--rounds``, and the medians are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import figure, in_own_process, report, time_call  # noqa: E402

# (M, K, N, what): M rows (batch × sequence), K inputs, N outputs
SHAPES = [(1024, 384, 384, "MiniLM attention"), (1024, 384, 1536, "MiniLM FFN in"),
          (1024, 1536, 384, "MiniLM FFN out"), (1024, 768, 2304, "GPT-2 c_attn"), (1024, 768, 3072, "GPT-2 c_fc"),
          (1024, 3072, 768, "GPT-2 c_proj"), (1024, 768, 50257, "GPT-2 LM head"),
          (2048, 512, 2048, "LSTM weight gradients")]
QUICK = [(256, 128, 128, "small"), (256, 256, 512, "small")]


def _median_seconds(fn, sync, seconds: float = 0.2) -> float:
    """Seconds per ``fn()`` call: :func:`benchmarks.common.time_call` over loops of n calls, n sized so a loop
    takes about ``seconds`` (one product of the small shapes is too short to time alone)."""
    once = time_call(lambda: sync(fn()), repeats=1, warmup=1)["median_seconds"]
    n = max(3, int(seconds / max(once, 1e-6)))

    def loop():
        for _ in range(n):
            out = fn()
        sync(out)

    return time_call(loop, repeats=5, warmup=0)["median_seconds"] / n


def side(name: str, shapes: list) -> list[dict]:
    """One side's seconds for each shape's three products (run in its own process)."""
    import numpy as np

    rng = np.random.default_rng(0)
    if name == "scratchlm":
        import jax
        import jax.numpy as jnp

        fwd = jax.jit(lambda x, W: jnp.einsum("mk,nk->mn", x, W))
        d_W = jax.jit(lambda g, x: jnp.einsum("mn,mk->nk", g, x))
        d_x = jax.jit(lambda g, W: jnp.einsum("mn,nk->mk", g, W))
        convert, sync = jnp.asarray, jax.block_until_ready
    else:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        fwd, d_W, d_x = (lambda x, W: x @ W.T), (lambda g, x: g.T @ x), (lambda g, W: g @ W)
        convert, sync = torch.from_numpy, (lambda out: out)
    out = []
    for M, K, N, _ in shapes:
        x, W, g = (convert(rng.standard_normal(s, np.float32)) for s in ((M, K), (N, K), (M, N)))
        out.append({k: _median_seconds(lambda f=f, a=a: f(*a), sync)
                    for k, f, a in (("fwd", fwd, (x, W)), ("dW", d_W, (g, x)), ("dx", d_x, (g, W)))})
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="processes per side, alternating (medians)")
    parser.add_argument("--quick", action="store_true", help="two small shapes, one round")
    parser.add_argument("--no-peers", action="store_true", help="time scratchlm only")
    args = parser.parse_args(argv)
    shapes, rounds = (QUICK, 1) if args.quick else (SHAPES, args.rounds)
    sides = ["scratchlm"] if args.no_peers else ["scratchlm", "torch"]
    runs: dict[str, list] = {s: [] for s in sides}
    for r in range(rounds):
        for s in (sides if r % 2 == 0 else sides[::-1]):
            runs[s].append(in_own_process("benchmarks.matmul", "side", name=s, shapes=[list(x) for x in shapes]))
    peer_name = None
    if not args.no_peers:
        import torch

        peer_name = f"torch {torch.__version__} (2 threads)"
    figures, per_product = [], []
    for i, (M, K, N, what) in enumerate(shapes):
        gflop = 2 * M * K * N / 1e9
        medians = {s: {k: statistics.median(run[i][k] for run in runs[s]) for k in ("fwd", "dW", "dx")}
                   for s in sides}
        rate = {s: 3 * gflop / sum(m.values()) for s, m in medians.items()}
        figures.append(figure(f"{M} x {K} x {N} ({what}), fwd + dW + dx", rate["scratchlm"], rate.get("torch"),
                              unit="GFLOP/s", peer_name=peer_name))
        per_product.append({"shape": [M, K, N], "what": what,
                            **{s: {k: round(gflop / v, 1) for k, v in m.items()} for s, m in medians.items()}})
    return report("matmul", figures, settings=vars(args), gflops_per_product=per_product,
                  note="each side in its own process, alternating; medians over rounds")


if __name__ == "__main__":
    main()
