r"""The one classification recipe: an encoder and a head (as data), a loss, an optimizer with a freezing
mask, batches, the shared loop, predictions and metrics.

Fine-tuning minimises the empirical risk of the head's loss (:mod:`scratchlm.models.heads`)

.. math::  \hat\theta = \arg\min_\theta -\frac{1}{N}\sum_{i=1}^{N} \log p_\theta(y_i \mid x_i)

starting from the encoder's pretrained (or random) :math:`\theta` (Devlin et al. 2019, §4).  What
differs between the models is data, not code:

- the **encoder** (:class:`Classifier`'s ``encode``): BERT's pooled ``[CLS]`` vector or every
  position (:mod:`scratchlm.training.finetune`), the GRU language model's final state
  (:func:`gru_encoder`), design document 002's two-layer LSTM (:func:`recurrent_encoder`), GPT's last
  real token (:func:`gpt_encoder`), the embedding bag's masked mean (:func:`scratchlm.training.embedding_bag`);
- the **head** (``head``, ``kind``): a linear softmax or sigmoid layer, or the bag's logistic output;
- **freezing**: a bool pytree like the params (:func:`scratchlm.training.loop.make_optimizer`'s
  ``trainable``), an optax mask whose False leaves get exactly zero updates;
- the **optimizer** (:class:`OptimizerConfig`): AdamW, schedule, warm-up, clipping, decay;
- the **batches**: a function of the step (:mod:`scratchlm.data.batching`);
- the **evaluation**: k-fold cross-validation (:mod:`scratchlm.training.cv`) or a held-out split
  (:func:`holdout`), scored by :mod:`scratchlm.training.metrics`.

Token classification (NER) is the same recipe with token features [B, T, H] and labels [B, T]
(positions labelled ``IGNORE`` skipped by the loss).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm import checks
from scratchlm.data.batching import epoch_batch, pad_ids
from scratchlm.errors import ScratchlmError
from scratchlm.models import gpt, gru_lm, heads, rnn_classifier
from scratchlm.training import loop, metrics


@dataclass(frozen=True)
class Classifier:
    """An encoder and a head: what the recipe trains.

    ``encode(params, batch, *, key, train) -> features`` ([B, H] for sequences, [B, T, H] for
    tokens); ``head(params[head_key], features, *, key, train) -> logits`` ([B, C], [B, T, C], or
    [B, 1] for one sigmoid logit); ``kind`` picks the loss (``"softmax"`` or ``"sigmoid"``).

    ``split_key``: the key rule.  True (BERT, the GRU): the step's key is split in two, the first
    for the encoder's dropout, the second for the head's.  False (the embedding bag, whose head has
    no dropout): the encoder gets the step's key whole.  Kept as a parameter because each model's
    dropout masks (and so its results) depend on its rule.
    """

    encode: Callable
    head: Callable
    kind: str = "softmax"
    head_key: str = "classifier"
    split_key: bool = True

    def __post_init__(self):
        if self.kind not in heads.KINDS:
            raise ScratchlmError(f"the head must be one of {heads.KINDS}, got {self.kind!r}")


def logits(model: Classifier, params: dict, batch, *, key: jax.Array | None = None, train: bool = False) -> jax.Array:
    """The head's logits on the encoder's features of ``batch``."""
    if model.split_key:
        k_enc, k_head = jax.random.split(key) if key is not None else (None, None)
    else:
        k_enc, k_head = key, None
    features = model.encode(params, batch, key=k_enc, train=train)
    return model.head(params[model.head_key], features, key=k_head, train=train)


def loss(model: Classifier, params: dict, batch: dict, key: jax.Array | None, *, class_weights=None,
         train: bool = True) -> tuple[jax.Array, dict]:
    """The head's loss and ``{"loss", "accuracy"}`` on ``batch["labels"]`` (row weights ``batch["weights"]`` if any)."""
    z = logits(model, params, batch, key=key, train=train)
    return heads.loss(z, batch["labels"], kind=model.kind, class_weights=class_weights, weights=batch.get("weights"))


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer chain of a classification run (:func:`scratchlm.training.loop.make_optimizer`)."""

    learning_rate: float
    steps: int
    warmup_steps: int = 0
    schedule: str = "linear"  # linear decay to 0 after the warm-up (BERT's schedule)
    weight_decay: float = 0.0  # AdamW's decoupled decay, skipping biases and LayerNorm (loop.weight_decay_mask)
    clip_norm: float | None = None  # global gradient-norm clip

    def __post_init__(self):
        checks.positive("lr", self.learning_rate)  # each named as its flag is
        checks.at_least("steps", self.steps, 1)
        checks.at_least("warmup_steps", self.warmup_steps, 0)
        checks.at_least("weight_decay", self.weight_decay, 0)


def make_optimizer(optimizer: OptimizerConfig, *, trainable=None):
    """The optax chain of ``optimizer``, frozen where ``trainable`` is False (no state for those leaves)."""
    return loop.make_optimizer(name="adamw", learning_rate=optimizer.learning_rate, total_steps=optimizer.steps,
                               warmup_steps=optimizer.warmup_steps, schedule=optimizer.schedule,
                               weight_decay=optimizer.weight_decay, clip_norm=optimizer.clip_norm, trainable=trainable)


def make_step(model: Classifier, optimizer: OptimizerConfig, *, trainable=None, class_weights=None):
    """``(tx, step)``: the optax chain (frozen where ``trainable`` is False) and the jitted train step."""
    tx = make_optimizer(optimizer, trainable=trainable)

    def loss_fn(p, b, k):
        return loss(model, p, b, k, class_weights=class_weights)

    return tx, loop.make_train_step(loss_fn, tx, trainable=trainable)


def fit(params: dict, tx, step: Callable, batch_fn: Callable[[int], dict], *, key: jax.Array,
        config: loop.LoopConfig, eval_fn: Callable[[dict], dict] | None = None,
        place: Callable | None = None) -> loop.TrainResult:
    """Train ``params`` from a fresh state (``key`` for dropout) through the shared loop.

    ``place(step, state) -> (state, step)`` puts the state and the step on a device mesh
    (:func:`scratchlm.distributed.on_mesh`; BERT fine-tuning), or keeps them as they are when None.
    The step donates its state: pass a copy of params the caller still needs.
    """
    state = loop.init_train_state(params, tx, key)
    if place is not None:
        state, step = place(step, state)
    return loop.train(state, step, batch_fn, config=config, eval_fn=eval_fn)


# ----------------------------------------------------------------------------- the GRU language model's encoder


def gru_encoder(config: gru_lm.GRULMConfig) -> Classifier:
    """The pretrained GRU LM as an encoder: its top layer's final state :math:`h^{(L)}_{T_b}` under a linear
    softmax head with the LM's dropout (params ``{"lm": ..., "classifier": ...}``; batches
    ``{"ids" [B, T], "mask" [B, T], "labels" [B]}``)."""

    def encode(params, batch, *, key, train):
        return gru_lm.final_state(params["lm"], batch["ids"], batch["mask"], config=config, key=key, train=train)

    def head(p, h, *, key, train):
        return heads.linear(p, h, rate=config.dropout, key=key, train=train)

    return Classifier(encode=encode, head=head, kind="softmax")


# ----------------------------------------------------------------------------- design document 002's LSTM


def recurrent_encoder(config: rnn_classifier.RNNClassifierConfig) -> Classifier:
    """Design document 002 §5.2's model (:mod:`scratchlm.models.rnn_classifier`): the stacked LSTM's (or,
    with ``config.cell = "gru"``, GRU's) top state at each sentence's last real token under one sigmoid
    unit (params ``{"embedding", "rnn", "output"}``; batches ``{"ids" [B, T], "mask" [B, T], "labels" [B]}``).

    The head is the logistic one-logit head with the binary cross-entropy (``kind="sigmoid"``), the
    document's ``Dense(1, sigmoid)`` and loss; a two-class softmax would be the same model with twice the
    output weights.  No dropout anywhere (the document has none), so the step's key goes unused.
    """

    def encode(params, batch, *, key, train):
        return rnn_classifier.final_state(params, batch["ids"], batch["mask"], config=config)

    def head(p, h, *, key, train):
        return heads.logistic(p, h)[:, None]

    return Classifier(encode=encode, head=head, kind="sigmoid", head_key="output", split_key=False)


def gpt_encoder(config: gpt.GPTConfig) -> Classifier:
    r"""GPT as an encoder: the final-layer-normed state of each sequence's last real token,
    :math:`\mathrm{LN}_f(h^{(L)})_{b,\,t_b}` (:func:`scratchlm.models.gpt.sequence_state`; under the causal
    mask the only position that has read the whole text, as ``GPT2ForSequenceClassification`` pools), under a
    linear softmax head (params ``{"gpt": ..., "classifier": ...}``; batches ``{"ids" [B, T], "mask" [B, T],
    "labels" [B]}``, right or left padding: positions from the mask, so both give the same features).
    The head has no dropout of its own, as HuggingFace's ``score`` has none."""

    def encode(params, batch, *, key, train):
        inputs = {"input_ids": batch["ids"], "attention_mask": batch["mask"]}
        return gpt.sequence_state(params["gpt"], inputs, config=config, key=key, train=train)

    def head(p, h, *, key, train):
        return heads.linear(p, h)

    return Classifier(encode=encode, head=head, kind="softmax")


@dataclass(frozen=True)
class HoldoutConfig:
    """Fine-tuning on one seeded train/test split (``scratchlm gru-lm classify``)."""

    steps: int = 200  # minibatch steps (the demo runs 30-150)
    lr: float = 1e-3  # AdamW peak rate of the linear warm-up/decay schedule
    batch_size: int = 16
    test_fraction: float = 0.25  # of the shuffled examples, held out for the test accuracy
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ScratchlmError(f"--steps and --batch-size must be at least 1, got {self.steps} and {self.batch_size}")
        checks.positive("lr", self.lr)
        if not 0.0 < self.test_fraction < 1.0:
            raise ScratchlmError(f"--test-fraction must be in (0, 1), got {self.test_fraction}")

    @property
    def optimizer(self) -> OptimizerConfig:
        """Linear schedule with a 10% warm-up (none for a single step), clipped to global norm 1."""
        warmup = max(1, self.steps // 10) if self.steps > 1 else 0
        return OptimizerConfig(self.lr, self.steps, warmup_steps=warmup, clip_norm=1.0)


def holdout(model: Classifier, init_head: Callable[[jax.Array, int], dict], encode_text: Callable[[str], list[int]],
            examples, config: HoldoutConfig) -> dict:
    """Fine-tune ``model`` on a seeded split of labelled ``(text, label)`` pairs; test accuracy and the baseline.

    The examples are shuffled once (``default_rng(seed)``) and the first ``test_fraction`` held out;
    ``init_head(key(seed), num_classes)`` gives the params; minibatches are a deterministic function of
    the step (:func:`scratchlm.data.batching.epoch_batch`), all padded to the longest text so the step
    compiles once; dropout keys start from ``key(seed + 1)``.  Returns test accuracy beside the
    majority-class baseline (the training split's most frequent class, predicted for every test
    example: the test split's own majority rate would use its labels).
    """
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(examples))
    encoded = [encode_text(examples[i][0]) or [0] for i in order]
    labels = np.asarray([examples[i][1] for i in order], np.int32)
    ids = pad_ids(encoded)
    mask = np.arange(ids.shape[1])[None, :] < np.asarray([len(e) for e in encoded])[:, None]
    n_test = max(1, round(len(encoded) * config.test_fraction))
    train, test = slice(n_test, None), slice(0, n_test)
    n_train = len(encoded) - n_test
    batch = min(config.batch_size, n_train)
    num_classes = int(labels.max()) + 1

    params = init_head(jax.random.key(config.seed), num_classes)
    tx, step = make_step(model, config.optimizer)

    def batch_fn(t: int) -> dict:
        rows = epoch_batch(n_train, t, batch, config.seed)
        return {"ids": ids[train][rows], "mask": mask[train][rows], "labels": labels[train][rows]}

    result = fit(params, tx, step, batch_fn, key=jax.random.key(config.seed + 1),
                 config=loop.LoopConfig(steps=config.steps, log_every=0, progress=False))
    z = jax.jit(lambda p, b: logits(model, p, b))(result.state.params, {"ids": ids[test], "mask": mask[test]})
    # a float32 mean, as `gru-lm classify` has always reported it (metrics.accuracy's float64 would print
    # other digits for the same predictions)
    accuracy = float(jnp.mean(jnp.asarray(heads.predict(z, model.kind)) == labels[test]))
    majority_class = int(np.argmax(np.bincount(labels[train], minlength=num_classes)))
    majority = metrics.accuracy(np.full(n_test, majority_class), labels[test])
    return {"test_accuracy": accuracy, "majority_baseline": majority, "train_examples": n_train,
            "test_examples": n_test}
