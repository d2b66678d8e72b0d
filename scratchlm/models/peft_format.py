"""LoRA adapters of a BERT or GPT-2 classifier as a HuggingFace PEFT adapter folder.

``peft.PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(base), folder)`` loads
what :func:`save_adapter` writes (``GPT2ForSequenceClassification`` for a GPT-2 model, :data:`GPT2`):

- ``adapter_config.json``: PEFT's ``LoraConfig`` fields (``peft_type: "LORA"``, ``task_type``,
  ``base_model_name_or_path``, ``r``, ``lora_alpha``, ``lora_dropout``, ``target_modules``,
  ``modules_to_save``); the fields left out take PEFT's defaults, which are the plain LoRA of
  :mod:`scratchlm.nn.lora` (no rsLoRA, no DoRA, no bias; ``fan_in_fan_out`` as the config has it: true
  for GPT-2's ``Conv1D``, whose weights are stored ``[in, out]``).
- ``adapter_model.safetensors``: PEFT's tensor names.  An adapter of the module
  ``encoder.layer.0.attention.self.query`` is ``base_model.model.bert.encoder.layer.0.attention.self.
  query.lora_A.weight`` (:math:`A` ``[r, in]``) and ``...lora_B.weight`` (:math:`B` ``[out, r]``),
  scratchlm's arrays as they are (both keep PyTorch's ``[out, in]`` layout); a module to save keeps
  its ``BertFor*Classification`` name under ``base_model.model.`` (``base_model.model.classifier.weight``,
  ``base_model.model.bert.pooler.dense.weight``).  A GPT-2 model's names are ``transformer.h.0.attn.c_attn``
  and ``score`` (:data:`GPT2`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchlm.errors import ScratchlmError
from scratchlm.models.bert import flatten_params
from scratchlm.nn.lora import ADAPTERS, LoraConfig

PREFIX = "base_model.model."  # PeftModel -> LoraModel -> the transformers model
TASK_TYPES = {"sequence": "SEQ_CLS", "token": "TOKEN_CLS"}


@dataclass(frozen=True)
class Layout:
    """Where a transformers ``*For*Classification`` model keeps scratchlm's params: ``heads`` at the top,
    everything else under ``base`` (the encoder's attribute); ``embeddings`` the top-level names of the
    embedding tables (PEFT adapts those with other tensors, which scratchlm does not write)."""

    base: str
    heads: tuple[str, ...]
    embeddings: tuple[str, ...]

    def hf_name(self, module: str) -> str:
        """A module name as the transformers model has it: a head at the top, the encoder under ``base.``."""
        return module if module.split(".")[0] in self.heads else f"{self.base}.{module}"


BERT = Layout(base="bert", heads=("classifier",), embeddings=("embeddings",))  # BertFor*Classification
GPT2 = Layout(base="transformer", heads=("score",), embeddings=("wte", "wpe"))  # GPT2ForSequenceClassification


def adapter_state_dict(params: dict, modules_to_save: tuple[str, ...], layout: Layout = BERT) -> dict[str, np.ndarray]:
    """PEFT's ``adapter_model.safetensors`` content from params carrying adapters under ``params["lora"]``."""
    adapters = params[ADAPTERS]
    for module in adapters:
        if module.split(".")[0] in layout.embeddings:
            raise ScratchlmError(f"LoRA on {module}: PEFT adapts embedding tables with lora_embedding_A/B, which "
                                 "scratchlm does not write; adapt dense layers only")
    tensors = {}
    for module, adapter in adapters.items():
        for name in ("lora_A", "lora_B"):
            tensors[f"{PREFIX}{layout.hf_name(module)}.{name}.weight"] = adapter[name]
    for module in modules_to_save:
        if module not in params:
            raise ScratchlmError(f"module to save {module!r} is not in the params ({sorted(params)})")
        for name, value in flatten_params(params[module], f"{module}.").items():
            tensors[PREFIX + layout.hf_name(name)] = value
    return {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in tensors.items()}


def adapter_config(config: LoraConfig, *, task: str, base_model_name_or_path: str,
                   modules_to_save: tuple[str, ...]) -> dict:
    """The ``adapter_config.json`` dict PEFT's ``LoraConfig.from_pretrained`` reads."""
    if task not in TASK_TYPES:
        raise ScratchlmError(f"task must be one of {sorted(TASK_TYPES)}, got {task!r}")
    return {"peft_type": "LORA", "task_type": TASK_TYPES[task], "base_model_name_or_path": base_model_name_or_path,
            "r": config.r, "lora_alpha": config.lora_alpha, "lora_dropout": config.lora_dropout,
            "target_modules": list(config.target_modules), "modules_to_save": list(modules_to_save),
            "bias": "none", "fan_in_fan_out": config.fan_in_fan_out, "use_rslora": False, "use_dora": False,
            "init_lora_weights": True, "inference_mode": True}


def save_adapter(path: str | Path, params: dict, config: LoraConfig, *, task: str, base_model_name_or_path: str,
                 modules_to_save: tuple[str, ...] = ("classifier",), layout: Layout = BERT) -> Path:
    """Write a PEFT adapter folder (``adapter_config.json``, ``adapter_model.safetensors``); returns it.

    Args: params the fine-tuned params with ``params["lora"]`` and the modules to save (the
    classifier; a pooler the base checkpoint lacks); config the run's :class:`LoraConfig`; task
    ``"sequence"`` or ``"token"``; base_model_name_or_path the folder or Hub id PEFT loads the base
    model from; layout the transformers model's names (:data:`BERT`, :data:`GPT2`).
    """
    from safetensors.numpy import save

    from scratchlm.io import atomic_write_bytes, atomic_write_text

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = adapter_state_dict(params, modules_to_save, layout)
    hf = adapter_config(config, task=task, base_model_name_or_path=base_model_name_or_path,
                        modules_to_save=modules_to_save)
    atomic_write_bytes(path / "adapter_model.safetensors", save(tensors, metadata={"format": "pt"}))
    atomic_write_text(path / "adapter_config.json", json.dumps(hf, indent=2) + "\n")
    return path


__all__ = ["BERT", "GPT2", "PREFIX", "TASK_TYPES", "Layout", "adapter_state_dict", "adapter_config", "save_adapter"]
