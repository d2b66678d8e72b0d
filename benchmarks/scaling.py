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
    from scratchlm import parallel as par
    from scratchlm.embeddings import word2vec as w2v
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
    params = par.shard(tables, mesh, par.EMBEDDING_RULES)
    batch = par.shard_batch((rng.integers(0, V, (Bw, J)).astype(np.int32), rng.random((Bw, J)) < 0.9,
                             rng.integers(0, V, Bw).astype(np.int32), rng.integers(0, V, (Bw, K)).astype(np.int32)),
                            mesh)
    step = par.make_sharded_word2vec_update(mesh, w2v.skipgram_update)
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
    state = par.shard(init_train_state(p, tx, jax.random.key(1)), mesh, par.DATA_PARALLEL_RULES)
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


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    parser.add_argument("--devices", default="1,2,4,8", help="device counts")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
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
    return report("scaling", figures, forced_host_devices=on_cpu, quick=args.quick, rows=rows,
                  note="weak scaling (fixed work per device); no peer: a scaling table. On CPU the devices "
                       "share the cores: overhead and correctness, not speed")


if __name__ == "__main__":
    main()
