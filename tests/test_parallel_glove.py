r"""GloVe on a device mesh (scratchlm.embeddings.glove.sharded.make_sharded_glove_update, ``scratchlm glove --mesh``).

The pytest process already holds a one-device JAX, so the measurements run in one fresh process
with 8 forced host devices (``python -m tests.test_parallel_glove OUT.json``, the functions below
whose names start with ``_``); the tests assert on the JSON it writes.  XLA's backend runs at
optimisation level 0 there (3x faster compiles), for the one-device references and the meshes alike.
The two-process runs of the command under ``jax.distributed`` (about 45 s each) are marked ``slow``.

Tolerances (float32, unit round-off :math:`u = 2^{-24}`), derived from the arithmetic.  The sharded
step reads every row exactly (a ``psum`` of one row and zeros) and computes each entry's terms with
the same function as :func:`scratchlm.embeddings.glove.kernels.row_update` (``jax.vmap`` of
:func:`~scratchlm.embeddings.glove.objective.entry_gradients`); only the sums change order: a row's
:math:`n \le B` entry terms are summed per data shard, then across shards.

*One step.*  A sum of :math:`n` terms in any order is within :math:`(n-1)\,u \sum_e |g_e|` of the exact
sum, so each of the two steps is within the bounds of
``tests/embeddings/glove/test_kernels.py:adagrad_bounds`` of the exact step (:math:`2BuS` on a row's
sum, :math:`S = \sum_e |g_e|`, propagated through :math:`G' = G + s^2` and
:math:`\theta' = \theta - s/\sqrt{G'}`, plus two roundings of each result), and the two steps within
twice that.  The step test computes these bounds element by element from the minibatch's own terms.
The cost is a sum of :math:`B = 32` non-negative terms, so each order is within :math:`(B-1)u` of the
exact sum, relatively: ``rel = 2 B u``.

*Several steps* (the command, 2 epochs).  Each step adds a fresh difference of at most
(number of summed terms :math:`B`) × :math:`u` × (the magnitude of what is summed) to every leaf, twice
over for the two runs, and the bound sums these over the steps (:func:`command_tolerance`): for a
parameter ``2 B u · max|leaf|`` a step; for an accumulator :math:`G' = G + s^2` one rounding of
:math:`G'` plus :math:`B u` of the summed squares, ``2 (u · max G + B u · (max G - G_0))`` a step, since
the squares a step adds are at most what all steps added, :math:`\max G - G_0`.  It assumes the
differences already made are not amplified from step to step (AdaGrad on GloVe's objective, convex in
each of :math:`W` and :math:`\tilde W`, contracts them on this problem); that assumption, not a
measurement, is what the multi-step bound rests on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
U = 2.0**-24  # float32 unit round-off
FAST_COMPILE = "--xla_backend_optimization_level=0"
STEP = dict(V=4096, D=16, B=32)  # a table shard (V/2 rows) far larger than a step's rows (2B)
# V = 51 words (odd: padded to 52 on model=2), more than a batch: row steps on one device too
COMMAND = dict(words=51, sentences=40, batch=32)
MESHES = {"8x1": ((8, 1), False), "4x2": ((4, 2), False), "4x2_entry": ((4, 2), True)}


def command_tolerance(leaf: str, scale: float, steps: int) -> float:
    """The bound on a leaf's difference after ``steps`` row steps of ``COMMAND["batch"]`` entries (module docstring)."""
    from scratchlm.embeddings.glove.config import GloveConfig

    B = COMMAND["batch"]
    if leaf.startswith("params"):
        return 2 * B * U * scale * steps
    g0 = 4.0 / GloveConfig().lr**2  # G_0 = 4 / eta^2 (kernels.make_optimizer), the command's default eta
    return 2 * (U * scale + B * U * (scale - g0)) * steps


