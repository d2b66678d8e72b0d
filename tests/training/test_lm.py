"""scratchlm.training.lm: the LM recipe returns values and writes nothing; its config's errors; loading a run
folder; sampling text."""

import json
import os

import jax
import numpy as np
import pytest

from scratchlm.data.codec import TextCodec
from scratchlm.errors import ScratchlmError
from scratchlm.models import gru_lm
from scratchlm.training import checkpoint
from scratchlm.training.lm import LMConfig, held_out, load_trained, sample_text, train_lm

PARAGRAPHS = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the mat and the log"] * 6


def test_held_out_by_hand():
    """round(24 * 0.05) = 1 paragraph held out; round(24 * 0.25) = 6; a single paragraph leaves none to train."""
    assert held_out(PARAGRAPHS, 0.05) == 1 and held_out(PARAGRAPHS, 0.25) == 6
    with pytest.raises(ScratchlmError, match="too few"):
        held_out(["one paragraph"], 0.5)


@pytest.mark.parametrize("field,value,match", [("seq_len", 0, "--seq-len"), ("steps", 0, "--steps"),
                                               ("valid_fraction", 1.0, "--valid-fraction"),
                                               ("eval_every", -1, "--eval-every")])
def test_config_errors_are_scratchlm_errors(field, value, match):
    with pytest.raises(ScratchlmError, match=match):
        LMConfig(**{field: value})


def test_train_lm_returns_values_and_writes_nothing(tmp_path, monkeypatch):
    """Six steps of a tiny GRU: params of the model's shapes, the metrics (the unigram baseline by hand from the
    same streams), one evaluation in the history; no file anywhere (the command writes them)."""
    monkeypatch.chdir(tmp_path)
    codec = TextCodec.build("word", PARAGRAPHS[:-1], max_vocab=100, min_count=1)
    model = gru_lm.GRULMConfig(codec.vocab_size, 8, 8, 1, dropout=0.0)
    config = LMConfig(seq_len=4, batch_size=2, steps=6, lr=1e-2, valid_fraction=0.05)
    result = train_lm(PARAGRAPHS, codec, model, config, progress=False)
    assert os.listdir(tmp_path) == []
    want = jax.eval_shape(lambda: gru_lm.init(jax.random.key(0), model))
    assert jax.tree.map(np.shape, result.params) == jax.tree.map(lambda s: s.shape, want)
    train_ids, valid_ids = codec.stream(PARAGRAPHS[:-1]), codec.stream(PARAGRAPHS[-1:])
    streams = gru_lm.make_streams(valid_ids, min(2, max(1, len(valid_ids) // 5)))
    assert result.metrics["unigram_perplexity"] == gru_lm.unigram_perplexity(train_ids, streams, model.vocab_size)
    assert result.metrics["train_tokens"] == train_ids.size and result.metrics["steps"] == 6
    assert [h["step"] for h in result.history] == [6]
    assert result.metrics["valid_perplexity"] == result.history[-1]["valid_perplexity"]


def test_load_trained_and_sample_text(tmp_path):
    """A run folder as the command writes it loads back; greedy sampling continues the prompt's text."""
    codec = TextCodec.build("word", PARAGRAPHS, max_vocab=100, min_count=1)
    model = gru_lm.GRULMConfig(codec.vocab_size, 8, 8, 1, dropout=0.0)
    params = gru_lm.init(jax.random.key(0), model)
    with pytest.raises(ScratchlmError, match="not a `gru-lm train` output folder"):
        load_trained(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"command": "gru-lm train", "status": "running"}))
    with pytest.raises(ScratchlmError, match="unfinished `gru-lm train` run: run the same train command again"):
        load_trained(tmp_path)  # killed before its model was written: it has checkpoints only
    (tmp_path / "run.json").unlink()
    (tmp_path / "config.json").write_text(json.dumps({"model": model.__dict__}))
    codec.save(tmp_path)
    checkpoint.save_params(tmp_path / "params.msgpack", params)
    loaded, config, codec2 = load_trained(tmp_path)
    assert config == model and codec2.vocab_size == codec.vocab_size
    texts = sample_text(loaded, config, codec2, "the cat", key=jax.random.key(0), max_new_tokens=3, temperature=0.0,
                        samples=2)
    assert len(texts) == 2 and texts[0] == texts[1] and texts[0].startswith("the cat ") and len(texts[0].split()) == 5
    with pytest.raises(ScratchlmError, match="holds no token"):
        sample_text(loaded, config, codec2, "...", key=jax.random.key(0))
