"""The multi-device checks of ``tests/test_parallel.py``, run in fresh processes.

The pytest process has already initialised JAX with one CPU device, so these run elsewhere:

* ``python -m tests.parallel_checks mesh OUT.json REF.msgpack`` — with 8 forced host devices: one
  Word2Vec step on meshes 8 and 4×2 against the one-device step and the collectives of the
  compiled step; the ``scratchlm pretrain`` command (tiny encoder, 2 steps) on one device, with
  ``--mesh data=8`` and with ``--mesh data=4,model=2``, and the checkpoint the last one wrote from 8
  devices restored on 1 and on 4.  Writes the measurements (differences, shard shapes, collective
  shapes) as JSON, and the one-device step of the tiny BERT of :func:`bert_problem` to REF (for the
  two-process test); the tests assert.
* ``python -m tests.parallel_checks worker PORT ID N OUT.msgpack`` — process ``ID`` of ``N`` on
  localhost: the command-line flags ``--coordinator 127.0.0.1:PORT --num-processes N --process-id
  ID`` through :func:`scratchlm.commands.common.setup_parallel` (``jax.distributed.initialize``), one data-parallel
  step of the tiny BERT over the global mesh, its params (gathered to the host) written to ``OUT``.

Compile time dominates on a CPU; the subprocesses run XLA's backend at optimisation level 0
(``tests/test_parallel.py`` sets it), for the one-device reference and the meshes alike.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

TINY = dict(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=16)
B, T = 16, 8  # batch divisible by every data axis used (8, 4, 2)
W2V = dict(V=4096, D=16, B=32, J=4, K=3)  # table shard (V/2 rows) far larger than a step's rows (B J)
W2V_COMMAND = dict(words=51, sentences=40)  # 51 words, all kept (min_count 1): an odd vocabulary, padded on a mesh
# `scratchlm pretrain` on a synthetic corpus, from a saved 1-layer encoder (--init: no initialisers to compile):
# 2 steps at a constant rate, dropout and the BERT masking on (their rbg keys must give the same bits on a mesh)
PRETRAIN = ["--seq-len", "16", "--batch-size", "8", "--steps", "2", "--warmup-steps", "0", "--lr", "1e-3",
            "--dropout", "0.1", "--checkpoint-every", "0", "--keep-checkpoints"]  # one checkpoint, the end's, kept
PRETRAIN_MESHES = {"one": [], "fsdp_4x2": ["--mesh", "data=4,model=2"]}


# ------------------------------------------------------------------------------------------ BERT


def bert_params(config, seed: int = 0) -> dict:
    """Encoder + MLM head (no pooler) at :func:`bert.init`'s shapes, drawn with NumPy."""
    import jax

    from scratchlm.models import bert

    shapes = jax.eval_shape(lambda k: {**bert.init(k, config), "cls": bert.init_mlm_head(k, config)}, jax.random.key(0))
    shapes.pop("pooler")  # unused by the MLM loss: its gradient would be exactly zero
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: (0.1 * rng.normal(size=s.shape)).astype(s.dtype), shapes)


def bert_problem():
    """(params, optimizer, loss_fn, batch): the tiny encoder with its tied MLM head, one batch.

    The parameters are drawn with NumPy at the shapes :func:`bert.init` gives (no eager JAX
    initialisers to compile); no dropout (the pretrain runs cover it, and it doubles the compile time).
    """

    from scratchlm.models import bert
    from scratchlm.nn.losses import softmax_cross_entropy
    from scratchlm.training.loop import make_optimizer

    config = bert.BertConfig(**TINY)
    params = bert_params(config)
    rng = np.random.default_rng(1)

    def loss_fn(params, batch, key):
        h = bert.apply(params, batch, config=config, key=key, train=False)["last_hidden_state"]
        logits = bert.mlm_logits(params, h, config=config)  # [B, T, V]
        return softmax_cross_entropy(logits, batch["labels"], ignore_index=-100), {}

    ids = rng.integers(1, config.vocab_size, (B, T)).astype(np.int32)
    labels = np.where(rng.random((B, T)) < 0.3, ids, -100).astype(np.int32)
    batch = {"input_ids": ids, "attention_mask": np.ones((B, T), np.int32), "labels": labels}
    optimizer = make_optimizer(learning_rate=1e-3, total_steps=10, weight_decay=0.01, clip_norm=1.0)
    return params, optimizer, loss_fn, batch


