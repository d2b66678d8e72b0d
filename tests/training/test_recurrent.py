"""Design document 002's recurrent classifier: the model (scratchlm.models.rnn_classifier) through the one
recipe (classify.recurrent_encoder) and its cross-validation (scratchlm.training.recurrent)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.errors import ScratchlmError
from scratchlm.models import heads
from scratchlm.models import rnn_classifier as R
from scratchlm.nn import gru, lstm
from scratchlm.training import classify, recurrent
from scratchlm.training import embedding_bag as bag


def test_defaults_are_the_documents_model():
    """Document 002 §5.2: Embedding(V, 64) -> LSTM(128, sequences) -> LSTM(128) -> Dense(1, sigmoid)."""
    config = R.RNNClassifierConfig(vocab_size=10)
    params = R.init(jax.random.key(0), config)
    assert params["embedding"].shape == (10, 64)
    assert params["rnn"]["config"] == lstm.LSTMConfig(64, 128, num_layers=2)
    assert params["rnn"]["weight_ih_l1"].shape == (4 * 128, 128)  # the second LSTM reads the first's sequence
    assert params["output"]["w"].shape == (128,) and params["output"]["b"].shape == ()
    assert recurrent.RecurrentCVConfig().epochs == 10 and recurrent.RecurrentCVConfig().batch_size == 32
    with pytest.raises(ScratchlmError, match="cell"):
        R.RNNClassifierConfig(vocab_size=10, cell="rnn")


@pytest.mark.parametrize("cell", R.CELLS)
def test_logit_is_the_top_layers_state_at_each_sentences_last_token(cell):
    """classify.logits on the recurrent encoder = w·h + b with h the top layer's output at the sentence's own
    last token, computed on that sentence alone (no padding): the mask carries the state through padding.
    (1e-6: the same float32 ops on O(1) values, batched differently.)"""
    config = R.RNNClassifierConfig(vocab_size=9, embed_dim=3, hidden_size=4, cell=cell)
    params = R.init(jax.random.key(1), config)
    params["output"] = {"w": jnp.array([0.5, -1.0, 2.0, 0.3]), "b": jnp.array(0.1)}
    ids = jnp.array([[3, 5, 2, 7, 8], [4, 6, 0, 0, 0]])
    mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]], bool)
    z = classify.logits(classify.recurrent_encoder(config), params, {"ids": ids, "mask": mask})
    assert z.shape == (2, 1)
    layer = lstm if cell == "lstm" else gru
    for b, length in enumerate((5, 2)):
        outputs = layer.apply(params["rnn"], params["embedding"][ids[b : b + 1, :length]])[0]
        want = heads.logistic(params["output"], outputs[:, -1])
        np.testing.assert_allclose(z[b], want, rtol=0, atol=1e-6)


def _toy_task(n=40, seed=0):
    """Sentences 'w1 ... good|bad ... w3': the label is which of 'good'/'bad' occurs (at a random place)."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(8)]
    texts, labels = [], []
    for i in range(n):
        words = list(rng.choice(filler, size=rng.integers(2, 6)))
        words.insert(int(rng.integers(0, len(words) + 1)), "good" if i % 2 else "bad")
        texts.append(" ".join(words))
        labels.append(i % 2)
    return texts, labels


def test_cross_validation_learns_a_separable_task_on_the_bags_folds():
    """On a task one word decides, the LSTM classifier's 2-fold CV accuracy is at least 0.9 (seed fixed: a
    learned model gets every sentence right, chance is 0.5), on the same test folds as the bag's."""
    texts, labels = _toy_task()
    config = recurrent.RecurrentCVConfig(folds=2, embed_dim=8, hidden_size=8, epochs=30, batch_size=10, lr=0.03)
    result = recurrent.cross_validate(texts, labels, config)
    baseline = bag.cross_validate(texts, labels, bag.CVConfig(folds=2, steps=5))
    assert result["accuracy"] >= 0.9
    assert result["majority"] == 0.5
    assert [f["n_test"] for f in result["folds"]] == [f["n_test"] for f in baseline["folds"]] == [20, 20]
    assert result["steps_per_fold"] == 30 * (20 // 10) and result["batch_size"] == 10
    assert set(baseline) <= set(result)


def test_bad_config_is_a_scratchlm_error():
    with pytest.raises(ScratchlmError, match="--encoder"):
        recurrent.RecurrentCVConfig(cell="transformer")
    with pytest.raises(ScratchlmError, match="--epochs"):
        recurrent.RecurrentCVConfig(epochs=0)
    with pytest.raises(ScratchlmError, match="--lr"):
        recurrent.RecurrentCVConfig(lr=0.0)
