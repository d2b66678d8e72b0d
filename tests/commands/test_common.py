"""scratchlm/commands/common.py: the CPU threads of a step, the multi-device flags and the mesh they select."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scratchlm.commands import common
from scratchlm.errors import ScratchlmError

ROOT = Path(__file__).resolve().parents[2]


def test_command_line_flags_build_the_mesh():
    parser = argparse.ArgumentParser()
    common.add_parallel_arguments(parser)
    assert common.setup_parallel(parser.parse_args([])) is None
    mesh = common.setup_parallel(parser.parse_args(["--mesh", "data=1,model=1"]))
    assert dict(mesh.shape) == {"data": 1, "model": 1}
    assert common.setup_parallel(argparse.Namespace()) is None  # a namespace without the flags: one device
    with pytest.raises(ScratchlmError, match="--num-processes"):
        common.setup_parallel(parser.parse_args(["--coordinator", "127.0.0.1:1"]))


def test_building_the_parser_imports_no_jax():
    """``scratchlm --help`` stays instant, and JAX is first imported after the compile cache is set."""
    program = "import sys; from scratchlm import cli; cli.build_parser(); print('jax' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "False"


_THREADS_PROGRAM = """
import collections, json, os

from scratchlm.commands import common
before = sorted(os.sched_getaffinity(0))
limited = common.limit_intra_op_threads(1)
import jax, jax.numpy as jnp
y = float((jnp.ones((64, 64)) @ jnp.ones((64, 64))).sum())
tasks = os.listdir("/proc/self/task")
masks = [sorted(os.sched_getaffinity(int(t))) for t in tasks]
names = collections.Counter(open(f"/proc/self/task/{t}/comm").read().strip() for t in tasks)
print(json.dumps({"before": before, "limited": limited, "again": common.limit_intra_op_threads(1), "y": y,
                  "masks": masks, "eigen": names.get("tf_XLAEigen")}))
"""


def _threads_run(**env_overrides):
    import json

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               **env_overrides)
    done = subprocess.run([sys.executable, "-c", _THREADS_PROGRAM], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux's affinity control and two CPUs")
def test_intra_op_threads_are_limited_and_every_cpu_given_back():
    out = _threads_run()
    assert out["limited"] is True and out["again"] is False  # the backend starts once
    assert out["y"] == 64.0 * 64 * 64
    assert all(mask == out["before"] for mask in out["masks"])  # no thread is left on the narrowed mask
    if out["eigen"] is not None:  # XLA:CPU names its op pool's threads so (jaxlib 0.10); one of them now
        assert out["eigen"] == 1
    # several host devices share the one pool: left alone
    out = _threads_run(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert out["limited"] is False and all(mask == out["before"] for mask in out["masks"])


def test_intra_op_threads_not_limited_when_it_cannot_apply(monkeypatch):
    from jax._src import xla_bridge

    # each refusal below must come from its own condition, not from this process's started backend
    monkeypatch.setattr(xla_bridge, "backends_are_initialized", lambda: False)
    assert common.limit_intra_op_threads(0) is False
    assert common.limit_intra_op_threads(1, environ={"JAX_PLATFORMS": "cpu",
                                                   "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}) is False
    if hasattr(os, "sched_getaffinity"):
        assert common.limit_intra_op_threads(len(os.sched_getaffinity(0))) is False  # no fewer than allowed
    # a GPU/TPU plugin that JAX may pick: its runtime's pools must not start on the narrowed mask
    monkeypatch.setattr(common, "_accelerator_plugin_installed", lambda: True)
    assert common.limit_intra_op_threads(1, environ={"JAX_PLATFORMS": ""}) is False


def test_init_names_resolve_as_from_pretrained_does(tmp_path, monkeypatch):
    """``--init`` (finetune, pretrain) goes through :func:`scratchlm.models.hub.resolve`: a folder, the shipped
    name in any of its spellings, a Hub id (here answered by a stand-in for the download); anything else is an
    error that names the flag."""
    from scratchlm.data import corpora
    from scratchlm.models import hub

    assert common.init_source("minilm") == "minilm" == common.init_source("sentence-transformers/all-MiniLM-L6-v2")
    assert common.resolve_init("All-MiniLM-L6-v2") == corpora.minilm_path()
    assert common.init_source(str(tmp_path)) == "folder" and common.resolve_init(str(tmp_path)) == tmp_path
    assert common.init_source("acme/tiny-bert") == "hub"
    monkeypatch.setattr(hub, "_from_hub", lambda repo_id: tmp_path / repo_id.replace("/", "--"))
    assert common.resolve_init("acme/tiny-bert") == tmp_path / "acme--tiny-bert"
    with pytest.raises(ScratchlmError, match=r"^--init no such model!: no such folder, and not a shipped name"):
        common.init_source("no such model!")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ScratchlmError, match=r"^--init .*f.txt is a file"):
        common.resolve_init(str(tmp_path / "f.txt"))


def test_a_hub_id_without_huggingface_hub_names_the_flag_and_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(ScratchlmError, match=r"^--init acme/tiny-bert: .*pip install huggingface_hub"):
        common.resolve_init("acme/tiny-bert")


def test_finetune_reads_a_hub_id_and_a_pretraining_run_folder(tmp_path, monkeypatch):
    """``finetune``'s ``load_init`` on a Hub id reads the folder the Hub gives (a stand-in here: the offline
    Hub cache itself is tested in tests/models/test_hub.py), and on the run folder of ``scratchlm pretrain``
    reads its ``model/``."""
    import jax
    import numpy as np

    from scratchlm.data import corpora
    from scratchlm.models import bert, hub
    from scratchlm.tokenizers import load
    from scratchlm.training import encoders

    config = bert.BertConfig(vocab_size=30522, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=16, max_position_embeddings=32)
    params = bert.init(jax.random.key(0), config)
    bert.save_pretrained(tmp_path / "run" / "model", params, config,
                         tokenizer=load(corpora.minilm_path() / "tokenizer.json"))
    monkeypatch.setattr(hub, "_from_hub", lambda repo_id: tmp_path / "run" / "model")
    for spec in ("acme/tiny-bert", str(tmp_path / "run")):
        loaded_config, loaded, tok = encoders.load_init(spec)
        assert loaded_config.hidden_size == 8 and tok.get_vocab_size() == 30522
        np.testing.assert_array_equal(loaded["embeddings"]["word_embeddings"]["weight"],
                                      params["embeddings"]["word_embeddings"]["weight"])


def test_a_run_flag_given_is_told_from_its_default():
    """``--checkpoint-every`` at its default and the same value given are one setting but two requests
    (finetune checkpoints inside folds only when asked): :func:`common.given` tells them apart."""
    from scratchlm.training.run import RunConfig

    parser = argparse.ArgumentParser()
    common.add_run_arguments(parser, checkpoint_note="; a note")
    left_out = parser.parse_args(["--out", "x"])
    asked = parser.parse_args(["--out", "x", "--checkpoint-every", str(RunConfig.checkpoint_every)])
    assert left_out.checkpoint_every == asked.checkpoint_every == RunConfig.checkpoint_every
    assert not common.given(left_out, "checkpoint_every") and common.given(asked, "checkpoint_every")
    assert common.result_settings(left_out) == common.result_settings(asked)  # not a setting of the result
    assert "; a note" in parser.format_help()