def train_key():
    import jax

    return jax.random.key(1, impl="rbg")


def reference_step():
    """One step on one device (the first): params as NumPy."""
    import jax

    from scratchlm.training.loop import init_train_state, make_train_step

    params, optimizer, loss_fn, batch = bert_problem()
    state = init_train_state(params, optimizer, train_key())
    state, _ = make_train_step(loss_fn, optimizer)(state, batch)
    return jax.device_get(state.params)


def _max_diff(a, b) -> float:
    import jax

    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _raw_leaves(tree) -> list[np.ndarray]:
    """Leaves as NumPy arrays, typed PRNG keys as their raw words (bitwise comparable)."""
    import jax

    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(tree)]


def _checkpoint_state(out: Path) -> dict:
    """The state dict of the (only) checkpoint a pretrain run wrote: params, opt_state, step, key."""
    from scratchlm import serialization

    (path,) = sorted((out / "checkpoints").glob("ckpt_*.msgpack"))
    return serialization.msgpack_restore(path.read_bytes())["state"]


def pretrain_checks(out: dict, tmp: Path) -> None:
    """``scratchlm pretrain`` on one device, data parallel over 8 and FSDP over 4x2: the same two steps."""
    import jax

    from scratchlm import distributed as par
    from scratchlm import serialization
    from scratchlm.cli import main
    from scratchlm.training import checkpoint

    with open(out["reference_path"], "wb") as f:  # for the two-process test: no second compile there
        f.write(serialization.msgpack_serialize(serialization.to_state_dict(reference_step())))
    from scratchlm.models import bert
    from scratchlm.tokenizers.pipelines import BERT_SPECIAL_TOKENS, train_bert_wordpiece

    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta river stone north south house light green small".split()
    texts = [" ".join(rng.choice(words, 30)) for _ in range(40)]
    corpus = tmp / "corpus.txt"
    corpus.write_text("".join(t + "\n" for t in texts))
    tokenizer = train_bert_wordpiece(texts, 60, special_tokens=BERT_SPECIAL_TOKENS)
    config = bert.BertConfig(**{**TINY, "vocab_size": tokenizer.get_vocab_size()})
    bert.save_pretrained(tmp / "init", bert_params(config), config)
    tokenizer.save(tmp / "init" / "tokenizer.json")
    states = {}
    for name, flags in PRETRAIN_MESHES.items():
        run_dir = tmp / f"pretrain_{name}"
        argv = ["pretrain", "--corpus", str(corpus), "--init", str(tmp / "init"), *PRETRAIN, "--out", str(run_dir)]
        assert main(argv + flags) == 0
        states[name] = _checkpoint_state(run_dir)
    ref = states["one"]
    out["pretrain_scale"] = max(float(np.max(np.abs(x))) for x in jax.tree.leaves(ref["params"]))
    for name in PRETRAIN_MESHES:
        got = states[name]
        out[f"pretrain_{name}"] = {
            "params_diff": _max_diff(ref["params"], got["params"]),
            "opt_diff": _max_diff(ref["opt_state"], got["opt_state"]),
            "max_first_moment": max(float(np.max(np.abs(m)))
                                    for m in jax.tree.leaves(got["opt_state"]["1"]["0"]["mu"])),
            "step": int(got["step"]), "same_key": bool(np.array_equal(ref["key"], got["key"])),
        }
    # the checkpoint written from 8 devices (FSDP: each held 1/2 of every leaf), restored on 1 and on 4
    saved = states["fsdp_4x2"]
    (path,) = sorted((tmp / "pretrain_fsdp_4x2" / "checkpoints").glob("ckpt_*.msgpack"))
    target = jax.tree.map(np.zeros_like, saved)  # the structure, shapes and dtypes only
    for n_dev, mesh_shape in ((1, (1, 1)), (4, (2, 2))):
        new_mesh = par.make_mesh(*mesh_shape, devices=jax.devices()[:n_dev])
        restored = par.shard(checkpoint.restore_checkpoint(path, target), new_mesh, par.fsdp_rules("model"))
        word = restored["params"]["embeddings"]["word_embeddings"]["weight"]
        got = par.gather_to_host(restored)
        out[f"restore_on_{n_dev}"] = {
            "identical": all(np.array_equal(a, b) for a, b in zip(_raw_leaves(saved), _raw_leaves(got))),
            "devices": sorted({d.id for x in jax.tree.leaves(restored) for d in x.devices()}),
            "step": int(restored["step"]), "word_shard_shape": list(word.addressable_shards[0].data.shape),
            "word_shape": list(word.shape),
        }


