"""GloVe's training (scratchlm/training/glove.py): planted structure recovered, reproducible, resumed bit for bit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.embeddings.evaluate import evaluate_analogies, nearest_neighbours
from scratchlm.embeddings.formats import WordVectors
from scratchlm.embeddings.glove import kernels
from scratchlm.embeddings.glove.config import GloveConfig
from scratchlm.embeddings.glove.cooccurrence import CooccurrenceConfig, count_cooccurrences
from scratchlm.errors import NonFiniteLossError, ScratchlmError
from scratchlm.training import glove


def planted_corpus(seed=0, K=6, n=2400):
    """K entities, each with a country word, a capital word and 4 topic words; 2 roles (country,
    capital) with 4 role words each.  A sentence holds one target word, 3 topic words (of its entity
    with probability 0.6, else of a random entity) and 2 role words (its role's with probability 0.8).
    So X factorises by entity and role, and capital_e - country_e is the same offset for every e."""
    rng = np.random.default_rng(seed)
    target = [[f"country{e}", f"capital{e}"] for e in range(K)]
    topic = [[f"topic{e}x{m}" for m in range(4)] for e in range(K)]
    role = [[f"role{a}x{m}" for m in range(4)] for a in range(2)]
    sentences = []
    for _ in range(n):
        e, a = int(rng.integers(K)), int(rng.integers(2))
        s = [target[e][a]]
        s += [topic[e if rng.random() < 0.6 else int(rng.integers(K))][int(rng.integers(4))] for _ in range(3)]
        s += [role[a if rng.random() < 0.8 else 1 - a][int(rng.integers(4))] for _ in range(2)]
        rng.shuffle(s)
        sentences.append(s)
    return sentences, target, topic


@pytest.fixture(scope="module")
def planted():
    sentences, target, topic = planted_corpus()
    c = count_cooccurrences(sentences, window=5, min_count=1)
    config = GloveConfig(dim=16, epochs=100, batch_size=64, x_max=100.0)
    result = glove.train(c.i, c.j, c.x, c.vocab_size, config=config, key=jax.random.key(0))
    return WordVectors(c.words, np.asarray(kernels.vectors(result.params))), result, target, topic


def test_planted_groups_are_nearest(planted):
    wv, result, target, topic = planted
    assert result.costs[-1] < result.costs[0] / 100
    for e, words in enumerate(topic):
        group = set(words) | set(target[e])
        for w in words:
            assert nearest_neighbours(wv, w, 1)[0][0] in group, (w, nearest_neighbours(wv, w, 3))


def test_planted_analogies_are_solved(planted):
    """country_a : capital_a :: country_b : ? over all 30 ordered pairs.  A random guess among the 41
    candidates is right 2.4% of the time; we require 90% (the planted offset is exact in expectation,
    the corpus a finite sample)."""
    wv, _, target, _ = planted
    K = len(target)
    questions = [(target[a][0], target[a][1], target[b][0], target[b][1]) for a in range(K) for b in range(K) if a != b]
    result = evaluate_analogies(wv, questions, case_insensitive=False)
    assert result.answered == 30 and result.accuracy >= 0.9, result


def tiny_cooccurrence():
    rng = np.random.default_rng(0)
    V, N = 20, 150
    keys = rng.choice(V * V, N, replace=False)
    return keys // V, keys % V, np.exp(rng.uniform(-1, 3, N)), V


def test_training_is_reproducible_and_resumes_bitwise(tmp_path):
    i, j, x, V = tiny_cooccurrence()
    config = GloveConfig(dim=4, epochs=4, batch_size=32)
    run = lambda cfg, **kw: glove.train(i, j, x, V, config=cfg, key=jax.random.key(7), **kw)  # noqa: E731
    a = run(config)
    assert len(a.costs) == 4
    first = run(GloveConfig(dim=4, epochs=2, batch_size=32), checkpoint_dir=tmp_path)
    assert first.costs == a.costs[:2]  # same key, same numbers
    resumed = run(config, checkpoint_dir=tmp_path)
    assert resumed.costs == a.costs[2:]  # epochs 3 and 4 only, continuing bit for bit
    jax.tree.map(np.testing.assert_array_equal, resumed.params, a.params)


def test_non_finite_cost_is_a_clear_error(monkeypatch):
    i, j, x, V = tiny_cooccurrence()
    real_init = kernels.init
    monkeypatch.setattr(kernels, "init", lambda *a, **k: {**real_init(*a, **k), "b": jnp.full(V, jnp.inf)})
    with pytest.raises(NonFiniteLossError, match="epoch 1.*lower --lr"):
        glove.train(i, j, x, V, config=GloveConfig(dim=4, epochs=2, batch_size=32), key=jax.random.key(0))


def test_bad_inputs():
    i, j, x, V = tiny_cooccurrence()
    config = GloveConfig(dim=4, epochs=1)
    key = jax.random.key(0)
    with pytest.raises(ScratchlmError, match="> 0"):
        glove.train(i, j, np.where(np.arange(x.size) == 3, 0.0, x), V, config=config, key=key)
    with pytest.raises(ScratchlmError, match="equal shape"):
        glove.train(i[:-1], j, x, V, config=config, key=key)
    with pytest.raises(ScratchlmError, match="word ids"):
        glove.train(i, j, x, 5, config=config, key=key)
    with pytest.raises(ScratchlmError, match="no co-occurrence"):
        glove.train(i[:0], j[:0], x[:0], V, config=config, key=key)
    for bad in (dict(dim=0), dict(x_max=0.0), dict(lr=-1.0), dict(output="both"), dict(update="x")):
        with pytest.raises(ScratchlmError):
            GloveConfig(**bad)




def test_train_on_corpus_counts_trains_and_returns_the_vectors():
    """The recipe the command calls: X of the sentences, the epochs, one vector per counted word (W + W~)."""
    sentences, _, _ = planted_corpus(n=200)
    run = glove.train_on_corpus(sentences, config=GloveConfig(dim=4, epochs=2, batch_size=64),
                                counting=CooccurrenceConfig(window=3, min_count=1), key=jax.random.key(0))
    c = count_cooccurrences(sentences, window=3, min_count=1)
    assert run.cooccurrence.words == c.words == run.vectors.words and run.cooccurrence.nnz == c.nnz
    assert len(run.result.costs) == 2 and run.vectors.vectors.shape == (c.vocab_size, 4)
    np.testing.assert_array_equal(run.vectors.vectors, kernels.vectors(run.result.params))
