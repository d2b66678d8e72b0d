"""The fine-tuning tests' fixtures: the tiny BERT's weights and its checkpoint folder (tests/training/finetune_tiny.py
holds the model, tasks and settings).  Module-scoped: each test module builds them once."""

import jax
import pytest

from scratchlm.models import bert
from tests.training.finetune_tiny import TINY, VOCAB


@pytest.fixture(scope="module")
def base_params():
    return bert.init(jax.random.key(0), TINY)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, base_params):
    """TINY's random weights saved as `scratchlm pretrain` would, with MiniLM's tokenizer.json cut
    down to VOCAB: the command then builds the same config, shapes and hyper-parameters (its flags
    are COMMAND_FLAGS) as the training tests, and reuses their compiled programs."""
    import json

    from scratchlm.data import corpora

    spec = json.loads((corpora.minilm_path() / "tokenizer.json").read_text())
    spec["model"]["vocab"] = {piece: i for i, piece in enumerate(VOCAB)}
    for token in spec["added_tokens"]:
        token["id"] = VOCAB.index(token["content"])
    for name, special in spec["post_processor"]["special_tokens"].items():
        special["ids"] = [VOCAB.index(name)]
    path = tmp_path_factory.mktemp("tiny") / "model"
    bert.save_pretrained(path, base_params, TINY)
    (path / "tokenizer.json").write_text(json.dumps(spec))
    return path
