r"""The baselines a fine-tuning result is read against: the majority rate and a frozen-encoder linear probe.

A fine-tuned accuracy means little alone on 200 sentences: it is printed beside

* the **majority rate**, the share of the most frequent class (all-``O`` for a token task, whose entity
  F1 is then 0), what a model that learnt nothing scores;
* a **linear probe** (Alain & Bengio 2017): the *initial* encoder frozen, its features (mean-pooled
  :math:`h^{(L)}` for a sequence, each word's first sub-token :math:`h^{(L)}_t` for a token task) fed
  to an L2-regularised multinomial logistic regression (:func:`logistic_regression`) trained on the
  same training examples and scored on the same held-out ones.  Fine-tuning that does not beat it has
  not used the encoder's weights.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from scratchlm.data.batching import IGNORE, take
from scratchlm.models import bert, gpt


def logistic_regression(X: np.ndarray, y: np.ndarray, num_classes: int, *, l2: float | None = None,
                        iterations: int = 300) -> dict:
    r"""L2-regularised multinomial logistic regression by L-BFGS (Nocedal & Wright 2006, Algorithm 7.5):

    .. math::  \hat W, \hat b = \arg\min_{W, b}\ -\frac{1}{N}\sum_{i=1}^{N}\log\mathrm{softmax}(W^\top x_i + b)_{y_i}
               + \frac{\lambda}{2}\lVert W\rVert_F^2

    (Bishop 2006, eq. 4.108 with the penalty of eq. 3.27; the bias unpenalised).  Strictly convex in
    :math:`W` for :math:`\lambda > 0`, so the minimiser is unique; ``l2`` :math:`\lambda` defaults to
    :math:`1/N` (scikit-learn's ``LogisticRegression(C=1)``: :math:`\frac12\lVert W\rVert^2 + C\sum_i \ell_i`
    divided by :math:`N`).  Features are standardised on ``X`` first (mean 0, variance 1 per column),
    which the returned ``{"weight" [H, C], "bias" [C], "mean" [H], "scale" [H]}`` carries along.
    """
    X = np.asarray(X, np.float32)
    mean, scale = X.mean(0), X.std(0) + 1e-6
    lam = 1.0 / len(X) if l2 is None else l2
    W, b = _fit(jnp.asarray((X - mean) / scale), jnp.asarray(y, jnp.int32), num_classes, float(lam), iterations)
    return {"weight": np.asarray(W), "bias": np.asarray(b), "mean": mean, "scale": scale}


@functools.partial(jax.jit, static_argnums=(2, 4))
def _fit(Z, y, num_classes, lam, iterations):
    def objective(p):
        z = Z @ p[0] + p[1]
        nll = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(z), y[:, None], axis=1))
        return nll + 0.5 * lam * jnp.sum(p[0] ** 2)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry, _):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=objective)
        return (optax.apply_updates(p, updates), state), None

    p = (jnp.zeros((Z.shape[1], num_classes)), jnp.zeros(num_classes))
    (p, _), _ = jax.lax.scan(step, (p, opt.init(p)), None, length=iterations)
    return p


def probe_predict(probe: dict, X: np.ndarray) -> np.ndarray:
    """The probe's classes :math:`\\arg\\max_c (W^\\top z + b)_c` of the standardised features ``X``."""
    z = ((np.asarray(X, np.float32) - probe["mean"]) / probe["scale"]) @ probe["weight"] + probe["bias"]
    return z.argmax(-1)


@functools.cache
def _features(config: bert.BertConfig | gpt.GPTConfig, pooled: bool):
    if isinstance(config, gpt.GPTConfig):  # the features GPT's classifier reads: the last real token's state
        if not pooled:
            raise ValueError("a GPT encoder has no token-task probe (token tasks are refused for GPT)")

        def f(params, batch):
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            return gpt.sequence_state(params, inputs, config=config).astype(jnp.float32)

        return jax.jit(f)

    def f(params, batch):
        h = bert.apply(params, batch, config=config)["last_hidden_state"]
        return bert.mean_pool(h, batch["attention_mask"]) if pooled else h.astype(jnp.float32)

    return jax.jit(f)


def features(params: dict, data: dict, *, config: bert.BertConfig | gpt.GPTConfig, pooled: bool,
             batch_size: int = 16) -> np.ndarray:
    """The frozen encoder's features of ``data``: mean-pooled [N, H] (:func:`scratchlm.models.bert.mean_pool`;
    for a GPT encoder the last real token's state, :func:`scratchlm.models.gpt.sequence_state`),
    or [M, H] of the M labelled positions (``labels != IGNORE``: each word's first sub-token) in row-major
    order.

    The rows go through the encoder shortest first, ``batch_size`` at a time, each batch at its own bucketed
    length (:func:`scratchlm.data.batching.take`), filled up to ``batch_size`` rows so that the pass compiles
    once per length bucket: a batch pads its rows to its longest, so batches of like lengths pad least (on
    the polarity sentences, 16 sorted rows a batch cost half the padded positions of 64 in data order)."""
    N = len(data["input_ids"])
    forward = _features(config, pooled)
    encoder = (params if isinstance(config, gpt.GPTConfig) else
               {k: v for k, v in params.items() if k in ("embeddings", "encoder")})
    order = np.argsort(np.asarray(data["attention_mask"]).sum(1), kind="stable")
    per_row: list = [None] * N
    for start in range(0, N, batch_size):
        index = order[start:start + batch_size]
        filled = np.concatenate([index, np.full(min(batch_size, N) - len(index), index[0])])
        rows = take(data, filled)  # at the batch's bucketed length (labels padded with IGNORE)
        batch = {k: jnp.asarray(rows[k]) for k in ("input_ids", "attention_mask", "token_type_ids") if k in rows}
        f = np.asarray(forward(encoder, batch))[: len(index)]
        for i, row in enumerate(index):
            per_row[row] = f[i] if pooled else f[i][np.asarray(rows["labels"])[i] != IGNORE]  # the labelled positions
    return np.stack(per_row) if pooled else np.concatenate(per_row)