@pytest.fixture(scope="module", autouse=True)
def measurements(request, tmp_path_factory):
    """Start the 8-device subprocess as the module starts (when a selected test reads its results): the
    one-device tests run while it compiles."""
    if not any("results" in item.fixturenames for item in request.session.items if item.module is request.module):
        yield None
        return
    tmp = tmp_path_factory.mktemp("parallel_glove")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
               XLA_FLAGS=f"--xla_force_host_platform_device_count=8 {FAST_COMPILE}")
    with open(tmp / "out.log", "w") as log:  # a file, not a pipe that could fill up
        proc = subprocess.Popen([sys.executable, "-m", "tests.test_parallel_glove", str(tmp / "out.json")], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    yield proc, tmp
    if proc.poll() is None:  # the results' tests failed before waiting
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def results(measurements) -> dict:
    proc, tmp = measurements
    try:
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, (tmp / "out.log").read_text()[-4000:]
    out = json.loads((tmp / "out.json").read_text())
    print(f"8-device subprocess seconds (reported, not asserted): {out['seconds']}")
    return out


def test_restore_rows_trims_and_pads_both_ways(tmp_path):
    """A checkpoint of 5 rows read into 7 (a mesh's padding) and back into 5: the 5 saved rows exact, the
    extra rows the fresh state's (parameters 0, accumulators 4/η²), step and key as saved."""
    import jax
    import optax

    from scratchlm.embeddings.glove.config import GloveConfig
    from scratchlm.training import glove
    from scratchlm.training.checkpoint import save_checkpoint
    from scratchlm.training.loop import TrainState

    g0 = 4.0 / GloveConfig().lr**2
    shapes = {"W": (3,), "b": (), "W_tilde": (3,), "b_tilde": ()}

    def state(rows, params, acc, step=0):  # host arrays: no XLA computation to compile
        return TrainState(params={k: np.full((rows, *s), params, np.float32) for k, s in shapes.items()},
                          opt_state=(optax.ScaleByRssState(sum_of_squares={k: np.full((rows, *s), acc, np.float32)
                                                                            for k, s in shapes.items()}),
                                     optax.EmptyState()),
                          step=np.int32(step), key=jax.random.key(step))

    saved = state(5, 1.5, 7.0, step=3)
    grown = glove.restore_rows(save_checkpoint(tmp_path, saved), state(7, 0.0, g0), 5)
    for k in shapes:
        assert np.all(grown.params[k][:5] == 1.5) and np.all(grown.params[k][5:] == 0)
        acc = grown.opt_state[0].sum_of_squares[k]
        assert np.all(acc[:5] == 7.0) and np.all(acc[5:] == g0)
    assert int(grown.step) == 3 and np.array_equal(jax.random.key_data(grown.key), jax.random.key_data(saved.key))
    shrunk = glove.restore_rows(save_checkpoint(tmp_path / "grown", grown), state(5, 0.0, g0), 5)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves((shrunk.params, shrunk.opt_state)),
                                                    jax.tree.leaves((saved.params, saved.opt_state))))


def test_a_dense_step_on_a_mesh_is_refused():
    """On a mesh every minibatch is a sparse row step; a dense one would all-reduce whole tables."""
    import jax

    from scratchlm import distributed as par
    from scratchlm.embeddings.glove.config import GloveConfig
    from scratchlm.errors import ScratchlmError
    from scratchlm.training import glove

    with pytest.raises(ScratchlmError, match="row steps"):
        glove.train(np.array([0, 1]), np.array([1, 0]), np.array([2.0, 3.0]), 2, key=jax.random.key(0),
                    config=GloveConfig(dim=2, epochs=1, batch_size=2, update="dense"), mesh=par.make_mesh())


@pytest.mark.parametrize("name", list(MESHES))
def test_sharded_step_equals_one_device(results, name):
    """One minibatch (repeated rows certain) on meshes 8 and 4x2, AdaGrad as the minibatch or entry variant:
    :func:`~scratchlm.embeddings.glove.kernels.row_update`'s params and accumulators, every element within
    twice its derived round-off bound (module docstring), the same cost."""
    r = results["step"][name]
    assert r["mesh"] == list(MESHES[name][0])
    for leaf, (excess, diff, bound) in r["leaves"].items():
        assert excess <= 0, (leaf, diff, bound)
    assert r["moved"] > 1e-4  # the step changed the parameters: the equality is not vacuous
    assert r["cost"][1] == pytest.approx(r["cost"][0], rel=2 * STEP["B"] * U)


