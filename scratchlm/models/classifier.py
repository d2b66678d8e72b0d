"""The design documents' text classifier: embeddings, mean pooling over real tokens, a sigmoid output.

Design document 001 §5.2 (and 000 §5): ``Embedding -> GlobalAveragePooling1D -> Dense(1, sigmoid)``
trained with binary cross-entropy.  One deviation: Keras's pooling there averages over every
position, padding included, so a sentence's score would depend on how long the batch's longest
sentence is; here the mean runs over the non-padding tokens only.

The embedding table starts either random or from word vectors learned on other, unlabelled text
(:func:`embedding_from_vectors`: Word2Vec or GloVe files, or any :class:`WordVectors`), frozen or
fine-tuned: the documents' point that embeddings carry what a small labelled set cannot teach.

:func:`cross_validate` trains it through the shared loop (:mod:`scratchlm.training.loop`) with
k-fold cross-validation, the honest estimate for a set as small as the 200 polarity sentences;
given several learning rates it picks one per outer fold by an inner cross-validation on that
fold's training part (nested CV), so the test fold never informs a choice.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.data.batching import pad_ids
from scratchlm.data.corpora import word_tokens
from scratchlm.embeddings.formats import WordVectors
from scratchlm.nn.functional import dropout, sigmoid
from scratchlm.nn.losses import binary_cross_entropy_with_logits
from scratchlm.tokenizers.vocab import Vocab
from scratchlm.training import metrics
from scratchlm.training.cv import kfold
from scratchlm.training.loop import LoopConfig, init_train_state, make_optimizer, make_train_step, train

INIT_RMS = 0.1  # entry scale of the random table; pretrained tables are rescaled to it (see embedding_from_vectors)


@dataclass(frozen=True)
class ClassifierConfig:
    vocab_size: int
    embed_dim: int = 16  # small: 160 training sentences cannot support many parameters
    pad_id: int = 0  # Vocab's "<pad>"
    unk_id: int = 1  # Vocab's "<unk>"
    dropout: float = 0.0  # drop rate on the token embeddings E_{x_t} while training


def init(key: jax.Array, config: ClassifierConfig) -> dict:
    """``{"embedding": [V, D] ~ N(0, 0.1^2), "output": {"w": [D] = 0, "b": [] = 0}}``.

    A zero output layer makes the untrained model predict 1/2 for every sentence.  The ``<pad>``
    and ``<unk>`` rows start at 0: with ``min_count=1`` no training word maps to ``<unk>``, so a
    random row there would only add noise to the test sentences that hold unseen words.
    """
    E = INIT_RMS * jax.random.normal(key, (config.vocab_size, config.embed_dim), jnp.float32)
    E = E.at[jnp.array([config.pad_id, config.unk_id])].set(0.0)
    return {
        "embedding": E,
        "output": {"w": jnp.zeros((config.embed_dim,), jnp.float32), "b": jnp.zeros((), jnp.float32)},
    }


def embedding_from_vectors(key: jax.Array, vocab: Vocab, wv: WordVectors, *, rms: float = INIT_RMS) -> tuple[np.ndarray, int]:
    r"""An embedding table [len(vocab), D] whose rows are ``wv``'s vectors where it has the word.

    .. math::  E_w = \frac{r}{s}\, v(w) \ \text{ if } w \in \mathrm{wv}, \qquad
               E_w \sim \mathcal N(0, r^2) \text{ otherwise}, \qquad E_{\mathrm{pad}} = E_{\mathrm{unk}} = 0

    with :math:`r` the random table's scale and :math:`s` the root mean square of the entries of
    :math:`v(w)` over the vocabulary's counted words (count > 0: the training sentences' words, never
    the words only a test fold holds), so a pretrained and a random table differ in their directions
    only and the same learning rate suits both.  Returns the table and how many of the vocabulary's
    words ``wv`` had.
    """
    D = wv.dim
    E = rms * np.asarray(jax.random.normal(key, (len(vocab), D), jnp.float32))
    index = wv.index
    rows = [(i, index[w]) for i, w in enumerate(vocab.tokens) if w in index and w not in vocab.specials]
    if rows:
        mine, theirs = (np.array(r) for r in zip(*rows))
        counted = theirs[np.asarray(vocab.counts)[mine] > 0]
        v = wv.vectors[counted] if len(counted) else wv.vectors[theirs]
        E[mine] = rms / max(float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))), 1e-12) * wv.vectors[theirs]
    for special in vocab.specials:
        E[vocab.token_to_id(special)] = 0.0
    return E, len(rows)


def apply(params: dict, ids: jax.Array, *, config: ClassifierConfig, key: jax.Array | None = None,
          train: bool = False) -> jax.Array:
    r"""Logit of the positive class for each sentence.

    .. math::  h = \frac{1}{|\{t : x_t \neq \mathrm{pad}\}|} \sum_{t : x_t \neq \mathrm{pad}} E_{x_t},
               \qquad z = w^\top h + b, \qquad \hat y = \sigma(z)

    Args: ids [B, T] token ids, padded with ``config.pad_id``; ``key`` and ``train`` for dropout on
    the embeddings :math:`E_{x_t}`.  Returns z [B] (apply :func:`~scratchlm.nn.functional.sigmoid`
    for :math:`\hat y`).
    """
    if ids.ndim != 2:
        raise ValueError(f"expected ids [B, T], got {ids.shape}")
    E = params["embedding"]
    m = (ids != config.pad_id).astype(E.dtype)  # [B, T]
    e = jnp.take(E, ids, axis=0)  # [B, T] -> [B, T, D]
    e = dropout(e, config.dropout, key=key, train=train)
    h = jnp.einsum("bt,btd->bd", m, e) / jnp.maximum(m.sum(-1, keepdims=True), 1.0)  # [B, D]
    return h @ params["output"]["w"] + params["output"]["b"]  # [B]


def loss_fn(params: dict, batch: tuple, key: jax.Array, *, config: ClassifierConfig) -> tuple[jax.Array, dict]:
    r"""Weighted BCE risk of a batch ``(ids [B, T], y [B], r [B])`` and its accuracy (the loop's ``loss_fn``).

    .. math::  \mathcal L = \frac{\sum_i r_i\, \ell(z_i, y_i)}{\sum_i r_i}

    with :math:`r_i \in \{0, 1\}` marking the real rows: every training set is padded to one batch
    size so the step compiles once, and :math:`r = 1` everywhere gives the plain empirical risk.
    """
    ids, y, r = batch
    z = apply(params, ids, config=config, key=key, train=True)
    n = jnp.maximum(r.sum(), 1.0)
    return jnp.sum(r * binary_cross_entropy_with_logits(z, y)) / n, {"accuracy": jnp.sum(r * ((z > 0) == (y > 0.5))) / n}


_apply = jax.jit(apply, static_argnames=("config", "train"))


def predict_proba(params: dict, ids, *, config: ClassifierConfig) -> np.ndarray:
    """:math:`\\hat y = \\sigma(z)` for each sentence, as a NumPy array (jitted: one compile per ids shape)."""
    return np.asarray(sigmoid(_apply(params, jnp.asarray(ids), config=config)))


# ----------------------------------------------------------------------------- data and evaluation


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
    folds: int = 5
    embed_dim: int = 16  # the random table's width; a pretrained table has its vectors' width
    steps: int = 100  # full-batch steps per fold
    learning_rates: tuple[float, ...] = (0.01,)  # several: nested CV picks one per outer fold
    inner_folds: int = 3
    weight_decay: float = 0.01
    dropout: float = 0.0
    min_count: int = 1  # words of the training folds seen fewer times map to <unk>
    freeze_embedding: bool = False  # train only w, b (logistic regression on the pooled vectors)
    seed: int = 0


@functools.lru_cache(maxsize=16)
def _optimizer_and_step(model: ClassifierConfig, steps: int, learning_rate: float, weight_decay: float, freeze: bool):
    """AdamW with linear decay and its jitted step, built once per setting so repeated runs compile once."""
    trainable = {"embedding": False, "output": {"w": True, "b": True}} if freeze else None
    tx = make_optimizer(learning_rate=learning_rate, total_steps=steps, schedule="linear", weight_decay=weight_decay,
                        trainable=trainable)
    return tx, make_train_step(functools.partial(loss_fn, config=model), tx, trainable=trainable)


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
    batch = (jnp.asarray(ids), jnp.asarray(y), jnp.asarray(r))
    tx, step = _optimizer_and_step(model, config.steps, learning_rate, config.weight_decay, config.freeze_embedding)
    loop = LoopConfig(steps=config.steps, log_every=25, metrics_path=metrics_path, progress=False)
    result = train(init_train_state(params, tx, k_train), step, lambda t: batch, config=loop)
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
                   metrics_dir=None) -> dict:
    """k-fold cross-validated accuracy of the classifier, trained through the shared loop.

    For each fold the vocabulary is built from the training sentences only (test words they never
    contain become ``<unk>``, unless ``vectors`` knows them), the embedding table starts random or
    from ``vectors`` (frozen with ``config.freeze_embedding``), the model is trained full-batch with
    AdamW, and it is scored on the held-out fold.  With several ``config.learning_rates`` each outer
    fold picks its own by inner CV on its training part.  Returns per-fold and mean accuracy, macro
    F1, the majority-class rate and the chosen learning rates.
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
    folds = kfold(len(tokens), config.folds, config.seed)
    shape = (len(words) + 2, D, len(tokens) - min(len(f) for _, f in folds), max(len(t) for t in tokens))
    key = jax.random.key(config.seed)
    scores = []
    for k, (train_idx, test_idx) in enumerate(folds):
        k_fold = jax.random.fold_in(key, k)
        lr, inner = config.learning_rates[0], None
        if len(config.learning_rates) > 1:
            lr, inner = _select_learning_rate(tokens, labels, train_idx, config=config, wv=vectors, shape=shape,
                                              key=jax.random.fold_in(k_fold, 1))
        p = _fit_and_score(tokens, labels, train_idx, test_idx, config=config, learning_rate=lr, wv=vectors,
                           shape=shape, key=k_fold,
                           metrics_path=None if metrics_dir is None else f"{metrics_dir}/fold{k}.jsonl")
        predictions, truth = (p > 0.5).astype(int), labels[test_idx].astype(int)
        scores.append({
            "fold": k,
            "n_test": len(test_idx),
            "accuracy": metrics.accuracy(predictions, truth),
            "macro_f1": metrics.precision_recall_f1(predictions, truth, average="macro")["f1"],
            "majority": float(np.mean(truth == round(float(np.mean(labels[train_idx]))))),
            "learning_rate": lr,
            **({"inner_accuracy": {str(a): s for a, s in inner.items()}} if inner else {}),
        })
    n = sum(s["n_test"] for s in scores)
    weighted = lambda key: sum(s[key] * s["n_test"] for s in scores) / n  # noqa: E731
    nested = " (nested CV over learning rates)" if len(config.learning_rates) > 1 else ""
    return {
        "accuracy": weighted("accuracy"),
        "macro_f1": weighted("macro_f1"),
        "majority": metrics.majority_rate(labels),
        "fold_majority": weighted("majority"),
        "folds": scores,
        "evaluation": f"{config.folds}-fold cross-validation" + nested,
    }
