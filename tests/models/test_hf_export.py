"""The folders `scratchlm pretrain` and `scratchlm finetune` write, used as they are by transformers: AutoTokenizer,
``pipeline("text-classification")``, ``pipeline("token-classification")`` and ``pipeline("fill-mask")`` give the
ids, label names and probabilities scratchlm's own inference gives, on real sentences (the polarity set, the
silver NER set).  The runs are about the digest's small ones (benchmarks/digest.py): a 1-layer, 32-wide encoder
pretrained for 4 steps with a WordPiece vocabulary of 300 trained on the Lee corpus, then fine-tuned 4 epochs."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from scratchlm import cli
from scratchlm.data import tasks
from scratchlm.models import bert
from scratchlm.training import encoders
from scratchlm.training import finetune as ft

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

# float32 forward passes of a 1-layer, 32-wide encoder in JAX and in PyTorch: each logit is a few hundred
# float32 operations on values of order 1, so the two differ by ~1e-6; a probability (softmax) by no more.
# 1e-4 leaves two orders of magnitude, and is far below what a different tokenization or a missing head
# changes (the probabilities spread over more than 1e-3 across the sentences: checked below).
PROB_TOL = 1e-4


def _cli(argv):
    assert cli.main(argv) == 0, argv


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    _cli(["pretrain", "--corpus", "lee", "--vocab-size", "300", "--layers", "1", "--hidden", "32", "--heads", "2",
          "--seq-len", "32", "--batch-size", "4", "--steps", "4", "--eval-every", "2", "--limit", "60", "--seed", "1",
          "--out", str(root / "pretrain")])
    # --init is the pretraining run folder: it stands for its model/ (models.hub.model_folder)
    # A learning rate of 2e-2 without dropout moves the fresh pooler and heads far enough from N(0, 0.02^2) in
    # 4 epochs that the predicted probabilities differ between sentences (0.33 to 0.47 on the 12 below; at
    # BERT's 5e-5 they all sit at 0.4995 +- 1e-5, and a comparison of probabilities could not fail).
    # (BERT's schedule named: at 2e-2 held constant the heads overshoot and the probabilities collapse again.)
    fast = ["--lr", "2e-2", "--schedule", "linear", "--dropout", "0", "--epochs", "4", "--max-length", "32",
            "--seed", "1"]
    _cli(["finetune", "--task", "polarity", "--init", str(root / "pretrain"), "--folds", "2", "--batch-size", "16",
          *fast, "--out", str(root / "pol")])
    _cli(["finetune", "--task", "wikiner", "--init", str(root / "pretrain"), "--limit", "24", "--batch-size", "8",
          *fast, "--out", str(root / "ner")])
    return root


def _scratchlm(folder, task: dict):
    """scratchlm's own inference on ``task``: the folder read back, the command's encoding (no truncation: the
    pipelines do not truncate), :func:`scratchlm.training.finetune.predict` and the softmax of its logits."""
    config, params = bert.from_pretrained(folder)
    tok = encoders.load_init(folder)[2]
    data = tasks.encode_task(task, tok, config.max_position_embeddings, config.vocab_size)
    if task["kind"] == "token":
        data = data["test"][0]
    ft_config = ft.FinetuneConfig(task=task["kind"], num_labels=len(task["labels"]))
    encoder = encoders.of(config)
    predicted = ft.predict(params, data, encoder=encoder, config=ft_config)
    logits = ft.forward_program(encoder, ft_config)(params, {k: v for k, v in data.items() if k != "labels"})
    return tok, data, predicted, np.asarray(jax.nn.softmax(logits, axis=-1))


def test_finetuned_polarity_folder_in_the_text_classification_pipeline(runs):
    folder = runs / "pol" / "best"
    hf_config = json.loads((folder / "config.json").read_text())
    assert hf_config["architectures"] == ["BertForSequenceClassification"] and hf_config["model_type"] == "bert"
    assert hf_config["id2label"] == {"0": "neg", "1": "pos"} and hf_config["label2id"] == {"neg": 0, "pos": 1}
    assert hf_config["num_labels"] == 2
    assert not (folder / "labels.json").exists()  # config.json holds the label names now

    task = tasks.load_task("polarity", None)
    task["examples"] = task["examples"][:6] + task["examples"][-6:]  # both classes of the set's real sentences
    texts = [text for text, _, _ in task["examples"]]
    tok, data, predicted, probs = _scratchlm(folder, task)

    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    for i, text in enumerate(texts):
        n = int(data["attention_mask"][i].sum())
        assert hf_tok(text)["input_ids"] == data["input_ids"][i, :n].tolist() == tok.encode(text).ids

    classify = transformers.pipeline("text-classification", model=str(folder), device="cpu")
    for i, out in enumerate(classify(texts, top_k=None)):
        scores = {d["label"]: d["score"] for d in out}
        assert max(scores, key=scores.get) == task["labels"][predicted[i]]
        np.testing.assert_allclose([scores["neg"], scores["pos"]], probs[i], atol=PROB_TOL)
    assert np.ptp(probs[:, 1]) > 10 * PROB_TOL  # the sentences' probabilities differ: the comparison can fail


def test_finetuned_ner_folder_in_the_token_classification_pipeline(runs):
    folder = runs / "ner" / "best"
    task = tasks.load_task("wikiner", None)
    tok, limit = encoders.load_init(folder)[2], bert.from_pretrained(folder)[0].max_position_embeddings
    fits = [s for s in task["splits"]["test"] if len(tok.encode(" ".join(s[0])).ids) <= limit]  # no truncation
    task["splits"] = {"test": fits[:8]}
    hf_config = json.loads((folder / "config.json").read_text())
    assert hf_config["architectures"] == ["BertForTokenClassification"]
    assert [hf_config["id2label"][str(i)] for i in range(len(task["labels"]))] == list(task["labels"])
    assert task["labels"] == ("O", "B-ENT", "I-ENT")  # the silver set's BIO tags, in the task's own order

    tok, data, predicted, probs = _scratchlm(folder, task)
    texts = [" ".join(words) for words, _ in task["splits"]["test"]]
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    tagger = transformers.pipeline("token-classification", model=str(folder), device="cpu", ignore_labels=[])
    checked = 0
    for i, (text, out) in enumerate(zip(texts, tagger(texts))):
        n = int(data["attention_mask"][i].sum())
        assert hf_tok(text)["input_ids"] == data["input_ids"][i, :n].tolist()  # words one at a time = the text
        assert [d["index"] for d in out] == list(range(1, n - 1))  # every sub-token but [CLS] and [SEP]
        for d in out:
            t = d["index"]
            assert d["entity"] == task["labels"][predicted[i, t]]
            np.testing.assert_allclose(d["score"], probs[i, t].max(), atol=PROB_TOL)
            checked += 1
    assert checked > 50


def test_pretrained_folder_in_the_fill_mask_pipeline(runs):
    """``OUT/model`` of `scratchlm pretrain`: BertForMaskedLM with its tokenizer; the top tokens and their
    probabilities for a masked word are scratchlm's (:func:`scratchlm.models.bert.mlm_logits`)."""
    folder = runs / "pretrain" / "model"
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    tok = encoders.load_init(folder)[2]
    config, params = bert.from_pretrained(folder)
    text = "the prime minister said the [MASK] would meet on monday ."
    ids = np.asarray([tok.encode(text).ids], np.int32)
    at = int(np.flatnonzero(ids[0] == tok.mask_token_id)[0])
    hidden = bert.apply(params, {"input_ids": ids}, config=config)["last_hidden_state"][0, at]
    p = np.asarray(jax.nn.softmax(bert.mlm_logits(params, hidden, config=config)))
    top = np.argsort(-p)[:5]

    fill = transformers.pipeline("fill-mask", model=str(folder), device="cpu")
    out = fill(text, top_k=5)
    assert [d["token"] for d in out] == top.tolist()
    np.testing.assert_allclose([d["score"] for d in out], p[top], atol=PROB_TOL)


