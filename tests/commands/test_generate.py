"""`scratchlm generate` is thin: a model folder (GPT-2 layout + tokenizer.json) and a prompt in, the library's
continuations out; a folder without a tokenizer or weights is one ``error:`` line."""

from __future__ import annotations

import jax
import numpy as np

from scratchlm.cli import main
from scratchlm.models import gpt
from scratchlm.tokenizers import pipelines
from tests.random_params import random_params

TEXT = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog"] * 3


def _model_folder(path):
    tokenizer = pipelines.train_bpe(TEXT, 280, special_tokens=["<|endoftext|>"])
    V = tokenizer.get_vocab_size()
    eos = tokenizer.token_to_id("<|endoftext|>")
    config = gpt.GPTConfig(vocab_size=V, n_positions=32, n_embd=16, n_layer=1, n_head=2, bos_token_id=eos,
                           eos_token_id=eos)
    params = random_params(gpt.init, config, std=0.3)
    gpt.save_pretrained(path, params, config)
    tokenizer.save(path / "tokenizer.json")
    return config, params, tokenizer


def test_greedy_generate_prints_the_library_continuation(tmp_path, capsys):
    config, params, tokenizer = _model_folder(tmp_path)
    assert main(["generate", "--model", str(tmp_path), "--prompt", "the cat", "--temperature", "0",
                 "--max-new-tokens", "5"]) == 0
    printed = capsys.readouterr().out.splitlines()
    want = gpt.generate_text(params, "the cat", config=config, tokenizer=tokenizer, key=None, max_new_tokens=5,
                             temperature=0.0)
    assert printed == want and printed[0].startswith("the cat")


def test_samples_are_seeded(tmp_path, capsys):
    _model_folder(tmp_path)
    argv = ["generate", "--model", str(tmp_path), "--prompt", "a dog", "--samples", "3", "--max-new-tokens", "4"]
    outs = []
    for seed in ("1", "1", "2"):
        assert main([*argv, "--seed", seed]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and outs[0] != outs[2] and len(outs[0].splitlines()) == 3


def test_a_folder_without_tokenizer_is_an_error(tmp_path, capsys):
    config = gpt.GPTConfig(vocab_size=10, n_positions=8, n_embd=4, n_layer=1, n_head=1)
    gpt.save_pretrained(tmp_path, jax.tree.map(np.asarray, random_params(gpt.init, config)), config)
    assert main(["generate", "--model", str(tmp_path), "--prompt", "x"]) == 2
    assert "tokenizer.json not found" in capsys.readouterr().err


def test_bad_settings_are_one_error_line_before_the_model_is_read(tmp_path, capsys):
    for flags, phrase in ((["--top-p", "0"], "--top-p"), (["--samples", "0"], "--samples"),
                          (["--temperature", "-1"], "--temperature")):
        assert main(["generate", "--model", str(tmp_path / "none"), "--prompt", "x", *flags]) == 2
        err = capsys.readouterr().err
        assert phrase in err and len(err.strip().splitlines()) == 1


def test_the_demo_step_trains_samples_and_fine_tunes(tmp_path):
    """The demo's gpt step, quick: a run folder with the model, a sample that continues the prompt, the held-out
    loss lowered from its start (40 steps: perplexity 1,017 -> 527 on 2 cores), polarity scored."""
    from scratchlm.commands import generate
    from scratchlm.commands.demo import DemoContext

    r = generate.demo_step(DemoContext(quick=True, out=tmp_path / "gpt", seed=0))
    assert (tmp_path / "gpt" / "model" / "model.safetensors").is_file()
    assert r["sample"].startswith("The history of") and r["heldout_loss_end"] < r["heldout_loss_start"] - 0.5
    assert 0.0 <= r["polarity_test_accuracy"] <= 1.0 and "polarity acc" in r["result"]
    # the GRU LM scored on the GPT's held-out tokens: a perplexity (above 1, finite) beside the GPT's
    assert 1.0 < r["gru_perplexity"] < float("inf") and "GRU LM" in r["result"]


def test_the_model_length_bounds_the_continuation(tmp_path, capsys):
    """n_positions 32: more new tokens than fit are cut, with a warning (HuggingFace's generate warns too);
    a prompt that fills every position is one error line that says so."""
    import pytest

    _model_folder(tmp_path)
    with pytest.warns(UserWarning, match="max_new_tokens 100 cut to"):
        assert main(["generate", "--model", str(tmp_path), "--prompt", "the cat", "--max-new-tokens", "100"]) == 0
    capsys.readouterr()
    assert main(["generate", "--model", str(tmp_path), "--prompt", " ".join(TEXT), "--max-new-tokens", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("scratchlm generate: error: the prompt's") and "leave no room" in err
