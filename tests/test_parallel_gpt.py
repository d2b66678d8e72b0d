r"""``scratchlm pretrain --arch gpt`` on a device mesh: the same run as on one device, the run contract kept.

The pytest process already holds a one-device JAX, so the runs happen in one fresh process with 8
forced host devices (``python -m tests.test_parallel_gpt OUT.json``: :func:`measure` below, as
``tests/test_parallel.py`` does for BERT); the tests assert on the JSON it writes.  XLA's backend runs
at optimisation level 0 there, for the one-device reference and the meshes alike.  The model is a
2-layer, 32-wide GPT read with ``--init`` (NumPy-drawn weights: no initialisers to compile), trained
3 steps with dropout 0.1 (its ``rbg`` bits must be the same on every mesh) and a checkpoint after
every step (so the log holds every step's loss, and a resume can start mid-run).

Tolerances (float32, unit round-off :math:`u = 2^{-24} \approx 6\times10^{-8}`).  On a mesh the step
computes the same terms and only the order of the sums changes: a weight's gradient is a sum over the
:math:`n = B T = 128` positions of the batch, taken per data shard and then all-reduced (FSDP's
all-gathers of the weights move no bits), and XLA may block a matmul's contraction differently for a
shard's 2 rows than for 8.  Round-off of a sum of :math:`n` terms accumulates like a random walk,
:math:`\sqrt{n}\,u` of the magnitude summed (Higham 2002, §4.2; the worst case is :math:`(n-1)u`);
we allow :math:`4\sqrt{n}\,u` a step, i.e. ``TOL = 4 · sqrt(n) · u · S`` over :math:`S = 3` steps
(:math:`\approx 8\times10^{-6}`), relative to the quantity's scale:

* the training loss of each step and the held-out loss at the end (means of :math:`n`-term sums of
  per-position cross-entropies): relative ``TOL``; the held-out loss at the start is the same number,
  the same params scored by the same one-device program;
* the parameters: ``TOL · max|θ|`` absolute.  AdamW moves a parameter by
  :math:`\eta\,\hat m/(\sqrt{\hat v}+\epsilon)`, a ratio of the gradient to its own scale, so a
  gradient's relative round-off reaches the parameter as a fraction of :math:`\eta` — except where
  the exact gradient is zero or cancels (GPT's key bias: softmax ignores a shift of all scores), where
  Adam scales round-off :math:`\delta` to a step :math:`\eta\,\delta/(\delta+\epsilon)`; these keep
  to the bound only because their round-off is far below :math:`\epsilon = 10^{-8}`.  The bound is a
  derived scale, not a worst case; what it must catch moves much more: a wrong dropout mask, or a
  shard dropped or counted twice, changes a step by :math:`\eta = 10^{-3}` (the test asserts the runs
  moved the params 100 × the bound);
* the AdamW moments: the parameters' absolute bound, as ``tests/test_parallel.py`` does for BERT
  (:math:`|\mu|, \nu` are below the parameters' scale here, so this is the looser check).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
U = 2.0**-24  # float32 unit round-off
FAST_COMPILE = "--xla_backend_optimization_level=0"
B, T, STEPS, LR = 8, 16, 3, 1e-3
TINY = dict(n_layer=2, n_embd=32, n_head=2, n_positions=T)
# --checkpoint-every 1e-9: a checkpoint (and a flush of the log: one line per step) after every step
FLAGS = ["--seq-len", str(T), "--batch-size", str(B), "--steps", str(STEPS), "--warmup-steps", "0", "--lr", str(LR),
         "--dropout", "0.1", "--checkpoint-every", "1e-9", "--keep-checkpoints", "--quiet"]
MESHES = {"one": [], "data4": ["--mesh", "data=4"], "fsdp_4x2": ["--mesh", "data=4,model=2"]}
TOL = 4 * np.sqrt(B * T) * U * STEPS  # the module docstring's relative bound: S steps of B·T-term sums


# ------------------------------------------------------------------------------ the 8-device process


def _state(run: Path) -> dict:
    """The last checkpoint's state (params, opt_state, step, key) of a run folder."""
    from scratchlm import serialization

    path = sorted((run / "checkpoints").glob("ckpt_*.msgpack"))[-1]
    return serialization.msgpack_restore(path.read_bytes())["state"]


