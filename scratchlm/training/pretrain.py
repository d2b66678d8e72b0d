"""Masked-LM pretraining of a BERT encoder (Devlin et al. 2019, §3.1 "Task #1: Masked LM").

The pieces, in the order data meets them:

* :func:`pack_sequences` cuts the tokenized corpus into full-length ``[CLS] … [SEP]`` rows (RoBERTa's
  FULL-SENTENCES packing, Liu et al. 2019 §4.2: no padding, no next-sentence task);
* :func:`mask_tokens` selects 15% of the non-special tokens and replaces them 80/10/10, on the
  device, with the step's key, so every epoch sees a fresh masking (RoBERTa's dynamic masking);
* :func:`mlm_loss` is the cross-entropy on the selected positions only, through the tied decoder;
* :func:`pretrain` wires them into the shared loop (:mod:`scratchlm.training.loop`: AdamW, warmup
  + linear decay, clipping, checkpoints) on one device or a mesh, through
  :func:`scratchlm.training.pretrain_loop.train_on_mesh` (causal-LM pretraining's too), and writes the
  final model with HuggingFace names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm import checks, jsonio
from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.models import bert
from scratchlm.nn.losses import softmax_cross_entropy, top1_correct


@dataclass(frozen=True)
class MaskingConfig:
    """BERT's masking recipe (Devlin et al. 2019, §3.1 and appendix A.1)."""

    mask_token_id: int
    vocab_size: int
    mlm_probability: float = 0.15  # share of (non-special) tokens selected for prediction
    mask_fraction: float = 0.8  # of the selected: replaced by [MASK]
    random_fraction: float = 0.1  # of the selected: replaced by a random token (the rest stay unchanged)

    def max_predictions(self, seq_len: int) -> int:
        """Static number K of prediction slots per row: round(p T), at least 1 (BERT's max_predictions_per_seq)."""
        return max(1, int(round(self.mlm_probability * seq_len)))


def mask_tokens(key: jax.Array, input_ids: jax.Array, special_tokens_mask: jax.Array, *, masking: MaskingConfig):
    r"""BERT's masking: choose :math:`n_b = \mathrm{round}(0.15\, c_b)` of the :math:`c_b` candidate tokens
    of row :math:`b` uniformly without replacement; of those, 80% become ``[MASK]``, 10% a uniformly
    random token, 10% stay as they are.

    .. math::  S_b \subset C_b,\ |S_b| = \mathrm{round}(p\,|C_b|); \qquad
               \tilde x_t = \begin{cases} \texttt{[MASK]} & u_t < 0.8 \\
                                          r_t \sim U\{0..V-1\} & 0.8 \le u_t < 0.9 \\
                                          x_t & \text{otherwise} \end{cases} \quad (t \in S_b)

    Candidates :math:`C_b` are the positions that are neither special (``[CLS]``, ``[SEP]``) nor
    padding: ``special_tokens_mask`` is 1 on all of those.  The selection is exact per row, as in
    BERT's ``create_pretraining_data.py``; its positions are returned as a fixed-size ``[B, K]``
    list (K = :meth:`MaskingConfig.max_predictions` of T), so the decoder runs on K rows instead of
    T (HuggingFace's collator draws Bernoulli(0.15) per token and decodes every position).  The
    random token is drawn from the whole vocabulary, as BERT and HuggingFace do.

    Args: key PRNG key; input_ids [B, T]; special_tokens_mask [B, T] (1 = never select).
    Returns (masked_ids [B, T], positions [B, K], labels [B, K] original ids, weights [B, K] 1/0).
    """
    B, T = input_ids.shape
    K = masking.max_predictions(T)
    # one uniform draw serves the selection order, the 80/10/10 choice and the random token: every
    # separate jax.random call compiles its own threefry kernel, seconds each on a CPU
    u_all = jax.random.uniform(key, (B, T + 2 * K))
    u_pick, u_kind, u_token = u_all[:, :T], u_all[:, T:T + K], u_all[:, T + K:]
    candidate = special_tokens_mask == 0
    n = jnp.clip(jnp.round(masking.mlm_probability * candidate.sum(-1)), 0, K).astype(jnp.int32)  # [B]
    # a uniform random order of the candidates: the top-K noise values are a uniform K-subset
    _, positions = jax.lax.top_k(jnp.where(candidate, u_pick, -1.0), K)  # [B, K]
    weights = (jnp.arange(K)[None, :] < n[:, None]).astype(jnp.float32)  # first n_b slots are used
    labels = jnp.take_along_axis(input_ids, positions, axis=1)
    random_ids = jnp.minimum((u_token * masking.vocab_size).astype(input_ids.dtype), masking.vocab_size - 1)
    new = jnp.where(u_kind < masking.mask_fraction, masking.mask_token_id,
                    jnp.where(u_kind < masking.mask_fraction + masking.random_fraction, random_ids, labels))
    new = jnp.where(weights > 0, new, labels)  # unused slots write the original id back
    rows = jnp.arange(B)[:, None]
    masked_ids = input_ids.at[rows, positions].set(new.astype(input_ids.dtype))
    return masked_ids, positions, labels, weights