# -------------------------------------------------------------------------------------- Word2Vec


def hlo_collectives(hlo: str) -> list[dict]:
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

    from scratchlm import distributed as par
    from scratchlm.embeddings.word2vec import kernels as w2v
    from scratchlm.embeddings.word2vec import sharded

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
            params = par.shard(tables, mesh, sharded.RULES)
            sharded_batch = par.shard_batch(batch, mesh)
            compiled = sharded.make_sharded_word2vec_update(mesh, update).lower(params, *sharded_batch, 0.025).compile()
            got = jax.device_get(compiled(params, *sharded_batch, 0.025))
            record = {"tables_diff": _max_diff(ref[0], got[0]), "loss": [float(ref[1]), float(got[1])],
                      "pairs": [int(ref[2]), int(got[2])]}
            if update is w2v.skipgram_update and shape == (4, 2):
                record["collectives"] = hlo_collectives(compiled.as_text())
                record["table_shard_elements"] = V // 2 * D
                record["table_elements"] = V * D
            out[f"w2v_{update.__name__}_{shape[0]}x{shape[1]}"] = record


def word2vec_command_checks(out: dict, tmp: Path) -> None:
    """``scratchlm word2vec`` (2 epochs) on one device and with ``--mesh data=4,model=2`` (an odd vocabulary:
    the tables are padded), then the mesh run resumed from its epoch-1 checkpoint, on the mesh and on one device."""
    import shutil

    import jax

    from scratchlm import serialization
    from scratchlm.commands import word2vec as command
    from scratchlm.embeddings import evaluate

    # the word-similarity and analogy scores are not under test here (and their data path imports gensim:
    # seconds); the command reads the function from its module at call time
    evaluate.standard_scores = lambda wv, restrict_vocab: {}
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(W2V_COMMAND["words"])]
    p = 1.0 / np.arange(1, len(words) + 1)  # Zipf-like: frequent words repeat within a step
    sentences = [list(rng.choice(words, 12, p=p / p.sum())) for _ in range(W2V_COMMAND["sentences"])]

    def run(name, mesh=None):
        # a checkpoint after every dispatch, the last two kept: the one before the end is where a resume starts
        args = command.command_args(corpus="synthetic", model="skipgram", dim=16, window=2, negative=3, min_count=1,
                                    sample=1e-3, epochs=2, seed=0, batch_size=32, steps_per_call=4,
                                    normalize_duplicates=False, restrict_vocab=1000, checkpoint_every=1e-9,
                                    keep_checkpoints=True, quiet=True, out=tmp / name, mesh=mesh)
        m = command.train_and_write(args, sentences)
        return m, [serialization.msgpack_restore(c.read_bytes())["state"]["params"]
                   for c in sorted((tmp / name / "checkpoints").glob("ckpt_*.msgpack"))]

    m_one, (_, one) = run("w2v_one")
    m_mesh, (epoch1, mesh) = run("w2v_mesh", "data=4,model=2")
    shutil.copytree(tmp / "w2v_mesh", tmp / "w2v_resumed")
    shutil.copytree(tmp / "w2v_mesh", tmp / "w2v_resumed_one")
    for name in ("w2v_resumed", "w2v_resumed_one"):  # as if killed before the last checkpoint
        sorted((tmp / name / "checkpoints").glob("ckpt_*.msgpack"))[-1].unlink()
        record = json.loads((tmp / name / "run.json").read_text())
        (tmp / name / "run.json").write_text(json.dumps({**record, "status": "running"}))
    _, (_, resumed) = run("w2v_resumed", "data=4,model=2")
    _, (_, resumed_one) = run("w2v_resumed_one", None)
    out["w2v_command"] = {
        "vocab": m_one["vocab_size"], "mesh": m_mesh["mesh"], "scale": _max_abs(one),
        "mesh_vs_one": _max_diff(one, mesh), "moved": _max_diff(one, epoch1),
        "resumed_on_mesh_identical": all(np.array_equal(a, b)
                                         for a, b in zip(jax.tree.leaves(mesh), jax.tree.leaves(resumed))),
        "resumed_on_one_vs_one": _max_diff(one, resumed_one), "shapes": [list(x.shape) for x in jax.tree.leaves(mesh)],
        "steps": 2 * -(-sum(map(len, sentences)) // 32),  # an upper bound: subsampling only removes words
    }


def finetune_checks(out: dict, tmp: Path) -> None:
    """:func:`scratchlm.training.finetune.fit` (what ``scratchlm finetune`` runs) on a 4x2 mesh for 2 epochs,
    and the same run interrupted during epoch 2's evaluation and resumed from its latest checkpoint (step 3:
    one after every step) on the mesh."""
    import jax

    from scratchlm import distributed as par
    from scratchlm.models import bert
    from scratchlm.training import encoders
    from scratchlm.training import finetune as ft

    config = bert.BertConfig(**{**TINY, "max_position_embeddings": 32})  # rows are bucketed to 32 tokens
    params = {k: v for k, v in bert_params(config).items() if k != "cls"}
    rng = np.random.default_rng(2)

    def examples(n):
        ids = rng.integers(5, config.vocab_size, (n, 32)).astype(np.int32)
        mask = (np.arange(32)[None, :] < rng.integers(8, 32, n)[:, None]).astype(np.int32)
        return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros_like(ids),
                "labels": (ids[:, 1] % 2).astype(np.int64)}

    train, dev = examples(16), examples(8)  # 2 steps an epoch
    run = ft.FinetuneConfig(task="sequence", num_labels=2, epochs=2, batch_size=8, lr=1e-3)
    start = ft.init_classifier(jax.random.key(0), params, encoders.of(config), run)
    mesh = par.make_mesh(4, 2)
    seen = []  # the params each evaluation receives (host copies): epoch 2's are the run's last

    def dev_eval(p, stop=False):
        seen.append(jax.tree.map(np.asarray, p))
        if stop and len(seen) == 2:
            raise KeyboardInterrupt  # killed during epoch 2's evaluation: epoch 1's checkpoint is the latest
        return ft.evaluate(p, dev, encoder=encoders.of(config), config=run)

    try:
        ft.fit(start, train, None, encoder=encoders.of(config), config=run, dev_eval=lambda p: dev_eval(p, stop=True),
               checkpoint_dir=tmp / "finetune", mesh=mesh, checkpoint_seconds=1e-9)  # a checkpoint every step
    except KeyboardInterrupt:
        pass
    uninterrupted = seen[1]  # the first run got through epoch 2's steps
    seen.clear()
    resumed = ft.fit(start, train, None, encoder=encoders.of(config), config=run, dev_eval=dev_eval,
                     checkpoint_dir=tmp / "finetune", mesh=mesh, checkpoint_seconds=1e-9)
    out["finetune_resume"] = {
        "identical": all(np.array_equal(a, b)
                         for a, b in zip(jax.tree.leaves(uninterrupted), jax.tree.leaves(seen[-1]))),
        "resumed_history_steps": [h["step"] for h in resumed.history],
        "moved": _max_diff(start, uninterrupted),
    }


