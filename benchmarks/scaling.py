"""Scaling table: sharded Word2Vec and data-parallel BERT steps on 1, 2, 4 and 8 devices (weak scaling).

Per device the work is fixed (Word2Vec: ``B`` centre words; BERT: ``B`` sequences of ``T`` tokens),
so the global batch grows with the device count; ideal scaling keeps the step time flat and
multiplies the throughput by the device count.  Figures have no peer (``peer=None``): this is a
scaling table, not a comparison.

On CPU every device count runs in its own process with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``: the N "devices" share the machine's cores,
so the figure is a correctness-and-overhead check (the cost of the collectives and of the
partitioned program), not a speed claim.  On a machine with several GPUs/TPUs the counts are
sub-meshes of the real devices in one process: real scaling efficiency.

    python -m benchmarks.scaling [--quick] [--devices 1,2,4,8]
    python -m benchmarks.scaling --paper        # the on-paper memory / communication table (markdown)

The on-paper table (:func:`paper`) applies the sharding rules of :mod:`scratchlm.distributed` to
Word2Vec with a 10-million-word vocabulary at dim 300 and to BERT-large, for 8 and 64 devices: the
bytes each device holds and the bytes each device receives per step (ring collectives).  It is
also part of the JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(n: int, quick: bool) -> dict:
    """Median step times on the first ``n`` devices (this process's view of them)."""
    import jax
    import numpy as np

    from benchmarks.common import time_call
    from scratchlm import distributed as par
    from scratchlm.embeddings.word2vec import kernels as w2v
    from scratchlm.embeddings.word2vec import sharded
    from scratchlm.models import bert
    from scratchlm.nn.losses import softmax_cross_entropy
    from scratchlm.training.loop import init_train_state, make_optimizer, make_train_step

    devices = jax.devices()[:n]
    rng = np.random.default_rng(0)
    repeats = 3 if quick else 10
    result = {"devices": n}

    # Word2Vec: the batch split over data=n (each device its own centres), the row changes all-gathered;
    # the tables are whole on each device here (model=1: the row split saves memory, not time)
    V, D, J, K = (2**14, 64, 10, 5) if quick else (2**17, 128, 10, 5)
    Bw = (256 if quick else 1024) * n
    mesh = par.make_mesh(n, 1, devices=devices)
    tables = {"v": (rng.random((V, D), np.float32) - 0.5) / D, "u": np.zeros((V, D), np.float32)}
    params = par.shard(tables, mesh, sharded.RULES)
    batch = par.shard_batch((rng.integers(0, V, (Bw, J)).astype(np.int32), rng.random((Bw, J)) < 0.9,
                             rng.integers(0, V, Bw).astype(np.int32), rng.integers(0, V, (Bw, K)).astype(np.int32)),
                            mesh)
    step = sharded.make_sharded_word2vec_update(mesh, w2v.skipgram_update)
    box = [params]

    def w2v_step():
        box[0], loss, _ = step(box[0], *batch, 0.025)
        jax.block_until_ready(loss)

    t = time_call(w2v_step, repeats=repeats)
    result["word2vec"] = {"step_s": t["median_seconds"], "pairs_per_s": Bw * J / t["median_seconds"],
                          "compile_s": t["first_seconds"], "V": V, "D": D, "batch": Bw}

    # BERT: data parallel over n devices (params replicated, gradients all-reduced)
    config = bert.BertConfig(vocab_size=4096, hidden_size=128 if quick else 256, num_hidden_layers=2 if quick else 4,
                             num_attention_heads=4, intermediate_size=512 if quick else 1024,
                             max_position_embeddings=128)
    T, Bb = 64, 4 * n if quick else 8 * n
    k1, k2 = jax.random.split(jax.random.key(0))
    p = {**bert.init(k1, config), "cls": bert.init_mlm_head(k2, config)}
    p.pop("pooler")

    def loss_fn(params, b, key):
        h = bert.apply(params, b, config=config, key=key, train=True)["last_hidden_state"]
        return softmax_cross_entropy(bert.mlm_logits(params, h, config=config), b["labels"]), {}

    tx = make_optimizer(learning_rate=1e-4, total_steps=1000)
    mesh = par.make_mesh(n, 1, devices=devices)
    # rbg keys, as scratchlm pretrain uses: threefry's dropout bits take minutes to compile on a CPU
    state = par.shard(init_train_state(p, tx, jax.random.key(1, impl="rbg")), mesh, par.DATA_PARALLEL_RULES)
    ids = rng.integers(1, config.vocab_size, (Bb, T)).astype(np.int32)
    b = par.shard_batch({"input_ids": ids, "labels": np.where(rng.random((Bb, T)) < 0.15, ids, -100).astype(np.int32)},
                        mesh)
    train_step = par.shard_train_step(make_train_step(loss_fn, tx), par.shardings(state, par.DATA_PARALLEL_RULES, mesh),
                                      mesh)
    sbox = [state]

    def bert_step():
        sbox[0], m = train_step(sbox[0], b)
        jax.block_until_ready(m["loss"])

    t = time_call(bert_step, repeats=repeats)
    result["bert"] = {"step_s": t["median_seconds"], "tokens_per_s": Bb * T / t["median_seconds"],
                      "compile_s": t["first_seconds"], "batch": Bb, "seq_len": T,
                      "params": int(sum(x.size for x in jax.tree.leaves(p)))}
    return result


# ------------------------------------------------------------------------------------------ on paper

F32 = 4  # bytes


def ring_all_reduce(nbytes: float, n: int) -> float:
    """Bytes each device receives in a ring all-reduce of ``nbytes`` over ``n`` devices: 2 (n-1)/n · size."""
    return 2 * (n - 1) / n * nbytes


def all_gather(nbytes_total: float, n: int) -> float:
    """Bytes each device receives when ``n`` devices all-gather pieces that add up to ``nbytes_total``."""
    return (n - 1) / n * nbytes_total


def word2vec_paper(data: int, model: int, *, V: int = 10_000_000, D: int = 300, B: int = 16_384, window: int = 5,
                   K: int = 5) -> dict:
    r"""Memory and traffic of :func:`scratchlm.embeddings.word2vec.sharded.make_sharded_word2vec_update` on a
    ``data x model`` mesh.

    Tables :math:`v, u \in \mathbb{R}^{V\times D}` split by rows over ``model`` (replicated over
    ``data``), plain SGD (no optimizer state, no dense gradient).  A step of ``B`` centre words
    (global), ``J = 2·window`` context slots and ``K`` noise words, ``b = B / data`` per data shard:

    * lookup: ``psum`` over ``model`` of the gathered rows, :math:`b (J + K + 1) D` floats;
    * write: ``all_gather`` over ``data`` of the row changes, :math:`B (J + K + 1) D` floats in all.

    No term grows with ``V``.  Naive data parallelism (a dense gradient all-reduce of both tables)
    is given for contrast.
    """
    J = 2 * window
    rows = J + K + 1
    tables = 2 * V * D * F32
    b = B / data
    lookup = ring_all_reduce(b * rows * D * F32, model) if model > 1 else 0.0
    write = all_gather(B * rows * D * F32, data) if data > 1 else 0.0
    return {"model_name": "word2vec", "mesh": f"data={data},model={model}", "devices": data * model,
            "params_per_device_bytes": tables / model, "optimizer_per_device_bytes": 0.0,
            "gradient_per_device_bytes": 0.0, "step_buffers_bytes": 3 * b * rows * D * F32,
            "comm_per_device_bytes": lookup + write, "dense_dp_comm_bytes": ring_all_reduce(tables, data * model),
            "assumptions": f"V={V:,}, D={D}, float32, global batch {B} centres, J={J} context slots, K={K} noise "
                           f"words, SGD (no optimizer state)"}


def bert_large_leaves() -> list[tuple[str, tuple[int, ...]]]:
    """(path, shape) of every trainable leaf of BERT-large with its MLM head, from :func:`bert.init` (no arrays)."""
    import jax

    from scratchlm import distributed as par
    from scratchlm.models import bert

    config = bert.BertConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    shapes = jax.eval_shape(lambda k: {**bert.init(k, config), "cls": bert.init_mlm_head(k, config)}, jax.random.key(0))
    return [(par.path_string(p), tuple(x.shape)) for p, x in jax.tree_util.tree_flatten_with_path(shapes)[0]]


class _PaperMesh:  # what distributed.rules._spec reads of a mesh: the axis sizes
    def __init__(self, data: int, model: int):
        self.shape = {"data": data, "model": model}


def bert_paper(data: int, model: int, leaves: list[tuple[str, tuple[int, ...]]]) -> dict:
    r"""Memory and traffic of one AdamW step of BERT-large under :func:`scratchlm.distributed.rules_for`.

    ``model = 1``: data parallelism, every device holds params, gradients and both moments
    (16 bytes a parameter) and the gradients are all-reduced over ``data``.  ``model > 1``:
    :func:`scratchlm.distributed.fsdp_rules` split every leaf along its largest divisible axis over
    ``model`` (the leaf sizes below come from the real rules); per step each device gathers the
    weights for the forward and again for the backward pass and reduce-scatters the gradients over
    ``model`` (ZeRO-3's 3x volume), then all-reduces its gradient shard over ``data``.
    Activations are not counted (they depend on batch and sequence length).
    """
    from scratchlm import distributed as par

    mesh = _PaperMesh(data, model)
    rules = par.rules_for(mesh)
    total = sum(int(np_prod(s)) for _, s in leaves)
    local = 0
    for path, shape in leaves:
        spec = par.rules._spec(path, shape, rules, mesh)
        split = 1
        for axes in spec:
            if axes is not None:
                split *= par.rules._axes_size(mesh, axes)
        local += int(np_prod(shape)) // split
    P_bytes, local_bytes = total * F32, local * F32
    gather = 2 * all_gather(P_bytes, model) + all_gather(P_bytes, model) if model > 1 else 0.0  # fwd, bwd, RS
    grads = ring_all_reduce(local_bytes, data) if data > 1 else 0.0
    return {"model_name": "bert-large", "mesh": f"data={data},model={model}", "devices": data * model,
            "strategy": "data parallel" if model == 1 else ("FSDP" if data == 1 else "FSDP x data parallel"),
            "parameters": total, "params_per_device_bytes": local_bytes, "optimizer_per_device_bytes": 2 * local_bytes,
            "gradient_per_device_bytes": local_bytes, "comm_per_device_bytes": gather + grads,
            "assumptions": "float32 params, AdamW (m, v float32), gradients float32; activations not counted"}


def np_prod(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


PAPER_MESHES = {"word2vec": ((8, 1), (1, 8), (64, 1), (8, 8), (1, 64)),
                "bert-large": ((8, 1), (1, 8), (64, 1), (8, 8), (1, 64))}


def paper() -> list[dict]:
    """Every row of the on-paper table (see :func:`word2vec_paper`, :func:`bert_paper`)."""
    leaves = bert_large_leaves()
    return ([word2vec_paper(d, m) for d, m in PAPER_MESHES["word2vec"]]
            + [bert_paper(d, m, leaves) for d, m in PAPER_MESHES["bert-large"]])


def _gb(x: float) -> str:
    return f"{x / 1e9:.3g} GB" if x >= 1e8 else f"{x / 1e6:.3g} MB"


def paper_markdown(rows: list[dict]) -> str:
    lines = ["| model | devices | mesh | strategy | params/tables per device | optimizer state | gradients | "
             "received per device per step |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        strategy = r.get("strategy") or ("tables by rows" if r["mesh"].endswith(("model=8", "model=64")) else
                                         "tables replicated")
        comm = _gb(r["comm_per_device_bytes"]) if r["comm_per_device_bytes"] else "0"
        optimizer = _gb(r["optimizer_per_device_bytes"]) if r["optimizer_per_device_bytes"] else "—"
        gradient = _gb(r["gradient_per_device_bytes"]) if r["gradient_per_device_bytes"] else "sparse rows"
        if "dense_dp_comm_bytes" in r:
            comm += f" (dense all-reduce would be {_gb(r['dense_dp_comm_bytes'])})"
        lines.append(f"| {r['model_name']} | {r['devices']} | {r['mesh']} | {strategy} | "
                     f"{_gb(r['params_per_device_bytes'])} | {optimizer} | {gradient} | {comm} |")
    notes = sorted({f"{r['model_name']}: {r['assumptions']}" for r in rows})
    bert = next(r for r in rows if r["model_name"] == "bert-large")
    notes.append(f"bert-large: {bert['parameters']:,} parameters (encoder + MLM head, no pooler)")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    parser.add_argument("--devices", default="1,2,4,8", help="device counts")
    parser.add_argument("--paper", action="store_true", help="print the on-paper memory/communication table only")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.paper:
        rows = paper()
        print(paper_markdown(rows))
        return {"paper": rows}
    if args.worker is not None:
        print(json.dumps(measure(args.worker, args.quick)), flush=True)
        return {}

    import jax

    from benchmarks.common import figure, report

    counts = [int(c) for c in args.devices.split(",")]
    on_cpu = jax.devices()[0].platform == "cpu"
    rows = []
    for n in counts:
        if on_cpu:  # n forced host devices need a process of their own
            env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "JAX_PLATFORMS": "cpu"}
            cmd = [sys.executable, "-m", "benchmarks.scaling", "--worker", str(n)] + (["--quick"] if args.quick else [])
            proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
            if proc.returncode != 0:
                raise SystemExit(f"scaling worker for {n} devices failed:\n{proc.stderr[-3000:]}")
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        elif n <= jax.device_count():
            rows.append(measure(n, args.quick))
    figures = []
    base = rows[0]
    for r in rows:
        n = r["devices"]
        for model, unit in (("word2vec", "pairs_per_s"), ("bert", "tokens_per_s")):
            figures.append(figure(f"{model} step time, {n} devices", r[model]["step_s"], None, unit="s",
                                  peer_name=None, higher_is_better=False))
            figures.append(figure(f"{model} throughput, {n} devices", r[model][unit], None,
                                  unit=unit.replace("_per_s", "/s"), peer_name=None))
            figures.append(figure(f"{model} weak-scaling efficiency, {n} devices",
                                  base[model]["step_s"] / r[model]["step_s"], None,
                                  unit="t1/tN", peer_name=None))
    return report("scaling", figures, forced_host_devices=on_cpu, quick=args.quick, rows=rows, paper=paper(),
                  note="weak scaling (fixed work per device); no peer: a scaling table. On CPU the devices "
                       "share the cores: overhead and correctness, not speed")


if __name__ == "__main__":
    main()
