"""The PEFT adapter folder and the merged model, loaded by ``peft`` / ``transformers``, against scratchlm's logits.

Tolerance 1e-5 (test_bert's for tiny random models): float32 round-off is ~6e-8 relative per operation and a
2-layer, 16-wide forward chains a few hundred of them on activations |h| ~ 1, so two implementations agree to
~1e-6; the issue's bound is 1e-4.  A wrong orientation of A or B (a transpose), a missing alpha / r or an
adapter on the wrong layer moves the logits by ~1e-1 here, since B is drawn non-zero (std 0.3).
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.errors import ScratchlmError
from scratchlm.models import bert, peft_format
from scratchlm.nn import lora
from tests.random_params import random_params

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

TINY = bert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=24, max_position_embeddings=20, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
ATOL = 1e-5


def _batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, TINY.vocab_size, (3, 7)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 5:] = 0
    mask[2, 3:] = 0
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _fine_tuned(task: str, config: lora.LoraConfig, *, pooler: bool = True):
    """(base params as the checkpoint holds them, fine-tuned params with adapters and head); B drawn non-zero,
    as after training, so that the adapters change the logits."""
    base = random_params(bert.init, TINY)
    if not pooler:
        del base["pooler"]
    params = dict(base)
    if task == "token":
        params.pop("pooler", None)
        params["classifier"] = random_params(bert.init_token_classifier, TINY, 5, seed=1)
    else:
        if not pooler:
            params["pooler"] = random_params(bert.init, TINY, seed=3)["pooler"]
        params["classifier"] = random_params(bert.init_sequence_classifier, TINY, 3, seed=1)
    adapters = lora.init(jax.random.key(2), {k: v for k, v in params.items() if k != "classifier"}, config)
    rng = np.random.default_rng(4)
    params[lora.ADAPTERS] = {m: {"lora_A": a["lora_A"], "lora_B": jnp.asarray(0.3 * rng.standard_normal(
        a["lora_B"].shape), jnp.float32)} for m, a in adapters.items()}
    return base, params


def _scratchlm_logits(params, config, task):
    base = {k: v for k, v in params.items() if k != lora.ADAPTERS}
    adapted = lora.adapt(base, params[lora.ADAPTERS], config)
    batch = {k: jnp.asarray(v) for k, v in _batch().items()}
    out = bert.apply(adapted, batch, config=TINY)
    logits = bert.token_logits if task == "token" else bert.sequence_logits
    return np.asarray(logits(adapted, out, config=TINY))


def _torch_logits(model):
    with torch.no_grad():
        return model(**{k: torch.tensor(v, dtype=torch.long) for k, v in _batch().items()}).logits.numpy()


def _compare(got, ref, task):
    if task == "token":
        real = _batch()["attention_mask"].astype(bool)
        got, ref = got[real], ref[real]
    np.testing.assert_allclose(got, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("task, targets", [("sequence", ("query", "value")),
                                           ("token", ("query", "key", "value", "dense"))])
def test_peft_loads_the_adapter_folder_and_transformers_the_merged_model(tmp_path, task, targets):
    """PEFT's PeftModel on transformers' BertFor*Classification gives scratchlm's logits from the adapter
    folder; the merged folder (bert.save_pretrained of lora.merge) gives them with plain transformers."""
    config = lora.LoraConfig(r=4, lora_alpha=6.0, target_modules=targets)
    base, params = _fine_tuned(task, config)
    bert.save_pretrained(tmp_path / "base", base, TINY)
    peft_format.save_adapter(tmp_path / "adapter", params, config, task=task,
                             base_model_name_or_path=str(tmp_path / "base"))
    got = _scratchlm_logits(params, config, task)

    hf_class = transformers.BertForTokenClassification if task == "token" else \
        transformers.BertForSequenceClassification
    num_labels = params["classifier"]["weight"].shape[0]
    hf_base = hf_class.from_pretrained(str(tmp_path / "base"), num_labels=num_labels)
    model = peft.PeftModel.from_pretrained(hf_base, str(tmp_path / "adapter")).eval()
    assert model.peft_config["default"].r == 4 and model.peft_config["default"].lora_alpha == 6.0
    _compare(got, _torch_logits(model), task)

    merged = lora.merge({k: v for k, v in params.items() if k != lora.ADAPTERS}, params[lora.ADAPTERS], config)
    bert.save_pretrained(tmp_path / "merged", merged, TINY)
    _compare(got, _torch_logits(hf_class.from_pretrained(str(tmp_path / "merged")).eval()), task)


def test_a_pooler_the_base_lacks_is_saved_as_a_module(tmp_path):
    """A checkpoint without a pooler (scratchlm's MLM pretraining) gets a fresh one when fine-tuned; listed in
    modules_to_save, PEFT loads it as ``bert.pooler`` instead of transformers' random one."""
    config = lora.LoraConfig(r=2)
    base, params = _fine_tuned("sequence", config, pooler=False)
    bert.save_pretrained(tmp_path / "base", base, TINY)
    peft_format.save_adapter(tmp_path / "adapter", params, config, task="sequence",
                             base_model_name_or_path=str(tmp_path / "base"), modules_to_save=("pooler", "classifier"))
    hf_base = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "base"), num_labels=3)
    model = peft.PeftModel.from_pretrained(hf_base, str(tmp_path / "adapter")).eval()
    _compare(_scratchlm_logits(params, config, "sequence"), _torch_logits(model), "sequence")