def _max_diff(a, b) -> float:
    import jax

    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _max_abs(tree) -> float:
    import jax

    return max(float(np.max(np.abs(x))) for x in jax.tree.leaves(tree))


def _identical(a, b) -> bool:
    import jax

    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def _cli(argv: list[str]) -> tuple[int, str]:
    from scratchlm.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


def problem(tmp: Path) -> tuple[Path, dict]:
    """A corpus file of 40 synthetic documents and, in ``tmp/init``, a GPT-2 folder (``TINY``, weights drawn with
    NumPy, a byte-level BPE tokenizer with ``<|endoftext|>`` trained on the corpus); returns (corpus, params)."""
    import jax

    from scratchlm.models import gpt
    from scratchlm.tokenizers.pipelines import train_bpe
    from scratchlm.training.causal_lm import END_OF_TEXT

    rng = np.random.default_rng(0)
    words = "alpha beta gamma delta river stone north south house light green small".split()
    texts = [" ".join(rng.choice(words, 30)) for _ in range(40)]
    corpus = tmp / "corpus.txt"
    corpus.write_text("".join(t + "\n" for t in texts))
    tokenizer = train_bpe(texts, 300, special_tokens=[END_OF_TEXT])
    eos = tokenizer.token_to_id(END_OF_TEXT)
    config = gpt.GPTConfig(vocab_size=tokenizer.get_vocab_size(), bos_token_id=eos, eos_token_id=eos, **TINY)
    shapes = jax.eval_shape(lambda k: gpt.init(k, config), jax.random.key(0))
    params = jax.tree.map(lambda s: (0.1 * rng.normal(size=s.shape)).astype(s.dtype), shapes)
    gpt.save_pretrained(tmp / "init", params, config)
    tokenizer.save(tmp / "init" / "tokenizer.json")
    return corpus, params


def measure(out_path: str) -> None:
    import tempfile

    import jax

    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    out: dict = {}
    tmp = Path(tempfile.mkdtemp(prefix="parallel-gpt-"))
    corpus, params = problem(tmp)
    base = ["pretrain", "--arch", "gpt", "--corpus", str(corpus), "--init", str(tmp / "init"), *FLAGS]

    def run(name: str, flags: list[str]) -> dict:
        code, err = _cli([*base, *flags, "--out", str(tmp / name)])
        assert code == 0, err
        log = [json.loads(line) for line in (tmp / name / "train_log.jsonl").read_text().splitlines()]
        metrics = json.loads((tmp / name / "metrics.json").read_text())
        return {"state": _state(tmp / name), "metrics": metrics,
                "losses": [r["loss"] for r in log if r.get("split") == "train"]}

    runs = {name: run(name, flags) for name, flags in MESHES.items()}
    # what --mesh data=4,model=2 does to GPT-2's names: rules_for (FSDP) splits each along its largest divisible axis
    from scratchlm import distributed as par

    mesh = par.make_mesh(4, 2)
    specs = par.partition_specs(params, par.rules_for(mesh), mesh)
    out["fsdp_specs"] = {name: list(spec) for name, spec in (("c_attn", specs["h"][0]["attn"]["c_attn"]["weight"]),
                                                            ("c_fc", specs["h"][1]["mlp"]["c_fc"]["weight"]),
                                                            ("wpe", specs["wpe"]["weight"]))}
    ref = runs["one"]
    out["scale"] = _max_abs(ref["state"]["params"])
    out["moved"] = _max_diff(params, ref["state"]["params"])
    for name, r in runs.items():
        m = r["metrics"]
        out[name] = {"mesh": m["mesh"], "processes": m["processes"], "losses": r["losses"],
                     "heldout": [m["heldout_loss_start"], m["heldout_loss_end"]], "step": int(r["state"]["step"]),
                     "params_diff": _max_diff(ref["state"]["params"], r["state"]["params"]),
                     "opt_diff": _max_diff(ref["state"]["opt_state"], r["state"]["opt_state"]),
                     "same_key": bool(np.array_equal(ref["state"]["key"], r["state"]["key"]))}

    # the run contract on the mesh: killed after step 2's checkpoint, run again with the same command
    shutil.copytree(tmp / "fsdp_4x2", tmp / "resumed")
    (tmp / "resumed" / "checkpoints" / f"ckpt_{STEPS:08d}.msgpack").unlink()
    log = tmp / "resumed" / "train_log.jsonl"
    log.write_text("".join(line + "\n" for line in log.read_text().splitlines() if json.loads(line)["step"] < STEPS))
    record = json.loads((tmp / "resumed" / "run.json").read_text())
    (tmp / "resumed" / "run.json").write_text(json.dumps({**record, "status": "running"}))
    resumed = run("resumed", MESHES["fsdp_4x2"])
    out["resumed"] = {"identical": _identical(runs["fsdp_4x2"]["state"], resumed["state"]),
                      "mesh": resumed["metrics"]["mesh"], "history_steps": [h["step"] for h in
                                                                             resumed["metrics"]["history"]],
                      "losses": resumed["losses"]}
    # and the complete run asked again: found complete, nothing trained
    code, err = _cli([*base, *MESHES["fsdp_4x2"], "--out", str(tmp / "fsdp_4x2")])
    out["again"] = {"code": code, "untouched": _identical(runs["fsdp_4x2"]["state"], _state(tmp / "fsdp_4x2"))}

    # a batch the data axis cannot split: the same one-line error from both architectures, before any work
    refusals = {}
    for arch in ("gpt", "bert"):
        folder = tmp / f"refused_{arch}"
        code, err = _cli(["pretrain", "--arch", arch, "--corpus", str(corpus), "--batch-size", "6",
                          "--mesh", "data=4", "--steps", "1", "--out", str(folder)])
        refusals[arch] = {"code": code, "error": err.strip(), "created": folder.exists()}
    out["refusals"] = refusals
    shutil.rmtree(tmp, ignore_errors=True)
    Path(out_path).write_text(json.dumps(out))