def mlm_loss(params: dict, batch: dict, key: jax.Array, *, config: bert.BertConfig, masking: MaskingConfig,
             train: bool = True) -> tuple[jax.Array, dict]:
    r"""Masked-LM loss: mean cross-entropy over the selected positions only (Devlin et al. 2019, §3.1).

    .. math::  \mathcal{L} = -\frac{1}{|S|} \sum_{(b,t) \in S} \log \mathrm{softmax}(\mathrm{logits}_{b,t})_{x_{b,t}}

    The logits and the softmax are float32 whatever the compute dtype.  ``key`` is split for the
    masking and the dropout.  Returns (loss, {"accuracy", "predictions"}); the signature is the
    shared loop's ``loss_fn(params, batch, key)`` once ``config`` and ``masking`` are bound.
    """
    k_mask, k_drop = jax.random.split(key)
    masked_ids, positions, labels, weights = mask_tokens(k_mask, batch["input_ids"], batch["special_tokens_mask"],
                                                         masking=masking)
    inputs = {"input_ids": masked_ids, "attention_mask": batch.get("attention_mask"),
              "token_type_ids": batch.get("token_type_ids")}
    h = bert.apply(params, inputs, config=config, key=k_drop, train=train)["last_hidden_state"]
    h_S = jnp.take_along_axis(h, positions[..., None], axis=1)  # [B, T, H] -> [B, K, H]
    logits = bert.mlm_logits(params, h_S, config=config)  # [B, K, V] float32
    targets = jnp.where(weights > 0, labels, -100)
    loss = softmax_cross_entropy(logits, targets, ignore_index=-100)
    hits = top1_correct(logits, labels) * weights
    return loss, {"accuracy": hits.sum() / jnp.maximum(weights.sum(), 1.0), "predictions": weights.sum()}


# ---------------------------------------------------------------------------------------------- data


def pack_sequences(token_ids: list[list[int]], seq_len: int, *, cls_id: int, sep_id: int) -> np.ndarray:
    """Concatenate the documents (``[SEP]`` between them) and cut ``[CLS] chunk [SEP]`` rows of ``seq_len``.

    No padding is needed; the tail shorter than a row is dropped.  Returns int32 [N, seq_len].
    """
    if seq_len < 3:
        raise ScratchlmError(f"seq_len must be at least 3 ([CLS] token [SEP]), got {seq_len}")
    stream = []
    for ids in token_ids:
        if ids:
            stream.extend(ids)
            stream.append(sep_id)
    body = seq_len - 2
    n = len(stream) // body
    if n == 0:
        raise CorpusError(f"the corpus holds {len(stream)} tokens, fewer than one sequence of {seq_len}")
    chunks = np.asarray(stream[: n * body], np.int32).reshape(n, body)
    return np.concatenate([np.full((n, 1), cls_id, np.int32), chunks, np.full((n, 1), sep_id, np.int32)], axis=1)


def make_batches(rows: np.ndarray, special_ids: tuple[int, ...]) -> dict[str, np.ndarray]:
    """HuggingFace-named arrays for packed rows: one segment, specials flagged, and no
    ``attention_mask`` because nothing is padded (the fused attention kernel then runs maskless)."""
    return {"input_ids": rows, "token_type_ids": np.zeros_like(rows),
            "special_tokens_mask": np.isin(rows, np.asarray(special_ids)).astype(np.int32)}


