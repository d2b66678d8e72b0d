"""`scratchlm classify --encoder lstm|gru`: one small run end to end (the bag's outputs are guarded by the digest)."""

from __future__ import annotations

import json

import pytest

from scratchlm import cli


@pytest.mark.parametrize("encoder", ["lstm", "gru"])
def test_recurrent_encoder_run_reports_beside_the_bag_and_the_majority(encoder, tmp_path, capsys):
    """12 labelled lines, 2 folds, 1 epoch: the run folder holds the summary, the fold logs and the curves, and
    the printed line puts the recurrent model beside the bag of embeddings and the majority rate."""
    data = tmp_path / "small.txt"
    data.write_text("".join(f"__label__{'pos' if i % 2 else 'neg'} {'good' if i % 2 else 'bad'} film number {i}\n"
                            for i in range(12)), encoding="utf-8")
    out = tmp_path / "run"
    argv = ["classify", "--encoder", encoder, "--data", str(data), "--folds", "2", "--epochs", "1", "--dim", "4",
            "--hidden", "4", "--batch-size", "4", "--lr", "0.01", "--out", str(out)]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["encoder"] == encoder and summary["majority"] == 0.5
    assert len(summary["folds"]) == 2 and 0.0 <= summary["bag_accuracy"] <= 1.0
    assert summary["steps_per_fold"] == 1 * (6 // 4)
    assert sorted(p.name for p in out.glob("fold*.jsonl")) == ["fold0.jsonl", "fold1.jsonl"]
    assert (out / "curves.png").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["settings"]["encoder"] == encoder and run["settings"]["cv"]["hidden_size"] == 4
    last = printed.strip().splitlines()[-1]
    assert f"({encoder}: design document 002's model" in last
    assert "bag of embeddings" in last and "majority 0.50" in last
    # the same command again finds the run complete and prints the same result
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == last
