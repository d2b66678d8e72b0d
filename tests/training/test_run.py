"""scratchlm/training/run.py: the run folder's five states, its record, and what opening it cleans.

JAX-free and fast: the states are decided from ``run.json`` and the files alone.  Every training
command goes through this code; tests/commands/test_run_states.py checks each command end to end.
"""

from __future__ import annotations

import json
import math
import os
import stat

import pytest

from scratchlm import jsonio
from scratchlm.errors import NonFiniteLossError, ScratchlmError
from scratchlm.io import atomic_write_bytes
from scratchlm.training.run import RUN_FILE, RunConfig, data_digest, differences, open_run

SETTINGS = {"lr": 0.001, "model": {"hidden": 8, "layers": 1}}


def _open(out, settings=SETTINGS, data="d1", **config):
    return open_run(RunConfig(out=out, **config), command="cmd", settings=settings, data=data, total_steps=10,
                    argv=["cmd", "--out", str(out)])


def test_a_missing_or_empty_folder_is_a_new_run_with_its_record(tmp_path):
    run = _open(tmp_path / "new")
    assert run.state == "new" and "training into" in run.message
    record = json.loads((tmp_path / "new" / RUN_FILE).read_text())
    assert record["status"] == "running" and record["settings"] == SETTINGS and record["data"] == "d1"
    assert record["total_steps"] == 10 and record["argv"] == ["cmd", "--out", str(tmp_path / "new")]
    assert "scratchlm_version" in record
    (tmp_path / "empty").mkdir()
    assert _open(tmp_path / "empty").state == "new"


def test_the_same_unfinished_run_resumes_from_its_latest_checkpoint(tmp_path):
    _open(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt_00000004.msgpack").write_bytes(b"x")
    run = _open(tmp_path)
    assert run.state == "resume" and run.resume
    assert run.message == f"resuming {tmp_path} from step 4 of 10"
    record = json.loads((tmp_path / RUN_FILE).read_text())
    assert (record["status"], record["step"], record["total_steps"]) == ("running", 4, 10)


def test_a_finished_run_is_complete_and_left_untouched(tmp_path):
    run = _open(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt_00000010.msgpack").write_bytes(b"x")
    (tmp_path / "log.jsonl").write_text('{"step": 10}\n')
    run.finish()
    assert not (tmp_path / "checkpoints").exists()  # dropped at the end without keep_checkpoints
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    again = _open(tmp_path)
    assert again.state == "complete" and "complete (10 of 10 steps)" in again.message
    assert before == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}


def test_keep_checkpoints_keeps_them_at_the_end(tmp_path):
    run = _open(tmp_path, keep_checkpoints=True)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt_00000010.msgpack").write_bytes(b"x")
    run.finish()
    assert (tmp_path / "checkpoints" / "ckpt_00000010.msgpack").exists()


@pytest.mark.parametrize("settings, data, named", [
    ({"lr": 0.01, "model": {"hidden": 8, "layers": 1}}, "d1", "lr: 0.001 -> 0.01"),
    ({"lr": 0.001, "model": {"hidden": 16, "layers": 1}}, "d1", "model.hidden: 8 -> 16"),
    (SETTINGS, "d2", "data: other contents"),
])
def test_another_run_is_refused_before_any_work_naming_what_differs(tmp_path, settings, data, named):
    _open(tmp_path)
    (tmp_path / "params.msgpack").write_bytes(b"first run")
    with pytest.raises(ScratchlmError) as err:
        _open(tmp_path, settings=settings, data=data)
    assert named in str(err.value) and "--overwrite" in str(err.value) and "another --out" in str(err.value)
    assert (tmp_path / "params.msgpack").read_bytes() == b"first run"
    assert json.loads((tmp_path / RUN_FILE).read_text())["settings"] == SETTINGS


def test_overwrite_removes_the_old_run(tmp_path):
    _open(tmp_path)
    (tmp_path / "params.msgpack").write_bytes(b"first run")
    run = _open(tmp_path, settings={"lr": 0.5}, overwrite=True)
    assert run.state == "new" and not (tmp_path / "params.msgpack").exists()
    assert json.loads((tmp_path / RUN_FILE).read_text())["settings"] == {"lr": 0.5}


def test_a_file_or_a_folder_of_something_else_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScratchlmError, match="is a file"):
        _open(tmp_path / "file")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ScratchlmError, match="not a scratchlm run folder"):
            _open(tmp_path / "mine", overwrite=overwrite)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_damaged_record_is_a_clear_error(tmp_path):
    (tmp_path / RUN_FILE).write_text("{not json")
    with pytest.raises(ScratchlmError, match="damaged"):
        _open(tmp_path)


