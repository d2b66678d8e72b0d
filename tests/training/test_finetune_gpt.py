"""GPT-2 through the one fine-tuning recipe (:class:`scratchlm.training.encoders.GPTEncoder`): the recipe fits a task
from the last real token, the freezing policies find GPT-2's layers, and `scratchlm finetune --init GPT_RUN` writes
a ``GPT2ForSequenceClassification`` folder that ``transformers.pipeline("text-classification")`` runs with
scratchlm's predictions, and with ``--lora-rank`` a PEFT adapter folder (``c_attn``, ``fan_in_fan_out``) that
``peft.PeftModel`` loads onto the pretrained GPT-2 with the same logits.  Token classification is refused.

The GPT is the smallest `scratchlm pretrain --arch gpt` run (the Lee corpus, a byte-level BPE of 300, one
32-wide layer, 4 steps), the size of the BERT runs of tests/models/test_hf_export.py."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from scratchlm import cli
from scratchlm.data import tasks
from scratchlm.models import gpt
from scratchlm.nn import lora
from scratchlm.training import encoders, freeze
from scratchlm.training import finetune as ft
from tests.training.finetune_tiny import tiny_sequence_data

# float32 forward passes of a 1-layer, 32-wide decoder in JAX and in PyTorch differ by ~1e-6 per logit (a few
# hundred float32 operations on values of order 1); 1e-4 on probabilities and logits leaves two orders of
# magnitude and is far below what a wrong pooled position or a missing update changes (checked: the values
# spread over more than 1e-3 across the sentences).
TOL = 1e-4
TINY = gpt.GPTConfig(vocab_size=40, n_positions=32, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
ENCODER = encoders.of(TINY)


def _cli(argv):
    assert cli.main(argv) == 0, argv


def _sentences():
    """The BERT tests' task in GPT-2's ids: 8 texts of ids 2..39; label 1 iff the text holds id 1."""
    return tiny_sequence_data(marker=1, special=ENCODER.special_ids(None), max_length=TINY.n_positions)


def test_gpt_frames_the_text_as_it_is_padded_with_end_of_text():
    """No [CLS]/[SEP]: the ids are the text's, then the end-of-text id (0 here) as padding; a pair is A then B."""
    special = ENCODER.special_ids(None)
    assert tasks.encode_sequence([5, 6, 7], None, special, 8) == ([5, 6, 7], [0, 0, 0])
    assert tasks.encode_sequence([5, 6, 7], [8, 9], special, 4) == ([5, 6, 8, 9], [0, 0, 0, 0])
    data = _sentences()
    n = data["attention_mask"].sum(1)
    assert all((row[k:] == 0).all() and (row[:k] > 0).all() for row, k in zip(data["input_ids"], n))


def test_the_recipe_fits_a_small_task_from_the_last_real_token():
    """ft.fit with the GPT adapter: 8 texts, 20 epochs of one batch at 1e-2 without decay or warm-up: every
    training text predicted right, and every parameter (the decoder's and the bias-free score) moved."""
    config = ft.FinetuneConfig(task="sequence", num_labels=2, lr=1e-2, epochs=20, batch_size=8, weight_decay=0.0,
                               warmup_fraction=0.0)
    data = _sentences()
    params = ft.init_classifier(jax.random.key(1), gpt.init(jax.random.key(0), TINY), ENCODER, config)
    assert set(params["score"]) == {"weight"} and params["score"]["weight"].shape == (2, TINY.n_embd)
    result = ft.fit(params, data, None, encoder=ENCODER, config=config)
    assert ft.evaluate(result.params, data, encoder=ENCODER, config=config)["accuracy"] == 1.0
    moved = jax.tree.map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), params, result.params)
    assert all(jax.tree.leaves(moved))


def test_freezing_policies_on_gpt2_layout():
    """all-but-top-1 trains the top block, ln_f and score; encoder trains the score alone; embeddings freezes
    wte and wpe."""
    params = ENCODER.init_head(jax.random.key(1), gpt.init(jax.random.key(0), TINY), "sequence", 2)

    def trained(freeze_policy):
        mask = freeze.trainable_mask(params, freeze_policy, freeze.GPT2)
        return {jax.tree_util.keystr(p) for p, t in jax.tree_util.tree_leaves_with_path(mask) if t}

    assert trained("encoder") == {"['score']['weight']"}
    top = trained("all-but-top-1")
    assert all(k.startswith(("['h'][1]", "['ln_f']", "['score']")) for k in top) and "['ln_f']['weight']" in top
    assert not any(k.startswith(("['wte']", "['wpe']")) for k in trained("embeddings"))
    assert len(trained("embeddings")) == len(jax.tree.leaves(params)) - 2


def test_token_classification_with_gpt_is_refused():
    with pytest.raises(Exception, match="token classification with GPT-2 is not supported"):
        ENCODER.classifier("token", "softmax")


# ----------------------------------------------------------------------------- the command and transformers


transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gptft")
    _cli(["pretrain", "--arch", "gpt", "--corpus", "lee", "--vocab-size", "300", "--layers", "1", "--hidden", "32",
          "--heads", "2", "--seq-len", "32", "--batch-size", "4", "--steps", "4", "--limit", "60", "--seed", "1",
          "--quiet", "--out", str(root / "gpt")])
    # As tests/models/test_hf_export.py: lr 2e-2 without dropout moves the fresh score far enough from
    # N(0, 0.02^2) that the sentences' probabilities differ, so a comparison of probabilities can fail.
    fast = ["--task", "polarity", "--init", str(root / "gpt"), "--folds", "2", "--limit", "40", "--batch-size", "8",
            "--lr", "2e-2", "--dropout", "0", "--max-length", "32", "--seed", "1", "--quiet"]
    _cli(["finetune", *fast, "--epochs", "3", "--out", str(root / "pol")])
    _cli(["finetune", *fast, "--epochs", "1", "--lora-rank", "4", "--out", str(root / "lora")])
    return root


def _scratchlm(folder, texts):
    """scratchlm's inference on ``texts`` from the saved folder: its ids, predictions and probabilities."""
    config, params = gpt.from_pretrained(folder)
    tok = encoders.load_init(folder)[2]
    encoder = encoders.of(config)
    task = {"kind": "sequence", "labels": ("neg", "pos"), "examples": [(t, None, 0) for t in texts]}
    data = tasks.encode_task(task, tok, config.n_positions, config.vocab_size, encoder.special_ids(tok))
    ft_config = ft.FinetuneConfig(task="sequence", num_labels=2)
    logits = ft.forward_program(encoder, ft_config)(params, {k: v for k, v in data.items() if k != "labels"})
    return data, ft.predict(params, data, encoder=encoder, config=ft_config), np.asarray(logits)


def test_finetune_gpt_run_writes_its_metrics_and_completes(runs, capsys):
    m = json.loads((runs / "pol" / "metrics.json").read_text())
    assert m["folds"] == 2 and len(m["per_fold"]) == 2 and 0.0 <= m["accuracy"] <= 1.0
    assert sorted(p.name for p in (runs / "pol").glob("fold_*")) == ["fold_0", "fold_1"]
    capsys.readouterr()
    _cli(["finetune", "--task", "polarity", "--init", str(runs / "gpt"), "--folds", "2", "--limit", "40",
          "--batch-size", "8", "--lr", "2e-2", "--dropout", "0", "--max-length", "32", "--seed", "1", "--epochs", "3",
          "--out", str(runs / "pol")])
    captured = capsys.readouterr()
    assert "complete" in captured.out + captured.err  # the run contract: a finished run is left as it is


def test_finetuned_gpt_folder_in_the_text_classification_pipeline(runs):
    folder = runs / "pol" / "best"
    hf_config = json.loads((folder / "config.json").read_text())
    eos = json.loads((runs / "gpt" / "model" / "config.json").read_text())["eos_token_id"]
    assert hf_config["architectures"] == ["GPT2ForSequenceClassification"] and hf_config["model_type"] == "gpt2"
    assert hf_config["id2label"] == {"0": "neg", "1": "pos"} and hf_config["pad_token_id"] == eos
    task = tasks.load_task("polarity", None)
    tok, limit = encoders.load_init(folder)[2], gpt.from_pretrained(folder)[0].n_positions
    fits = [text for text, _, _ in task["examples"] if len(tok.encode(text).ids) <= limit]  # no truncation
    texts = fits[:6] + fits[-6:]  # both classes of the set's real sentences
    data, predicted, logits = _scratchlm(folder, texts)
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))

    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert hf_tok.pad_token_id == eos
    for i, text in enumerate(texts):
        n = int(data["attention_mask"][i].sum())
        assert hf_tok(text)["input_ids"] == data["input_ids"][i, :n].tolist()
    classify = transformers.pipeline("text-classification", model=str(folder), device="cpu")
    for i, out in enumerate(classify(texts, top_k=None)):
        scores = {d["label"]: d["score"] for d in out}
        assert max(scores, key=scores.get) == ("neg", "pos")[predicted[i]]
        np.testing.assert_allclose([scores["neg"], scores["pos"]], probs[i], atol=TOL)
    assert np.ptp(probs[:, 1]) > 10 * TOL  # the sentences' probabilities differ: the comparison can fail
    # a padded batch: HuggingFace finds each row's last real token by pad_token_id, scratchlm by the mask
    batch = hf_tok(texts, padding=True, return_tensors="pt")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        np.testing.assert_allclose(model(**batch).logits.numpy(), logits, atol=TOL)