# ------------------------------------------------------------------------------------------ the tests


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("parallel_gpt")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
               XLA_FLAGS=f"--xla_force_host_platform_device_count=8 {FAST_COMPILE}")
    with open(tmp / "out.log", "w") as log:  # a file, not a pipe that could fill up
        proc = subprocess.run([sys.executable, "-m", "tests.test_parallel_gpt", str(tmp / "out.json")], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600, check=False)
    assert proc.returncode == 0, (tmp / "out.log").read_text()[-4000:]
    return json.loads((tmp / "out.json").read_text())


@pytest.mark.parametrize("name", ["data4", "fsdp_4x2"])
def test_gpt_pretraining_on_a_mesh_equals_one_device(results, name):
    """Data parallel over 4 devices and FSDP over 4x2: every step's training loss, the held-out loss before and
    after, the final params and AdamW moments of the one-device run, to the module docstring's bounds."""
    ref, r = results["one"], results[name]
    atol = TOL * results["scale"]
    assert results["moved"] > 100 * atol  # the runs moved: equality is not vacuous
    assert r["mesh"] == {"data4": {"data": 4, "model": 1}, "fsdp_4x2": {"data": 4, "model": 2}}[name]
    assert ref["mesh"] is None and r["processes"] == ref["processes"] == 1
    assert len(r["losses"]) == STEPS and r["step"] == STEPS and r["same_key"]
    np.testing.assert_allclose(r["losses"], ref["losses"], rtol=TOL, atol=0)
    assert r["heldout"][0] == ref["heldout"][0]  # the same params, scored by the same one-device program
    assert r["heldout"][1] == pytest.approx(ref["heldout"][1], rel=TOL, abs=0)
    assert r["params_diff"] <= atol and r["opt_diff"] <= atol


def test_fsdp_splits_gpt2s_weights_over_the_model_axis(results):
    """The FSDP rules know no model: GPT-2's ``c_attn [H, 3H]`` and ``c_fc [H, 4H]`` split along their output axis
    (the largest), ``wpe [T, H]`` along H (T = H = 16 x 32: the larger)."""
    assert results["fsdp_specs"] == {"c_attn": [None, "model"], "c_fc": [None, "model"], "wpe": [None, "model"]}


