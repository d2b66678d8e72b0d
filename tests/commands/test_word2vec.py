"""scratchlm word2vec: end to end on a tiny corpus (vectors gensim loads, resume), the per-device defaults."""

import json

import numpy as np
import pytest

from tests.training.test_word2vec import FILLERS, ROLES, TOPICS, planted_corpus


def test_command_writes_vectors_gensim_loads_and_resumes(tmp_path):
    """`scratchlm word2vec` end to end on a tiny file corpus: vectors.txt, metrics.json, checkpoints;
    a resume from an earlier checkpoint rewrites bit-identical vectors."""
    from scratchlm.cli import main

    gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
    corpus = tmp_path / "c.txt"
    # the corpus and settings of _small_run, so the jitted steps compiled there are reused
    corpus.write_text("\n".join(" ".join(s) for s in planted_corpus(400, seed=1)) + "\n")
    argv = ["word2vec", "--corpus", str(corpus), "--epochs", "2", "--dim", "8", "--min-count", "1", "--sample", "1e-2",
            "--batch-size", "16", "--steps-per-call", "8", "--checkpoint-every", "1e-9", "--keep-checkpoints",
            "--quiet", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    full = (tmp_path / "o" / "vectors.txt").read_bytes()
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(tmp_path / "o" / "vectors.txt"))
    assert len(kv.index_to_key) == TOPICS * ROLES + (TOPICS + ROLES) * FILLERS
    assert "words_per_second" in (tmp_path / "o" / "metrics.json").read_text()
    checkpoints = sorted((tmp_path / "o" / "checkpoints").iterdir())
    checkpoints[-1].unlink()  # as if killed before the last save
    record = json.loads((tmp_path / "o" / "run.json").read_text())
    (tmp_path / "o" / "run.json").write_text(json.dumps({**record, "status": "running"}))
    (tmp_path / "o" / "vectors.txt").unlink()
    assert main(argv) == 0  # the same command again resumes
    assert (tmp_path / "o" / "vectors.txt").read_bytes() == full


def test_without_the_evaluation_data_the_vectors_stand_unscored(tmp_path, monkeypatch, capsys):
    """gensim's evaluation files missing: the run finishes with its vectors, says why it has no scores, and exits
    0 (as GloVe's command does); it had trained, then failed at the end with exit 2 and an unfinished run."""
    from scratchlm.cli import main
    from scratchlm.embeddings import evaluate
    from scratchlm.errors import ScratchlmError

    def missing(*args, **kwargs):
        raise ScratchlmError('the analogy questions come from the gensim wheel: pip install "scratchlm[data]"')

    monkeypatch.setattr(evaluate, "standard_scores", missing)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(" ".join(s) for s in planted_corpus(400, seed=1)) + "\n")
    argv = ["word2vec", "--corpus", str(corpus), "--epochs", "2", "--dim", "8", "--min-count", "1", "--sample", "1e-2",
            "--batch-size", "16", "--steps-per-call", "8", "--quiet", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    assert "not evaluated (the analogy questions come from the gensim wheel" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert "pip install" in metrics["evaluation_error"] and (tmp_path / "o" / "vectors.txt").is_file()
    assert json.loads((tmp_path / "o" / "run.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("argv, batch, normalize, share", [
    ([], 384, False, 8),  # this CPU: the command's CPU default, sets of 8 centres sharing noise words
    (["--model", "cbow"], 1024, False, 32),  # CBOW: sets of 32 centres across runs
    (["--model", "cbow", "--batch-size", "1000"], 1000, False, 8),  # a set size that divides the batch
    (["--batch-size", "1024"], 1024, False, 8),  # the plain sum scores as gensim up to here
    (["--batch-size", "4096"], 4096, True, 8),  # damped above 2,048
    (["--batch-size", "16384", "--normalize-duplicates", "--noise-share", "1"], 16384, True, 1),
])
def test_command_batch_and_duplicate_damping_defaults(argv, batch, normalize, share):
    import argparse

    from scratchlm.commands import word2vec as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    config = command._config(parser.parse_args([*argv, "--out", "run"]))
    assert (config.batch_size, config.normalize_duplicates, config.noise_share) == (batch, normalize, share)


@pytest.mark.parametrize("argv, expected", [
    (["--model", "cbow"], "epoch"),  # CBOW on a CPU: the fewest dispatches covering an epoch
    ([], 256),  # skip-gram: the config's default (its curve and checkpoints keep their dispatches)
    (["--model", "cbow", "--steps-per-call", "64"], 64),  # the flag wins
])
def test_command_steps_per_call_defaults(argv, expected):
    import argparse

    from scratchlm.commands import word2vec as command
    from scratchlm.embeddings.word2vec import model

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args([*argv, "--out", "run"])
    counts = np.array([5000, 3000, 2000, 900, 100] * 200)
    assert command._config(args).steps_per_call == (256 if expected == "epoch" else expected)  # counts not read yet
    if expected == "epoch":
        expected = model.epoch_dispatch_steps(counts, args.sample, 1024)
    assert command._config(args, counts).steps_per_call == expected


def test_flags_default_to_the_configs_defaults():
    """One source for each default: the flags read Word2VecConfig's (the batch, the noise sets and CBOW's
    dispatch size are the command's per-device choices, above and below)."""
    import dataclasses

    from scratchlm.commands import word2vec as command
    from scratchlm.embeddings.word2vec.config import Word2VecConfig

    args = command.command_args()
    config = Word2VecConfig()
    for field in dataclasses.fields(Word2VecConfig):
        if field.name in ("batch_size", "noise_share", "normalize_duplicates", "run_length", "steps_per_call"):
            continue
        assert getattr(args, field.name) == getattr(config, field.name), field.name


def test_command_args_refuses_an_unknown_key():
    """A key that is no argument of the command (a misspelt flag) is a ScratchlmError naming it and the real ones,
    never a silently ignored setting."""
    from scratchlm.commands import word2vec as command
    from scratchlm.errors import ScratchlmError

    with pytest.raises(ScratchlmError, match=r"not arguments of scratchlm word2vec: epoch, windw \(its arguments: "
                                             r".*\bepochs\b.*\bwindow\b"):
        command.command_args(epochs=2, epoch=3, windw=4)
    assert command.command_args(epochs=2).epochs == 2  # a known key is taken
