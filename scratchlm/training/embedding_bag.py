r"""The embedding-bag classifier (design document 001 §5.2) through the one classification recipe, scored by
(nested) k-fold cross-validation.

The model (:mod:`scratchlm.models.classifier`) is the encoder :func:`~scratchlm.models.classifier.pool`
under the logistic head (:func:`scratchlm.models.heads.logistic`), trained on the weighted BCE risk

.. math::  \mathcal L = \frac{\sum_i r_i\, \ell(z_i, y_i)}{\sum_i r_i}

with :math:`r_i \in \{0, 1\}` marking the real rows: every training set is padded to one batch
size so the step compiles once, and :math:`r = 1` everywhere gives the plain empirical risk.

:func:`cross_validate` trains it with k-fold cross-validation (:func:`scratchlm.training.cv.kfold`,
unstratified: one seeded shuffle cut into k pieces), the honest estimate for a set as small as the
200 polarity sentences; given several learning rates it picks one per outer fold by an inner
cross-validation on that fold's training part (nested CV), so the test fold never informs a choice.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.data.batching import pad_ids
from scratchlm.data.corpora import word_tokens
from scratchlm.embeddings.formats import WordVectors
from scratchlm.errors import ScratchlmError
from scratchlm.models import heads
from scratchlm.models.classifier import ClassifierConfig, embedding_from_vectors, init, pool, predict_proba
from scratchlm.tokenizers.vocab import Vocab
from scratchlm.training import classify
from scratchlm.training.cv import cross_validate as cross_validate_folds
from scratchlm.training.cv import kfold, pool_folds, score_fold
from scratchlm.training.loop import LoopConfig


def bag_classifier(config: ClassifierConfig) -> classify.Classifier:
    """The embedding bag as the recipe's model: ``pool`` under the logistic head (params ``"output"``), one
    sigmoid logit; batches ``{"ids" [B, T], "labels" [B], "weights" [B]}``.  The step's key goes whole to
    the embedding dropout (no head dropout: ``split_key=False``)."""

    def encode(params, batch, *, key, train):
        return pool(params, batch["ids"], config=config, key=key, train=train)

    def head(p, h, *, key, train):
        return heads.logistic(p, h)[:, None]

    return classify.Classifier(encode=encode, head=head, kind="sigmoid", head_key="output", split_key=False)


def fold_vocab(train_tokens, *, min_count: int, wv: WordVectors | None = None) -> Vocab:
    """The training sentences' words (``min_count`` or more), most frequent first, then ``wv``'s other words.

    ``wv``'s words come from the unlabelled text its vectors were learned on, never from a test
    fold, so a test word the training folds lack still finds its pretrained vector.
    """
    vocab = Vocab.from_corpus(train_tokens, min_count=min_count)
    if wv is None:
        return vocab
    known = set(vocab.tokens)
    extra = tuple(w for w in wv.words if w not in known)
    return Vocab(vocab.tokens + extra, vocab.counts + (0,) * len(extra), vocab.specials, vocab.unk)


@dataclass(frozen=True)
class CVConfig:
    """One cross-validated run of the embedding-bag classifier (``scratchlm classify``)."""

    folds: int = 5  # 40 test sentences a fold of the 200 polarity sentences
    embed_dim: int = 16  # the random table's width (a pretrained table has its vectors'): 160 sentences support few
    steps: int = 100  # full-batch AdamW steps per fold
    learning_rates: tuple[float, ...] = (0.01,)  # several: nested CV picks one per outer fold
    inner_folds: int = 3
    weight_decay: float = 0.01  # AdamW's decoupled decay on the table (biases and scalars are not decayed)
    dropout: float = 0.0  # drop rate on the token embeddings while training
    min_count: int = 1  # words of the training folds seen fewer times map to <unk>
    freeze_embedding: bool = False  # train only w, b (logistic regression on the pooled vectors)
    seed: int = 0

    def __post_init__(self):
        if self.folds < 2 or self.inner_folds < 2:
            raise ScratchlmError(f"--folds must be at least 2, got {self.folds} (inner folds {self.inner_folds})")
        if self.embed_dim < 1 or self.steps < 1 or self.min_count < 1:
            raise ScratchlmError(f"--dim, --steps and min_count must be at least 1, got {self.embed_dim}, "
                                 f"{self.steps}, {self.min_count}")
        if not self.learning_rates or min(self.learning_rates) <= 0:
            raise ScratchlmError(f"--lr must be positive, got {self.learning_rates}")
        if not 0.0 <= self.dropout < 1.0:
            raise ScratchlmError(f"--dropout must be in [0, 1), got {self.dropout}")


@functools.lru_cache(maxsize=16)
def _optimizer_and_step(model: ClassifierConfig, steps: int, learning_rate: float, weight_decay: float, freeze: bool):
    """AdamW with linear decay and its jitted step, built once per setting so repeated runs compile once.

    Freezing is data: the optax mask ``trainable`` (False on the table) when ``freeze``.
    """
    trainable = {"embedding": False, "output": {"w": True, "b": True}} if freeze else None
    optimizer = classify.OptimizerConfig(learning_rate, steps, weight_decay=weight_decay)
    return classify.make_step(bag_classifier(model), optimizer, trainable=trainable)


def _fit_and_score(tokens, labels, train_idx, test_idx, *, config: CVConfig, learning_rate: float, wv,
                   shape: tuple[int, int, int, int], key, metrics_path=None) -> np.ndarray:
    """Train on ``train_idx`` (vocabulary from those sentences only) and return σ(z) on ``test_idx``.

    ``shape`` = (V, D, N, T): table rows and width, training rows (padded with r = 0) and tokens per
    sentence, the same for every fold, so the step and the prediction compile once.
    """
    V, D, N, T = shape
    vocab = fold_vocab([tokens[i] for i in train_idx], min_count=config.min_count, wv=wv)
    model = ClassifierConfig(vocab_size=V, embed_dim=D, dropout=config.dropout)
    k_init, k_train = jax.random.split(key)
    params = init(k_init, model)
    if wv is not None:
        E, _ = embedding_from_vectors(k_init, vocab, wv)
        params["embedding"] = jnp.zeros((V, D), jnp.float32).at[: len(vocab)].set(E)
    # Pad the training set to N rows (weight r = 0) so every fold and inner fold shares one compiled step.
    ids = np.zeros((N, T), np.int32)
    ids[: len(train_idx)] = pad_ids([vocab.encode(tokens[i]) for i in train_idx], T)
    y = np.zeros(N, np.float32)
    y[: len(train_idx)] = labels[train_idx]
    r = (np.arange(N) < len(train_idx)).astype(np.float32)
    batch = {"ids": jnp.asarray(ids), "labels": jnp.asarray(y), "weights": jnp.asarray(r)}
    tx, step = _optimizer_and_step(model, config.steps, learning_rate, config.weight_decay, config.freeze_embedding)
    loop = LoopConfig(steps=config.steps, log_every=25, metrics_path=metrics_path, progress=False)
    result = classify.fit(params, tx, step, lambda t: batch, key=k_train, config=loop)
    # Score every sentence (one shape for every fold) and keep the held-out ones.
    return predict_proba(result.state.params, pad_ids([vocab.encode(t) for t in tokens], T), config=model)[test_idx]


def _select_learning_rate(tokens, labels, train_idx, *, config: CVConfig, wv, shape, key) -> tuple[float, dict]:
    """The learning rate with the best inner-CV accuracy on the training part alone (ties: the first)."""
    inner = kfold(len(train_idx), config.inner_folds, config.seed + 1)
    scores = {}
    for lr in config.learning_rates:
        correct = 0
        for j, (kept, held) in enumerate(inner):
            fit_idx, val_idx = train_idx[kept], train_idx[held]
            p = _fit_and_score(tokens, labels, fit_idx, val_idx, config=config, learning_rate=lr, wv=wv, shape=shape,
                               key=jax.random.fold_in(key, j))
            correct += int(np.sum((p > 0.5) == (labels[val_idx] > 0.5)))
        scores[lr] = correct / len(train_idx)
    return max(config.learning_rates, key=lambda lr: scores[lr]), scores


def cross_validate(texts, labels, config: CVConfig = CVConfig(), *, vectors: WordVectors | None = None,
                   metrics_dir=None, done: Callable[[int], dict | None] = lambda k: None,
                   on_fold: Callable[[int, dict], None] = lambda k, record: None) -> dict:
    """k-fold cross-validated accuracy of the classifier, trained through the shared loop.

    For each fold the vocabulary is built from the training sentences only (test words they never
    contain become ``<unk>``, unless ``vectors`` knows them), the embedding table starts random or
    from ``vectors`` (frozen with ``config.freeze_embedding``), the model is trained full-batch with
    AdamW, and it is scored on the held-out fold.  With several ``config.learning_rates`` each outer
    fold picks its own by inner CV on its training part.  Returns per-fold and mean accuracy, macro
    F1, the majority-class rate and the chosen learning rates.  ``done(k)`` may return a finished fold's
    record (resuming: a fold is the unit of work, as in :func:`scratchlm.training.finetune.cross_validate`);
    ``on_fold(k, record)`` receives each new one.
    """
    labels = np.asarray(labels, np.float32)
    tokens = [word_tokens(t) for t in texts]
    # One table size, one padded length and one batch size (the largest training part) for every fold,
    # so the train step compiles once; they come from the whole set's word count, longest sentence
    # and size, never from its labels.
    words = {w for t in tokens for w in t}
    if vectors is not None:
        words |= set(vectors.words)
    D = config.embed_dim if vectors is None else vectors.dim
    # np.array_split's smallest test fold holds n // k examples, so the largest training part n - n // k.
    shape = (len(words) + 2, D, len(tokens) - len(tokens) // config.folds, max(len(t) for t in tokens))
    key = jax.random.key(config.seed)

    def run_fold(k: int, train_idx: np.ndarray, test_idx: np.ndarray) -> dict:
        record = done(k)
        if record is None:
            record = fit_fold(k, train_idx, test_idx)
            on_fold(k, record)
        return record

    def fit_fold(k: int, train_idx: np.ndarray, test_idx: np.ndarray) -> dict:
        k_fold = jax.random.fold_in(key, k)
        lr, inner = config.learning_rates[0], None
        if len(config.learning_rates) > 1:
            lr, inner = _select_learning_rate(tokens, labels, train_idx, config=config, wv=vectors, shape=shape,
                                              key=jax.random.fold_in(k_fold, 1))
        p = _fit_and_score(tokens, labels, train_idx, test_idx, config=config, learning_rate=lr, wv=vectors,
                           shape=shape, key=k_fold,
                           metrics_path=None if metrics_dir is None else f"{metrics_dir}/fold{k}.jsonl")
        predictions, truth = (p > 0.5).astype(int), labels[test_idx].astype(int)
        return {
            "fold": k,
            "n_test": len(test_idx),
            **score_fold(predictions, truth, labels[train_idx]),
            "learning_rate": lr,
            **({"inner_accuracy": {str(a): s for a, s in inner.items()}} if inner else {}),
        }

    scores = cross_validate_folds(len(tokens), config.folds, config.seed, run_fold)
    nested = " (nested CV over learning rates)" if len(config.learning_rates) > 1 else ""
    return {**pool_folds(scores, labels), "evaluation": f"{config.folds}-fold cross-validation" + nested}


def load_vectors(spec: str, texts) -> WordVectors | None:
    """Where the table starts (``--init``): None for 'random', MiniLM's vectors for the words of ``texts``
    (:func:`scratchlm.embeddings.minilm.minilm_word_vectors`), or a word2vec text file."""
    from scratchlm.embeddings.formats import load_word2vec
    from scratchlm.embeddings.minilm import minilm_word_vectors
    from scratchlm.errors import MissingDataError

    if spec == "random":
        return None
    if spec == "minilm":
        return minilm_word_vectors(w for t in texts for w in word_tokens(t))
    if not Path(spec).is_file():
        raise MissingDataError(f"--init {spec}: no such file (give 'random', 'minilm' or a word2vec text file, "
                               f"e.g. the vectors.txt that 'scratchlm word2vec' writes)")
    return load_word2vec(spec)
