"""scratchlm.distributed (and Word2Vec's sharded step): sharded steps equal the one-device step, sparse
Word2Vec traffic, checkpoints across meshes, and two processes under ``jax.distributed``.

The multi-device work runs in fresh processes (:mod:`tests.parallel_checks`): this pytest process
already holds a one-device JAX.  One subprocess with 8 forced host devices makes every mesh
measurement, two more are the ranks of a localhost ``jax.distributed`` job; the module-scoped
fixture starts all three at once (XLA compiles on one core per process, so they overlap on two).

Tolerances (float32, unit round-off :math:`u = 2^{-24} \\approx 6\\times10^{-8}`):

* Word2Vec: a row is written once in the sharded step, exactly as on one device, unless the word
  occurs several times in the step; then its updates are summed in another order, which moves the
  result by a few ulps of the row's size: ``8 u · max|table|``.
* BERT (``scratchlm pretrain`` for 2 steps, the two-process step): the sharded forward/backward
  sums the same terms in another order (all-reduce of partial gradients, split matmuls), a relative
  change of :math:`O(\\sqrt{n}\\,u)` in each gradient; an AdamW step moves a parameter by
  :math:`\\eta\\,\\hat m/(\\sqrt{\\hat v}+\\epsilon)`, at most about :math:`\\eta = 10^{-3}`, so
  each step's parameters agree to :math:`10^{-3}\\cdot 10^{-4}` plus the round-off of the
  parameters themselves (``4 u · max|θ|``); we allow ``1e-6`` absolute (2 steps: ``2e-6``).  The
  dropout and masking bits come from ``rbg`` keys and must be the same bits on every mesh: a
  different mask would move the loss by O(1), far outside this.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from scratchlm import distributed as par
from scratchlm.errors import ScratchlmError

ROOT = Path(__file__).resolve().parents[1]
U = 2.0**-24  # float32 unit round-off
BERT_ATOL = 1e-6  # see the module docstring


# XLA's backend at optimisation level 0 compiles about 3x faster; every run in a subprocess (the
# one-device references included) uses the same flags, so the comparisons are like with like
FAST_COMPILE = "--xla_backend_optimization_level=0"


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    return {**env, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT), "XLA_FLAGS": FAST_COMPILE, **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _finish(procs: list, timeout: float) -> list[str]:
    """Wait for the processes (killing all on a timeout); their logs."""
    try:
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return [Path(p.args[-1]).with_suffix(".log").read_text() for p in procs]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Start the 8-device measurements and the two ranks of the jax.distributed job together."""
    tmp = tmp_path_factory.mktemp("parallel")
    port = _free_port()
    ranks = [tmp / f"rank{i}.msgpack" for i in range(2)]
    command = [sys.executable, "-m", "tests.parallel_checks"]

    def start(args, env):  # output to OUT.log beside the last argument (no pipe to fill up)
        with open(Path(args[-1]).with_suffix(".log"), "w") as log:
            return subprocess.Popen(command + args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    mesh = start(["mesh", str(tmp / "mesh.json"), str(tmp / "ref.msgpack")],
                 _env(XLA_FLAGS=f"--xla_force_host_platform_device_count=8 {FAST_COMPILE}"))
    workers = [start(["worker", str(port), str(i), "2", str(ranks[i])], _env()) for i in range(2)]
    yield {"tmp": tmp, "mesh": mesh, "workers": workers, "ranks": ranks}
    for p in (mesh, *workers):  # a test that failed early leaves them running
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def mesh_results(runs) -> dict:
    (log,) = _finish([runs["mesh"]], timeout=600)
    assert runs["mesh"].returncode == 0, log[-4000:]
    return json.loads((runs["tmp"] / "mesh.json").read_text())


# ------------------------------------------------------------------------ pure helpers (this process)


def test_parse_mesh():
    assert par.parse_mesh("data=8") == {"data": 8}
    assert par.parse_mesh("data=4, model=2") == {"data": 4, "model": 2}
    for bad in ("data", "data=0", "pipe=2", "data=2,data=2", "data=x", "", " "):  # "": it ran on every device
        with pytest.raises(ScratchlmError, match="mesh"):
            par.parse_mesh(bad)


def test_make_mesh_on_one_device_and_too_many():
    mesh = par.make_mesh()
    assert dict(mesh.shape) == {"data": len(jax.devices()), "model": 1}
    with pytest.raises(ScratchlmError, match="needs 16 devices"):
        par.make_mesh(data=8, model=2)
    with pytest.raises(ScratchlmError, match="data=1 x model=16 needs 16 devices"):  # it said "needs 0"
        par.make_mesh(model=16)
    assert par.rules_for(mesh) == par.DATA_PARALLEL_RULES


def test_partition_rules_by_path_and_largest_axis():
    """Rules are searched in the leaf's path; ``Largest`` picks the largest divisible axis, else replicates."""
    mesh = par.make_mesh()  # axis sizes 1: every split divides
    tree = {"v": np.zeros((8, 3)), "b": np.zeros(8), "dense": {"weight": np.zeros((3, 6)), "bias": np.zeros(6)},
            "step": np.zeros(())}
    specs = par.partition_specs(tree, par.row_rules(("v", "b")), mesh)
    assert specs["v"] == P("model") and specs["b"] == P("model") and specs["dense"]["weight"] == P()
    specs = par.partition_specs(tree, par.fsdp_rules("model"), mesh)
    assert specs["dense"]["weight"] == P(None, "model") and specs["v"] == P("model") and specs["step"] == P()
    assert par.rules._spec("x", (6, 4), par.fsdp_rules("model"), _FakeMesh(4)) == P(None, "model")  # 6 % 4 != 0
    assert par.rules._spec("x", (6, 3), par.fsdp_rules("model"), _FakeMesh(4)) == P()  # nothing divisible: replicated
    with pytest.raises(ScratchlmError, match="does not divide"):
        par.rules._spec("v", (10, 3), par.row_rules(("v",)), _FakeMesh(4))


class _FakeMesh:
    def __init__(self, model: int):
        self.shape = {"data": 1, "model": model}


def test_process_shard_partitions_the_corpus():
    items = list(range(10))
    shares = [par.process_shard(items, i, 3) for i in range(3)]
    assert sum(shares, []) == items and {len(s) for s in shares} <= {3, 4}
    with pytest.raises(ScratchlmError):
        par.process_shard(items, 3, 3)


# ------------------------------------------------------------------------------ 8 forced host devices


@pytest.mark.parametrize("name", ["skipgram_update_8x1", "skipgram_update_4x2", "cbow_update_4x2"])
def test_word2vec_sharded_step_equals_one_device(mesh_results, name):
    r = mesh_results[f"w2v_{name}"]
    assert r["tables_diff"] <= 8 * U * mesh_results["w2v_scale"]
    assert r["pairs"][0] == r["pairs"][1]
    assert r["loss"][1] == pytest.approx(r["loss"][0], rel=1e-5)  # a sum of ~500 terms in another order


def test_word2vec_step_never_moves_a_table(mesh_results):
    """Every collective of the compiled 4x2 step carries less than one table shard: only the step's rows travel."""
    r = mesh_results["w2v_skipgram_update_4x2"]
    assert r["collectives"], "a sharded step without communication cannot be right"
    assert any(c["op"] == "all-gather" for c in r["collectives"])  # the row changes, over data
    largest = max(max(c["elements"]) for c in r["collectives"])
    assert largest < r["table_shard_elements"] // 4, r["collectives"]


def test_word2vec_command_on_a_4x2_mesh_equals_one_device_and_resumes(mesh_results):
    """``scratchlm word2vec --mesh data=4,model=2``, 2 epochs over an odd vocabulary (the tables padded to
    split by rows): the one-device tables to round-off; resumed from its epoch-1 checkpoint on the mesh,
    bit for bit; resumed from it on one device, the one-device run's tables to round-off.

    Each step sums a repeated word's updates in another order (see the module docstring: ``8 u`` of
    the table's scale per step); the steps compound that weakly (a row's change feeds the next
    gradients through ``alpha · |u| < 1``), so ``8 u · scale`` per step, times the number of steps.
    """
    r = mesh_results["w2v_command"]
    assert r["mesh"] == {"data": 4, "model": 2} and r["vocab"] % 2 == 1
    assert r["shapes"] == [[r["vocab"], 16]] * 2  # written unpadded: a checkpoint resumes on any mesh
    tol = 8 * U * r["scale"] * r["steps"]
    assert r["moved"] > 100 * tol  # epoch 2 changed the tables far beyond the tolerance: the check has teeth
    assert r["mesh_vs_one"] <= tol
    assert r["resumed_on_mesh_identical"]
    assert r["resumed_on_one_vs_one"] <= tol


def test_pretrain_command_on_a_4x2_mesh_equals_one_device(mesh_results):
    """``scratchlm pretrain --mesh data=4,model=2``: 2 steps (masking and dropout on) end where the
    one-device run ends, params and AdamW moments, with the same step and key."""
    ref, r = mesh_results["pretrain_one"], mesh_results["pretrain_fsdp_4x2"]
    assert ref["params_diff"] == 0.0 and ref["max_first_moment"] > 1e-3  # the runs moved: equality is not vacuous
    tol = 2 * BERT_ATOL + 4 * U * mesh_results["pretrain_scale"]
    assert r["params_diff"] <= tol and r["opt_diff"] <= tol
    assert r["step"] == 2 and r["same_key"]


def test_finetune_resumes_on_a_mesh_bit_for_bit(mesh_results):
    """Fine-tuning (``training.finetune.fit``, what ``scratchlm finetune`` runs) on a 4x2 mesh, killed during
    epoch 2's evaluation and run again: the loop restores step 3's checkpoint as one-device arrays, the mesh
    step places them, and epoch 2 ends on exactly the uninterrupted run's params."""
    r = mesh_results["finetune_resume"]
    assert r["resumed_history_steps"] == [4]  # only epoch 2 (2 steps an epoch) ran again
    assert r["identical"] and r["moved"] > 1e-4


@pytest.mark.parametrize("n", [1, 4])
def test_checkpoint_from_8_devices_restores_on_fewer(mesh_results, n):
    """The checkpoint ``scratchlm pretrain --mesh data=4,model=2`` wrote from 8 devices, restored onto 1 and
    onto a 2x2 mesh (FSDP rules: the word embeddings split along the vocabulary)."""
    r = mesh_results[f"restore_on_{n}"]
    assert r["identical"] and r["step"] == 2 and r["devices"] == list(range(n))
    V, H = r["word_shape"]
    assert r["word_shard_shape"] == ([V, H] if n == 1 else [V // 2, H])


# -------------------------------------------------------------------------------- two processes


def test_two_processes_take_one_data_parallel_step(runs, mesh_results):
    """Two CPU processes, a loopback coordinator, the multi-host flags through ``commands.common.setup_parallel``:
    both end with the params of the one-device step (each fed only its half of the batch)."""
    from scratchlm import serialization

    procs = runs["workers"]
    logs = _finish(procs, timeout=300)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    got = [serialization.msgpack_restore(o.read_bytes()) for o in runs["ranks"]]
    assert [(g["devices"], g["processes"], list(g["mesh"])) for g in got] == [(2, 2, [2, 1])] * 2
    ref = jax.tree.leaves(serialization.msgpack_restore(Path(mesh_results["reference_path"]).read_bytes()))
    a, b = jax.tree.leaves(got[0]["params"]), jax.tree.leaves(got[1]["params"])
    assert len(a) == len(ref)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # the replicas agree bit for bit
    scale = max(float(np.max(np.abs(x))) for x in ref)
    assert max(float(np.max(np.abs(x - y))) for x, y in zip(a, ref)) <= BERT_ATOL + 4 * U * scale


def test_two_processes_each_read_a_share_of_the_corpus_and_end_with_the_whole(runs, mesh_results):
    """Word2Vec's vocabulary, ids and sentence numbers and GloVe's co-occurrence counts, each of the two
    processes reading and counting only its share of 301 sentences, equal one process reading them all.
    The ids are exact (integers); the merged :math:`X_{ij}` sum the same 1/d terms in another order, a
    float64 round-off of a few ulps of terms that number in the hundreds at most: ``rtol 1e-12``."""
    from scratchlm.embeddings.glove.cooccurrence import read_cooccurrences
    from scratchlm.training.word2vec import read_corpus
    from tests.parallel_checks import SHARED_CORPUS, shared_corpus

    procs = runs["workers"]
    logs = _finish(procs, timeout=300)
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-3000:] for log in logs)
    got = [dict(np.load(str(o) + ".corpus.npz", allow_pickle=False)) for o in runs["ranks"]]
    for key in got[0]:
        assert np.array_equal(got[0][key], got[1][key]), key  # both processes hold the same corpus
    sentences = shared_corpus()
    vocab, ids, sentence, raw_words = read_corpus(sentences, SHARED_CORPUS["min_count"])
    assert str(got[0]["words"]).split("\n") == list(vocab.words)  # ties in first-appearance order too
    assert np.array_equal(got[0]["counts"], vocab.counts)
    assert np.array_equal(got[0]["ids"], ids) and np.array_equal(got[0]["sentence"], sentence)
    assert int(got[0]["raw_words"]) == raw_words == sum(map(len, sentences))
    cooc = read_cooccurrences(sentences, window=SHARED_CORPUS["window"], symmetric=True,
                              min_count=SHARED_CORPUS["min_count"], max_size=None, max_memory_mb=1.0)
    assert str(got[0]["glove_words"]).split("\n") == list(cooc.words)
    assert np.array_equal(got[0]["glove_counts"], cooc.counts)
    assert np.array_equal(got[0]["i"], cooc.i) and np.array_equal(got[0]["j"], cooc.j)
    np.testing.assert_allclose(got[0]["x"], cooc.x, rtol=1e-12, atol=0)