def _max_abs(tree) -> float:
    import jax

    return max(float(np.max(np.abs(x))) for x in jax.tree.leaves(tree))


# --------------------------------------------------------------------------------------- workers


SHARED_CORPUS = {"sentences": 301, "min_count": 2, "window": 5}  # an odd count: unequal shares


def shared_corpus() -> list[list[str]]:
    from scratchlm.data.corpora import load_tokenized_corpus

    return load_tokenized_corpus("wiki")[: SHARED_CORPUS["sentences"]]


def corpus_shares(path: str) -> None:
    """Word2Vec's ids and GloVe's counts, each process reading only its share of the sentences."""
    from scratchlm.embeddings.glove.cooccurrence import read_cooccurrences
    from scratchlm.training.word2vec import read_corpus

    sentences = shared_corpus()
    vocab, ids, sentence, raw_words = read_corpus(sentences, SHARED_CORPUS["min_count"])
    cooc = read_cooccurrences(sentences, window=SHARED_CORPUS["window"], symmetric=True,
                              min_count=SHARED_CORPUS["min_count"], max_size=None, max_memory_mb=1.0)
    np.savez(path, words="\n".join(vocab.words), counts=vocab.counts, ids=ids, sentence=sentence, raw_words=raw_words,
             glove_words="\n".join(cooc.words), glove_counts=cooc.counts, i=cooc.i, j=cooc.j, x=cooc.x)


