"""The recurrent benchmark's one body, for ``benchmarks/gru.py`` and ``benchmarks/lstm.py``: a cell's
forward+backward steps/s through scratchlm's ``lax.scan`` layers beside ``torch.nn.GRU`` / ``torch.nn.LSTM``
(cuDNN on a GPU).

One step = forward over [B, T, D] through L layers, a scalar loss on the outputs and the final states
(h_n; and c_n for the LSTM), and the gradients of every weight.  Both sides start from the same weights
and inputs; the first calls (JAX's compilation, cuDNN's plan selection) are excluded, every timed call
blocks until the result is on the host side of the device.  Each side runs in processes of its own
(:func:`benchmarks.common.in_own_process`), so neither is timed in the other's leftovers: ``--rounds`` rounds
(3 on a CPU), each running both sides, the first side alternating (a process runs slower right after a
heavy one); each side's figure is the median of its rounds.  On these 2-core hosts one side's time moves by
up to 10 % from run to run (PyTorch's LSTM step: 196-240 ms, round 11), more than the gap being measured.
With ``--rounds 0`` (the default on a GPU, where the spread is small and device time scarce) scratchlm is timed
in this process and PyTorch once before and once after, its figure the mean of the two.  The ``--unroll``
sweep and the one-layer comparison always run in this process.

On a GPU JAX's default float32 matmul precision may use TF32, as cuDNN's RNNs do by default in
PyTorch (``torch.backends.cudnn.allow_tf32 = True``); ``--precision highest`` rules it out for JAX and
the same flag turns TF32 off on the PyTorch side, so the two are compared at the same precision.

The leading underscore keeps this module out of ``scratchlm bench``'s suites: the suites are the two
scripts that call :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

from benchmarks.common import figure, in_own_process, report, time_call


def _finals(states) -> tuple:
    """A layer stack's final states as a tuple: ``(h_n,)`` for the GRU, ``(h_n, c_n)`` for the LSTM."""
    return states if isinstance(states, tuple) else (states,)


def torch_seconds(cell: str, layers: int, input: int, hidden: int, precision: str, repeats: int, arrays: str) -> dict:
    """The peer's side, run in a process of its own (:func:`benchmarks.common.in_own_process`): the PyTorch
    twin's step timed as scratchlm's, from the weights, inputs and cotangents in the ``.npz`` file ``arrays``."""
    state_dict, data, g_finals = _load(arrays)
    step, name = _torch_step(cell, layers, input, hidden, precision, state_dict, data["x"], data["g_out"], g_finals)
    return {**time_call(step, repeats=repeats, warmup=2), "name": name}


