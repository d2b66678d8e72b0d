"""The run contract end to end, for EVERY training command: the five folder states and a resume mid-run.

Each command runs on small settings (the Lee corpus, the polarity sentences, a tiny model).  One
test per command walks the states in order:

1. a new folder trains (checkpoints every step, kept: ``--checkpoint-every 1e-9 --keep-checkpoints``);
2. the same command again says the run is complete, exits 0 and touches nothing;
3. an unfinished run (its latest checkpoint and outputs removed, ``run.json`` back to ``running``:
   what a kill between two checkpoints leaves) resumes from the checkpoint before, saying so, and
   ends on the first run's output bytes (classify's checkpoints are its finished folds' records);
4. other settings exit 2 before any work, naming the setting and ``--overwrite``, changing nothing;
5. ``--overwrite`` with those settings trains afresh.

Plus the paths that are not run folders, a true ``kill -9`` of every command in a subprocess (after
its first checkpoint; the run again ends on an uninterrupted run's bytes), and the probes issue 23 lists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scratchlm.cli import main

ROOT = Path(__file__).resolve().parents[2]
EVERY_STEP = ["--checkpoint-every", "1e-9", "--keep-checkpoints"]

# command -> (argv without --out, (flag, other value, the setting the refusal names), the model outputs compared)
COMMANDS = {
    "classify": (["classify", "--folds", "2", "--dim", "8", "--steps", "5", "--lr", "0.05", "--seed", "1"],
                 ("--steps", "6", "cv.steps: 5 -> 6"), ["summary.json"]),
    "word2vec": (["word2vec", "--corpus", "lee", "--dim", "8", "--epochs", "2", "--seed", "1"],
                 ("--window", "3", "config.window: 5 -> 3"), ["vectors.txt"]),
    "glove": (["glove", "--corpus", "lee", "--dim", "8", "--epochs", "3", "--seed", "1"],
              ("--x-max", "20", "glove.x_max: 10.0 -> 20.0"), ["vectors.txt", "vectors.glove.txt"]),
    "gru-lm": (["gru-lm", "train", "--corpus", "lee", "--layers", "1", "--hidden", "16", "--embed", "16",
                "--seq-len", "8", "--batch-size", "4", "--steps", "6", "--seed", "1"],
               ("--lr", "0.01", "lm.lr: 0.003 -> 0.01"), ["params.msgpack"]),
    "pretrain": (["pretrain", "--corpus", "lee", "--vocab-size", "300", "--layers", "1", "--hidden", "16",
                  "--heads", "2", "--seq-len", "16", "--batch-size", "4", "--steps", "4", "--eval-every", "2",
                  "--limit", "40", "--seed", "1"],
                 ("--lr", "0.01", "run.lr: 0.0005 -> 0.01"), ["model/model.safetensors"]),
    "finetune": (["finetune", "--task", "wikiner", "--epochs", "2", "--limit", "16", "--max-length", "16",
                  "--batch-size", "8", "--seed", "1"],
                 ("--lr", "0.001", "lr: 0.0001 -> 0.001"), ["best/model.safetensors"]),
}


# command -> the heavy work a complete run must not start (loading a model, building a vocabulary): "module:name"
HEAVY = {
    "classify": ["scratchlm.training.embedding_bag:load_vectors", "scratchlm.training.embedding_bag:cross_validate"],
    "word2vec": ["scratchlm.training.word2vec:read_corpus"],
    "glove": ["scratchlm.training.glove:train_on_corpus"],
    "gru-lm": ["scratchlm.data.codec:TextCodec.build"],
    "pretrain": ["scratchlm.models.bert:from_pretrained", "scratchlm.tokenizers.pipelines:train_bert_wordpiece"],
    "finetune": ["scratchlm.training.encoders:load_init", "scratchlm.data.tasks:encode_task"],
}


def _forbid_heavy_work(name: str, monkeypatch) -> None:
    import importlib

    def work(*args, **kwargs):
        raise AssertionError("a complete run started loading a model or building a vocabulary")

    for where in HEAVY[name]:
        module, _, attribute = where.partition(":")
        owner = importlib.import_module(module)
        *path, last = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        monkeypatch.setattr(owner, last, work)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    """A tiny pretrained encoder (the pretrain command's run folder) for finetune's --init."""
    out = tmp_path_factory.mktemp("encoder") / "run"
    argv, _, _ = COMMANDS["pretrain"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    return out


def _argv(name: str, out: Path, encoder: Path | None, *extra: str) -> list[str]:
    argv = list(COMMANDS[name][0])
    if name == "finetune":
        argv += ["--init", str(encoder)]
    return [*argv, *extra, "--out", str(out)]


def _files(out: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(out.rglob("*")) if p.is_file()}


def _checkpoints(out: Path) -> list[Path]:
    return sorted(out.rglob("ckpt_*.msgpack"), key=lambda p: int(p.stem.split("_")[1]))


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_five_states_of_a_run_folder(name, tmp_path, capsys, request):
    encoder = request.getfixturevalue("tiny_encoder") if name == "finetune" else None
    _, (flag, other, named), outputs = COMMANDS[name]
    out = tmp_path / "run"

    # 1. new: train
    assert main(_argv(name, out, encoder, *EVERY_STEP)) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["command"].startswith(name.split()[0])
    first = {o: (out / o).read_bytes() for o in outputs}
    assert "training into" in capsys.readouterr().err
    assert (out / "curves.png").stat().st_size > 0

    # 2. complete: said before any model is loaded or vocabulary built, nothing touched
    before = _files(out)
    with pytest.MonkeyPatch.context() as patch:
        _forbid_heavy_work(name, patch)
        assert main(_argv(name, out, encoder, *EVERY_STEP)) == 0
    assert "complete" in capsys.readouterr().err
    assert _files(out) == before

    # 3. unfinished: resume from the checkpoint before the last, end on the same bytes
    found = _checkpoints(out) if name != "classify" else sorted(out.glob("fold*.result.json"))  # a fold, classify's
    assert len(found) == 2, found  # the last two kept
    found[-1].unlink()
    for o in outputs:
        (out / o).unlink()
    (out / "run.json").write_text(json.dumps({**record, "status": "running"}))
    assert main(_argv(name, out, encoder, *EVERY_STEP)) == 0
    assert f"resuming {out} from" in capsys.readouterr().err
    assert {o: (out / o).read_bytes() for o in outputs} == first

    # 4. other settings: refused before any work
    before = _files(out)
    assert main(_argv(name, out, encoder, flag, other, *EVERY_STEP)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"scratchlm {name.split()[0]}: error: ") and "--overwrite" in err and "Traceback" not in err
    assert named in err, err
    assert _files(out) == before

    # 5. --overwrite: a fresh run with the new settings
    assert main(_argv(name, out, encoder, flag, other, "--overwrite")) == 0
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert not _checkpoints(out) and not list(out.glob("*.result.json"))  # a finished run drops its checkpoints
    assert "training into" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(COMMANDS))
def test_a_file_or_a_folder_that_is_not_a_run_is_refused(name, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    encoder = tmp_path / "no-encoder"  # never read: the folder is refused first
    for out, says in ((tmp_path / "file", "is a file"), (tmp_path / "mine", "not a scratchlm run folder")):
        assert main(_argv(name, out, encoder)) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_out_is_required_by_every_training_command(capsys):
    for argv, _, _ in COMMANDS.values():
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert "--out" in capsys.readouterr().err


def _gru_argv(out: Path) -> list[str]:
    return ["gru-lm", "train", "--corpus", "lee", "--layers", "1", "--hidden", "16", "--embed", "16", "--seq-len",
            "8", "--batch-size", "4", "--steps", "300", "--eval-every", "100", "--seed", "2",
            "--checkpoint-every", "1e-9", "--out", str(out)]


def _scratchlm(argv: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, "-m", "scratchlm.cli", *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


# Slow (26 s on an idle 2-core machine, three processes): gru-lm's five-states test above covers its resume code,
# and word2vec's, glove's and classify's kill tests below the shared run module's atomic writes and log cutting.
@pytest.mark.slow
def test_gru_lm_killed_with_sigkill_resumes_to_the_same_bytes(tmp_path):
    """A true kill -9 after the first checkpoint appears (mid-run, before the last step); the same command
    again resumes and ends on the uninterrupted run's bytes.  Every run is a fresh process, as a user's
    would be (this pytest process may have started JAX's CPU backend with another thread count, and
    XLA's CPU matrix products sum in an order that depends on it)."""
    straight = tmp_path / "straight"
    done = _scratchlm(_gru_argv(straight))
    err = done.communicate()[1]
    assert done.returncode == 0, err
    killed = tmp_path / "killed"
    proc = _scratchlm([*_gru_argv(killed), "--quiet"])
    try:
        while proc.poll() is None and not list((killed / "checkpoints").glob("ckpt_*.msgpack")):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: give it more steps"
    record = json.loads((killed / "run.json").read_text())
    assert record["status"] == "running" and not (killed / "params.msgpack").exists()
    again = _scratchlm(_gru_argv(killed))
    err = again.communicate()[1]
    assert again.returncode == 0 and f"resuming {killed} from step" in err, err
    assert (killed / "params.msgpack").read_bytes() == (straight / "params.msgpack").read_bytes()
    log = [json.loads(line) for line in (killed / "metrics.jsonl").read_text().splitlines()]
    evals = [r["step"] for r in log if r["split"] == "eval"]
    assert evals == sorted(set(evals)) == [100, 200, 300]  # one run's log: nothing twice


# command -> (argv without --out and --checkpoint-every: long enough that a kill lands mid-run, the files compared)
KILLED = {
    "classify": (["classify", "--folds", "5", "--dim", "8", "--steps", "60", "--lr", "0.05", "0.1", "--seed", "3"],
                 ["summary.json", "fold4.jsonl"]),
    "word2vec": (["word2vec", "--corpus", "lee", "--dim", "8", "--epochs", "12", "--batch-size", "64", "--seed", "3"],
                 ["vectors.txt"]),
    "glove": (["glove", "--corpus", "lee", "--dim", "8", "--epochs", "40", "--seed", "3"],
              ["vectors.txt", "vectors.glove.txt", "train_metrics.jsonl"]),  # the logs: timings aside
    "pretrain": (["pretrain", "--corpus", "lee", "--vocab-size", "300", "--layers", "1", "--hidden", "16", "--heads",
                  "2", "--seq-len", "16", "--batch-size", "4", "--steps", "40", "--eval-every", "20", "--limit", "40",
                  "--seed", "3"],
                 ["model/model.safetensors", "model/tokenizer.json"]),
    "finetune": (["finetune", "--task", "polarity", "--folds", "2", "--epochs", "2", "--limit", "16", "--max-length",
                  "16", "--batch-size", "4", "--seed", "3"],
                 ["best/model.safetensors", "fold_0/result.json", "fold_1/metrics.jsonl"]),
}


_TIMING = ("seconds", "per_s", "compiled", "wall")  # wall-clock measurements, which no two runs share


def _untimed(path: Path):
    """A file's bytes, or for a JSON (lines) file its records without the wall-clock timings."""
    if path.suffix not in (".json", ".jsonl"):
        return path.read_bytes()

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if not any(t in k for t in _TIMING)}
        return [strip(v) for v in value] if isinstance(value, list) else value

    if path.suffix == ".json":
        return strip(json.loads(path.read_text()))
    return [strip(json.loads(line)) for line in path.read_text().splitlines()]


def _kill_after_first_checkpoint(argv: list[str], out: Path) -> None:
    """Start the command, SIGKILL it the moment a checkpoint file appears anywhere in ``out``."""
    proc = _scratchlm([*argv, "--quiet"])
    try:
        while proc.poll() is None and not [*out.rglob("ckpt_*.msgpack"), *out.glob("fold*.result.json")]:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: give it more work"


# pretrain's and finetune's kill tests take 70-90 s on a loaded 2-core machine (three processes, each compiling):
# slow, as their five-states test above covers the same resume code and word2vec's, glove's and classify's kill
# tests the same atomic writes and log cutting.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in ("pretrain", "finetune") else n
                                  for n in KILLED])