def test_a_folder_that_cannot_be_written_is_refused_before_work(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ScratchlmError, match="cannot write"):
        _open(tmp_path / "file" / "run")  # a file where a parent folder should be
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        with pytest.raises(ScratchlmError, match="cannot write"):
            _open(tmp_path / "ro" / "run")
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_resuming_removes_stray_temporary_files_and_cuts_logs_to_the_last_checkpoint(tmp_path):
    _open(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt_00000004.msgpack").write_bytes(b"x")
    (tmp_path / "checkpoints" / "ckpt_00000006.msgpack.tmp123").write_bytes(b"half")
    (tmp_path / "params.msgpack.tmp99").write_bytes(b"half")
    lines = [{"step": 2, "split": "train"}, {"step": 4, "split": "eval"}, {"step": 6, "split": "train"}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"step": 8, "spl')
    finished = tmp_path / "fold_0"
    finished.mkdir()
    (finished / "metrics.jsonl").write_text('{"step": 9}\n')
    (finished / "result.json").write_text("{}")
    assert _open(tmp_path).state == "resume"
    assert sorted(p.name for p in tmp_path.rglob("*.tmp*")) == []
    kept = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert kept == lines[:2]  # what the rerun writes again is gone, the cut line too
    assert (finished / "metrics.jsonl").read_text() == '{"step": 9}\n'  # a finished fold's log stays


def test_data_digest_reads_contents_not_names(tmp_path):
    a, b, c = tmp_path / "a.txt", tmp_path / "b.txt", tmp_path / "c.txt"
    a.write_text("the cat sat\n")
    b.write_text("the cat sat\n")
    c.write_text("the cat sat.\n")
    assert data_digest(a) == data_digest(b) != data_digest(c)
    assert data_digest(["ab", "c"]) != data_digest(["a", "bc"])  # parts are delimited
    assert data_digest("x") == data_digest("x")


def test_a_list_of_lines_hashes_as_its_parts_one_by_one():
    """The digest of a list is ``[``, each part's bytes (a str: UTF-8 then NUL), ``]``: a list of strings, hashed in
    one update, must give the digest every earlier run folder recorded."""
    import hashlib

    lines = ["the cat", "naïve", "", "東京"]
    want = hashlib.sha256(b"[" + b"".join(line.encode() + b"\0" for line in lines) + b"]").hexdigest()
    assert data_digest(lines) == want
    assert data_digest(tuple(lines)) == want
    assert data_digest([]) == hashlib.sha256(b"[]").hexdigest()
    assert data_digest(["a", b"b"]) == hashlib.sha256(b"[a\0b]").hexdigest()  # mixed parts take the general path


def test_differences_name_nested_settings():
    assert differences({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 3}, "d": 4}) == ["b.c: 2 -> 3", "d: (unset) -> 4"]


def test_checkpoint_every_must_not_be_negative(tmp_path):
    with pytest.raises(ScratchlmError, match="--checkpoint-every"):
        RunConfig(out=tmp_path, checkpoint_every=-1)
    with pytest.raises(ScratchlmError, match="--checkpoint-every"):
        RunConfig(out=tmp_path, checkpoint_every=math.nan)


def test_divergence_names_the_last_good_checkpoint(tmp_path):
    run = _open(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt_00000003.msgpack").write_bytes(b"x")
    with pytest.raises(NonFiniteLossError) as err:
        with run.training():
            raise NonFiniteLossError("loss became nan in epoch 2")
    assert str(err.value) == (f"loss became nan in epoch 2; last good checkpoint: "
                              f"{tmp_path / 'checkpoints' / 'ckpt_00000003.msgpack'}")


def test_strict_json_writes_null_and_says_why(tmp_path):
    jsonio.write(tmp_path / "m.json", {"loss": math.inf, "ok": 1.5, "history": [{"ppl": math.nan}]})
    text = (tmp_path / "m.json").read_text()
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert data["loss"] is None and data["history"][0]["ppl"] is None and data["ok"] == 1.5
    assert data["not_finite"] == ["written as null, not a finite number: loss (inf), history[0].ppl (nan)"]


def test_files_are_written_with_the_users_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644


def test_each_checkpoint_updates_run_json_with_the_step_reached(tmp_path):
    """run.json follows the run between its start and its end: every checkpoint written under the folder
    (also in a fold's folder) records the position and the checkpoint, atomically (no temporary file left)."""
    from scratchlm.training.run import checkpoint_written

    run = _open(tmp_path / "run")
    for where, step in (("checkpoints", 3), ("fold_1/checkpoints", 7)):
        path = tmp_path / "run" / where / f"ckpt_{step:08d}.msgpack"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
        checkpoint_written(path)
        record = json.loads((tmp_path / "run" / RUN_FILE).read_text())
        assert (record["status"], record["step"], record["checkpoint"]) == ("running", step, f"{where}/{path.name}")
    checkpoint_written(tmp_path / "elsewhere" / "ckpt_00000009.msgpack")  # not under a run: nothing to record
    assert json.loads((tmp_path / "run" / RUN_FILE).read_text())["step"] == 7
    run.finish()
    record = json.loads((tmp_path / "run" / RUN_FILE).read_text())
    assert (record["status"], record["step"]) == ("complete", 10) and "checkpoint" not in record  # dropped
    assert not [p for p in (tmp_path / "run").rglob("*") if ".tmp" in p.name]


def test_finished_finds_a_complete_run_from_what_is_known_before_any_work(tmp_path):
    from scratchlm.training.run import finished

    def found(settings=SETTINGS, data="d1", **config):
        return finished(RunConfig(out=tmp_path, **config), command="cmd", settings=settings, data=data)

    assert found() is None  # no run yet
    run = _open(tmp_path)
    assert found() is None  # running, not complete
    run.finish()
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
    assert found().state == "complete" and "complete (10 of 10 steps)" in found().message
    assert found({"lr": 0.001, "model": {"layers": 1}}).state == "complete"  # the keys known so far agree
    for other in ({"lr": 0.01}, {"model": {"hidden": 16}}, {"seed": 1}):
        assert found(other) is None  # another setting, or one the record lacks: open_run names it
    assert found(data="d2") is None and found(overwrite=True) is None
    assert before == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*") if p.is_file()}
