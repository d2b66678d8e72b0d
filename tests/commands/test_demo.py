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


def test_the_full_finetune_step_shows_lora_beside_full_fine_tuning(tmp_path, monkeypatch):
    """The finetune step runs the command twice in the full demo (full, then LoRA r=8 in its own run folder on
    the same folds and seed) and once in the quick one; the command is a stand-in writing metrics.json."""
    from scratchlm.commands import finetune

    calls = []

    def stand_in(args):
        calls.append(args)
        lora = args.lora_rank is not None
        m = {"folds": args.folds, "accuracy": 0.7 if lora else 0.75, "f1": 0.7, "majority_rate": 0.5,
             "linear_probe_accuracy": 0.6, "seconds_per_epoch": 1.0 if lora else 2.0}
        if lora:
            m |= {"trainable_fraction": 0.0042, "trainable_params": 9_000, "optimizer_state_bytes": 72_000,
                  "full_finetune_optimizer_state_bytes": 181_000_000}
        (args.out / "metrics.json").write_text(json.dumps(m))
        return 0

    monkeypatch.setattr(finetune, "run", stand_in)
    quick = finetune.demo_step(demo.DemoContext(quick=True, out=tmp_path / "quick" / "finetune", seed=3))
    assert len(calls) == 1 and "lora" not in quick and "linear probe 0.600" in quick["result"]
    calls.clear()
    full = finetune.demo_step(demo.DemoContext(quick=False, out=tmp_path / "full" / "finetune", seed=3))
    plain, lora = calls
    assert plain.out == tmp_path / "full" / "finetune" and lora.out == tmp_path / "full" / "finetune-lora"
    assert plain.lora_rank is None and lora.lora_rank == 8 and lora.lr is None  # LoRA's default rate
    assert (plain.folds, plain.seed, plain.batch_size) == (lora.folds, lora.seed, lora.batch_size)
    assert lora.epochs == 2 * plain.epochs  # LoRA's defaults double full fine-tuning's epochs
    assert full["lora"]["accuracy"] == 0.7 and full["lora"]["trainable_fraction"] == 0.0042
    assert full["optimizer_state_bytes"] == 181_000_000
    for shown in ("LoRA r=8: accuracy 0.700", "trainable 0.42%", "173 MiB", "0.07 MiB"):
        assert shown in full["result"]
