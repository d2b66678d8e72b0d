r"""Causal language-model pretraining of GPT-2 (Radford et al. 2018 §3.1, 2019 §2): next-token prediction.

.. math::  \mathcal{L}(\theta) = -\frac{1}{N}\sum_{b,t} \log p_\theta(x_{b,t+1} \mid x_{b,\le t})

(:func:`scratchlm.models.gpt.causal_lm_loss`).  The pieces, in the order data meets them:

* :func:`pack_stream` joins the tokenized documents, each followed by the end-of-text id (GPT-2's
  ``<|endoftext|>`` between documents, Radford et al. 2019 §2.2), and cuts full rows of ``seq_len``:
  no padding, every position a target;
* the loop, the optimizer (AdamW, warm-up + linear decay, clipping), the batch order, the held-out
  split and the mesh are masked-LM pretraining's (:mod:`scratchlm.training.pretrain`: ``PretrainConfig``,
  ``split_documents``, ``batch_fn_for``; :func:`scratchlm.training.pretrain_loop.train_on_mesh`), so both
  architectures run through one recipe shape, on one device or a mesh;
* :func:`make_eval_fn` scores the held-out rows (mean NLL per target token), and the baseline is the
  add-one unigram model of the training tokens (:func:`scratchlm.models.gru_lm.unigram_perplexity_of_counts`),
  the cross-entropy any model that has learned nothing about context cannot beat.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm import jsonio
from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.models import gpt
from scratchlm.models.bert import count_params
from scratchlm.models.gru_lm import unigram_perplexity_of_counts
from scratchlm.nn.losses import softmax_cross_entropy
from scratchlm.training.pretrain import PretrainConfig, batch_fn_for, peak_flops, split_documents

# The decoder `scratchlm pretrain --arch gpt` builds: the shape of SMALL_BERT (training/pretrain.py: L = 4,
# H = 256, 4 heads, FFN 4H, 8,000 tokens, 128 positions) so the two objectives can be compared at equal size;
# a byte-level BPE vocabulary trained on the corpus (GPT-2's 50,257 covers WebText, a sample needs fewer).
# Dropout: GPT-2's 0.1 (GPTConfig's).
SMALL_GPT = gpt.GPTConfig(vocab_size=8000, n_positions=128, n_embd=256, n_layer=4, n_head=4)
END_OF_TEXT = "<|endoftext|>"


def pack_stream(token_ids: list[list[int]], seq_len: int, *, eos_id: int) -> np.ndarray:
    """Concatenate the documents, each followed by ``eos_id``, and cut rows of ``seq_len`` tokens (the tail
    shorter than a row is dropped).  Returns int32 [N, seq_len]."""
    if seq_len < 2:
        raise ScratchlmError(f"seq_len must be at least 2 (one input, one target), got {seq_len}")
    stream = [t for ids in token_ids if ids for t in (*ids, eos_id)]
    n = len(stream) // seq_len
    if n == 0:
        raise CorpusError(f"the corpus holds {len(stream)} tokens, fewer than one sequence of {seq_len}")
    return np.asarray(stream[: n * seq_len], np.int32).reshape(n, seq_len)


def token_rows(texts: list[str], tokenizer, run: PretrainConfig, *,
               share: Callable[[list], list] = lambda docs: docs) -> tuple[np.ndarray, np.ndarray]:
    """The training and held-out rows [N, seq_len] of ``texts``: the last ``run.heldout_fraction`` of the documents
    held out (:func:`scratchlm.training.pretrain.split_documents`), each part tokenized and packed
    (:func:`pack_stream`), the held-out rows cut to ``run.max_heldout_rows``.  ``share`` picks the training
    documents this process reads (all of them by default; :func:`pretrain` gives each process its share).  Any
    other model scored on the held-out rows (the demo's GRU LM) is scored on the same tokens."""
    eos = tokenizer.token_to_id(END_OF_TEXT)
    if eos is None:
        raise ScratchlmError(f"the tokenizer has no {END_OF_TEXT} token; causal-LM pretraining separates documents "
                             "with it")
    train_docs, heldout_docs = split_documents(texts, run.heldout_fraction)
    train_docs = share(train_docs)
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def encode(docs):
        return [e.ids for e in tokenizer.encode_batch(docs, add_special_tokens=False)]

    train_rows = pack_stream(encode(train_docs), run.seq_len, eos_id=eos)
    return train_rows, pack_stream(encode(heldout_docs), run.seq_len, eos_id=eos)[: run.max_heldout_rows]


def lm_loss(params: dict, batch: dict, key: jax.Array, *, config: gpt.GPTConfig,
            train: bool = True) -> tuple[jax.Array, dict]:
    """The shared loop's ``loss_fn(params, batch, key)``: :func:`scratchlm.models.gpt.causal_lm_loss` and its
    perplexity."""
    loss = gpt.causal_lm_loss(params, batch, config=config, key=key, train=train)
    return loss, {"perplexity": jnp.exp(loss)}


@functools.cache
def _nll_program(config: gpt.GPTConfig):
    def nll(params, batch):
        logits = gpt.apply(params, batch, config=config)["logits"][:, :-1]
        targets = jnp.where(batch["attention_mask"][:, 1:] > 0, batch["input_ids"][:, 1:], -100)
        return softmax_cross_entropy(logits, targets, reduction="sum"), jnp.sum(targets != -100)

    return jax.jit(nll)


def make_eval_fn(rows: np.ndarray, *, config: gpt.GPTConfig, batch_size: int):
    r"""``eval_fn(params) -> {"loss", "perplexity"}``: the mean next-token NLL over every target of the held-out
    rows, :math:`-\frac{1}{N}\sum \log p(x_{t+1} \mid x_{\le t})`, and its exponential.  A short last batch is
    filled with rows whose mask is 0 (no target counted): one compilation."""
    program = _nll_program(config)

    def eval_fn(params) -> dict:
        total, count = 0.0, 0
        for start in range(0, len(rows), batch_size):
            ids = rows[start : start + batch_size]
            mask = np.ones_like(ids)
            pad = batch_size - len(ids)
            if pad:
                ids = np.concatenate([ids, np.repeat(ids[:1], pad, axis=0)])
                mask = np.concatenate([mask, np.zeros((pad, ids.shape[1]), mask.dtype)])
            nll, n = program(params, {"input_ids": jnp.asarray(ids), "attention_mask": jnp.asarray(mask)})
            total, count = total + float(nll), count + int(n)
        return {"loss": total / count, "perplexity": math.exp(total / count)}

    return eval_fn


def pretrain(texts: list[str], tokenizer, model_config: gpt.GPTConfig, run: PretrainConfig, *,
             out: str | Path, init_params: dict | None = None, progress: bool | None = None, mesh=None,
             checkpoint_seconds: float = 0.0) -> dict:
    """Tokenize, pack and train next-token prediction; write ``out/model`` (HuggingFace GPT-2 layout +
    ``tokenizer.json``) and ``out/metrics.json``.  Returns the metrics dict: held-out loss at the start and
    the end (``heldout_loss_start``, ``heldout_loss_end``), perplexity, the unigram baseline, tokens/s and MFU
    (where the device's peak is known), and the ``mesh`` it trained on.

    ``tokenizer`` is a scratchlm :class:`~scratchlm.tokenizers.Tokenizer` holding ``<|endoftext|>``;
    ``init_params`` continues from those weights.  ``mesh`` (a :func:`scratchlm.distributed.make_mesh`)
    trains on several devices as masked-LM pretraining does, through the same
    :func:`scratchlm.training.pretrain_loop.train_on_mesh`: data parallel on ``data=N``, FSDP when
    ``model > 1``; with several processes each tokenizes and feeds its share of the training documents, the
    unigram baseline counts every process's tokens, and process 0 writes the model and metrics.  A run with
    checkpoints in ``out/checkpoints`` resumes from the latest, on any mesh.
    """
    from scratchlm import distributed as par
    from scratchlm.training.pretrain_loop import local_batch, train_on_mesh

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer.get_vocab_size() > model_config.vocab_size:
        raise ScratchlmError(f"tokenizer vocabulary ({tokenizer.get_vocab_size()}) exceeds the model's "
                             f"vocab_size ({model_config.vocab_size})")
    if run.seq_len > model_config.n_positions:
        raise ScratchlmError(f"seq_len {run.seq_len} exceeds n_positions {model_config.n_positions}")

    rows_per_step = local_batch(run.batch_size, mesh)
    train_rows, heldout_rows = token_rows(texts, tokenizer, run, share=par.process_shard)
    counts = np.bincount(train_rows.ravel(), minlength=tokenizer.get_vocab_size())
    if jax.process_count() > 1:  # the baseline of every process's training tokens, not of this one's share
        counts = sum(a["counts"] for a in par.allgather_arrays({"counts": counts}))
    unigram_loss = math.log(unigram_perplexity_of_counts(counts, heldout_rows[:, 1:]))

    key = jax.random.key(run.seed, impl="rbg")  # as masked-LM pretraining: the hardware generator for dropout
    k_init, k_train = jax.random.split(key)
    params = init_params if init_params is not None else gpt.init(k_init, model_config)
    eval_fn = make_eval_fn(heldout_rows, config=replace(model_config, dtype="float32"), batch_size=run.batch_size)
    done = train_on_mesh(params, lambda p, b, k: lm_loss(p, b, k, config=model_config), eval_fn,
                         batch_fn_for({"input_ids": train_rows}, rows_per_step, run.seed), run, key=k_train, out=out,
                         mesh=mesh, progress=progress, checkpoint_seconds=checkpoint_seconds,
                         description="pretrain (causal LM)")
    before, after, final = done.before, done.after, done.final
    if done.lead:
        gpt.save_pretrained(out / "model", final, model_config)
        tokenizer.save(out / "model" / "tokenizer.json")

    flops = gpt.flops_per_token(model_config, run.seq_len)
    peak = peak_flops()
    metrics = {
        "heldout_loss_start": before["loss"], "heldout_loss_end": after["loss"],
        "perplexity_start": before["perplexity"], "perplexity": after["perplexity"],
        "unigram_loss": unigram_loss, "unigram_perplexity": math.exp(unigram_loss),
        "heldout_sequences": int(len(heldout_rows)), "train_sequences": int(len(train_rows)),
        "steps": run.steps, "batch_size": run.batch_size, "seq_len": run.seq_len,
        "train_seconds": done.train_seconds, "tokens_per_s": done.tokens_per_s, "flops_per_token": flops,
        "mfu": done.tokens_per_s * flops / peak if peak else None, "peak_flops": peak, **done.placement(mesh),
        "parameters": count_params(final), "model_config": model_config.to_hf_dict(),
        "vocab_size": tokenizer.get_vocab_size(), "history": done.result.history,
        "final_train_loss": done.final_train_loss,
    }
    if done.lead:
        jsonio.write(out / "metrics.json", metrics)
    return metrics
