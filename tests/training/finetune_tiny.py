"""The tiny models, tasks and settings the fine-tuning tests share (test_finetune.py, test_finetune_lora.py,
test_finetune_gpt.py); their pytest fixtures (``base_params``, ``tiny_checkpoint``) are in conftest.py.

One model, one set of hyper-parameters and one batch shape for all of them: the compiled step depends on
those and on the head, not on the data, so every run of one head shares one compilation, which is most
of a tiny model's test time."""

from __future__ import annotations

import jax
import numpy as np

from scratchlm.data import tasks
from scratchlm.models import bert
from scratchlm.training import encoders
from scratchlm.training import finetune as ft

TINY = bert.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=64)
ENCODER = encoders.of(TINY)
SPECIAL = tasks.SpecialIds(cls=1, sep=2, pad=0, unk=3)

# One set of hyper-parameters for every training test, and for the command runs through their flags
# (see the module's docstring).  20 epochs of one batch at 1e-2 overfit each head with room to spare (every
# head fits its batch by about epoch 12).
# Clipping keeps its default (BERT's 1.0), so the HuggingFace parity test checks it and reuses these
# compilations; warm-up and decay slow the command's 3-fold task below its bound.
EPOCHS, LR, BATCH = 20, 1e-2, 8
COMMAND_FLAGS = ["--epochs", str(EPOCHS), "--lr", str(LR), "--batch-size", str(BATCH), "--dropout", "0",
                 "--warmup-fraction", "0",
                 "--weight-decay", "0", "--max-length", "16"]

# Words of the command tasks; with the specials they fill TINY's 40-piece vocabulary.
VOCAB = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]", "good", "bad", "the", "a", "film", "plot", "cast", "story",
         "music", "ending", "was", "is", "truly", "quite", "ada", "lovelace", "alan", "turing", "grace", "hopper",
         "wrote", "notes", "met", "in", "paris", "london", "and", "."]


def tiny_sequence_data(n=8, seed=0, *, marker=4, special=SPECIAL, max_length=64):
    """n random sentences of 3 to 8 ids from marker+1..39; label 1 iff the sentence holds the id ``marker`` (a
    learnable rule).  BERT's ids: the marker 4 after the specials 0..3; GPT-2's: 1 after its end-of-text 0."""
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(n):
        words = rng.integers(marker + 1, 40, size=rng.integers(3, 9)).tolist()
        if i % 2:
            words[rng.integers(len(words))] = marker
        examples.append((" ".join(map(str, words)), None, i % 2))
    return tasks.encode_sequence_task(examples, lambda s: [int(w) for w in s.split()], special, max_length)


def tiny_token_data(n=8, seed=0):
    """Words are ids; tag 1 (B) on id 4, 2 (I) on the id 5 that follows it, 0 (O) on ids 6..39."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n):
        words = rng.integers(6, 40, size=6).tolist()
        at = int(rng.integers(0, 5))
        words[at], words[at + 1] = 4, 5
        tags = [0] * 6
        tags[at], tags[at + 1] = 1, 2
        sentences.append(([str(w) for w in words], tags))
    return tasks.encode_token_task(sentences, lambda w: [int(w)], SPECIAL, 64), [6] * n


def leaves(params):
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(params)}


def with_head(base_params, config, seed=1):
    return ft.init_classifier(jax.random.key(seed), base_params, ENCODER, config)


def finetune_command(argv):
    """`scratchlm finetune ARGV` in this process; its exit status."""
    import argparse

    from scratchlm.commands import finetune as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def strict_json(path):
    """metrics.json as a strict JSON reader sees it: NaN or Infinity would raise."""
    import json

    def reject(constant):
        raise ValueError(f"{path} holds {constant}, which JSON does not allow")

    return json.loads(path.read_text(), parse_constant=reject)