def test_tokenizer_files(runs):
    """tokenizer_config.json names BERT's fast tokenizer with the normalizer's options and the model's length;
    vocab.txt is the vocabulary in id order; special_tokens_map.json the roles."""
    folder = runs / "pol" / "best"
    tok = encoders.load_init(folder)[2]
    tc = json.loads((folder / "tokenizer_config.json").read_text())
    assert tc["tokenizer_class"] == "BertTokenizerFast" and tc["do_lower_case"] is True
    assert tc["model_max_length"] == bert.from_pretrained(folder)[0].max_position_embeddings
    roles = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]",
             "unk_token": "[UNK]"}
    assert json.loads((folder / "special_tokens_map.json").read_text()) == roles
    assert {k: tc[k] for k in roles} == roles
    lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert lines == [tok.id_to_token(i) for i in range(tok.get_vocab_size())]
    # the file the pretraining run wrote and the one fine-tuning copied are the same pipeline
    assert (folder / "tokenizer.json").read_bytes() == (runs / "pretrain" / "model" / "tokenizer.json").read_bytes()


def test_a_sigmoid_head_is_written_as_two_logits_with_the_same_probabilities(runs, tmp_path):
    r"""A one-logit (sigmoid) head of a binary task is saved as the logits (0, z):
    :math:`\mathrm{softmax}(0, z)_1 = \sigma(z)`, so HuggingFace's softmax gives scratchlm's probability."""
    config, params = bert.from_pretrained(runs / "pol" / "best")
    tok = encoders.load_init(runs / "pol" / "best")[2]
    head = bert.init_sequence_classifier(jax.random.key(3), config, 1)
    params = {**params, "classifier": {"weight": 50 * head["weight"], "bias": head["bias"] + 0.3}}
    bert.save_pretrained(tmp_path, params, config, tokenizer=tok, labels=("neg", "pos"), task="sequence")
    texts = ["a gripping , funny film .", "dull and far too long ."]
    batch = tok(texts, padding=True, return_tensors="np")
    sig = ft.FinetuneConfig(task="sequence", num_labels=2, head="sigmoid")
    z = np.asarray(ft.logits(params, batch, encoder=encoders.of(config), config=sig))[:, 0]
    model = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path)
    with torch.no_grad():
        hf = model(**{k: torch.as_tensor(v, dtype=torch.long) for k, v in batch.items()}).logits.softmax(-1).numpy()
    np.testing.assert_allclose(hf[:, 1], 1 / (1 + np.exp(-z)), atol=PROB_TOL)
    assert model.config.id2label == {0: "neg", 1: "pos"}


@pytest.mark.parametrize("change", [{"pre_layer_norm": True}, {"position_embedding_type": "none"}])
def test_an_encoder_transformers_cannot_run_is_refused_there_not_run_wrong(tmp_path, change):
    """transformers' BERT is post-LN with a position table: a pre-LN encoder, or one without positions, would
    load into it without a complaint and predict garbage.  Its folder says model_type "scratchlm-bert", which
    transformers refuses, and scratchlm reads back."""
    import dataclasses

    config = dataclasses.replace(bert.BertConfig(vocab_size=30, hidden_size=8, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=16,
                                                 max_position_embeddings=16), **change)
    assert not config.runs_in_transformers and bert.BertConfig().runs_in_transformers
    params = bert.init(jax.random.key(0), config)
    bert.save_pretrained(tmp_path, params, config)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "scratchlm-bert"
    with pytest.raises(ValueError, match="scratchlm-bert"):
        transformers.AutoConfig.from_pretrained(tmp_path)
    loaded_config, loaded = bert.from_pretrained(tmp_path)
    assert loaded_config == config
    for name, value in bert.flatten_params(params).items():
        np.testing.assert_array_equal(bert.flatten_params(loaded)[name], value)