def test_sharded_step_and_epoch_move_rows_never_a_table(results):
    """Every collective of the compiled 4x2 step, and of the whole compiled epoch (a ``lax.scan`` over
    minibatches, as ``training.glove.train`` runs it), carries at most ``min(B, V)`` rows: far below a table shard."""
    for what in ("step", "epoch"):
        collectives = results["collectives"][what]
        assert {c["op"] for c in collectives} >= {"all-gather", "all-reduce"}, collectives  # ids; rows and sums
        largest = max(max(c["elements"]) for c in collectives)
        assert largest <= STEP["B"] * STEP["D"], collectives  # min(B, V) rows of D floats
    assert results["collectives"]["table_shard_elements"] >= 64 * STEP["B"] * STEP["D"]  # a shard is 64x that


def test_command_on_a_4x2_mesh_equals_one_device(results):
    """``scratchlm glove --mesh data=4,model=2`` for 2 epochs ends on the one-device run's state to round-off;
    the metrics name the mesh; the checkpoint holds the padded tables, their padding rows untouched.

    Tolerance: :func:`command_tolerance` (module docstring).  Epoch 2 moves every leaf beyond it, so the
    check has teeth."""
    r = results["command"]
    assert r["mesh"] == {"data": 4, "model": 2} and r["vocab"] % 2 == 1
    assert r["mesh_rows"] == r["vocab"] + 1 and r["padding_inert"]
    for leaf, (diff, scale) in r["mesh_vs_one"].items():
        tol = command_tolerance(leaf, scale, r["steps"])
        assert diff <= tol, leaf
        assert r["moved"][leaf] > tol, leaf


def test_checkpoint_from_the_mesh_restores_on_one_device_identically(results):
    """:func:`~scratchlm.training.glove.restore_rows` reads the mesh's epoch-2 checkpoint into a one-device
    state: every parameter and accumulator row bit for bit, the step and the key too."""
    r = results["command"]
    V = r["vocab"]
    assert r["restored_on_one_identical"] and r["restored_shapes"] == [[V, 8], [V, 8], [V], [V]] * 2  # W, W̃, b, b̃


def test_resume_on_the_mesh_is_exact_and_on_one_device_close(results):
    """Killed after epoch 1 (its checkpoint kept, epoch 2's deleted) and run again: on the mesh, epoch 2
    ends bit for bit where the uninterrupted mesh run ended; on one device, on the one-device run's
    state to round-off (the same bound as the whole run)."""
    r = results["command"]
    assert r["resumed_epochs"] == {"mesh": 1, "one": 1}
    assert r["resumed_on_mesh_identical"]
    for leaf, (diff, scale) in r["resumed_on_one_vs_one"].items():
        assert diff <= command_tolerance(leaf, scale, r["steps"]), leaf


