r"""Design document 002's LSTM classifier (:mod:`scratchlm.models.rnn_classifier`) through the one classification
recipe, scored by k-fold cross-validation like the embedding bag (:mod:`scratchlm.training.embedding_bag`).

The document trains ``embedding → LSTM(128) → LSTM(128) → Dense(1, sigmoid)`` with Keras's
``model.fit(batch_size=32, epochs=10)`` under Adam (learning rate 10⁻³, constant) on the binary
cross-entropy

.. math::  \mathcal L = -\frac{1}{B}\sum_{b=1}^{B} \left[y_b \log\sigma(z_b) + (1 - y_b)\log\sigma(-z_b)\right]

and so does :func:`cross_validate`, once per fold of :func:`scratchlm.training.cv.kfold` (the same
unstratified, seeded folds as the bag's, so the two are scored on the same test sentences): a fresh
model on the fold's training sentences (vocabulary from them alone, as the bag's), minibatches of
:func:`scratchlm.data.batching.epoch_batch` (each epoch a fresh permutation; the remainder of an
epoch skipped, so the step has one shape), predictions on the held-out fold.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import numpy as np

from scratchlm import checks
from scratchlm.data.batching import epoch_batch, pad_ids
from scratchlm.data.corpora import word_tokens
from scratchlm.errors import ScratchlmError
from scratchlm.models import heads, rnn_classifier
from scratchlm.training import classify
from scratchlm.training.cv import cross_validate as cross_validate_folds
from scratchlm.training.cv import pool_folds, score_fold
from scratchlm.training.embedding_bag import fold_vocab
from scratchlm.training.loop import LoopConfig


@dataclass(frozen=True)
class RecurrentCVConfig:
    """One cross-validated run of the recurrent classifier (``scratchlm classify --encoder lstm|gru``)."""

    cell: str = "lstm"  # design document 002's; "gru" puts GRUs in the same two places
    folds: int = 5  # 40 test sentences a fold of the 200 polarity sentences, as the bag's
    embed_dim: int = 64  # document 002 §5.2: EMBEDDING_DIM
    hidden_size: int = 128  # document 002 §5.2: LSTM(128), twice
    epochs: int = 10  # document 002 §5.2: EPOCHS
    batch_size: int = 32  # document 002 §5.2: BATCH_SIZE
    lr: float = 1e-3  # Keras's Adam default (the document's optimizer='adam'), constant
    min_count: int = 1  # words of the training folds seen fewer times map to <unk>
    seed: int = 0

    def __post_init__(self):
        if self.cell not in rnn_classifier.CELLS:
            raise ScratchlmError(f"--encoder must be one of {('bag', *rnn_classifier.CELLS)}, got {self.cell!r}")
        if self.folds < 2:
            raise ScratchlmError(f"--folds must be at least 2, got {self.folds}")
        if min(self.embed_dim, self.hidden_size, self.epochs, self.batch_size, self.min_count) < 1:
            raise ScratchlmError(f"--dim, --hidden, --epochs, --batch-size and min_count must be at least 1, got "
                                 f"{self.embed_dim}, {self.hidden_size}, {self.epochs}, {self.batch_size}, "
                                 f"{self.min_count}")
        checks.positive("lr", self.lr)


@functools.lru_cache(maxsize=4)
def _model_and_step(model: rnn_classifier.RNNClassifierConfig, steps: int, lr: float):
    """The recipe's model, Adam at a constant rate and its jitted step, built once per setting (one compilation
    for every fold).  AdamW with no weight decay is Adam."""
    encoder = classify.recurrent_encoder(model)
    optimizer = classify.OptimizerConfig(lr, steps, schedule="constant")
    tx, step = classify.make_step(encoder, optimizer)
    predict = jax.jit(lambda p, b: classify.logits(encoder, p, b))
    return tx, step, predict


def cross_validate(texts, labels, config: RecurrentCVConfig = RecurrentCVConfig(), *, metrics_dir=None) -> dict:
    """k-fold cross-validated accuracy of the recurrent classifier, trained through the shared loop.

    Returns per-fold and pooled accuracy and macro F1, and the majority-class rate, with the keys of
    :func:`scratchlm.training.embedding_bag.cross_validate`'s result.
    """
    labels = np.asarray(labels, np.float32)
    tokens = [word_tokens(t) for t in texts]
    # One table size, one padded length and one number of steps for every fold, so the step compiles once;
    # they come from the whole set's word count, longest sentence and size, never from its labels.
    V = len({w for t in tokens for w in t}) + 2
    T = max(1, max(len(t) for t in tokens))
    # np.array_split's test folds hold n // k or n // k + 1 examples: training parts n - n // k at most, and
    # at least n - ceil(n / k), which the batch must fit (epoch_batch would shrink it: another compilation).
    n_train_max = len(tokens) - len(tokens) // config.folds
    B = min(config.batch_size, len(tokens) - -(-len(tokens) // config.folds))
    steps = config.epochs * (n_train_max // B)
    model = rnn_classifier.RNNClassifierConfig(V, config.embed_dim, config.hidden_size, cell=config.cell)
    tx, step, predict = _model_and_step(model, steps, config.lr)
    key = jax.random.key(config.seed)

    def run_fold(k: int, train_idx: np.ndarray, test_idx: np.ndarray) -> dict:
        k_init, k_train = jax.random.split(jax.random.fold_in(key, k))
        vocab = fold_vocab([tokens[i] for i in train_idx], min_count=config.min_count)
        encoded = [vocab.encode(t) for t in tokens]
        ids = pad_ids(encoded, T)
        mask = np.arange(T)[None, :] < np.asarray([len(e) for e in encoded])[:, None]
        n_train = len(train_idx)

        def batch_fn(t: int) -> dict:
            rows = train_idx[epoch_batch(n_train, t, B, config.seed + k)]
            return {"ids": ids[rows], "mask": mask[rows], "labels": labels[rows]}

        loop = LoopConfig(steps=steps, log_every=max(1, steps // 10), progress=False,
                          metrics_path=None if metrics_dir is None else f"{metrics_dir}/fold{k}.jsonl")
        result = classify.fit(rnn_classifier.init(k_init, model), tx, step, batch_fn, key=k_train, config=loop)
        # Score every sentence (one shape for every fold) and keep the held-out ones.
        z = predict(result.state.params, {"ids": ids, "mask": mask})
        predictions, truth = heads.predict(z, "sigmoid")[test_idx], labels[test_idx].astype(int)
        return {"fold": k, "n_test": len(test_idx), **score_fold(predictions, truth, labels[train_idx]),
                "learning_rate": config.lr}

    scores = cross_validate_folds(len(tokens), config.folds, config.seed, run_fold)
    return {**pool_folds(scores, labels), "evaluation": f"{config.folds}-fold cross-validation",
            "steps_per_fold": steps, "batch_size": B}
