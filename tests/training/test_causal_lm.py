"""Causal-LM pretraining of GPT-2 (`scratchlm pretrain --arch gpt`): packing, and a CI-sized run on the
Wikipedia sample whose model generates through `scratchlm generate` and loads in transformers."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.errors import ScratchlmError
from scratchlm.models import gpt
from scratchlm.training import causal_lm


def test_pack_stream_ends_every_document_with_eos_and_drops_the_tail():
    rows = causal_lm.pack_stream([[5, 6], [], [7, 8, 9], [1, 2]], 3, eos_id=0)
    np.testing.assert_array_equal(rows, [[5, 6, 0], [7, 8, 9], [0, 1, 2]])  # stream 5 6 0 7 8 9 0 1 2 0: tail cut
    with pytest.raises(ScratchlmError, match="at least 2"):
        causal_lm.pack_stream([[1, 2]], 1, eos_id=0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole entry point: byte-level BPE trained on 400 Wikipedia paragraphs, then a 1-layer GPT pretrained
    for 200 steps (the masked-LM test's shape and settings, tests/training/test_pretrain.py)."""
    from scratchlm.cli import main

    out = tmp_path_factory.mktemp("pretrain-gpt")
    rc = main(["pretrain", "--arch", "gpt", "--corpus", "wiki", "--limit", "400", "--vocab-size", "600",
               "--layers", "1", "--hidden", "32", "--heads", "2", "--seq-len", "32", "--batch-size", "16",
               "--steps", "200", "--lr", "3e-3", "--dropout", "0", "--quiet", "--out", str(out)])
    assert rc == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_pretraining_lowers_heldout_loss_below_the_unigram_baseline(tiny_run):
    r"""The untrained loss, from the initialisation: the tied head's logits are z W_te^T with z layer-normed
    (gain 1, bias 0: |z|^2 = H = 32) and W_te ~ N(0, 0.02^2), so each logit is ~N(0, s^2), s^2 = 0.0128, and the
    cross-entropy has mean ln V + s^2/2 (V = 600: 6.403), within 0.05 over the >= 1,000 held-out targets.
    "Well below" then means two things: at least one nat lower (perplexity / e), and below the add-one unigram
    model of the training tokens, the best a model blind to context can do, so the decoder must use the
    context its causal attention gives it."""
    _, m = tiny_run
    assert m["vocab_size"] == 600
    assert abs(m["heldout_loss_start"] - (math.log(600) + 0.02**2 * 32 / 2)) < 0.05, m["heldout_loss_start"]
    assert m["heldout_loss_end"] < m["heldout_loss_start"] - 1.0, m
    assert m["heldout_loss_end"] < m["unigram_loss"], m
    assert m["perplexity"] == pytest.approx(math.exp(m["heldout_loss_end"]), rel=1e-12)
    assert m["tokens_per_s"] > 0 and "mfu" in m and (m["mfu"] is None) == (m["peak_flops"] is None)


def test_the_pretrained_model_loads_in_transformers_and_generates(tiny_run, capsys):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    from scratchlm.cli import main

    out, _ = tiny_run
    config, params = gpt.from_pretrained(out / "model")
    hf = transformers.GPT2LMHeadModel.from_pretrained(str(out / "model")).eval()
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (2, 12))
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor(ids)).logits.numpy()
    ours = np.asarray(gpt.apply(params, {"input_ids": jnp.asarray(ids)}, config=config)["logits"])
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)  # the float32 bound of tests/models/test_gpt.py
    assert main(["generate", "--model", str(out / "model"), "--prompt", "The history of", "--max-new-tokens", "8",
                 "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("The history of")


def test_continued_pretraining_from_the_saved_model(tiny_run, tmp_path):
    """--init a GPT-2 folder: its shape and tokenizer are used, and the run starts from its held-out loss."""
    from scratchlm.cli import main

    out, first = tiny_run
    rc = main(["pretrain", "--arch", "gpt", "--corpus", "wiki", "--limit", "400", "--init", str(out / "model"),
               "--seq-len", "32", "--batch-size", "16", "--steps", "2", "--quiet", "--out", str(tmp_path / "more")])
    assert rc == 0
    m = json.loads((tmp_path / "more" / "metrics.json").read_text())
    assert m["heldout_loss_start"] == pytest.approx(first["heldout_loss_end"], abs=1e-5)  # the same rows, same model


def test_bert_only_flags_and_a_mesh_too_large_are_one_error_line_with_gpt(tmp_path, capsys):
    from scratchlm.cli import main

    for flags, phrase in ((["--pre-ln"], "always pre-LN"), (["--mesh", "data=2"], "needs 2 devices"),
                          (["--init", "minilm"], "BERT encoder")):
        assert main(["pretrain", "--arch", "gpt", "--corpus", "lee", *flags, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert phrase in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()  # refused before any work
