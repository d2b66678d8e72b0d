r"""Pretraining the GRU language model with truncated backpropagation through time, and using the result.

The recipe (design document 003 §5.2; Zaremba et al. 2014): the paragraphs are split into a
training part and a held-out tail (whole articles of the Wikipedia sample, in file order), each
part becomes one id stream (:class:`scratchlm.data.codec.TextCodec`), the training stream is cut
into ``B`` parallel streams, and AdamW with a cosine schedule and global-norm clipping minimises the
next-token cross-entropy

.. math::  \mathcal{L} = -\frac{1}{N}\sum_t \log p(w_{t+1} \mid w_{\le t})

over windows of ``seq_len`` tokens, the final state of one window being the initial state of the
next (:func:`scratchlm.models.gru_lm.tbptt_loss`).  :func:`train_lm` returns the parameters, the
metrics and the loop's history; writing them is the command's job (``scratchlm gru-lm train``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from scratchlm import checks
from scratchlm.data.codec import TextCodec
from scratchlm.errors import ScratchlmError
from scratchlm.io import read_text
from scratchlm.models import gru_lm
from scratchlm.training import checkpoint, loop
from scratchlm.training.run import read_record


@dataclass(frozen=True)
class LMConfig:
    """One truncated-BPTT pretraining run (the model's shape is :class:`~scratchlm.models.gru_lm.GRULMConfig`)."""

    seq_len: int = 64  # truncated-BPTT window: gradients flow back at most this many tokens
    batch_size: int = 32  # parallel streams (each window is [batch_size, seq_len] tokens)
    steps: int = 1000  # the command's long-standing default; the demo runs 120-400 at reduced width
    lr: float = 3e-3  # AdamW peak learning rate of the cosine schedule
    clip_norm: float | None = 1.0  # global gradient-norm clip (Pascanu et al. 2013); None: no clipping
    valid_fraction: float = 0.05  # the last 5% of the paragraphs are held out for perplexity
    eval_every: int = 0  # held-out perplexity every N steps (0: at the end only)
    seed: int = 0

    def __post_init__(self):
        for name in ("seq_len", "batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ScratchlmError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        checks.positive("lr", self.lr)
        checks.positive("clip_norm", self.clip_norm, allow_none=True)
        checks.fraction("valid_fraction", self.valid_fraction, low_open=True, high_open=True)
        checks.at_least("eval_every", self.eval_every, 0)


@dataclass
class LMResult:
    params: dict
    metrics: dict  # train/valid/unigram perplexity, tokens/s, token counts
    history: list[dict]  # the loop's evaluations: {"step", "valid_perplexity"}


def held_out(paragraphs: list[str], valid_fraction: float) -> int:
    """How many paragraphs (the last ones) are held out: ``round(N * fraction)``, at least 1, leaving at least 1."""
    n_valid = max(1, round(len(paragraphs) * valid_fraction))
    if len(paragraphs) - n_valid < 1:
        raise ScratchlmError(f"the corpus has {len(paragraphs)} paragraph(s): too few to hold some out for validation")
    return n_valid


def train_lm(paragraphs: list[str], codec: TextCodec, model_config: gru_lm.GRULMConfig, config: LMConfig, *,
             checkpoint_dir: str | Path | None = None, metrics_path: str | Path | None = None,
             progress: bool | None = None, eval_tokens: int | None = None,
             checkpoint_seconds: float = 0.0) -> LMResult:
    """Pretrain through the shared loop and return the result; nothing is written but the loop's
    checkpoints (``checkpoint_dir``: a run there is resumed) and log (``metrics_path``).

    ``eval_tokens`` caps the held-out stream (a quicker evaluation); ``checkpoint_seconds``: also a
    checkpoint every that many seconds (:attr:`scratchlm.training.loop.LoopConfig.checkpoint_seconds`).
    """
    n_valid = held_out(paragraphs, config.valid_fraction)
    train_ids, valid_ids = codec.stream(paragraphs[:-n_valid]), codec.stream(paragraphs[-n_valid:])
    if eval_tokens:
        valid_ids = valid_ids[:eval_tokens]
    return train_on_ids(train_ids, valid_ids, model_config, config, checkpoint_dir=checkpoint_dir,
                        metrics_path=metrics_path, progress=progress, checkpoint_seconds=checkpoint_seconds)


def train_on_ids(train_ids: np.ndarray, valid_ids: np.ndarray, model_config: gru_lm.GRULMConfig, config: LMConfig, *,
                 checkpoint_dir: str | Path | None = None, metrics_path: str | Path | None = None,
                 progress: bool | None = None, checkpoint_seconds: float = 0.0) -> LMResult:
    """:func:`train_lm` on id streams already made (``config.valid_fraction`` unused): the training stream
    cut into ``config.batch_size`` streams, the held-out one scored at the end (the demo's GPT step trains
    the GRU LM on the GPT's own byte-level BPE tokens this way)."""
    seq_len, batch, steps = config.seq_len, config.batch_size, config.steps
    streams = gru_lm.make_streams(train_ids, batch)
    valid_streams = gru_lm.make_streams(valid_ids, min(batch, max(1, len(valid_ids) // (seq_len + 1))))

    key_init, key_run = jax.random.split(jax.random.key(config.seed))
    params = gru_lm.init(key_init, model_config)
    optimizer = loop.make_optimizer(learning_rate=config.lr, total_steps=steps, schedule="cosine",
                                    clip_norm=config.clip_norm)
    h0 = np.zeros((model_config.num_layers, batch, model_config.hidden_size), np.float32)
    state = loop.init_train_state(params, optimizer, key_run, carry=h0)

    def loss_fn(params, batch, key, h):
        return gru_lm.tbptt_loss(params, batch, key, h, config=model_config)

    def eval_fn(params):
        return {"valid_perplexity": gru_lm.perplexity(params, valid_streams, config=model_config, seq_len=seq_len)}

    step_fn = loop.make_train_step(loss_fn, optimizer, carry=True)
    loop_config = loop.LoopConfig(steps=steps, eval_every=config.eval_every or steps,
                                  log_every=max(1, min(50, steps // 10)), checkpoint_dir=checkpoint_dir,
                                  metrics_path=metrics_path, progress=progress,
                                  checkpoint_seconds=checkpoint_seconds, description="gru-lm train")
    t0 = time.perf_counter()
    found = checkpoint.latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    start = int(checkpoint.read_extra(found).get("data_position", 0)) if found else 0  # a resumed run's first step
    result = loop.train(state, step_fn, lambda step: gru_lm.tbptt_batch(streams, step, seq_len), config=loop_config,
                        eval_fn=eval_fn)
    seconds = time.perf_counter() - t0
    params = result.state.params

    train_sample = gru_lm.make_streams(train_ids[: len(valid_ids)], valid_streams.shape[0])
    valid = result.history[-1]["valid_perplexity"] if result.history else eval_fn(params)["valid_perplexity"]
    metrics = {
        "train_perplexity": gru_lm.perplexity(params, train_sample, config=model_config, seq_len=seq_len),
        "valid_perplexity": valid,
        "unigram_perplexity": gru_lm.unigram_perplexity(train_ids, valid_streams, model_config.vocab_size),
        "tokens_per_s": (steps - start) * batch * seq_len / seconds if steps > start else None,
        "steps": steps, "train_tokens": int(train_ids.size), "valid_tokens": int(valid_streams.size),
        "vocab_size": model_config.vocab_size, "seconds": seconds,
    }
    return LMResult(params=params, metrics=metrics, history=list(result.history))


def load_trained(folder: Path) -> tuple[dict, gru_lm.GRULMConfig, TextCodec]:
    """``(params, model_config, codec)`` from a folder written by ``scratchlm gru-lm train``
    (``config.json``'s ``model``, ``params.msgpack``, ``vocab.json`` or ``tokenizer.json``)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "params.msgpack").is_file():
        record = read_record(folder) or {}
        if str(record.get("command", "")).startswith("gru-lm") and record.get("status") != "complete":
            # a killed or running run has checkpoints, no model yet
            raise ScratchlmError(f"{folder} holds an unfinished `gru-lm train` run: run the same train command "
                                 "again to resume it, then use the folder")
        raise ScratchlmError(f"{folder} is not a `gru-lm train` output folder "
                             "(config.json and params.msgpack expected)")
    try:
        config = gru_lm.GRULMConfig(**json.loads(read_text(folder / "config.json"))["model"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ScratchlmError(f"{folder / 'config.json'} is damaged or not written by `gru-lm train` "
                             f"({type(err).__name__}: {err})") from None
    target = jax.eval_shape(lambda: gru_lm.init(jax.random.key(0), config))  # shapes only: nothing to draw
    try:
        params = checkpoint.load_params(folder / "params.msgpack", target)
    except ValueError as err:  # scratchlm.serialization names the missing or unexpected tensors
        raise ScratchlmError(f"{folder / 'params.msgpack'} does not hold the model of its config.json: {err}") from None
    return params, config, TextCodec.load(folder)


def sample_text(params, config: gru_lm.GRULMConfig, codec: TextCodec, prompt: str, *, key, max_new_tokens: int = 40,
                temperature: float = 1.0, top_k: int = 0, top_p: float = 0.9, samples: int = 1) -> list[str]:
    """``samples`` continuations of ``prompt`` (the prompt's text followed by the sampled tokens)."""
    ids = codec.encode(prompt)
    if not ids:
        raise ScratchlmError(f"the prompt {prompt!r} holds no token the tokenizer knows: give at least one word")
    new = gru_lm.generate(params, np.tile(np.asarray(ids, np.int32), (samples, 1)), config=config, key=key,
                          max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    return [codec.decode(ids + row.tolist()) for row in new]