def test_lora_gpt_adapter_folder_loads_in_peft(runs):
    """``adapter/``: c_attn adapters (PEFT's default target for GPT-2) with fan_in_fan_out, and the score; PEFT's
    PeftModel on GPT2ForSequenceClassification of the pretrained folder gives best/'s (the merged model's) logits."""
    peft = pytest.importorskip("peft")
    adapter = runs / "lora" / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["target_modules"] == ["c_attn"] and cfg["fan_in_fan_out"] is True
    assert cfg["modules_to_save"] == ["score"] and cfg["task_type"] == "SEQ_CLS"
    m = json.loads((runs / "lora" / "metrics.json").read_text())
    assert m["settings"]["lora_targets"] == "c_attn" and 0 < m["trainable_fraction"] < 0.5

    texts = ["a gripping , funny film .", "dull and far too long .", "it is neither good nor bad ."]
    _, _, logits = _scratchlm(runs / "lora" / "best", texts)
    eos = json.loads((runs / "gpt" / "model" / "config.json").read_text())["eos_token_id"]
    base = transformers.GPT2ForSequenceClassification.from_pretrained(str(runs / "gpt" / "model"), num_labels=2,
                                                                      pad_token_id=eos)
    model = peft.PeftModel.from_pretrained(base, str(adapter)).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(runs / "lora" / "best")
    with torch.no_grad():
        got = model(**hf_tok(texts, padding=True, return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(got, logits, atol=TOL)
    # the adapters moved the decoder: the merged c_attn differs from the pretrained one
    _, pre = gpt.from_pretrained(runs / "gpt" / "model")
    _, post = gpt.from_pretrained(runs / "lora" / "best")
    attn = [np.asarray(p["h"][0]["attn"]["c_attn"]["weight"]) for p in (pre, post)]
    assert np.abs(attn[1] - attn[0]).max() > 0
    np.testing.assert_array_equal(post["h"][0]["mlp"]["c_fc"]["weight"], pre["h"][0]["mlp"]["c_fc"]["weight"])


def test_finetune_gpt_token_task_is_refused_before_any_work(runs, tmp_path, capsys):
    conll = tmp_path / "ner.conll"
    conll.write_text("Paris B-LOC\nis O\nbig O\n\nRome B-LOC\nis O\nold O\n")
    assert cli.main(["finetune", "--task", str(conll), "--init", str(runs / "gpt"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "token classification with GPT-2 is not supported" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_lora_on_conv1d_equals_the_dense_form_of_its_transpose():
    r"""``fan_in_fan_out``: a Conv1D weight :math:`W` ``[in, out]`` adapted is :math:`W + \frac{\alpha}{r}(BA)^\top`,
    the transpose of the dense ``[out, in]`` layer :math:`W^\top + \frac{\alpha}{r}BA` adapted: the same
    A and B (PEFT's shapes) give the same outputs in both layouts (float32: 1e-6 on O(1) values)."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 9)).astype(np.float32)  # [in, out]
    x = rng.normal(size=(4, 6)).astype(np.float32)
    conv = lora.LoraConfig(r=2, lora_alpha=4.0, target_modules=("c",), fan_in_fan_out=True)
    dense = lora.LoraConfig(r=2, lora_alpha=4.0, target_modules=("c",))
    adapters = lora.init(jax.random.key(0), {"c": {"weight": W}}, conv)
    assert adapters["c"]["lora_A"].shape == (2, 6) and adapters["c"]["lora_B"].shape == (9, 2)  # A [r, in], B [out, r]
    adapters = {"c": {**adapters["c"], "lora_B": jax.random.normal(jax.random.key(1), (9, 2))}}
    as_conv = lora.merge({"c": {"weight": W, "bias": np.zeros(9, np.float32)}}, adapters, conv)["c"]
    as_dense = lora.merge({"c": {"weight": W.T, "bias": np.zeros(9, np.float32)}}, adapters, dense)["c"]
    np.testing.assert_allclose(gpt.conv1d(as_conv, x), lora.lora_dense({"weight": W.T, "bias": np.zeros(9)},
                               adapters["c"], x, scaling=conv.scaling), atol=1e-5)
    np.testing.assert_allclose(np.asarray(as_conv["weight"]).T, np.asarray(as_dense["weight"]), atol=1e-6)


def test_a_bias_free_sigmoid_score_is_written_as_two_rows(tmp_path):
    r"""A one-logit score of a binary task (``--head sigmoid``) is saved as the rows (0, w), no bias: the softmax of
    HuggingFace's two logits (0, z) is :math:`\sigma(z)`; read back, the score has two rows and no bias."""
    params = ENCODER.init_head(jax.random.key(1), gpt.init(jax.random.key(0), TINY), "sequence", 1)
    gpt.save_pretrained(tmp_path, params, TINY, labels=("neg", "pos"), pad_token_id=0)
    _, loaded = gpt.from_pretrained(tmp_path)
    assert set(loaded["score"]) == {"weight"}
    np.testing.assert_array_equal(np.asarray(loaded["score"]["weight"]),
                                  np.concatenate([np.zeros((1, TINY.n_embd)), np.asarray(params["score"]["weight"])]))
    assert json.loads((tmp_path / "config.json").read_text())["label2id"] == {"neg": 0, "pos": 1}
