"""hub.resolve / bert.from_pretrained: a folder, the shipped name, or a HuggingFace Hub id (offline cache)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchlm.data.corpora import minilm_path
from scratchlm.errors import ScratchlmError
from scratchlm.models import bert, hub
from tests.random_params import random_params

TINY = bert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=24, max_position_embeddings=20)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_folder_is_itself(tmp_path):
    assert hub.resolve(tmp_path) == tmp_path
    assert hub.resolve(str(tmp_path)) == tmp_path


@pytest.mark.parametrize("name", ["minilm", "MiniLM", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"])
def test_shipped_names_are_the_wheels_copy(name):
    assert hub.resolve(name) == minilm_path()


def test_from_pretrained_minilm_by_name():
    config, params = bert.from_pretrained("minilm")
    config_path, params_path = bert.from_pretrained(minilm_path())
    assert config == config_path
    np.testing.assert_array_equal(params["pooler"]["dense"]["weight"], params_path["pooler"]["dense"]["weight"])


def _hub_cache(root: Path, repo_id: str) -> dict:
    """A HuggingFace Hub cache as huggingface_hub lays it out: models--owner--name/{refs/main, snapshots/<commit>/}."""
    params = random_params(bert.init, TINY)
    folder = root / f"models--{repo_id.replace('/', '--')}"
    bert.save_pretrained(folder / "snapshots" / COMMIT, params, TINY)
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(COMMIT)
    return {k: np.asarray(v) for k, v in bert.flatten_params(params).items()}


CHILD = """
import json, sys
import numpy as np
from scratchlm.errors import ScratchlmError
from scratchlm.models import bert
config, params = bert.from_pretrained("acme/tiny-bert")
np.savez(sys.argv[1], **{k: np.asarray(v) for k, v in bert.flatten_params(params).items()})
try:
    bert.from_pretrained("acme/not-cached")
except ScratchlmError as err:
    print(json.dumps({"error": str(err), "hidden_size": config.hidden_size}))
"""


def test_hub_id_loads_from_the_offline_hub_cache(tmp_path):
    """A fresh process (huggingface_hub reads HF_HUB_OFFLINE and HF_HUB_CACHE when imported) with the network
    switched off: the cached repository loads tensor for tensor, an uncached one is a ScratchlmError."""
    pytest.importorskip("huggingface_hub")
    expected = _hub_cache(tmp_path / "hub", "acme/tiny-bert")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HOME": str(tmp_path / "home"), "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "loaded.npz")], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["hidden_size"] == TINY.hidden_size
    assert "acme/not-cached" in out["error"] and "HuggingFace Hub gave no copy" in out["error"]
    loaded = np.load(tmp_path / "loaded.npz")
    assert sorted(loaded.files) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_array_equal(loaded[name], value)


def test_hub_id_without_huggingface_hub_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(ScratchlmError, match="pip install huggingface_hub"):
        hub.resolve("acme/tiny-bert")


def test_names_that_are_nothing(tmp_path):
    with pytest.raises(ScratchlmError, match="no such folder, and not a shipped name"):
        hub.resolve("no such model!")
    with pytest.raises(ScratchlmError, match="no such folder, and not a shipped name"):
        hub.resolve(tmp_path / "missing" / "deeper" / "folder")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ScratchlmError, match="is a file"):
        bert.from_pretrained(tmp_path / "f.txt")


def test_gpt_from_pretrained_takes_a_hub_id_as_bert_does(tmp_path, monkeypatch):
    """``gpt.from_pretrained("gpt2")`` goes through hub.resolve, as BERT's loader does (it read the id as a
    local path and said "gpt2/config.json not found"); the Hub's fetch is replaced by a saved folder here."""
    from scratchlm.models import gpt

    config = gpt.GPTConfig(vocab_size=30, n_positions=16, n_embd=8, n_layer=1, n_head=2)
    params = random_params(gpt.init, config)
    gpt.save_pretrained(tmp_path / "snapshot", params, config)
    monkeypatch.setattr(hub, "_from_hub", lambda repo_id: tmp_path / "snapshot" if repo_id == "acme/tiny-gpt" else
                        pytest.fail(repo_id))
    loaded_config, loaded = gpt.from_pretrained("acme/tiny-gpt")
    assert loaded_config.n_embd == 8
    np.testing.assert_array_equal(loaded["wte"]["weight"], np.asarray(params["wte"]["weight"], np.float32))
