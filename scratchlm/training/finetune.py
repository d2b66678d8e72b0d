r"""Fine-tuning a pretrained encoder on a sequence or token classification task (Devlin et al. 2019, §4, §5.3).

The recipe of design document 004 §3.2, step by step:

1. **Pretrained model and data**: ``params`` from :func:`scratchlm.models.bert.from_pretrained` or
   :func:`scratchlm.models.gpt.from_pretrained` (or a scratchlm pretraining checkpoint), the model as an
   ``encoder`` adapter (:mod:`scratchlm.training.encoders`), the task as arrays from :mod:`scratchlm.data.tasks`.
2. **Task layer and loss** (:func:`init_classifier`, :func:`logits`, :func:`loss`): the encoder is the
   encoder of the one classification recipe (:mod:`scratchlm.training.classify`), a linear head
   (:mod:`scratchlm.models.heads`) reads BERT's pooled ``[CLS]`` vector (sequence) or every token (token
   classification), or GPT-2's last real token (sequence), with
   softmax cross-entropy; or a single logit with binary cross-entropy (``head="sigmoid"``)
   for a binary sequence task (document 004 §4.1).  Fine-tuning minimises the empirical risk

   .. math::  \hat\theta = \arg\min_\theta \mathcal{L}(M_\theta, D)
              = \arg\min_\theta -\frac{1}{N}\sum_{i=1}^{N} \log p_\theta(y_i \mid x_i)

   starting from the pretrained :math:`\theta`.
3. **Hyper-parameters**: AdamW (Loshchilov & Hutter 2019) with decoupled weight decay that skips
   biases and layer-norm parameters, the gradient clipped to global norm 1 (as in BERT's released
   ``optimization.py``), a learning-rate schedule (``FinetuneConfig.schedule``: by default a 10 % warm-up
   then the peak rate to the end, chosen on the polarity task; BERT's linear decay by name), dropout, and a
   freezing policy (:func:`scratchlm.training.freeze.trainable_mask`, an optax mask) or LoRA
   (``FinetuneConfig.lora``: low-rank adapters of :mod:`scratchlm.nn.lora` and the classifier train,
   the optimizer holds state for them alone; :func:`training_cost` counts both).
4. **Training with validation**: the shared loop (:mod:`scratchlm.training.loop`) evaluates the dev
   set every epoch; early stopping keeps the best dev checkpoint and restores it.
5. **Test**: :func:`evaluate` on held-out data — accuracy/P/R/F1 for sequences, entity-level
   P/R/F1 (:mod:`scratchlm.training.seqeval`) for tokens.

Small data sets (the 200 polarity sentences) are scored by k-fold cross-validation
(:func:`cross_validate`, stratified folds of :func:`scratchlm.training.cv.kfold`): every example
is predicted exactly once, by the model of the one fold that held it out.

(About 480 lines, kept whole because it walks the five steps above in order; the freezing policies
and the epoch clock live in :mod:`scratchlm.training.freeze` and :mod:`scratchlm.training.epoch_timing`.)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm import checks
from scratchlm.data.batching import (
    cheapest_cover,
    fit_shape,
    plan_shapes,
    steps_per_epoch,
    subset,
    take,
    train_batch,
    unpadded_rows,
)
from scratchlm.data.tasks import word_predictions
from scratchlm.errors import ScratchlmError
from scratchlm.models import heads
from scratchlm.nn import lora
from scratchlm.training import classify, loop, seqeval
from scratchlm.training.cv import cross_validate as cross_validate_folds
from scratchlm.training.cv import dev_split, kfold
from scratchlm.training.encoders import Encoder
from scratchlm.training.epoch_timing import EpochClock
from scratchlm.training.freeze import parse_freeze, trainable_mask
from scratchlm.training.metrics import sequence_metrics

# The learning-rate schedules, by HuggingFace's ``lr_scheduler_type`` names (``transformers.get_scheduler``):
# name -> (the loop's schedule after the warm-up, whether ``warmup_fraction`` applies).
SCHEDULES = {
    "linear": ("linear", True),  # BERT's: warm-up over warmup_fraction of the steps, then linear decay to 0
    "constant": ("constant", False),  # the peak rate from the first step to the last (no warm-up)
    "constant_with_warmup": ("constant", True),  # warm-up, then the peak rate to the end
    "cosine": ("cosine", True),  # warm-up, then half a cosine down to 0 (Loshchilov & Hutter 2017)
}


@dataclass(frozen=True)
class Recipe:
    """The default peak rate and epochs of a fine-tuning run (:class:`FinetuneConfig` takes them when left None)."""

    lr: float
    epochs: int


# Full fine-tuning: appendix A.3 searches lr {5e-5, 3e-5, 2e-5} and epochs {2, 3, 4}; the small-data
# peak 1e-4 is chosen by evidence (FinetuneConfig's docstring).
FULL = Recipe(lr=1e-4, epochs=3)
LORA = Recipe(lr=2e-3, epochs=6)  # LoRA (Hu et al. 2021): a higher rate for longer (FinetuneConfig's docstring)


def check_class_weights(weights: tuple[float, ...]) -> None:
    """:math:`w_j` scale each class's loss: a negative one rewards the wrong class, and all zeros train nothing."""
    if not (all(math.isfinite(w) and w >= 0 for w in weights) and sum(weights) > 0):
        raise ScratchlmError(f"--class-weights must be finite, at least 0 and not all 0, got {tuple(weights)}")


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run.  Defaults are Devlin et al. (2019), appendix A.3, where it gives them, except the
    peak rate and the schedule, chosen by evidence on the shipped polarity task.

    There (MiniLM, 200 sentences, 5-fold cross-validation, 3 epochs of batch 16 = 27 steps a fold, T <= 32;
    k-fold accuracy, mean ± sd over seeds 0-4, scratchlm; a shared, loaded 2-core CPU, 2026-12-05):
    BERT's recipe, lr 5e-5 with 10 % warm-up then linear decay to 0 (the default until then), 0.547 ± 0.038;
    lr 5e-5 constant 0.579 ± 0.032; lr 1e-4 linear (BERT's schedule) 0.585 ± 0.038; lr 1e-4 with 10 %
    warm-up then constant 0.686 ± 0.012 (majority rate 0.5).  On 27 steps a decay to 0 spends the second
    half of a short run at small rates: the higher peak held to the end learns most, 0.14 above BERT's
    recipe and 0.10 above the same peak decayed (each over 2.5 sd of either).  ``schedule="linear", lr=5e-5``
    is BERT's recipe, by name (``--schedule linear --lr 5e-5``).

    ``lr`` and ``epochs`` left as None take :data:`FULL`'s values, or :data:`LORA`'s when ``lora`` is set:
    adapters start at B = 0 and train 0.3 % of the weights, so they take a higher rate for more steps
    (Hu et al. 2021, Table 9, train RoBERTa-base's adapters at 4e-4 to 5e-4 for 30-80 epochs).  Chosen on
    the same task (r = 8, alpha 8, query/value; k-fold accuracy of seed 0, one run each): lr 1e-3 for 3
    epochs 0.52, 1e-3 for 6 epochs 0.67, 2e-3 for 6 epochs 0.715 (alpha 16: 1e-3 for 6 epochs 0.72, for 10
    epochs 0.73; 2e-3 for 6 epochs 0.68; 5e-4 for 6 epochs 0.59).  Over seeds 0-4 (``benchmarks/lora.py``,
    2026-12-05) LoRA at 2e-3 for 6 epochs scored 0.675 ± 0.048 against full fine-tuning's 0.686 ± 0.012
    (seeds 1-4 alone, which the choice never saw: 0.665 against 0.683).
    """

    task: str  # "sequence" or "token"
    num_labels: int
    head: str = "softmax"  # "softmax" (C logits) or "sigmoid" (one logit; binary sequence tasks)
    freeze: str = "none"  # none | embeddings | encoder | all-but-top-N (N an integer, e.g. all-but-top-2)
    lr: float | None = None  # AdamW's peak rate; None: FULL.lr, or LORA.lr with lora (the docstring)
    epochs: int | None = None  # None: FULL.epochs, or LORA.epochs with lora
    batch_size: int = 16  # appendix A.3 searches {16, 32}
    warmup_fraction: float = 0.1  # of the steps (HF's warmup_ratio): BERT warms up over the first 10%
    schedule: str = "constant_with_warmup"  # the rate over the steps (SCHEDULES, HF's names); BERT's: "linear"
    weight_decay: float = 0.01  # BERT's AdamW decay
    clip_norm: float | None = 1.0  # global gradient-norm clip of BERT's released optimization.py (HF Trainer's too)
    dropout: float | None = None  # None keeps the pretrained config's 0.1 (appendix A.3)
    class_weights: tuple[float, ...] | None = None  # w_j of the weighted cross-entropy (sequence tasks)
    patience: int | None = None  # epochs without a better dev metric before stopping; None: never stop
    seed: int = 0
    lora: lora.LoraConfig | None = None  # low-rank adapters (Hu et al. 2021): only A, B and the head train
    # BERT's training steps on the batch's real tokens only (scratchlm.nn.unpadding), on one device: the same
    # function, for ~40 % less work on short texts; off: the padded grid (dropout masks then differ)
    unpad: bool = True
    # what compiling one more step program costs, in steps: the unpadded batches' shapes are planned
    # (plan_steps) so that a shape is compiled only when padding its steps up would cost more (a MiniLM
    # step compiles in 4-5 s on 2 CPU cores and runs in ~0.3 s)
    compile_steps: float = 12.0

    def __post_init__(self):
        recipe = FULL if self.lora is None else LORA
        for name in ("lr", "epochs"):  # the recorded config holds the values the run used
            if getattr(self, name) is None:
                object.__setattr__(self, name, getattr(recipe, name))
        if self.task not in ("sequence", "token"):
            raise ScratchlmError(f"task must be 'sequence' or 'token', got {self.task!r}")
        if self.head not in heads.KINDS:
            raise ScratchlmError(f"--head must be 'softmax' or 'sigmoid', got {self.head!r}")
        if self.head == "sigmoid" and (self.task != "sequence" or self.num_labels != 2):
            raise ScratchlmError("--head sigmoid is for binary sequence tasks (num_labels == 2)")
        parse_freeze(self.freeze)
        for name, flag in (("epochs", "--epochs"), ("batch_size", "--batch-size")):
            if getattr(self, name) < 1:
                raise ScratchlmError(f"{flag} must be at least 1, got {getattr(self, name)}")
        if self.num_labels < 2:  # one class: the loss is 0 from the start and nothing is learnt
            raise ScratchlmError(f"the task has {self.num_labels} label(s); a classifier needs at least 2")
        checks.positive("lr", self.lr)
        if self.compile_steps < 0:
            raise ScratchlmError(f"compile_steps must be 0 or more, got {self.compile_steps}")
        checks.fraction("warmup_fraction", self.warmup_fraction)
        if self.schedule not in SCHEDULES:
            raise ScratchlmError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.weight_decay < 0 or (self.clip_norm is not None and self.clip_norm <= 0):
            raise ScratchlmError(f"--weight-decay must be >= 0 and --clip-norm > 0, got {self.weight_decay}, "
                                 f"{self.clip_norm}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ScratchlmError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.patience is not None and self.patience < 0:
            raise ScratchlmError(f"--patience must be 0 or more, got {self.patience}")
        if self.class_weights is not None and len(self.class_weights) != self.num_labels:
            raise ScratchlmError(f"--class-weights needs one weight per label ({self.num_labels}), "
                                 f"got {self.class_weights}")
        if self.class_weights is not None:
            check_class_weights(self.class_weights)
        if self.lora is not None and self.freeze != "none":
            raise ScratchlmError(f"--lora-rank freezes the whole encoder but its adapters; --freeze {self.freeze} "
                                 "cannot be combined with it")

    @property
    def outputs(self) -> int:
        """Width of the classifier: one logit for the sigmoid head, C otherwise."""
        return heads.outputs(self.head, self.num_labels)

    @property
    def metric(self) -> str:
        """The dev metric early stopping watches (higher is better)."""
        return "entity_f1" if self.task == "token" else "accuracy"


def init_classifier(key: jax.Array, params: dict, encoder: Encoder, config: FinetuneConfig) -> dict:
    """``params`` with a fresh head (the encoder's ``init_head``: BERT's ``classifier``,
    :math:`W \\sim N(0, 0.02^2)`, :math:`b = 0`, with a fresh pooler where the checkpoint has none;
    GPT-2's bias-free ``score``).  With ``config.lora`` the params also carry LoRA
    adapters for the target layers under ``params["lora"]`` (:func:`scratchlm.nn.lora.init`, key
    ``fold_in(key, 1)``; the head's key is the same as without LoRA).
    """
    k_lora = jax.random.fold_in(key, 1)
    params = encoder.init_head(key, params, config.task, config.outputs)
    if config.lora is not None:
        base = {k: v for k, v in params.items() if k != encoder.head_key}
        params = {**params, lora.ADAPTERS: lora.init(k_lora, base, config.lora)}
    return params


def logits(params: dict, batch: dict, *, encoder: Encoder, config: FinetuneConfig,
           key: jax.Array | None = None, train: bool = False) -> jax.Array:
    """Classifier logits: [B, C] (sequence; [B, 1] for the sigmoid head) or [B, T, C] (token)."""
    model = encoder.classifier(config.task, config.head, config.lora)
    return classify.logits(model, params, batch, key=key, train=train)


def loss(params: dict, batch: dict, key: jax.Array | None, *, encoder: Encoder, config: FinetuneConfig,
         train: bool = True) -> tuple[jax.Array, dict]:
    r"""The task loss and metrics of one batch (:func:`scratchlm.models.heads.loss`).

    Softmax head: :math:`-\frac{1}{N}\sum_i w_{y_i}\log\mathrm{softmax}(z_i)_{y_i}` over the N
    labelled positions (tokens labelled ``IGNORE`` add nothing).  Sigmoid head:
    :math:`-\frac{1}{N}\sum_i [y_i\log\sigma(z_i) + (1-y_i)\log\sigma(-z_i)]` (document 004 §4.1).
    """
    model = encoder.classifier(config.task, config.head, config.lora)
    return classify.loss(model, params, batch, key, class_weights=config.class_weights, train=train)


# ----------------------------------------------------------------------------- batches


def predict(params: dict, data: dict, *, encoder: Encoder, config: FinetuneConfig,
            batch_size: int = 64, forward: Callable | None = None) -> np.ndarray:
    """Class predictions: [N] (sequence) or [N, T] (token, over ``data``'s full width).

    Batches are filled up with copies of row 0 (their outputs dropped) to ``batch_size`` rows, or
    to the next power of two (at least 8) when the whole set is smaller, so the forward pass
    compiles once per length bucket and row count rather than once per data-set size (k folds
    differ by one example; dev sets are small).
    """
    forward = forward or forward_program(encoder, config)
    N = len(data["labels"])
    width = data["input_ids"].shape[1]
    rows = batch_rows(N, batch_size)
    out = []
    for start in range(0, N, rows):
        index = np.arange(start, min(start + rows, N))
        filled = np.concatenate([index, np.zeros(rows - len(index), int)])
        batch = take(data, filled)
        z = np.asarray(forward(params, {k: v for k, v in batch.items() if k != "labels"}))[: len(index)]
        pred = heads.predict(z, config.head)
        if config.task == "token":
            pred = np.pad(pred[:, :width], ((0, 0), (0, max(width - pred.shape[1], 0))))
        out.append(pred)
    return np.concatenate(out)


def batch_rows(n: int, batch_size: int = 64) -> int:
    """The rows of each forward batch :func:`predict` runs on ``n`` examples: ``batch_size``, or the next
    power of two (at least 8) when ``n`` is smaller."""
    return batch_size if n > batch_size else max(8, 1 << max(n - 1, 0).bit_length())


# ----------------------------------------------------------------------------- metrics


def word_tags(data: dict, predicted: np.ndarray, n_words: list[int], tags: tuple[str, ...]) -> tuple[list, list]:
    """Word-level gold and predicted tag strings, sentence by sentence (first sub-token of each word)."""
    y_true, y_pred = [], []
    for labels, pred, n in zip(data["labels"], predicted, n_words):
        y_true.append([tags[t] for t in word_predictions(labels, labels, n)])
        y_pred.append([tags[t] for t in word_predictions(pred, labels, n)])
    return y_true, y_pred


def evaluate(params: dict, data: dict, *, encoder: Encoder, config: FinetuneConfig,
             tags: tuple[str, ...] | None = None, n_words: list[int] | None = None,
             forward: Callable | None = None) -> dict:
    """Dev/test metrics: ``accuracy, precision, recall, f1`` (sequence) or entity-level
    ``entity_precision, entity_recall, entity_f1`` and token ``accuracy`` (token)."""
    predicted = predict(params, data, encoder=encoder, config=config, forward=forward)
    if config.task == "sequence":
        return sequence_metrics(predicted, data["labels"], config.num_labels)
    y_true, y_pred = word_tags(data, predicted, n_words, tags)
    scores = seqeval.entity_scores(y_true, y_pred)["micro"]
    flat_t = [t for s in y_true for t in s]
    flat_p = [p for s in y_pred for p in s]
    return {"entity_precision": scores["precision"], "entity_recall": scores["recall"],
            "entity_f1": scores["f1"], "accuracy": float(np.mean([a == b for a, b in zip(flat_t, flat_p)]))}


# ----------------------------------------------------------------------------- cross-validation


# ----------------------------------------------------------------------------- training


_PROGRAMS: dict = {}


def programs(params: dict, encoder: Encoder, config: FinetuneConfig, total_steps: int):
    """The jitted train step (with its ``.optimizer``) and jitted forward pass for a run.

    They depend on the shapes, the encoder config, the hyper-parameters and the number of steps,
    not on the data or the seed, so k folds of equal size share one compilation (compiling
    MiniLM's step costs more than a few epochs of the 200 polarity sentences on a CPU).
    """
    cache_key = (encoder, dataclasses.replace(config, seed=0, patience=None, epochs=1), total_steps,
                 jax.tree.structure(params), tuple(np.shape(x) for x in jax.tree.leaves(params)))
    if cache_key not in _PROGRAMS:
        if len(_PROGRAMS) >= 8:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        model = encoder.with_dropout(config.dropout).classifier(config.task, config.head, config.lora)
        tx, step_fn = classify.make_step(model, optimizer_config(config, total_steps),
                                         trainable=trainable_leaves(params, config, encoder),
                                         class_weights=config.class_weights)
        _PROGRAMS[cache_key] = _Step(step_fn, tx)
    return _PROGRAMS[cache_key], forward_program(encoder, config)


def optimizer_config(config: FinetuneConfig, total_steps: int) -> classify.OptimizerConfig:
    r"""AdamW on ``config.schedule`` (:data:`SCHEDULES`, :func:`scratchlm.training.loop.make_schedule`):
    ``linear`` is BERT's, a linear warm-up over :math:`t_w = \lfloor f_w T\rfloor` steps (``warmup_fraction``
    :math:`f_w` of the :math:`T` steps, as HF's ``warmup_ratio``) then linear decay to 0; ``constant`` holds
    :math:`\eta` from the first step; ``constant_with_warmup`` and ``cosine`` warm up over :math:`t_w` first."""
    after, warms_up = SCHEDULES[config.schedule]
    warmup = int(config.warmup_fraction * total_steps) if warms_up else 0
    return classify.OptimizerConfig(config.lr, total_steps, warmup_steps=warmup,
                                    schedule=after, weight_decay=config.weight_decay, clip_norm=config.clip_norm)


def trainable_leaves(params: dict, config: FinetuneConfig, encoder: Encoder) -> dict:
    """The optimizer's mask: the freezing policy on the encoder's layout, or with LoRA the adapters and the
    head only (PEFT's ``modules_to_save`` for a classification task; the encoder, pooler included, frozen)."""
    if config.lora is None:
        return trainable_mask(params, config.freeze, encoder.freeze_layout)
    return lora.trainable_mask(params, modules_to_save=(encoder.head_key,))


def training_cost(params: dict, config: FinetuneConfig, total_steps: int = 1, *, encoder: Encoder) -> dict:
    """What a run trains and what its optimizer holds: ``trainable_params``, ``total_params`` (adapters
    included, as PEFT's ``print_trainable_parameters`` counts), ``trainable_fraction`` and
    ``optimizer_state_bytes`` (AdamW's moments of the trainable leaves, from the optimizer's own
    ``init`` on shapes: nothing is allocated)."""
    mask = trainable_leaves(params, config, encoder)
    sizes = [int(np.prod(np.shape(x))) for x in jax.tree.leaves(params)]
    n_train = sum(n for n, t in zip(sizes, jax.tree.leaves(mask)) if t)
    state = jax.eval_shape(classify.make_optimizer(optimizer_config(config, total_steps), trainable=mask).init, params)
    opt_bytes = sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))
    return {"trainable_params": n_train, "total_params": sum(sizes), "trainable_fraction": n_train / sum(sizes),
            "optimizer_state_bytes": opt_bytes}


def lora_cost(key: jax.Array, pretrained: dict, encoder: Encoder, config: FinetuneConfig) -> dict:
    """With LoRA, :func:`training_cost` of the run beside full fine-tuning's optimizer state
    (``full_finetune_optimizer_state_bytes``), from shapes only; without LoRA, ``{}``."""
    if config.lora is None:
        return {}
    params = jax.eval_shape(lambda: init_classifier(key, pretrained, encoder, config))
    base = {k: v for k, v in params.items() if k != lora.ADAPTERS}
    full = training_cost(base, dataclasses.replace(config, lora=None), encoder=encoder)
    return {**training_cost(params, config, encoder=encoder),
            "full_finetune_optimizer_state_bytes": full["optimizer_state_bytes"]}


def merged(params: dict, config: FinetuneConfig) -> dict:
    """The fine-tuned model as plain params: with LoRA the updates folded into the weights
    (:func:`scratchlm.nn.lora.merge`) and the adapters dropped; otherwise ``params`` itself."""
    if config.lora is None:
        return params
    base = {k: v for k, v in params.items() if k != lora.ADAPTERS}
    return lora.merge(base, params[lora.ADAPTERS], config.lora)


@functools.cache
def _forward(encoder: Encoder, task: str, head: str, num_labels: int,
             lora_config: lora.LoraConfig | None = None) -> Callable:
    config = FinetuneConfig(task=task, num_labels=num_labels, head=head, lora=lora_config)
    return jax.jit(lambda p, b: logits(p, b, encoder=encoder, config=config))


def forward_program(encoder: Encoder, config: FinetuneConfig) -> Callable:
    """The jitted inference forward pass ``(params, batch) -> logits``, shared by every run alike."""
    return _forward(encoder, config.task, config.head, config.num_labels, config.lora)


@dataclass(frozen=True)
class _Step:
    step: Callable
    optimizer: object

    def __call__(self, state, batch):
        return self.step(state, batch)


def _unpads(config: FinetuneConfig, encoder: Encoder, mesh) -> bool:
    """Whether the run's steps are unpadded: asked for, a BERT, one device (a mesh shards a batch's rows,
    which an unpadded batch has given up, so there the grid stays)."""
    return config.unpad and encoder.unpads and mesh is None


def step_need(batch: dict) -> tuple[int, int]:
    """The smallest shape an unpadded step of ``batch`` takes: (its real tokens rounded up to a multiple
    of 8 B, its grid width), so that few distinct shapes arise (four filler rows a text on average)."""
    B, T = batch["attention_mask"].shape
    return unpadded_rows(int(np.sum(batch["attention_mask"])), 8 * B), T


def step_work(encoder: Encoder, batch: dict) -> Callable[[tuple[int, int]], float]:
    """A BERT step's work at shape (N, T) for B texts, in FLOPs a layer: the position-wise products over N
    unpadded rows, :math:`N(4H^2 + 2HI)`, and attention on the B x T x T grid, :math:`2HBT^2`, the latter
    weighted 6x: its small products, softmax and dropout ran at about a sixth of the projections' FLOP rate
    on a 2-core CPU (MiniLM: 312 ms at N 512, T 64; 402 ms at T 96)."""
    H, I = encoder.config.hidden_size, encoder.config.intermediate_size
    B = batch["attention_mask"].shape[0]
    return lambda shape: shape[0] * (4 * H * H + 2 * H * I) + 6 * 2 * H * B * shape[1] ** 2


def plan_steps(trains: list[dict], *, encoder: Encoder, config: FinetuneConfig) -> list[tuple[int, int]]:
    """The batch shapes (unpadded rows, grid width) of a run training on each of ``trains`` for
    ``config.epochs`` (:func:`scratchlm.data.batching.plan_shapes` over every step's :func:`step_need`,
    a compilation priced at ``config.compile_steps`` steps of the commonest need)."""
    batches = [train_batch(train, t, config.batch_size, config.seed)
               for train in trains for t in range(config.epochs * steps_per_epoch(len(train["labels"]),
                                                                                   config.batch_size))]
    if not batches:
        return []
    needs = [step_need(b) for b in batches]
    cost = step_work(encoder, batches[0])
    commonest = max(set(needs), key=needs.count)
    return plan_shapes(needs, cost, config.compile_steps * cost(commonest))


@dataclass
class FitResult:
    params: dict  # the best dev checkpoint's params (the last ones without a dev set)
    history: list[dict]  # one dict per epoch: {"step", "epoch", dev metrics...}
    best_step: int | None
    best_metric: float | None
    # Median training seconds of the epochs that compiled nothing (evaluation excluded); None when
    # every epoch this call ran compiled the step (a single epoch, or a run resumed at its last
    # epoch): those epochs' times, compilation included, are still in epoch_seconds.
    seconds_per_epoch: float | None
    stopped_early: bool
    epoch_seconds: list[float] = dataclasses.field(default_factory=list)  # each epoch run by this call
    epoch_compiled: list[bool] = dataclasses.field(default_factory=list)  # whether it compiled the step


def fit(params: dict, train: dict, dev: dict | None, *, encoder: Encoder, config: FinetuneConfig,
        dev_eval: Callable[[dict], dict] | None = None, checkpoint_dir: str | Path | None = None,
        metrics_path: str | Path | None = None, progress: bool | None = False, mesh=None,
        checkpoint_seconds: float = 0.0, shapes: list[tuple[int, int]] | None = None) -> FitResult:
    """Fine-tune ``params`` (holding a head: :func:`init_classifier`) on ``train``; evaluate ``dev`` every epoch.

    ``dev_eval(params) -> metrics`` overrides the default dev evaluation (:func:`evaluate`);
    early stopping watches ``config.metric`` with ``config.patience`` epochs and the best
    epoch's params are returned.  ``checkpoint_dir`` makes the run resumable (the loop's
    checkpoints: every ``checkpoint_seconds`` and at the end).

    ``mesh`` (:func:`scratchlm.distributed.make_mesh`): the step runs data parallel or FSDP on it
    (:func:`scratchlm.distributed.on_mesh`, which also places a resumed state on the mesh); evaluation
    and the returned params are host copies.  With several processes each feeds its slice of every
    batch and keeps its own checkpoints (``checkpoint_dir/process<i>``).

    Without a mesh, a BERT step runs unpadded (``config.unpad``): each batch is padded to the cheapest
    of ``shapes`` (unpadded rows, grid width) that holds it, :func:`plan_steps`' plan of this run's
    steps by default (k folds pass one plan for all, so they share its compiled programs).
    """
    from scratchlm import distributed as par

    per_epoch = steps_per_epoch(len(train["labels"]), config.batch_size)
    step_fn, forward = programs(params, encoder, config, config.epochs * per_epoch)
    # The step donates its state; copying keeps the caller's params (often shared by k folds) alive.
    # RngBitGenerator keys, as in pretraining: dropout masks from the hardware generator instead of
    # threefry, which is slow to compile on CPUs (it tripled a small model's step compile time) and
    # slow to run on GPUs.
    key = jax.random.key(config.seed, impl="rbg")
    clock = EpochClock(step_fn.step)

    def place(step, state):  # on the mesh when there is one; without a mesh: step_fn itself
        state, loop_step = par.on_mesh(step, state, mesh)
        if mesh is not None:
            clock.jitted = loop_step.sharded
        return state, loop_step

    if dev is not None and dev_eval is None:
        dev_eval = lambda p: evaluate(p, dev, encoder=encoder, config=config, forward=forward)  # noqa: E731
    if mesh is not None:
        par.divisible_batch(min(config.batch_size, len(train["labels"])), mesh)
        if dev_eval is not None:  # a host copy through the one-device forward pass (compiled once for all runs)
            on_host = dev_eval
            dev_eval = lambda p: on_host(par.gather_to_host(p))  # noqa: E731
        if jax.process_count() > 1 and checkpoint_dir is not None:
            checkpoint_dir = Path(checkpoint_dir) / f"process{jax.process_index()}"
    first_step: list[int] = []
    unpadded = _unpads(config, encoder, mesh)
    if unpadded and shapes is None:
        shapes = plan_steps([train], encoder=encoder, config=config)

    def batch_fn(t):
        clock.start()
        if not first_step:
            first_step.append(t)
        batch = train_batch(train, t, config.batch_size, config.seed)
        if unpadded:
            batch = fit_shape(batch, cheapest_cover(shapes, step_need(batch), step_work(encoder, batch)))
        if mesh is not None and jax.process_count() > 1:  # this process's rows of the global batch
            batch = {k: np.asarray(par.process_shard(v)) for k, v in batch.items()}
        return batch

    def timed_eval(p):
        clock.stop()  # the loop fetched this epoch's metrics just before: the device is done
        scores = dev_eval(p)
        clock.restart()
        return scores

    watching = dev_eval is not None
    if checkpoint_dir is not None:
        Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)  # the loop writes best.msgpack before any checkpoint
    result = classify.fit(
        jax.tree.map(jnp.copy, params), step_fn.optimizer, step_fn, batch_fn, key=key, place=place,
        config=loop.LoopConfig(steps=config.epochs * per_epoch, eval_every=per_epoch if watching else 0,
                               log_every=max(1, per_epoch // 4),
                               checkpoint_dir=checkpoint_dir, checkpoint_seconds=checkpoint_seconds,
                               description="finetune",
                               early_stopping_metric=config.metric if watching else None,
                               early_stopping_mode="max", patience=config.patience or 0,
                               metrics_path=metrics_path, progress=progress),
        eval_fn=timed_eval if watching else None)
    if not watching and first_step:  # no epoch boundaries seen: the run's mean epoch (the loop synced at its end)
        clock.stop(epochs=(int(result.state.step) - first_step[0]) // per_epoch)
    history = [{**h, "epoch": h["step"] // per_epoch} for h in result.history]
    final = result.state.params if mesh is None else par.gather_to_host(result.state.params)
    return FitResult(params=final, history=history, best_step=result.best_step,
                     best_metric=result.best_metric, seconds_per_epoch=clock.steady(),
                     stopped_early=result.stopped_early, epoch_seconds=clock.seconds, epoch_compiled=clock.compiled)


def cross_validate(params: dict, data: dict, *, encoder: Encoder, config: FinetuneConfig, folds: int,
                   dev_fraction: float = 0.1, key: jax.Array, fold_dir: Callable[[int], Path | None] = lambda f: None,
                   done: Callable[[int], dict | None] = lambda f: None,
                   on_fold: Callable[[int, dict, dict], None] = lambda f, r, p: None,
                   progress: bool | None = False, mesh=None, checkpoint_seconds: float = 0.0,
                   checkpoint_folds: bool = True) -> dict:
    """k-fold cross-validation of a sequence task: every example predicted once, by a model that never saw it.

    For fold f: a fresh classifier (key ``fold_in(key, f)``) on the pretrained ``params``,
    trained on the other folds minus a stratified ``dev_fraction`` held out for early stopping,
    then used to predict fold f.  ``done(f)`` may return a finished fold's record (resuming);
    ``on_fold(f, record, params)`` receives each new one with the fold's best params.  Returns the pooled metrics
    over all N examples, the predictions and the per-fold records.

    A fold trains with checkpoints in ``fold_dir(f)/checkpoints`` (every ``checkpoint_seconds``, at its end, and
    the best dev params as ``best.msgpack``) when ``checkpoint_folds``, or when that folder already holds one
    (a run resumed from them).  Otherwise the fold is the unit of resumption: its best params stay in memory and
    nothing is written before ``on_fold``, so a fold cut short starts again from its beginning, with the same
    key and batches, and ends on the bytes an uninterrupted run writes.
    """
    labels = data["labels"]
    # each fold's (fit, dev) split of its training part, known before any fold runs so that one plan of
    # batch shapes serves every fold's steps, resumed or not
    splits = [dev_split(labels, train, dev_fraction, config.seed + f)
              for f, (train, _) in enumerate(kfold(len(labels), folds, config.seed, stratify_by=labels))]
    shapes = None
    if _unpads(config, encoder, mesh):
        shapes = plan_steps([subset(data, fit_index) for fit_index, _ in splits], encoder=encoder, config=config)

    def run_fold(f: int, train_index: np.ndarray, test_index: np.ndarray) -> dict:
        record = done(f)
        if record is None:
            fit_index, dev_index = splits[f]  # the split of train_index, the same kfold's fold f
            start = init_classifier(jax.random.fold_in(key, f), params, encoder, config)
            directory = fold_dir(f)
            checkpoints = directory and directory / "checkpoints"
            if checkpoints and not checkpoint_folds and not (checkpoints.is_dir()
                                                             and any(checkpoints.rglob("ckpt_*.msgpack"))):
                checkpoints = None
            result = fit(start, subset(data, fit_index), subset(data, dev_index), encoder=encoder,
                         config=config, checkpoint_dir=checkpoints,
                         metrics_path=directory and directory / "metrics.jsonl", progress=progress, mesh=mesh,
                         checkpoint_seconds=checkpoint_seconds, shapes=shapes)
            # the test fold in batches of the dev set's rows: the dev evaluation's compiled forward passes serve it
            predicted = predict(result.params, subset(data, test_index), encoder=encoder, config=config,
                                batch_size=batch_rows(len(dev_index)), forward=forward_program(encoder, config))
            record = {"fold": f, "test_index": test_index.tolist(), "predictions": predicted.tolist(),
                      "test": sequence_metrics(predicted, labels[test_index], config.num_labels),
                      "history": result.history, "best_step": result.best_step, "best_dev": result.best_metric,
                      "seconds_per_epoch": result.seconds_per_epoch, "epoch_seconds": result.epoch_seconds,
                      "epoch_compiled": result.epoch_compiled, "stopped_early": result.stopped_early}
            on_fold(f, record, result.params)
        return record

    records = cross_validate_folds(len(labels), folds, config.seed, run_fold, stratify_by=labels)
    predictions = np.full(len(labels), -1)
    for record in records:
        predictions[np.asarray(record["test_index"])] = record["predictions"]
    assert (predictions >= 0).all(), "every example is in exactly one test fold"
    return {**sequence_metrics(predictions, labels, config.num_labels), "predictions": predictions.tolist(),
            "folds": records}