def test_gpt_run_on_a_mesh_resumes_bit_for_bit_and_is_found_complete(results):
    """Killed after step 2's checkpoint and run again on the 4x2 mesh: the loop restores host arrays, the mesh step
    places them, and step 3 ends on exactly the uninterrupted run's state; ``metrics.json`` records the mesh.  Run
    a third time, the complete folder is left as it is."""
    r = results["resumed"]
    assert r["identical"] and r["mesh"] == {"data": 4, "model": 2}
    assert r["losses"] == results["fsdp_4x2"]["losses"]  # the log continued: steps 1-2 kept, step 3 appended
    assert results["again"] == {"code": 0, "untouched": True}


def test_a_batch_the_data_axis_cannot_split_is_the_same_error_for_gpt_and_bert(results):
    gpt, bert = results["refusals"]["gpt"], results["refusals"]["bert"]
    assert gpt["code"] == bert["code"] == 2 and not gpt["created"] and not bert["created"]
    assert gpt["error"] == bert["error"] == ("scratchlm pretrain: error: --batch-size 6 must be a multiple of the "
                                             "mesh's data axis (4) and of the number of processes (1)")


@pytest.mark.slow
def test_two_processes_train_one_gpt_and_process_0_writes_it(tmp_path):
    """``scratchlm pretrain --arch gpt --mesh data=2 --coordinator 127.0.0.1:PORT --num-processes 2 --process-id I``
    in two CPU processes (one device each, collectives over gloo) sharing one run folder, beside the one-device
    run.  Each process reads its half of the training documents, so the batches differ from one device's (the
    halves are packed apart) and the params are not compared; what must hold: process 0 writes the folder, the
    metrics record the mesh and both processes, the held-out loss at the start is the one-device run's (the
    same init, every process scoring every held-out row), and the unigram baseline is that of both halves'
    tokens, counted here from the halves as each process packs its own (the same float64 operations: equal)."""
    import math
    import socket

    from scratchlm import distributed as par
    from scratchlm import tokenizers
    from scratchlm.data import corpora
    from scratchlm.models.gru_lm import unigram_perplexity_of_counts
    from scratchlm.training.causal_lm import token_rows
    from scratchlm.training.pretrain import PretrainConfig

    corpus, _ = problem(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), XLA_FLAGS=FAST_COMPILE)
    command = [sys.executable, "-m", "scratchlm.cli", "pretrain", "--arch", "gpt", "--corpus", str(corpus),
               "--init", str(tmp_path / "init"), *FLAGS]

    def start(name, *extra):
        return subprocess.Popen([*command, "--out", str(tmp_path / name), *extra], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = {f"rank{i}": start("shared", "--mesh", "data=2", "--coordinator", f"127.0.0.1:{port}",
                               "--num-processes", "2", "--process-id", str(i)) for i in range(2)}
    procs["one"] = start("one")
    logs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
    assert all(proc.returncode == 0 for proc in procs.values()), {k: v[-2000:] for k, v in logs.items()}
    one, two = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("one", "shared"))
    assert two["mesh"] == {"data": 2, "model": 1} and two["processes"] == 2 and one["processes"] == 1
    assert two["heldout_loss_start"] == one["heldout_loss_start"]
    assert two["heldout_loss_end"] < two["heldout_loss_start"]
    assert (tmp_path / "shared" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "shared" / "train_log.process1.jsonl").is_file()  # process 1 logs beside, writes nothing else

    texts, tokenizer = corpora.load_corpus(str(corpus)), tokenizers.load(tmp_path / "init" / "tokenizer.json")
    halves = [token_rows(texts, tokenizer, PretrainConfig(seq_len=T), share=lambda d, i=i: par.process_shard(d, i, 2))
              for i in range(2)]
    counts = sum(np.bincount(rows.ravel(), minlength=tokenizer.get_vocab_size()) for rows, _ in halves)
    assert two["unigram_loss"] == math.log(unigram_perplexity_of_counts(counts, halves[0][1][:, 1:]))
    own = np.bincount(halves[0][0].ravel(), minlength=tokenizer.get_vocab_size())  # process 0's half alone
    assert two["unigram_loss"] != math.log(unigram_perplexity_of_counts(own, halves[0][1][:, 1:]))


if __name__ == "__main__":
    measure(sys.argv[1])
