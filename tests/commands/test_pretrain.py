"""`scratchlm pretrain` is thin: its flags fill the library's configs (defaults read from them, never restated),
and every bad setting is one ``error:`` line, not a traceback.  The recipe itself is stubbed out here; it is
tested in tests/training/test_pretrain.py."""

from __future__ import annotations

import dataclasses

import pytest

from scratchlm.cli import main
from scratchlm.models import bert
from scratchlm.tokenizers import pipelines
from scratchlm.training import pretrain as P


class _Tokenizer:
    pad_token_id = 0

    def get_vocab_size(self):
        return 123


@pytest.fixture
def captured(monkeypatch):
    """Run the command up to the recipe: what WordPiece was asked for and what the recipe received."""
    seen = {}

    def fake_train(texts, vocab_size, **kwargs):
        seen["vocab_size"] = vocab_size
        return _Tokenizer()

    def fake_pretrain(texts, tokenizer, config, run, **kwargs):
        seen.update(config=config, run=run, docs=len(texts))
        return {}

    monkeypatch.setattr(pipelines, "train_bert_wordpiece", fake_train)
    monkeypatch.setattr(P, "pretrain", fake_pretrain)
    monkeypatch.setattr("scratchlm.commands.pretrain._summary", lambda m: "")
    return seen


def test_flags_left_out_take_the_configs_defaults(captured, tmp_path):
    assert main(["pretrain", "--corpus", "lee", "--out", str(tmp_path)]) == 0
    assert captured["run"] == P.PretrainConfig()
    assert captured["vocab_size"] == P.SMALL_BERT.vocab_size
    config, small = captured["config"], P.SMALL_BERT
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.intermediate_size) == (
        small.num_hidden_layers, small.hidden_size, small.num_attention_heads, 4 * small.hidden_size)
    assert config.hidden_dropout_prob == config.attention_probs_dropout_prob == bert.BertConfig.hidden_dropout_prob
    assert config.vocab_size == 123 and config.max_position_embeddings == small.max_position_embeddings


def test_flags_given_reach_the_configs(captured, tmp_path):
    argv = ["pretrain", "--corpus", "lee", "--limit", "30", "--vocab-size", "300", "--layers", "1",
            "--hidden", "32", "--heads", "2", "--intermediate", "48", "--seq-len", "200", "--batch-size", "4",
            "--steps", "7", "--lr", "0.003", "--warmup-steps", "2", "--weight-decay", "0.1", "--dropout", "0.2",
            "--eval-every", "3", "--seed", "5", "--fused", "--pre-ln", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert captured["run"] == P.PretrainConfig(seq_len=200, batch_size=4, steps=7, lr=0.003, warmup_steps=2,
                                               weight_decay=0.1, eval_every=3, seed=5)
    assert captured["vocab_size"] == 300 and captured["docs"] == 30
    expected = dataclasses.replace(P.SMALL_BERT, vocab_size=123, num_hidden_layers=1, hidden_size=32,
                                   num_attention_heads=2, intermediate_size=48, max_position_embeddings=200,
                                   hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.0, fused_attention=True,
                                   pre_layer_norm=True)
    assert captured["config"] == expected


@pytest.mark.parametrize("flags, message", [
    (["--hidden", "30", "--heads", "4"], "hidden_size 30 must be divisible by num_attention_heads 4"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--seq-len", "2"], "seq_len must be at least 3"),
    (["--dropout", "1.5"], "hidden_dropout_prob is a drop probability"),
    (["--lr", "0"], "--lr must be a positive"), (["--lr=-1e-3"], "--lr must be a positive"),
    (["--steps", "3", "--warmup-steps", "3"], "--warmup-steps must be below --steps"),
])
def test_bad_settings_are_one_error_line(captured, tmp_path, capsys, flags, message):
    assert main(["pretrain", "--corpus", "lee", *flags, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scratchlm pretrain: error: ") and message in err and "Traceback" not in err


def test_demo_names_an_unknown_step_in_one_error_line(tmp_path, capsys):
    assert main(["demo", "--steps", "pretrain,bogus", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "scratchlm demo: error:" in err and "unknown step(s) ['bogus']" in err