def test_killed_with_sigkill_resumes_to_the_same_bytes(name, tmp_path, request):
    """Every checkpointing command, killed with SIGKILL after its first checkpoint, resumes when run again
    and ends on the bytes of an uninterrupted run (each a fresh process, as in the GRU test above; the
    uninterrupted run goes alongside the killed one)."""
    argv, compared = KILLED[name]
    if name == "finetune":
        argv = [*argv, "--init", str(request.getfixturevalue("tiny_encoder"))]
    argv = [*argv, "--checkpoint-every", "1e-9"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = _scratchlm([*argv, "--quiet", "--out", str(straight)])
    _kill_after_first_checkpoint([*argv, "--out", str(killed)], killed)
    assert done.wait() == 0, done.communicate()[1]
    record = json.loads((killed / "run.json").read_text())
    assert record["status"] == "running" and not all((killed / f).exists() for f in compared)
    again = _scratchlm([*argv, "--out", str(killed)])
    err = again.communicate()[1]
    assert again.returncode == 0 and f"resuming {killed} from" in err, err
    for f in compared:
        assert _untimed(killed / f) == _untimed(straight / f), f
    assert json.loads((killed / "run.json").read_text())["status"] == "complete"
    assert not [p for p in killed.rglob("*") if ".tmp" in p.name]  # no stray temporary file is left
    assert not _checkpoints(killed) and not list(killed.glob("*.result.json"))  # dropped: no --keep-checkpoints


def test_finetune_cross_validation_keeps_each_folds_checkpoints_when_asked(tiny_encoder, tmp_path):
    out = tmp_path / "run"
    argv = [*KILLED["finetune"][0], "--epochs", "1", "--init", str(tiny_encoder), *EVERY_STEP, "--out", str(out)]
    assert main(argv) == 0
    for fold in ("fold_0", "fold_1"):
        assert (out / fold / "result.json").exists() and _checkpoints(out / fold), fold
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["checkpoint"].startswith("fold_1/checkpoints/ckpt_")


@pytest.mark.slow  # three processes, as the kill test above (about 60 s); tests/training/test_finetune.py cuts a
# fold in-process (test_cross_validation_cut_mid_fold_resumes_to_an_uninterrupted_runs_bytes) in seconds
def test_finetune_folds_without_checkpoints_killed_in_a_fold_restart_it_to_the_same_bytes(tiny_encoder, tmp_path):
    """Cross-validation without --checkpoint-every or --keep-checkpoints writes no checkpoint: killed with SIGKILL
    once fold 1 has logged its first step, the run again starts fold 1 afresh and ends on the uninterrupted run's
    bytes."""
    argv, compared = KILLED["finetune"]
    argv = [*argv, "--init", str(tiny_encoder)]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = _scratchlm([*argv, "--quiet", "--out", str(straight)])
    proc = _scratchlm([*argv, "--quiet", "--out", str(killed)])
    log = killed / "fold_1" / "metrics.jsonl"
    try:
        while proc.poll() is None and not (log.exists() and log.read_text().count("\n") >= 1):
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed: give it more work"
    assert done.wait() == 0, done.communicate()[1]
    assert not list(killed.rglob("ckpt_*.msgpack")) and not list(killed.rglob("best.msgpack"))
    assert not (killed / "fold_1" / "result.json").exists()
    again = _scratchlm([*argv, "--out", str(killed)])
    err = again.communicate()[1]
    assert again.returncode == 0 and f"resuming {killed} from fold 1" in err, err
    for f in compared:
        assert _untimed(killed / f) == _untimed(straight / f), f
    assert json.loads((killed / "run.json").read_text())["status"] == "complete"


# ----------------------------------------------------------------------------- issue 23's probes


def test_probe_gru_lm_again_with_another_lr_is_refused_and_the_first_model_still_loads(tmp_path, capsys):
    from scratchlm.training.lm import load_trained

    argv, _, _ = COMMANDS["gru-lm"]
    out = tmp_path / "run"
    assert main([*argv, "--out", str(out)]) == 0
    config_before = (out / "config.json").read_bytes()
    for other in (["--lr", "0.01"], ["--hidden", "32"]):
        assert main([*argv, *other, "--out", str(out)]) == 2
        assert "--overwrite" in capsys.readouterr().err
    assert (out / "config.json").read_bytes() == config_before
    load_trained(out)  # the first model is intact


def test_probe_word2vec_fresh_into_a_folder_of_another_runs_checkpoints_is_refused(tmp_path, capsys):
    argv, _, _ = COMMANDS["word2vec"]
    out = tmp_path / "run"
    assert main([*argv, "--epochs", "1", *EVERY_STEP, "--out", str(out)]) == 0
    assert main([*argv, "--epochs", "1", "--dim", "12", "--out", str(out)]) == 2
    assert "config.dim: 8 -> 12" in capsys.readouterr().err


def test_probe_resuming_a_finished_word2vec_run_keeps_its_metrics(tmp_path, capsys):
    argv, _, _ = COMMANDS["word2vec"]
    out = tmp_path / "run"
    assert main([*argv, "--epochs", "1", "--out", str(out)]) == 0
    metrics = (out / "metrics.json").read_bytes()
    assert main([*argv, "--epochs", "1", "--out", str(out)]) == 0
    assert (out / "metrics.json").read_bytes() == metrics
    assert json.loads(metrics)["words_per_second"] > 0


def test_probe_glove_refuses_a_run_of_other_settings_or_data(tmp_path, capsys):
    argv, _, _ = COMMANDS["glove"]
    out = tmp_path / "run"
    assert main([*argv, "--epochs", "1", "--out", str(out)]) == 0
    assert main([*argv, "--epochs", "1", "--dim", "12", "--out", str(out)]) == 2
    assert "glove.dim: 8 -> 12" in capsys.readouterr().err
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b c d e f\n" * 50)
    other_data = [a if a != "lee" else str(corpus) for a in argv]
    assert main([*other_data, "--epochs", "1", "--out", str(out)]) == 2
    assert "data: other contents" in capsys.readouterr().err


def test_probe_finetune_again_with_another_lr_is_refused(tiny_encoder, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*_argv("finetune", out, tiny_encoder)]
    assert main(argv) == 0
    metrics = (out / "metrics.json").read_bytes()
    assert main([*argv, "--lr", "0.001"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "metrics.json").read_bytes() == metrics


def test_a_mistake_found_after_the_folder_was_opened_gives_it_back(tmp_path, capsys):
    """GloVe learns that no word reaches --min-count only once it counts, after its run folder is opened: the
    error leaves nothing there, and the corrected command trains into the same folder (it was refused as
    "holds another run", asking for --overwrite)."""
    out = tmp_path / "glove"
    argv = ["glove", "--corpus", "lee", "--dim", "4", "--epochs", "1", "--out", str(out)]
    assert main([*argv, "--min-count", "100000"]) == 2
    assert "no word occurs at least min_count=100000" in capsys.readouterr().err
    assert not any(out.iterdir())
    assert main([*argv, "--min-count", "5"]) == 0
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_finetune_on_a_mesh_records_its_padded_steps(tiny_encoder, tmp_path, capsys):
    """A mesh shards the padded batches' rows, so its steps are never unpadded: the run records unpad false (it
    said true), --unpad given with a mesh is refused (it was ignored), and a run made on one device (unpadded by
    default, other dropout masks) is not resumed on a mesh, which mixed the two silently."""
    argv = ["finetune", "--task", "polarity", "--folds", "2", "--epochs", "1", "--limit", "16", "--max-length", "16",
            "--batch-size", "4", "--init", str(tiny_encoder), "--quiet"]
    assert main([*argv, "--mesh", "data=1", "--unpad", "--out", str(tmp_path / "a")]) == 2
    assert "--unpad runs on one device" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert main([*argv, "--mesh", "data=1", "--out", str(tmp_path / "mesh")]) == 0
    assert json.loads((tmp_path / "mesh" / "run.json").read_text())["settings"]["unpad"] is False
    (tmp_path / "one").mkdir()
    shutil.copy(tmp_path / "mesh" / "run.json", tmp_path / "one" / "run.json")
    record = json.loads((tmp_path / "one" / "run.json").read_text())
    (tmp_path / "one" / "run.json").write_text(json.dumps({**record, "status": "running",
                                                           "settings": {**record["settings"], "unpad": None}}))
    capsys.readouterr()
    assert main([*argv, "--mesh", "data=1", "--out", str(tmp_path / "one")]) == 2  # a one-device run's folder
    assert "unpad" in capsys.readouterr().err