def worker(port: int, process_id: int, num_processes: int, path: str) -> None:
    """One rank: the multi-host flags as a command parses them, one data-parallel step of the tiny BERT,
    then the Word2Vec and GloVe corpora read share by share (:func:`corpus_shares`)."""
    import argparse

    from scratchlm import distributed as par
    from scratchlm.commands.common import add_parallel_arguments, setup_parallel

    parser = argparse.ArgumentParser()
    add_parallel_arguments(parser)
    mesh = setup_parallel(parser.parse_args(["--coordinator", f"127.0.0.1:{port}",
                                             "--num-processes", str(num_processes),
                                             "--process-id", str(process_id)]))  # every device on data
    import jax

    from scratchlm import serialization
    from scratchlm.training.loop import init_train_state, make_train_step

    params, optimizer, loss_fn, batch = bert_problem()
    local = {k: np.asarray(par.process_shard(v)) for k, v in batch.items()}  # this process's rows only
    state, step = par.on_mesh(make_train_step(loss_fn, optimizer),
                              init_train_state(params, optimizer, train_key()), mesh)
    state, metrics = step(state, local)
    host = par.gather_to_host(state.params)
    corpus_shares(path + ".corpus.npz")
    with open(path, "wb") as f:
        f.write(serialization.msgpack_serialize({"params": serialization.to_state_dict(host),
                                                 "devices": jax.device_count(),
                                                 "processes": jax.process_count(), "loss": float(metrics["loss"]),
                                                 "mesh": list(mesh.shape.values())}))
    jax.distributed.shutdown()


def main(argv: list[str]) -> None:
    if argv[0] == "mesh":
        assert os.environ.get("XLA_FLAGS", "").find("device_count=8") >= 0, "run with 8 forced host devices"
        import time

        out: dict = {"reference_path": argv[2]}
        t0 = time.perf_counter()
        word2vec_checks(out)
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            word2vec_command_checks(out, Path(tmp))
            t2 = time.perf_counter()
            finetune_checks(out, Path(tmp))
            t3 = time.perf_counter()
            pretrain_checks(out, Path(tmp))
        out["seconds"] = {"word2vec_step": t1 - t0, "word2vec_command": t2 - t1, "finetune": t3 - t2,
                          "pretrain": time.perf_counter() - t3}
        with open(argv[1], "w") as f:
            json.dump(out, f)
    elif argv[0] == "worker":
        worker(int(argv[1]), int(argv[2]), int(argv[3]), argv[4])
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