def batch_fn_for(data: dict[str, np.ndarray], batch_size: int, seed: int):
    """``batch_fn(step)``: a deterministic function of the step, a fresh permutation every epoch."""
    N = len(data["input_ids"])
    per_epoch = max(N // batch_size, 1)
    if N < batch_size:
        raise CorpusError(f"{N} training sequences, fewer than one batch of {batch_size}")

    def batch_fn(step: int) -> dict:
        epoch, i = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(N)
        idx = perm[i * batch_size:(i + 1) * batch_size]
        return {k: jnp.asarray(v[idx]) for k, v in data.items()}

    return batch_fn


@functools.cache
def _eval_program(config: bert.BertConfig, masking: MaskingConfig):
    """The jitted held-out loss, one per (config, masking): runs alike (on one device or a mesh) share its
    compilation."""
    return jax.jit(lambda p, b, k: mlm_loss(p, b, k, config=config, masking=masking, train=False))


def make_eval_fn(data: dict[str, np.ndarray], *, config: bert.BertConfig, masking: MaskingConfig,
                 batch_size: int, seed: int):
    """``eval_fn(params) -> {"mlm_loss", "mlm_accuracy"}`` on held-out rows with a fixed masking key,
    so every evaluation scores the same masked positions (weighted by their count)."""
    step = _eval_program(config, masking)
    key = jax.random.key(seed)
    N = len(data["input_ids"])

    def eval_fn(params) -> dict:
        totals = np.zeros(3)
        for j, start in enumerate(range(0, N, batch_size)):
            b = {k: v[start:start + batch_size] for k, v in data.items()}
            pad = batch_size - len(b["input_ids"])
            if pad:  # a short last batch is filled with all-special rows (nothing selected, weight 0): one compilation
                b = {k: np.concatenate([v, np.repeat(v[:1], pad, axis=0)]) for k, v in b.items()}
                b["special_tokens_mask"][-pad:] = 1
            loss, m = step(params, {k: jnp.asarray(v) for k, v in b.items()}, jax.random.fold_in(key, j))
            w = float(m["predictions"])
            totals += (float(loss) * w, float(m["accuracy"]) * w, w)
        return {"mlm_loss": totals[0] / totals[2], "mlm_accuracy": totals[1] / totals[2]}

    return eval_fn


# ------------------------------------------------------------------------------------------ hardware

# Dense bfloat16 peak FLOP/s by JAX device_kind (vendor data sheets; no sparsity).
PEAK_BF16_FLOPS = {
    "NVIDIA H100 80GB HBM3": 989e12,  # H100 SXM
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989e12,  # same GH100 compute as H100 SXM
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA L4": 121e12,
    "NVIDIA GeForce RTX 4090": 165e12,
}


def peak_flops(device=None) -> float | None:
    """The device's dense bf16 peak (FLOP/s), or None where unknown (CPUs: MFU is not reported)."""
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return None
    kind = device.device_kind
    if kind in PEAK_BF16_FLOPS:
        return PEAK_BF16_FLOPS[kind]
    return next((v for k, v in PEAK_BF16_FLOPS.items() if kind.startswith(k) or k.startswith(kind)), None)


# ------------------------------------------------------------------------------------------ the run


# The encoder `scratchlm pretrain` builds when no checkpoint is given: BERT-Mini's shape (Turc et al. 2019:
# L = 4, H = 256, 4 heads of 64, FFN 4H), small enough to train on a CPU in minutes; a WordPiece vocabulary of
# 8,000 pieces trained on the corpus (BERT's 30,522 covers all of Wikipedia and BooksCorpus, a sample needs far
# fewer); a position table of 128, BERT's length for 90% of its steps (Devlin et al. 2019, appendix A.2), grown
# to the sequence length when that is longer.  Dropout and the rest: BertConfig's (BERT's own).
SMALL_BERT = bert.BertConfig(vocab_size=8000, num_hidden_layers=4, hidden_size=256, num_attention_heads=4,
                             intermediate_size=1024, max_position_embeddings=128)


@dataclass(frozen=True)
class PretrainConfig:
    seq_len: int = 128  # Devlin et al. 2019, appendix A.2: 90% of steps at 128
    batch_size: int = 32  # fits a CPU; BERT used 256
    steps: int = 1000  # minutes for SMALL_BERT on a CPU; BERT trained 1M
    # BERT's 1e-4 (appendix A.2) is for BERT-base over 1M steps; a small encoder trained from scratch for ~1k
    # steps takes a larger one: 5e-4, the rate `scratchlm pretrain` has always defaulted to
    lr: float = 5e-4
    # None: 10% of steps, at least 1 and at most steps - 1 (BERT warms 10k of 1M; short runs need more)
    warmup_steps: int | None = None
    weight_decay: float = 0.01  # Devlin et al. 2019, appendix A.2
    clip_norm: float = 1.0  # the released BERT's clip_by_global_norm
    heldout_fraction: float = 0.05  # whole documents held out for the held-out MLM loss
    max_heldout_rows: int = 256  # bounds the evaluation's time, not its meaning
    eval_every: int = 0  # 0: only at the start and the end
    log_every: int = 25
    seed: int = 0

    def __post_init__(self):
        """The settings come from flags: a bad one is a :class:`ScratchlmError` naming it."""
        if self.seq_len < 3:
            raise ScratchlmError(f"seq_len must be at least 3 ([CLS] token [SEP]), got {self.seq_len}")
        for name in ("batch_size", "steps"):
            checks.at_least(name, getattr(self, name), 1)
        checks.positive("lr", self.lr)
        checks.at_least("weight_decay", self.weight_decay, 0)
        checks.positive("clip_norm", self.clip_norm)
        checks.at_least("eval_every", self.eval_every, 0)
        checks.at_least("log_every", self.log_every, 1)
        checks.at_least("max_heldout_rows", self.max_heldout_rows, 1)
        if self.warmup_steps is not None:
            checks.at_least("warmup_steps", self.warmup_steps, 0)
            if self.warmup_steps >= self.steps:
                raise ScratchlmError(f"--warmup-steps must be below --steps ({self.steps}), got {self.warmup_steps}")
        checks.fraction("heldout_fraction", self.heldout_fraction, low_open=True, high_open=True)

    @property
    def resolved_warmup_steps(self) -> int:
        """``warmup_steps``, or by default 10% of the steps, at least 1, and below ``steps`` (so ``--steps 1`` runs)."""
        if self.warmup_steps is not None:
            return self.warmup_steps
        return min(max(1, self.steps // 10), self.steps - 1)


def split_documents(documents: list, fraction: float) -> tuple[list, list]:
    """The last ``fraction`` of the documents held out (whole documents, so no text leaks across)."""
    k = max(1, int(round(len(documents) * fraction)))
    if len(documents) < 2:
        raise CorpusError(f"need at least 2 documents to hold one out, got {len(documents)}")
    return documents[:-k], documents[-k:]


def pretrain(texts: list[str], tokenizer, model_config: bert.BertConfig, run: PretrainConfig, *,
             out: str | Path, init_params: dict | None = None, progress: bool | None = None, mesh=None,
             checkpoint_seconds: float = 0.0) -> dict:
    """Tokenize, pack, mask and train; write ``out/model`` (a HuggingFace ``BertForMaskedLM``
    folder: safetensors, config.json and the tokenizer's files, :func:`scratchlm.models.bert.save_pretrained`)
    and ``out/metrics.json``.  Returns the metrics dict.

    ``tokenizer`` is a scratchlm WordPiece :class:`~scratchlm.tokenizers.Tokenizer` with ``[CLS]``,
    ``[SEP]``, ``[PAD]`` and ``[MASK]``; ``init_params`` (e.g. MiniLM's, from
    :func:`scratchlm.models.bert.from_pretrained`) continues pretraining from those weights (an MLM
    head is initialised if they carry none).

    ``mesh`` (a :func:`scratchlm.distributed.make_mesh`) trains on several devices, data parallel on
    ``data=N`` or FSDP when ``model > 1`` (:func:`scratchlm.distributed.on_mesh`); with several
    processes each one tokenizes and feeds only its share of the training documents
    (:func:`scratchlm.distributed.process_shard`, ``batch_size / processes`` rows a step), and process 0
    writes the model and metrics.  Evaluation runs on one device of each process, from a host copy
    of the params.  A run with checkpoints in ``out/checkpoints`` resumes from the latest (bitwise,
    on CPU); ``checkpoint_seconds``: also a checkpoint every that many seconds.
    """
    from scratchlm import distributed as par
    from scratchlm.training.pretrain_loop import local_batch, train_on_mesh

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ids = {name: getattr(tokenizer, f"{name}_token_id") for name in ("cls", "sep", "pad", "mask")}
    missing = [f"[{k.upper()}]" for k, v in ids.items() if v is None]
    if missing:
        raise ScratchlmError(f"the tokenizer has no {', '.join(missing)} token; masked-LM pretraining needs all of "
                             "[CLS], [SEP], [PAD], [MASK]")
    if tokenizer.get_vocab_size() > model_config.vocab_size:
        raise ScratchlmError(f"tokenizer vocabulary ({tokenizer.get_vocab_size()}) exceeds the model's "
                             f"vocab_size ({model_config.vocab_size})")
    if run.seq_len > model_config.max_position_embeddings:
        raise ScratchlmError(f"seq_len {run.seq_len} exceeds max_position_embeddings "
                             f"{model_config.max_position_embeddings}")

    train_docs, heldout_docs = split_documents(texts, run.heldout_fraction)
    rows_per_step = local_batch(run.batch_size, mesh)
    train_docs = par.process_shard(train_docs)  # this process's documents; the held-out set is shared
    tokenizer.no_padding()
    tokenizer.no_truncation()

    def encode(docs):
        return [e.ids for e in tokenizer.encode_batch(docs, add_special_tokens=False)]

    special = (ids["cls"], ids["sep"], ids["pad"])
    train_rows = pack_sequences(encode(train_docs), run.seq_len, cls_id=ids["cls"], sep_id=ids["sep"])
    heldout_rows = pack_sequences(encode(heldout_docs), run.seq_len, cls_id=ids["cls"], sep_id=ids["sep"])
    heldout_rows = heldout_rows[: run.max_heldout_rows]
    train_data, heldout_data = make_batches(train_rows, special), make_batches(heldout_rows, special)
    bert.validate_batch(train_data, model_config)

    masking = MaskingConfig(mask_token_id=ids["mask"], vocab_size=tokenizer.get_vocab_size())
    # RngBitGenerator keys: dropout masks come from the hardware generator (Philox on GPU) instead of
    # threefry, which is slow to run on GPUs and slow to compile on CPUs
    key = jax.random.key(run.seed, impl="rbg")
    k_init, k_head, k_train = jax.random.split(key, 3)
    params = init_params if init_params is not None else bert.init(k_init, model_config)
    # the pooler is not part of the MLM objective: without a gradient, AdamW's decay alone would move it
    params = {k: v for k, v in params.items() if k != "pooler"}
    if "cls" not in params:
        params["cls"] = bert.init_mlm_head(k_head, model_config)
    eval_fn = make_eval_fn(heldout_data, config=replace(model_config, dtype="float32"), masking=masking,
                           batch_size=run.batch_size, seed=run.seed + 1)
    done = train_on_mesh(params, lambda p, b, k: mlm_loss(p, b, k, config=model_config, masking=masking), eval_fn,
                         batch_fn_for(train_data, rows_per_step, run.seed), run, key=k_train, out=out, mesh=mesh,
                         progress=progress, checkpoint_seconds=checkpoint_seconds,
                         description="pretrain (masked LM)")
    before, after, final = done.before, done.after, dict(done.final)
    if init_params is not None and "pooler" in init_params:
        final["pooler"] = init_params["pooler"]  # keep the pooler a loaded model came with
    if done.lead:
        bert.save_pretrained(out / "model", final, model_config, tokenizer=tokenizer)  # a transformers folder

    flops = bert.flops_per_token(model_config, run.seq_len, masking.max_predictions(run.seq_len))
    peak = peak_flops()
    metrics = {
        "heldout_mlm_loss_start": before["mlm_loss"], "heldout_mlm_loss_end": after["mlm_loss"],
        "heldout_mlm_accuracy_start": before["mlm_accuracy"], "heldout_mlm_accuracy_end": after["mlm_accuracy"],
        "heldout_sequences": int(len(heldout_rows)), "train_sequences": int(len(train_rows)),
        "steps": run.steps, "batch_size": run.batch_size, "seq_len": run.seq_len,
        "train_seconds": done.train_seconds, "tokens_per_s": done.tokens_per_s, "flops_per_token": flops,
        "mfu": done.tokens_per_s * flops / peak if peak else None, "peak_flops": peak, **done.placement(mesh),
        "parameters": bert.count_params(final), "model_config": model_config.to_hf_dict(),
        "vocab_size": tokenizer.get_vocab_size(), "history": done.result.history,
        "final_train_loss": done.final_train_loss,
    }
    if done.lead:
        jsonio.write(out / "metrics.json", metrics)
    return metrics
