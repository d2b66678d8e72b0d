"""scratchlm.models.classifier: pooling ignores padding, gradients, pretrained init, honest CV, it learns."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings.formats import WordVectors
from scratchlm.models import classifier as C
from scratchlm.nn.losses import bce_risk
from scratchlm.testing import check_grads
from scratchlm.tokenizers.vocab import Vocab

CONFIG = C.ClassifierConfig(vocab_size=7, embed_dim=3)


def params():
    p = C.init(jax.random.key(0), CONFIG)
    return {**p, "output": {"w": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array(0.1)}}


def test_mean_pooling_by_hand():
    """h = the mean of the real tokens' rows, z = w.h + b, compared by value for rows with 2, 3 (a repeated id)
    and 1 real tokens in a width of 4.  A denominator of T = 4, or of the distinct ids, would be off by a
    factor of at least 4/3; the float32 sums of at most 3 terms are within a few ulp (rtol 1e-6)."""
    p = params()
    E, w, b = (np.asarray(a, np.float64) for a in (p["embedding"], p["output"]["w"], p["output"]["b"]))
    ids = jnp.array([[3, 5, 0, 0], [2, 2, 4, 0], [6, 0, 0, 0]])
    want_h = np.stack([(E[3] + E[5]) / 2, (2 * E[2] + E[4]) / 3, E[6]])
    np.testing.assert_allclose(C.pool(p, ids, config=CONFIG), want_h, rtol=1e-6)
    np.testing.assert_allclose(C.apply(p, ids, config=CONFIG), want_h @ w + b, rtol=1e-6)


def test_init_zeroes_pad_and_unk_rows():
    E = np.asarray(C.init(jax.random.key(0), CONFIG)["embedding"])
    assert not E[[CONFIG.pad_id, CONFIG.unk_id]].any() and np.all(np.abs(E[2:]).sum(1) > 0)


@given(st.lists(st.integers(1, 6), min_size=1, max_size=5), st.integers(0, 4))
@settings(max_examples=10)
def test_padding_never_changes_the_logit(ids, n_pad):
    f = functools.partial(C._apply, params(), config=CONFIG)  # jitted once per padded length
    short = f(jnp.array([ids + [0] * (5 - len(ids))]))
    long = f(jnp.array([ids + [0] * (5 - len(ids) + n_pad)]))
    np.testing.assert_allclose(long, short, rtol=1e-6, atol=1e-7)  # same sum and count; only the padded length differs


def test_grads(x64):
    ids, y = jnp.array([[1, 2, 0], [4, 4, 6], [0, 0, 0]]), np.array([1.0, 0.0, 1.0])
    check_grads(lambda p: bce_risk(C.apply(p, ids, config=CONFIG), y), (params(),))


def test_embedding_dropout_only_while_training():
    """Inverted dropout on E_{x_t}: the identity at evaluation; while training, h is the masked rows' mean
    scaled by 1/(1-p) (functional.dropout with the same key gives the mask)."""
    from scratchlm.nn.functional import dropout

    config = C.ClassifierConfig(vocab_size=7, embed_dim=3, dropout=0.5)
    p, ids, key = params(), jnp.array([[3, 5, 2, 0]]), jax.random.key(1)
    np.testing.assert_allclose(C._apply(p, ids, config=config), C._apply(p, ids, config=CONFIG), rtol=1e-6)
    z = C._apply(p, ids, config=config, key=key, train=True)
    e = dropout(jnp.take(p["embedding"], ids, axis=0), 0.5, key=key, train=True)[0, :3]  # [3 real tokens, D]
    np.testing.assert_allclose(z, [np.asarray(e).mean(0) @ np.asarray(p["output"]["w"]) + 0.1], rtol=1e-5)


def test_rejects_unbatched_ids():
    with pytest.raises(ValueError, match=r"ids \[B, T\]"):
        C.apply(params(), jnp.array([1, 2]), config=CONFIG)


def test_embedding_from_vectors_by_hand():
    """Known words get r / s times their vector, s the rms of the counted (training) words' vectors, so
    "great" (count 0: only wv knows it) does not enter s; unknown words N(0, r^2); specials 0."""
    vectors = np.array([[3.0, 4.0], [-3.0, -4.0], [0.0, 5.0], [30.0, 40.0]], np.float32)
    wv = WordVectors(("good", "bad", "film", "great"), vectors)
    vocab = Vocab(("<pad>", "<unk>", "film", "plot", "good", "great"), (0, 0, 2, 1, 1, 0))
    E, found = C.embedding_from_vectors(jax.random.key(0), vocab, wv, rms=0.1)
    scale = 0.1 / np.sqrt((0 + 25 + 9 + 16) / 4)  # film, good
    assert found == 3 and E.shape == (6, 2)
    np.testing.assert_allclose(E[[2, 4, 5]], scale * np.array([[0.0, 5.0], [3.0, 4.0], [30.0, 40.0]]), rtol=1e-6)
    assert not E[:2].any() and np.abs(E[3]).sum() > 0  # "plot": random
