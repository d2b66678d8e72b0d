"""`scratchlm demo` (scratchlm/commands/demo.py): its steps' run folders and its summary table.

The steps here are a stand-in defined in this module (``demo_step`` below), so the test runs in
milliseconds; the real steps are tested with their commands.
"""

from __future__ import annotations

import json

from scratchlm.cli import main
from scratchlm.commands import demo

SEEN: list = []


def demo_step(ctx) -> dict:
    """A stand-in step: records its context and returns a result longer than one line of the table."""
    SEEN.append(ctx)
    (ctx.out / "artefact.txt").write_text("x")
    return {"result": "a long result " * 20, "figure": 1.0}


def test_quick_and_full_runs_write_to_different_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "STEPS", [("probe", __name__)])
    SEEN.clear()
    assert main(["demo", "--quick", "--steps", "probe", "--out", str(tmp_path)]) == 0
    assert main(["demo", "--steps", "probe", "--out", str(tmp_path)]) == 0
    assert [c.out for c in SEEN] == [tmp_path / "quick" / "probe", tmp_path / "full" / "probe"]
    assert [c.quick for c in SEEN] == [True, False]
    assert SEEN[0].args().out == SEEN[0].out and SEEN[0].args().overwrite is False
    for version in ("quick", "full"):
        summary = json.loads((tmp_path / version / "summary.json").read_text())
        assert summary[0]["step"] == "probe" and summary[0]["wall_seconds"] >= 0


def test_overwrite_reaches_the_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "STEPS", [("probe", __name__)])
    SEEN.clear()
    assert main(["demo", "--quick", "--overwrite", "--steps", "probe", "--out", str(tmp_path)]) == 0
    assert SEEN[0].args().overwrite is True


def test_the_summary_table_fits_100_columns_and_keeps_every_word():
    rows = [{"step": "word2vec", "wall_seconds": 61.25, "result": "skip-gram 15 ep: 123,456 words/s " * 6},
            {"step": "gru-lm", "wall_seconds": 7.0, "result": "short"}]
    text = demo.table(rows)
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100
    assert lines[0].split() == ["step", "wall", "s", "result"]
    assert " ".join(text.split()).count("123,456 words/s") == 6  # wrapped, not cut
    assert lines[2].startswith("word2vec     61.2  skip-gram")
