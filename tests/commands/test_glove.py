"""`scratchlm glove` (scratchlm/commands/glove.py): flags -> configs -> recipe -> files."""

import argparse
import json

import numpy as np

from scratchlm.embeddings.glove.config import GloveConfig
from scratchlm.embeddings.glove.cooccurrence import CooccurrenceConfig
from tests.training.test_glove import planted_corpus


def test_flag_defaults_are_the_configs_defaults():
    """One source of truth: every training and counting flag's default is the config field's."""
    from scratchlm.commands import glove as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--out", "run"])
    g, c = GloveConfig(), CooccurrenceConfig()
    assert (args.dim, args.x_max, args.alpha, args.lr, args.epochs, args.batch_size, args.output) == (
        g.dim, g.x_max, g.alpha, g.lr, g.epochs, g.batch_size, g.output)
    assert (args.window, not args.left_only, args.min_count, args.vocab_size, args.max_memory_mb) == (
        c.window, c.symmetric, c.min_count, c.max_size, c.max_memory_mb)
    assert g.x_max == 10.0  # glove.c's demo.sh, not the paper's 100 (GloveConfig's comment says why)


def test_command_writes_vectors_gensim_loads(tmp_path):
    """`scratchlm glove` end to end on a tiny corpus file: both vector files and metrics.json."""
    from gensim.models import KeyedVectors

    from scratchlm.cli import main

    corpus = tmp_path / "corpus.txt"
    sentences, _, _ = planted_corpus(n=300)
    corpus.write_text("\n".join(" ".join(s) for s in sentences) + "\n")
    out = tmp_path / "out"
    assert main(["glove", "--corpus", str(corpus), "--dim", "8", "--window", "3", "--min-count", "1",
                 "--epochs", "2", "--batch-size", "64", "--out", str(out), "--save-cooccurrence"]) == 0
    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))
    glove_kv = KeyedVectors.load_word2vec_format(str(out / "vectors.glove.txt"), no_header=True)
    assert kv.vector_size == 8 and len(kv) == 44 and list(kv.index_to_key) == list(glove_kv.index_to_key)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nonzeros"] > 0 and metrics["epochs_run"] == 2 and np.isfinite(metrics["final_cost"])
    assert (out / "cooccurrence.npz").exists()
    assert main(["glove", "--corpus", str(corpus), "--window", "0", "--out", str(out)]) == 2  # a clear error