def majority_rate(labels: np.ndarray) -> float:
    """The share of the most frequent label (positions labelled ``IGNORE`` left out)."""
    y = np.asarray(labels).ravel()
    y = y[y != IGNORE]
    return float(np.bincount(y).max() / len(y))


def sequence_probe(X: np.ndarray, labels: np.ndarray, num_classes: int,
                   folds: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Probe predictions [N] by cross-validation: for each ``(train_index, test_index)`` of ``folds`` (the
    fine-tuning run's), a probe trained on the train rows predicts the test rows."""
    predicted = np.full(len(labels), -1)
    for train_index, test_index in folds:
        probe = logistic_regression(X[train_index], labels[train_index], num_classes)
        predicted[test_index] = probe_predict(probe, X[test_index])
    return predicted


def token_probe(X_train: np.ndarray, train_labels: np.ndarray, X_test: np.ndarray, test_labels: np.ndarray,
                num_classes: int) -> np.ndarray:
    """Per-token probe predictions [N, T] (0 where ``test_labels`` is ``IGNORE``), trained on every labelled
    train position: the features of :func:`features` (``pooled=False``), one per word's first sub-token,
    as the token classifier's head reads them."""
    probe = logistic_regression(X_train, train_labels[train_labels != IGNORE], num_classes)
    predicted = np.zeros(test_labels.shape, int)
    predicted[test_labels != IGNORE] = probe_predict(probe, X_test)
    return predicted


# ----------------------------------------------------------------------------- the baselines of a run


def sequence_baselines(params: dict, data: dict, *, config: bert.BertConfig | gpt.GPTConfig, num_classes: int,
                       folds: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """``majority_rate`` and ``linear_probe_accuracy`` over the test rows of ``folds`` (k folds that cover
    every row once, or one train/test split), pooled as the run pools its own predictions."""
    from scratchlm.training.metrics import accuracy

    labels = np.asarray(data["labels"])
    tested = np.concatenate([test for _, test in folds])
    X = features(params, data, config=config, pooled=True)
    predicted = sequence_probe(X, labels, num_classes, folds)
    return {"majority_rate": majority_rate(labels[tested]),
            "linear_probe_accuracy": accuracy(predicted[tested], labels[tested])}


def token_baselines(params: dict, train: dict, test: dict, n_words: list[int], tags: tuple[str, ...], *,
                    config: bert.BertConfig | gpt.GPTConfig) -> dict:
    """All-``O`` (label 0, :func:`scratchlm.data.tasks.word_predictions`' outside) word accuracy
    ``majority_rate`` and its entity F1 (0), and the per-token probe's ``linear_probe_entity_f1`` and
    ``linear_probe_accuracy`` on ``test``'s words, scored as :func:`scratchlm.training.finetune.evaluate`."""
    from scratchlm.training import seqeval
    from scratchlm.training.finetune import word_tags

    def scores(predicted):
        y_true, y_pred = word_tags(test, predicted, n_words, tags)
        flat = [(a, b) for s, p in zip(y_true, y_pred) for a, b in zip(s, p)]
        return seqeval.entity_f1(y_true, y_pred), float(np.mean([a == b for a, b in flat]))

    f1_major, acc_major = scores(np.zeros_like(test["labels"]))
    X_train = features(params, train, config=config, pooled=False)
    X_test = features(params, test, config=config, pooled=False)
    f1_probe, acc_probe = scores(token_probe(X_train, np.asarray(train["labels"]), X_test,
                                             np.asarray(test["labels"]), len(tags)))
    return {"majority_rate": acc_major, "majority_entity_f1": f1_major,
            "linear_probe_entity_f1": f1_probe, "linear_probe_accuracy": acc_probe}


def baseline_line(metrics: dict, task: str) -> str:
    """A run's result beside its two baselines, one line for the terminal (``metrics``: the run's
    ``metrics.json``, holding :func:`sequence_baselines`' or :func:`token_baselines`' keys)."""
    if task == "token":
        return (f"baselines: all-O tags accuracy {metrics['majority_rate']:.4f} (entity F1 0); linear probe of the "
                f"frozen initial encoder, per token: entity F1 {metrics['linear_probe_entity_f1']:.4f}, accuracy "
                f"{metrics['linear_probe_accuracy']:.4f}; fine-tuned: entity F1 {metrics['entity_f1']:.4f}")
    return (f"baselines: majority rate {metrics['majority_rate']:.4f}; linear probe of the frozen initial encoder "
            f"(mean-pooled) {metrics['linear_probe_accuracy']:.4f}; fine-tuned: accuracy {metrics['accuracy']:.4f}")