def _load(arrays: str) -> tuple[dict, dict, tuple]:
    """The ``.npz`` file both sides read: (PyTorch's state_dict, the other arrays, the final states' cotangents)."""
    import numpy as np

    with np.load(arrays, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    state_dict = {k[len("w:"):]: v for k, v in data.items() if k.startswith("w:")}
    g_finals = tuple(data[f"g_final{i}"] for i in range(sum(k.startswith("g_final") for k in data)))
    return state_dict, data, g_finals


def _scratchlm_step(nn, precision):
    """scratchlm's step: ``grad_step(params, x, g_out, g_finals, unroll)``, jitted (``unroll`` static)."""
    import jax
    import jax.numpy as jnp

    precision = None if precision == "default" else precision

    def loss(params, x, g_out, g_finals, unroll):
        outputs, states = nn.apply(params, x, unroll=unroll, precision=precision)
        return jnp.sum(outputs * g_out) + sum(jnp.sum(s * g) for s, g in zip(_finals(states), g_finals))

    return jax.jit(jax.value_and_grad(loss), static_argnums=4)


def scratchlm_seconds(cell: str, precision: str, repeats: int, arrays: str, unroll: int) -> dict:
    """scratchlm's side in a process of its own: the step of :func:`main`, from the same ``.npz`` file's
    weights (through ``params_from_torch``), inputs and cotangents."""
    import jax

    from scratchlm.nn import gru, lstm

    nn = {"gru": gru, "lstm": lstm}[cell]
    state_dict, data, g_finals = _load(arrays)
    params = nn.params_from_torch(state_dict)
    grad_step = _scratchlm_step(nn, precision)
    device_args = [jax.device_put(a) for a in (data["x"], data["g_out"], g_finals)]
    return time_call(lambda: jax.block_until_ready(grad_step(params, *device_args, unroll)), repeats=repeats,
                     warmup=2)


def _torch_step(cell, layers, input, hidden, precision, state_dict, x, g_out, g_finals):
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        torch.backends.cudnn.allow_tf32 = precision != "highest"
        torch.backends.cuda.matmul.allow_tf32 = precision != "highest"
    module = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    model = module(input, hidden, num_layers=layers, batch_first=True).to(device)
    model.load_state_dict({k: torch.tensor(v) for k, v in state_dict.items()})
    x_t, g_out_t = (torch.tensor(a, device=device) for a in (x, g_out))
    g_finals_t = [torch.tensor(g, device=device) for g in g_finals]

    def step():
        model.zero_grad(set_to_none=True)
        outputs, states = model(x_t)
        loss = (outputs * g_out_t).sum() + sum((s * g).sum() for s, g in zip(_finals(states), g_finals_t))
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


def _one_layer_recurrence_seconds(lstm, params, g_out, g_finals, rng, args, unroll, precision) -> dict:
    """Does the LSTM's hand-written layer pay?  One layer (layer 0's weights), forward + backward of the weights:
    lstm.recurrence (feature-major, the input projection inside the step, its written-out backward pass) against
    autodiff of lstm.input_projection then the plain scan of the cell (lstm.scan_recurrence), at the same B, T,
    D, H and the best unroll."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    B, T = args.batch_size, args.seq
    x = jax.device_put(rng.standard_normal((T, B, args.input), dtype=np.float32))
    zeros = jnp.zeros((B, args.hidden), jnp.float32)
    weights = tuple(params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    g_h, g_c = g_finals

    def plain(x, w_ih, w_hh, b_ih, b_hh):
        a_x = lstm.input_projection(x, w_ih, b_ih, precision)
        return lstm.scan_recurrence(a_x, zeros, zeros, w_hh, b_hh, None, False, unroll, precision)

    def fast(x, w_ih, w_hh, b_ih, b_hh):  # [T, B, D] -> [T, D, B] and back
        out, h_T, c_T = lstm.recurrence(jnp.swapaxes(x, 1, 2), zeros.T, zeros.T, w_ih, w_hh, b_ih, b_hh, None, False,
                                        unroll, precision)
        return jnp.swapaxes(out, 1, 2), h_T.T, c_T.T

    def recurrence_seconds(fn):
        def one_layer(weights, x):
            outputs, h_T, c_T = fn(x, *weights)
            return jnp.sum(outputs * g_out.swapaxes(0, 1)) + jnp.sum(h_T * g_h[0]) + jnp.sum(c_T * g_c[0])

        step = jax.jit(jax.grad(one_layer))
        return time_call(lambda: jax.block_until_ready(step(weights, x)), repeats=args.repeats,
                         warmup=2)["median_seconds"]

    return {"hand_written_backward": recurrence_seconds(fast), "autodiff_of_the_scan": recurrence_seconds(plain)}


def main(cell: str, doc: str, argv: list[str] | None = None) -> dict:
    """Parse ``argv`` (the script's ``doc`` is its help), time ``cell`` ("gru" or "lstm") and its PyTorch twin,
    and print and return the :func:`benchmarks.common.report` named after the cell."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
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
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds of both sides, each in a process of its own, first side alternating "
                             "(default: 3 on a CPU, 0 on a GPU: scratchlm in this process, PyTorch before and after)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: batch 8, sequence 16, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_size, args.seq, args.repeats = 8, 16, 3

    # JAX and PyTorch share one GPU here: JAX must not take 75% of its memory up front.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    import jax
    import numpy as np

    from scratchlm.nn import gru, lstm

    nn = {"gru": gru, "lstm": lstm}[cell]
    if args.rounds is None:
        args.rounds = 3 if jax.default_backend() == "cpu" else 0
    config = {"gru": gru.GRUConfig, "lstm": lstm.LSTMConfig}[cell](args.input, args.hidden, args.layers)
    params = nn.init(jax.random.key(0), config)
    rng = np.random.default_rng(0)
    B, T = args.batch_size, args.seq
    x = rng.standard_normal((B, T, args.input), dtype=np.float32)
    g_out = rng.standard_normal((B, T, args.hidden), dtype=np.float32)
    n_finals = 1 if cell == "gru" else 2  # h_n; h_n and c_n
    g_finals = tuple(rng.standard_normal((n_finals, args.layers, B, args.hidden), dtype=np.float32))
    precision = None if args.precision == "default" else args.precision

    grad_step = _scratchlm_step(nn, args.precision)
    device_args = [jax.device_put(a) for a in (x, g_out, g_finals)]

    def peer_seconds(arrays):  # in a process of its own: each side timed alone
        return in_own_process("benchmarks._recurrent", "torch_seconds", cell=cell, layers=args.layers,
                              input=args.input, hidden=args.hidden, precision=args.precision, repeats=args.repeats,
                              arrays=arrays)

    peer_rate, peer_name, peer, peer_runs, rounds = None, None, None, [], []
    with tempfile.TemporaryDirectory(prefix="recurrent-bench-") as tmp:
        arrays = os.path.join(tmp, "arrays.npz")
        np.savez(arrays, x=x, g_out=g_out, **{f"g_final{i}": g for i, g in enumerate(g_finals)},
                 **{f"w:{k}": np.asarray(v) for k, v in params.items() if k != "config"})
        if not args.no_peers and not args.rounds:  # before and after: a process runs slower after a heavy one
            peer_runs.append(peer_seconds(arrays))
        by_unroll = {}
        for unroll in (int(u) for u in args.unroll.split(",")):
            def run(unroll=unroll):
                return jax.block_until_ready(grad_step(params, *device_args, unroll))

            by_unroll[unroll] = time_call(run, repeats=args.repeats, warmup=2)
        best_unroll = min(by_unroll, key=lambda u: by_unroll[u]["median_seconds"])
        ours = in_process = by_unroll[best_unroll]
        ours_rate = 1.0 / ours["median_seconds"]

        extra = {}
        if cell == "lstm":
            extra["one_layer_recurrence_seconds"] = _one_layer_recurrence_seconds(
                lstm, params, g_out, g_finals, rng, args, best_unroll, precision)

        if not args.no_peers and not args.rounds:
            peer_runs.append(peer_seconds(arrays))
        for r in range(0 if args.no_peers else args.rounds):
            sides = ["peer", "scratchlm"] if r % 2 == 0 else ["scratchlm", "peer"]
            times = {side: peer_seconds(arrays) if side == "peer" else in_own_process(
                "benchmarks._recurrent", "scratchlm_seconds", cell=cell, precision=args.precision,
                repeats=args.repeats, arrays=arrays, unroll=best_unroll) for side in sides}
            rounds.append({"first": sides[0], **{side: times[side]["median_seconds"] for side in sides}})
            peer_runs.append(times["peer"])
    if rounds:  # the headline: each side's median over the rounds, both in processes of their own
        ours = {**ours, "median_seconds": statistics.median(r["scratchlm"] for r in rounds)}
        ours_rate = 1.0 / ours["median_seconds"]
        peer = {**peer_runs[0], "median_seconds": statistics.median(r["peer"] for r in rounds),
                "median_seconds_runs": [r["peer"] for r in rounds]}
        peer_rate, peer_name = 1.0 / peer["median_seconds"], peer["name"]
    elif peer_runs:
        peer = {**peer_runs[0], "median_seconds": statistics.mean(r["median_seconds"] for r in peer_runs),
                "median_seconds_runs": [r["median_seconds"] for r in peer_runs]}
        peer_rate, peer_name = 1.0 / peer["median_seconds"], peer["name"]

    tokens = B * T
    figures = [
        figure(f"fwd+bwd steps/s (L{args.layers} D{args.input} H{args.hidden} T{T} B{B})", ours_rate, peer_rate,
               unit="steps/s", peer_name=peer_name),
        figure("fwd+bwd tokens/s", ours_rate * tokens, peer_rate * tokens if peer_rate else None,
               unit="tokens/s", peer_name=peer_name),
    ]
    settings = {"layers": args.layers, "input": args.input, "hidden": args.hidden, "seq": T, "batch": B,
                "unroll": best_unroll, "precision": args.precision}
    if cell == "gru":
        settings["variant"] = config.variant  # the LSTM has one
    settings["threads"] = os.cpu_count()
    return report(
        cell, figures,
        settings=settings,
        compile_seconds=in_process["first_seconds"] - in_process["median_seconds"],
        scratchlm_median_seconds=ours["median_seconds"],
        steps_per_s_by_unroll={u: 1.0 / t["median_seconds"] for u, t in by_unroll.items()},
        peer_median_seconds=peer["median_seconds"] if peer else None,
        peer_median_seconds_runs=peer["median_seconds_runs"] if peer else None,  # the rounds', or before, after
        rounds=rounds,  # each round's seconds a step, each side in its own process
        ratio_by_round=[r["peer"] / r["scratchlm"] for r in rounds],
        **extra,
    )
