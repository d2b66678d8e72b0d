"""The multi-device checks of ``tests/test_parallel.py``, run in fresh processes.

The pytest process has already initialised JAX with one CPU device, so these run elsewhere:

* ``python -m tests.parallel_checks mesh OUT.json REF.msgpack`` — with 8 forced host devices: one
  Word2Vec step and one tiny-BERT step on meshes 8 and 4×2 against the one-device step, the
  collectives in the compiled Word2Vec step, and a checkpoint saved from 8 devices restored on 1
  and on 4.  Writes the measurements (differences, collective shapes) as JSON, and the one-device
  BERT step's params to REF (for the two-process test); the tests assert.
* ``python -m tests.parallel_checks worker PORT ID N OUT.msgpack`` — process ``ID`` of ``N`` on
  localhost: ``jax.distributed.initialize`` with a loopback coordinator, one data-parallel step of
  the tiny BERT over the global mesh, its params (gathered to the host) written to ``OUT``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

import numpy as np

TINY = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=16)
B, T = 16, 8  # batch divisible by every data axis used (8, 4, 2)
W2V = dict(V=4096, D=16, B=32, J=4, K=3)  # table shard (V/2 rows) far larger than a step's rows (B J)


# ------------------------------------------------------------------------------------------ BERT


def bert_problem():
    """(params, optimizer, loss_fn, batch): the tiny encoder with its tied MLM head, one batch."""
    import jax
    import jax.numpy as jnp

    from scratchlm.models import bert
    from scratchlm.nn.losses import softmax_cross_entropy
    from scratchlm.training.loop import make_optimizer

    config = bert.BertConfig(**TINY)
    k_enc, k_head = jax.random.split(jax.random.key(0))
    params = {**bert.init(k_enc, config), "cls": bert.init_mlm_head(k_head, config)}
    params.pop("pooler")  # unused by the MLM loss: its gradient would be exactly zero

    def loss_fn(params, batch, key):
        h = bert.apply(params, batch, config=config, key=key, train=True)["last_hidden_state"]  # dropout on
        logits = bert.mlm_logits(params, h, config=config)  # [B, T, V]
        return softmax_cross_entropy(logits, batch["labels"], ignore_index=-100), {}

    rng = np.random.default_rng(0)
    ids = rng.integers(1, config.vocab_size, (B, T)).astype(np.int32)
    labels = np.where(rng.random((B, T)) < 0.3, ids, -100).astype(np.int32)
    batch = {"input_ids": ids, "attention_mask": np.ones((B, T), np.int32), "labels": labels}
    optimizer = make_optimizer(learning_rate=1e-3, total_steps=10, weight_decay=0.01, clip_norm=1.0)
    return jax.device_get(params), optimizer, loss_fn, batch


def reference_step():
    """One step on one device (the first): params and opt_state as NumPy."""
    import jax

    from scratchlm.training.loop import init_train_state, make_train_step

    params, optimizer, loss_fn, batch = bert_problem()
    state = init_train_state(jax.tree.map(np.array, params), optimizer, jax.random.key(1))
    state, _ = make_train_step(loss_fn, optimizer)(state, batch)
    return jax.device_get(state.params), jax.device_get(state.opt_state)


def _max_diff(a, b) -> float:
    import jax

    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _raw_leaves(tree) -> list[np.ndarray]:
    """Leaves as NumPy arrays, typed PRNG keys as their raw words (bitwise comparable)."""
    import jax

    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(tree)]


def bert_checks(out: dict) -> None:
    import jax

    from flax import serialization
    from jax.sharding import PartitionSpec as P

    from scratchlm import parallel as par
    from scratchlm.training import checkpoint
    from scratchlm.training.loop import init_train_state, make_train_step

    ref_params, ref_opt = reference_step()
    with open(out["reference_path"], "wb") as f:  # for the two-process test: no second compile there
        f.write(serialization.msgpack_serialize(serialization.to_state_dict(ref_params)))
    out["bert_scale"] = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(ref_params))
    params, optimizer, loss_fn, batch = bert_problem()
    step = make_train_step(loss_fn, optimizer)
    cases = {"dp_8": ((8, 1), par.DATA_PARALLEL_RULES), "fsdp_4x2": ((4, 2), par.fsdp_rules("model"))}
    for name, (shape, rules) in cases.items():
        mesh = par.make_mesh(*shape)
        state = par.shard(init_train_state(jax.tree.map(np.array, params), optimizer, jax.random.key(1)), mesh, rules)
        specs = par.partition_specs(state.params, rules, mesh)
        sharded_leaves = sum(1 for s in jax.tree.leaves(specs, is_leaf=lambda s: isinstance(s, P)) if any(s))
        state_sh = par.shardings(state, rules, mesh)
        sharded_step = par.shard_train_step(step, state_sh, mesh)
        state, _ = sharded_step(state, par.shard_batch(batch, mesh))
        word = state.params["embeddings"]["word_embeddings"]["weight"]
        out[f"bert_{name}"] = {
            "params_diff": _max_diff(ref_params, state.params), "opt_diff": _max_diff(ref_opt, state.opt_state),
            "sharded_leaves": sharded_leaves, "word_shard_shape": list(word.addressable_shards[0].data.shape),
            "kept_sharding": all(a.sharding == s for a, s in zip(jax.tree.leaves(state), jax.tree.leaves(state_sh))),
        }
        if name == "fsdp_4x2":  # the checkpoint is written from 8 devices holding 1/2 of every leaf each
            saved = par.gather_to_host(state)
            with tempfile.TemporaryDirectory() as tmp:
                path = checkpoint.save_checkpoint(tmp, state)
                target = init_train_state(jax.tree.map(np.array, params), optimizer, jax.random.key(1))
                for n_dev, mesh_shape in ((1, (1, 1)), (4, (2, 2))):
                    new_mesh = par.make_mesh(*mesh_shape, devices=jax.devices()[:n_dev])
                    restored = par.shard(checkpoint.restore_checkpoint(path, target), new_mesh, par.fsdp_rules("model"))
                    got = par.gather_to_host(restored)
                    out[f"restore_on_{n_dev}"] = {
                        "identical": all(np.array_equal(a, b) for a, b in zip(_raw_leaves(saved), _raw_leaves(got))),
                        "devices": sorted({d.id for x in jax.tree.leaves(restored) for d in x.devices()}),
                        "step": int(restored.step),
                    }


# -------------------------------------------------------------------------------------- Word2Vec


def _collectives(hlo: str) -> list[dict]:
    """Every collective instruction of a compiled module: its op and the element count of each result."""
    found = []
    for line in hlo.splitlines():
        m = re.search(r"=\s*(\(?[^=]*?\)?)\s+(all-gather|all-reduce|all-to-all|reduce-scatter|collective-permute)"
                      r"(-start)?\(", line)
        if m:
            sizes = [int(np.prod([int(d) for d in dims.split(",") if d] or [1]))
                     for dims in re.findall(r"[a-z]+\d*\[([\d,]*)\]", m.group(1))]
            found.append({"op": m.group(2), "elements": sizes})
    return found


def word2vec_checks(out: dict) -> None:
    import jax
    import jax.numpy as jnp

    from scratchlm import parallel as par
    from scratchlm.embeddings import word2vec as w2v

    V, D, Bw, J, K = (W2V[k] for k in ("V", "D", "B", "J", "K"))
    rng = np.random.default_rng(0)
    tables = {"v": (0.1 * rng.normal(size=(V, D))).astype(np.float32),
              "u": (0.1 * rng.normal(size=(V, D))).astype(np.float32)}
    # a small id range makes repeated words in one step (the summed-duplicates path) certain
    context = rng.integers(0, 200, (Bw, J)).astype(np.int32)
    mask = rng.random((Bw, J)) < 0.8
    target = rng.integers(0, V, Bw).astype(np.int32)
    noise = rng.integers(0, 200, (Bw, K)).astype(np.int32)
    noise[0, 0] = target[0]  # the skip rule for a noise word equal to its target
    batch = (context, mask, target, noise)
    out["w2v_scale"] = float(max(np.max(np.abs(t)) for t in tables.values()))
    for update, shapes in ((w2v.skipgram_update, ((8, 1), (4, 2))), (w2v.cbow_update, ((4, 2),))):
        ref = jax.device_get(update(jax.tree.map(jnp.asarray, tables), *map(jnp.asarray, batch), 0.025))
        for shape in shapes:
            mesh = par.make_mesh(*shape)
            params = par.shard(tables, mesh, par.EMBEDDING_RULES)
            sharded_batch = par.shard_batch(batch, mesh)
            compiled = par.make_sharded_word2vec_update(mesh, update).lower(params, *sharded_batch, 0.025).compile()
            got = jax.device_get(compiled(params, *sharded_batch, 0.025))
            record = {"tables_diff": _max_diff(ref[0], got[0]), "loss": [float(ref[1]), float(got[1])],
                      "pairs": [int(ref[2]), int(got[2])]}
            if update is w2v.skipgram_update and shape == (4, 2):
                record["collectives"] = _collectives(compiled.as_text())
                record["table_shard_elements"] = V // 2 * D
                record["table_elements"] = V * D
            out[f"w2v_{update.__name__}_{shape[0]}x{shape[1]}"] = record


# --------------------------------------------------------------------------------------- workers


def worker(port: int, process_id: int, num_processes: int, path: str) -> None:
    from scratchlm import parallel as par

    par.initialize_distributed(f"127.0.0.1:{port}", num_processes, process_id, timeout_s=60)
    import jax
    from flax import serialization

    from scratchlm.training.loop import init_train_state, make_train_step

    params, optimizer, loss_fn, batch = bert_problem()
    mesh = par.make_mesh()  # every device of every process on the data axis
    state = par.shard(init_train_state(params, optimizer, jax.random.key(1)), mesh, par.DATA_PARALLEL_RULES)
    local = {k: np.asarray(par.process_shard(v)) for k, v in batch.items()}  # this process's rows only
    step = par.shard_train_step(make_train_step(loss_fn, optimizer), par.shardings(state, par.DATA_PARALLEL_RULES, mesh),
                                mesh)
    state, metrics = step(state, par.shard_batch(local, mesh))
    host = par.gather_to_host(state.params)
    with open(path, "wb") as f:
        f.write(serialization.msgpack_serialize({"params": serialization.to_state_dict(host), "devices": jax.device_count(),
                                                 "processes": jax.process_count(), "loss": float(metrics["loss"])}))
    jax.distributed.shutdown()


def main(argv: list[str]) -> None:
    if argv[0] == "mesh":
        assert os.environ.get("XLA_FLAGS", "").find("device_count=8") >= 0, "run with 8 forced host devices"
        import time

        out: dict = {"reference_path": argv[2]}
        t0 = time.perf_counter()
        word2vec_checks(out)
        t1 = time.perf_counter()
        bert_checks(out)
        out["seconds"] = {"word2vec": t1 - t0, "bert": time.perf_counter() - t1}
        with open(argv[1], "w") as f:
            json.dump(out, f)
    elif argv[0] == "worker":
        worker(int(argv[1]), int(argv[2]), int(argv[3]), argv[4])
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