@pytest.mark.slow
@pytest.mark.parametrize("meshes", [("data=1,model=2", "data=2"), ("data=2", "data=1,model=2")])
def test_two_processes_checkpoint_resume_and_end_as_one_device(tmp_path, meshes):
    """``scratchlm glove --mesh M --coordinator 127.0.0.1:PORT --num-processes 2 --process-id I`` in two CPU
    processes (one device each, collectives over gloo) sharing one run folder: 2 epochs on one mesh (rows
    split across the processes, or the batch), each epoch's checkpoint gathered and written by process 0;
    then, as if killed during epoch 2, the same command on the other mesh resumes epoch 2 from epoch 1's.
    The vectors equal the one-device command's (2 epochs) to round-off: the bound of the mesh test, for
    each of W and W̃ of the sum W + W̃.  About 60 s on 2 cores."""
    import socket

    from scratchlm.embeddings.formats import load_word2vec

    corpus = _write_corpus(tmp_path / "corpus.txt")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS")}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT), XLA_FLAGS=FAST_COMPILE)
    flags = ["--corpus", str(corpus), "--dim", "8", "--window", "2", "--min-count", "1", "--restrict", "1000",
             "--batch-size", str(COMMAND["batch"])]

    def start(name, *extra):
        return subprocess.Popen([sys.executable, "-m", "scratchlm.cli", "glove", *flags, "--epochs", "2",
                                 "--out", str(tmp_path / name), *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def two_processes(mesh, reference=None):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs = {f"rank{i}": start("shared", "--mesh", mesh, "--keep-checkpoints", "--coordinator",
                                   f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(i))
                 for i in range(2)}
        procs.update(reference or {})
        logs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
        assert all(proc.returncode == 0 for proc in procs.values()), {k: v[-2000:] for k, v in logs.items()}
        return json.loads((tmp_path / "shared" / "metrics.json").read_text())

    shared = tmp_path / "shared"
    first = two_processes(meshes[0], {"one": start("one")})
    assert [p.name for p in sorted((shared / "checkpoints").glob("ckpt_*.msgpack"))] == ["ckpt_00000001.msgpack",
                                                                                        "ckpt_00000002.msgpack"]
    (shared / "checkpoints" / "ckpt_00000002.msgpack").unlink()  # as if killed during epoch 2
    (shared / "vectors.txt").unlink()
    record = json.loads((shared / "run.json").read_text())
    (shared / "run.json").write_text(json.dumps({**record, "status": "running"}))
    m = two_processes(meshes[1])
    assert first["epochs_run"] == 2 and m["epochs_run"] == 1 and m["processes"] == 2  # epoch 2 resumed
    assert m["mesh"] == dict(zip(("data", "model"), (2, 1) if meshes[1] == "data=2" else (1, 2)))
    one, two = (load_word2vec(tmp_path / name / "vectors.txt") for name in ("one", "shared"))
    assert one.words == two.words
    scale = float(np.max(np.abs(one.vectors)))
    steps = 2 * -(-m["nonzeros"] // COMMAND["batch"])
    assert float(np.max(np.abs(one.vectors - two.vectors))) <= 2 * command_tolerance("params", scale, steps)


# ----------------------------------------------------------------- the subprocess (8 forced host devices)


def _write_corpus(path: Path) -> Path:
    """40 sentences of 12 words over 51 words, Zipf-like: frequent words repeat within a minibatch."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(COMMAND["words"])]
    p = 1.0 / np.arange(1, len(words) + 1)
    path.write_text("".join(" ".join(rng.choice(words, 12, p=p / p.sum())) + "\n" for _ in range(COMMAND["sentences"])))
    return path


def _leaves(tree) -> dict:
    import jax

    from scratchlm import distributed as par

    return {par.path_string(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _diffs(ref, got) -> dict:
    """``{leaf: [max |ref - got|, max |ref|]}``."""
    a, b = _leaves(ref), _leaves(got)
    assert a.keys() == b.keys(), (a.keys(), b.keys())
    return {k: [float(np.max(np.abs(a[k] - b[k]))), float(np.max(np.abs(a[k])))] for k in a}


def _step_checks(out: dict) -> None:
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec as P

    from scratchlm import distributed as par
    from scratchlm.embeddings.glove import kernels
    from scratchlm.embeddings.glove.config import GloveConfig
    from scratchlm.embeddings.glove.sharded import PARTITION_RULES, make_sharded_glove_update
    from scratchlm.training.loop import init_train_state
    from tests.embeddings.glove.test_kernels import adagrad_bounds, reference_terms
    from tests.parallel_checks import hlo_collectives

    V, D, B = STEP["V"], STEP["D"], STEP["B"]
    config = GloveConfig(dim=D, batch_size=B, x_max=10.0)
    rng = np.random.default_rng(0)
    params = jax.device_get(kernels.init(jax.random.key(0), V, config))
    x = np.exp(rng.uniform(-1, 4, B))  # counts both sides of x_max
    # a small id range makes rows repeated within the step (the summed-gradient path) certain
    batch = (rng.integers(0, 100, B).astype(np.int32), rng.integers(0, 100, B).astype(np.int32),
             np.log(x).astype(np.float32), np.where(x < 10, (x / 10) ** 0.75, 1.0).astype(np.float32))
    out["step"] = {}
    for name, (shape, entrywise) in MESHES.items():
        config_e = GloveConfig(dim=D, batch_size=B, accumulate="entry" if entrywise else "minibatch")
        optimizer = kernels.make_optimizer(config_e)
        opt_state = jax.device_get(optimizer.init(params))
        one_device = jax.jit(partial(kernels.row_update, optimizer=optimizer, entrywise=entrywise))
        ref = jax.device_get(one_device(params, opt_state, tuple(map(jnp.asarray, batch))))
        mesh = par.make_mesh(*shape)
        p, s = par.shard((params, opt_state), mesh, PARTITION_RULES)
        b = par.shard_batch(batch, mesh)
        compiled = make_sharded_glove_update(mesh, optimizer, entrywise=entrywise).lower(p, s, b).compile()
        got = jax.device_get(compiled(p, s, b))
        _, row_sum, S, Q = reference_terms(params, batch)  # per element: s, sum |g_e|, sum g_e^2
        leaves = {}
        for k in params:
            G = np.asarray(opt_state[0].sum_of_squares[k], np.float64)
            _, eps_theta, _, eps_G = adagrad_bounds(np.asarray(params[k], np.float64), G, row_sum[k], S[k], Q[k], B,
                                                    entrywise, u=U)
            for where, a, c, eps in (("params", ref[0][k], got[0][k], eps_theta),
                                     ("accumulator", ref[1][0].sum_of_squares[k], got[1][0].sum_of_squares[k], eps_G)):
                diff = np.abs(np.asarray(a, np.float64) - np.asarray(c, np.float64))
                leaves[f"{where}/{k}"] = [float(np.max(diff - 2 * eps)), float(np.max(diff)), float(np.max(2 * eps))]
        out["step"][name] = {"mesh": list(mesh.devices.shape), "leaves": leaves,
                             "cost": [float(ref[2]), float(got[2])],
                             "moved": max(d for d, _ in _diffs(params, ref[0]).values())}
        if name == "4x2":
            out["collectives"] = {"step": hlo_collectives(compiled.as_text()), "table_shard_elements": V // 2 * D}
            optimizer = kernels.make_optimizer(config)
            state = par.shard(jax.device_get(init_train_state(params, optimizer, jax.random.key(1))), mesh,
                              PARTITION_RULES)
            entries = par.shard(tuple(np.stack([c, c]) for c in batch), mesh, ((r".*", P(None, "data")),))
            step = make_sharded_glove_update(mesh, optimizer)
            epoch = kernels.make_epoch_step(step, nnz=B).lower(state, entries).compile()
            out["collectives"]["epoch"] = hlo_collectives(epoch.as_text())


def _command_checks(out: dict, tmp: Path) -> None:
    """``scratchlm glove`` through its own flags: one device, ``--mesh data=4,model=2``, both resumed."""
    import argparse
    import shutil

    import jax

    from scratchlm import serialization
    from scratchlm.commands import glove as command
    from scratchlm.embeddings import evaluate
    from scratchlm.embeddings.glove import kernels
    from scratchlm.embeddings.glove.config import GloveConfig
    from scratchlm.errors import ScratchlmError
    from scratchlm.training import glove
    from scratchlm.training.loop import init_train_state

    def not_scored(wv, restrict_vocab):  # the scores are not under test (and their data path imports gensim)
        raise ScratchlmError("not evaluated in this test")

    evaluate.standard_scores = not_scored  # the command reads it from its module at call time
    corpus = _write_corpus(tmp / "corpus.txt")
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)

    def run(name, *flags, epochs_done=0):
        args = parser.parse_args(["--corpus", str(corpus), "--dim", "8", "--window", "2", "--min-count", "1",
                                  "--epochs", "2", "--batch-size", str(COMMAND["batch"]), "--out", str(tmp / name),
                                  "--checkpoint-every", "1e-9", "--keep-checkpoints", *flags])  # every epoch
        assert command.run(args) == 0
        m = json.loads((tmp / name / "metrics.json").read_text())
        assert m["epochs_run"] == 2 - epochs_done
        return m, sorted((tmp / name / "checkpoints").glob("ckpt_*.msgpack"))

    def state(path):
        return serialization.msgpack_restore(path.read_bytes())["state"]

    m_one, (_, one) = run("one")
    m_mesh, (epoch1, mesh) = run("mesh", "--mesh", "data=4,model=2")
    for name in ("resumed_mesh", "resumed_one"):  # as if killed during epoch 2: only epoch 1's checkpoint
        shutil.copytree(tmp / "mesh", tmp / name)
        (tmp / name / "checkpoints" / mesh.name).unlink()
        record = json.loads((tmp / name / "run.json").read_text())
        (tmp / name / "run.json").write_text(json.dumps({**record, "status": "running"}))
    _, (_, resumed_mesh) = run("resumed_mesh", "--mesh", "data=4,model=2", epochs_done=1)
    _, (_, resumed_one) = run("resumed_one", epochs_done=1)

    V = m_one["vocab_size"]
    tables = lambda s: {"params": s["params"], "opt_state": s["opt_state"]}  # noqa: E731
    unpadded = lambda s: jax.tree.map(lambda t: t[:V], tables(s))  # noqa: E731
    one_s, mesh_s = state(one), state(mesh)
    config = GloveConfig(dim=8)
    optimizer = kernels.make_optimizer(config)
    fresh = init_train_state(kernels.init(jax.random.key(0), V, config), optimizer, jax.random.key(0))
    restored = glove.restore_rows(mesh, fresh, V)
    g0 = 4.0 / config.lr**2
    out["command"] = {
        "vocab": V, "mesh": m_mesh["mesh"], "mesh_rows": int(mesh_s["params"]["W"].shape[0]),
        "padding_inert": all(np.all(t[V:] == 0) for t in mesh_s["params"].values())
        and all(np.all(t[V:] == g0) for t in mesh_s["opt_state"]["0"]["sum_of_squares"].values()),
        "mesh_vs_one": _diffs(tables(one_s), unpadded(mesh_s)),
        "moved": {k: d for k, (d, _) in _diffs(tables(one_s), unpadded(state(epoch1))).items()},
        "steps": 2 * -(-m_one["nonzeros"] // COMMAND["batch"]),
        "restored_on_one_identical": all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(unpadded(mesh_s)), jax.tree.leaves({"params": jax.device_get(restored.params),
                                                               "opt_state": jax.device_get(restored.opt_state)})))
        and np.array_equal(jax.random.key_data(restored.key), mesh_s["key"]) and int(restored.step) == 2,
        "restored_shapes": [list(x.shape) for x in jax.tree.leaves((restored.params, restored.opt_state))],
        "resumed_epochs": {"mesh": 1, "one": 1},
        "resumed_on_mesh_identical": all(np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(mesh_s), jax.tree.leaves(state(resumed_mesh)))),
        "resumed_on_one_vs_one": _diffs(tables(one_s), tables(state(resumed_one))),
    }


def _main(path: str) -> None:
    import tempfile

    assert "device_count=8" in os.environ.get("XLA_FLAGS", ""), "run with 8 forced host devices"
    out: dict = {}
    t0 = time.perf_counter()
    _step_checks(out)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        _command_checks(out, Path(tmp))
    out["seconds"] = {"step": t1 - t0, "command": time.perf_counter() - t1}
    Path(path).write_text(json.dumps(out))


if __name__ == "__main__":
    _main(sys.argv[1])