def test_adapter_folder_names_and_config(tmp_path):
    """PEFT's names, worked out: layer 1's query adapter and the classifier; A [r, in], B [out, r]."""
    from safetensors.numpy import load_file

    config = lora.LoraConfig(r=3, lora_alpha=16.0, lora_dropout=0.1)
    _, params = _fine_tuned("sequence", config)
    peft_format.save_adapter(tmp_path, params, config, task="sequence", base_model_name_or_path="some/base")
    tensors = load_file(str(tmp_path / "adapter_model.safetensors"))
    name = "base_model.model.bert.encoder.layer.1.attention.self.query"
    assert tensors[f"{name}.lora_A.weight"].shape == (3, 16)
    assert tensors[f"{name}.lora_B.weight"].shape == (16, 3)
    np.testing.assert_array_equal(tensors[f"{name}.lora_B.weight"],
                                  params[lora.ADAPTERS]["encoder.layer.1.attention.self.query"]["lora_B"])
    np.testing.assert_array_equal(tensors["base_model.model.classifier.weight"], params["classifier"]["weight"])
    assert len(tensors) == 2 * 2 * 2 + 2  # 2 layers x {query, value} x {A, B} + classifier weight, bias
    hf = json.loads((tmp_path / "adapter_config.json").read_text())
    assert {k: hf[k] for k in ("peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules",
                               "modules_to_save", "base_model_name_or_path")} == {
        "peft_type": "LORA", "task_type": "SEQ_CLS", "r": 3, "lora_alpha": 16.0, "lora_dropout": 0.1,
        "target_modules": ["query", "value"], "modules_to_save": ["classifier"], "base_model_name_or_path": "some/base"}
    loaded = peft.LoraConfig.from_pretrained(str(tmp_path))
    assert loaded.r == 3 and set(loaded.target_modules) == {"query", "value"}


def test_embedding_adapters_are_refused(tmp_path):
    config = lora.LoraConfig(r=2, target_modules=("word_embeddings",))
    params = random_params(bert.init, TINY)
    params[lora.ADAPTERS] = lora.init(jax.random.key(0), params, config)
    params["classifier"] = random_params(bert.init_sequence_classifier, TINY, 2, seed=1)
    with pytest.raises(ScratchlmError, match="lora_embedding"):
        peft_format.save_adapter(tmp_path, params, config, task="sequence", base_model_name_or_path="x")
