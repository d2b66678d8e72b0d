"""GloVe (scratchlm/embeddings/glove.py): f, the objective and its gradients, the AdaGrad step, training."""

import json
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings import glove
from scratchlm.embeddings.cooccurrence import count_cooccurrences
from scratchlm.embeddings.evaluate import evaluate_analogies, nearest_neighbours
from scratchlm.embeddings.formats import WordVectors
from scratchlm.errors import NonFiniteLossError, ScratchlmError
from scratchlm.testing import check_closed_form_grad, check_grads

# ----------------------------------------------------------------------------- f


def f_numpy(x, x_max, alpha):
    """Eq. 9 of the paper, transcribed independently."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x < x_max, (x / x_max) ** alpha, 1.0)


@settings(max_examples=40)
@given(x=st.floats(0, 1e4), y=st.floats(0, 1e4), x_max=st.floats(0.5, 200), alpha=st.floats(0.05, 1.5))
def test_weighting_properties(x, y, x_max, alpha):
    """f(0) = 0, non-decreasing, 1 from x_max on, continuous at x_max; equal to eq. 9 in NumPy.

    In float64 the power is exp(alpha log u), correct to a few ulps: monotonicity and the NumPy
    comparison are asserted to 1e-14 relative."""
    def f(v):
        with jax.enable_x64(True):
            return float(glove.weighting(jnp.float64(v), x_max=x_max, alpha=alpha))

    assert f(0.0) == 0.0
    lo, hi = min(x, y), max(x, y)
    assert f(lo) <= f(hi) + 1e-14 * f(hi)
    if hi >= x_max:
        assert f(hi) == 1.0
    assert f(x_max * (1 - 1e-10)) == pytest.approx(1.0, abs=1e-9)  # (1 - e)^alpha = 1 - alpha e + ...
    assert f(x) == pytest.approx(float(f_numpy(x, x_max, alpha)), rel=1e-14, abs=0)


# ----------------------------------------------------------------------------- J and its gradients


def small_problem(seed=0, V=7, N=40, D=5):
    """Random params and non-zeros with repeated rows, i == j entries, and counts both sides of x_max."""
    rng = np.random.default_rng(seed)
    config = glove.GloveConfig(dim=D, x_max=10.0, alpha=0.75)
    params = {k: np.asarray(v, np.float64) * 50 for k, v in glove.init(jax.random.key(seed), V, config).items()}
    i, j = rng.integers(0, V, N), rng.integers(0, V, N)
    i[:3] = j[:3]
    x = np.exp(rng.uniform(-1, 4, N))  # 0.37 .. 55
    return params, i, j, x, config


def test_loss_equals_the_equation_in_numpy(x64):
    params, i, j, x, config = small_problem()
    W, b, Wt, bt = (params[k] for k in ("W", "b", "W_tilde", "b_tilde"))
    expected = sum(f_numpy(x[n], 10.0, 0.75) * (W[i[n]] @ Wt[j[n]] + b[i[n]] + bt[j[n]] - np.log(x[n])) ** 2
                   for n in range(len(x)))
    got = glove.loss({k: jnp.asarray(v) for k, v in params.items()}, i, j, jnp.asarray(x), config=config)
    assert float(got) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("jit", [False, True])
def test_closed_form_gradients_equal_autodiff(jit):
    """dJ/dw_i = 2 sum_j f delta w~_j, and likewise for w~_j, b_i, b~_j (float64, rtol 1e-9)."""
    params, i, j, x, config = small_problem()
    loss = lambda p: glove.loss(p, i, j, x, config=config)  # noqa: E731
    grads = lambda p: glove.gradients(p, i, j, x, config=config)  # noqa: E731
    if jit:
        loss, grads = jax.jit(loss), jax.jit(grads)
    check_closed_form_grad(loss, grads, (params,))


def test_loss_gradient_against_finite_differences():
    params, i, j, x, config = small_problem(seed=1, V=4, N=12, D=3)
    check_grads(lambda p: glove.loss(p, i, j, x, config=config), (params,))


# ----------------------------------------------------------------------------- the AdaGrad step


def minibatch(seed=0, V=11, B=48):
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, V, B), rng.integers(0, V // 2, B)  # many duplicate rows; rows >= V/2 untouched in W~
    x = np.exp(rng.uniform(-1, 4, B))
    f = f_numpy(x, 10.0, 0.75)
    return (jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32), jnp.asarray(np.log(x), jnp.float32),
            jnp.asarray(f, jnp.float32)), x


@pytest.mark.parametrize("update", [glove.dense_update, glove.row_update])
def test_minibatch_step_is_optax_adagrad_on_the_minibatch_gradient(update):
    """Sparse (rows) and dense steps both equal a plain optax AdaGrad step on autodiff's gradient of J
    over the minibatch: duplicate rows get one update with the summed gradient.  float32 sums in a
    different order: rtol 1e-5.  Rows outside the minibatch stay bit-for-bit unchanged."""
    V = 11
    config = glove.GloveConfig(dim=6, x_max=10.0)
    batch, x = minibatch(V=V)
    params = {k: v * 30 for k, v in glove.init(jax.random.key(3), V, config).items()}
    optimizer = glove.make_optimizer(config)
    state = optimizer.init(params)
    state = jax.tree.map(lambda s: s + 0.5, state)  # an accumulator that is not uniform
    new_params, new_state, cost = jax.jit(lambda p, s: update(p, s, batch, optimizer=optimizer))(params, state)

    i, j = np.asarray(batch[0]), np.asarray(batch[1])
    g = jax.grad(glove.loss)(params, i, j, jnp.asarray(x, jnp.float32), config=config)
    reference = optax.adagrad(learning_rate=1.0, initial_accumulator_value=4.0 / 0.05**2, eps=0.0)
    updates, ref_state = reference.update(g, state, params)
    ref_params = optax.apply_updates(params, updates)
    for k in params:
        np.testing.assert_allclose(new_params[k], ref_params[k], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(new_state[0].sum_of_squares[k], ref_state[0].sum_of_squares[k], rtol=1e-5)
    assert float(cost) == pytest.approx(float(glove.loss(params, i, j, jnp.asarray(x, jnp.float32), config=config)), rel=1e-5)
    untouched = np.setdiff1d(np.arange(V), j)
    np.testing.assert_array_equal(new_params["W_tilde"][untouched], params["W_tilde"][untouched])
    np.testing.assert_array_equal(new_state[0].sum_of_squares["b_tilde"][untouched],
                                  state[0].sum_of_squares["b_tilde"][untouched])


@pytest.mark.parametrize("update", [glove.dense_update, glove.row_update])
def test_entrywise_accumulator_adds_each_entrys_squared_gradient(x64, update):
    """accumulate="entry": G grows by sum_e (dJ_e)^2 over the minibatch's entries e of each row (as
    glove.c's per-entry steps grow it) and the step is sum_e dJ_e / sqrt(G).  Reference: autodiff of
    each entry's J_e separately, in float64 NumPy; rtol 1e-10 (float64 sums in another order)."""
    V = 11
    config = glove.GloveConfig(dim=6, x_max=10.0)
    batch, x = minibatch(V=V)
    batch = (batch[0], batch[1], jnp.asarray(np.log(x)), jnp.asarray(f_numpy(x, 10.0, 0.75)))  # float64 targets
    params = {k: v.astype(jnp.float64) * 30 for k, v in glove.init(jax.random.key(3), V, config).items()}
    optimizer = glove.make_optimizer(config)
    state = optimizer.init(params)
    new_params, new_state, _ = jax.jit(lambda p, s: update(p, s, batch, optimizer=optimizer, entrywise=True))(params, state)

    i, j = np.asarray(batch[0]), np.asarray(batch[1])
    per_entry = jax.vmap(lambda a, b, xx: jax.grad(glove.loss)(params, a[None], b[None], xx[None], config=config))(
        jnp.asarray(i), jnp.asarray(j), jnp.asarray(x))  # each [B, ...]: one entry's gradient of J
    for k in params:
        g_sum = np.sum(np.asarray(per_entry[k]), axis=0)
        acc = np.asarray(state[0].sum_of_squares[k]) + np.sum(np.asarray(per_entry[k]) ** 2, axis=0)
        np.testing.assert_allclose(new_state[0].sum_of_squares[k], acc, rtol=1e-10)
        np.testing.assert_allclose(new_params[k], np.asarray(params[k]) - g_sum / np.sqrt(acc), rtol=1e-10, atol=1e-12)


def test_padding_entries_change_nothing():
    V = 5
    config = glove.GloveConfig(dim=4)
    params = glove.init(jax.random.key(0), V, config)
    optimizer = glove.make_optimizer(config)
    state = optimizer.init(params)
    zeros = jnp.zeros(8, jnp.int32)
    batch = (zeros, zeros, jnp.zeros(8), jnp.zeros(8))  # what prepare_entries pads with: f = 0
    for update in (glove.dense_update, glove.row_update):
        p, s, cost = jax.jit(partial(update, optimizer=optimizer))(params, state, batch)
        assert float(cost) == 0.0
        jax.tree.map(np.testing.assert_array_equal, (p, s), (params, state))


def glove_c_entry_update(P, G, i, j, x, eta, x_max, alpha):
    """glove.c's per-entry update, transcribed from its train_thread (float64 NumPy), except that the
    current squared gradient is added to gradsq *before* dividing, as optax does (see make_optimizer)."""
    w, c = P["W"], P["W_tilde"]
    diff = w[i] @ c[j] + P["b"][i] + P["b_tilde"][j] - np.log(x)
    fdiff = diff if x > x_max else (x / x_max) ** alpha * diff
    fdiff *= eta
    temp1, temp2 = fdiff * c[j], fdiff * w[i]
    G["W"][i] += temp1**2
    G["W_tilde"][j] += temp2**2
    w[i] -= temp1 / np.sqrt(G["W"][i])
    c[j] -= temp2 / np.sqrt(G["W_tilde"][j])
    G["b"][i] += fdiff**2
    G["b_tilde"][j] += fdiff**2
    P["b"][i] -= fdiff / np.sqrt(G["b"][i])
    P["b_tilde"][j] -= fdiff / np.sqrt(G["b_tilde"][j])


def test_adagrad_arithmetic_matches_glove_c(x64):
    """Single-entry minibatches in sequence reproduce glove.c's updates (gradsq starting at 1 and
    accumulating (eta g)^2): the claim of make_optimizer's docstring.  Both float64: rtol 1e-10."""
    V, D, eta = 6, 4, 0.05
    config = glove.GloveConfig(dim=D, x_max=10.0, learning_rate=eta)
    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(v, jnp.float64) * 40 for k, v in glove.init(jax.random.key(1), V, config).items()}
    optimizer = glove.make_optimizer(config)
    state = optimizer.init(params)
    P = {k: np.array(v) for k, v in params.items()}
    G = {k: np.ones_like(v) for k, v in P.items()}
    step = jax.jit(lambda p, s, batch: glove.row_update(p, s, batch, optimizer=optimizer))
    for _ in range(30):
        i, j, x = int(rng.integers(V)), int(rng.integers(V)), float(np.exp(rng.uniform(-1, 4)))
        batch = (jnp.array([i]), jnp.array([j]), jnp.array([np.log(x)]), jnp.array([f_numpy(x, 10.0, 0.75)]))
        params, state, _ = step(params, state, batch)
        glove_c_entry_update(P, G, i, j, x, eta, 10.0, 0.75)
    for k in P:
        np.testing.assert_allclose(params[k], P[k], rtol=1e-10)
        # optax's accumulator holds sum (dJ)^2 + 4/eta^2 = (4/eta^2) * gradsq of glove.c
        np.testing.assert_allclose(state[0].sum_of_squares[k], G[k] * 4 / eta**2, rtol=1e-10)


# ----------------------------------------------------------------------------- training


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
    config = glove.GloveConfig(dim=16, epochs=100, batch_size=64, x_max=100.0)
    result = glove.train(c.i, c.j, c.x, c.vocab_size, config=config, key=jax.random.key(0))
    return WordVectors(c.words, np.asarray(glove.vectors(result.params))), result, target, topic


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
    config = glove.GloveConfig(dim=4, epochs=4, batch_size=32)
    run = lambda cfg, **kw: glove.train(i, j, x, V, config=cfg, key=jax.random.key(7), **kw)  # noqa: E731
    a = run(config)
    assert len(a.costs) == 4
    first = run(glove.GloveConfig(dim=4, epochs=2, batch_size=32), checkpoint_dir=tmp_path)
    assert first.costs == a.costs[:2]  # same key, same numbers
    resumed = run(config, checkpoint_dir=tmp_path)
    assert resumed.costs == a.costs[2:]  # epochs 3 and 4 only, continuing bit for bit
    jax.tree.map(np.testing.assert_array_equal, resumed.params, a.params)


def test_epoch_compiles_once():
    i, j, x, V = tiny_cooccurrence()
    config = glove.GloveConfig(dim=4, batch_size=32)
    entries = glove.prepare_entries(i, j, x, config=config, seed=0)
    optimizer = glove.make_optimizer(config)
    epoch = glove.make_epoch_step(optimizer, update="rows", nnz=x.size)
    from scratchlm.training.loop import init_train_state

    state = init_train_state(glove.init(jax.random.key(0), V, config), optimizer, jax.random.key(1))
    for _ in range(3):
        state, metrics = epoch(state, entries)
    assert epoch._cache_size() == 1 and int(state.step) == 3 and np.isfinite(float(metrics["loss"]))


def test_non_finite_cost_is_a_clear_error(monkeypatch):
    i, j, x, V = tiny_cooccurrence()
    real_init = glove.init
    monkeypatch.setattr(glove, "init", lambda *a, **k: {**real_init(*a, **k), "b": jnp.full(V, jnp.inf)})
    with pytest.raises(NonFiniteLossError, match="epoch 1.*lower --learning-rate"):
        glove.train(i, j, x, V, config=glove.GloveConfig(dim=4, epochs=2, batch_size=32), key=jax.random.key(0))


def test_bad_inputs():
    i, j, x, V = tiny_cooccurrence()
    config = glove.GloveConfig(dim=4, epochs=1)
    key = jax.random.key(0)
    with pytest.raises(ScratchlmError, match="> 0"):
        glove.train(i, j, np.where(np.arange(x.size) == 3, 0.0, x), V, config=config, key=key)
    with pytest.raises(ScratchlmError, match="equal shape"):
        glove.train(i[:-1], j, x, V, config=config, key=key)
    with pytest.raises(ScratchlmError, match="word ids"):
        glove.train(i, j, x, 5, config=config, key=key)
    with pytest.raises(ScratchlmError, match="no co-occurrence"):
        glove.train(i[:0], j[:0], x[:0], V, config=config, key=key)
    for bad in (dict(dim=0), dict(x_max=0.0), dict(learning_rate=-1.0), dict(output="both"), dict(update="x")):
        with pytest.raises(ScratchlmError):
            glove.GloveConfig(**bad)


def test_output_vectors():
    params = glove.init(jax.random.key(0), 3, glove.GloveConfig(dim=2))
    np.testing.assert_array_equal(glove.vectors(params), params["W"] + params["W_tilde"])
    np.testing.assert_array_equal(glove.vectors(params, output="word"), params["W"])


def test_command_writes_vectors_gensim_loads(tmp_path):
    """`scratchlm glove` end to end on a tiny corpus file: both vector files and metrics.json."""
    from gensim.models import KeyedVectors

    from scratchlm.cli import main

    corpus = tmp_path / "corpus.txt"
    sentences, _, _ = planted_corpus(n=300)
    corpus.write_text("\n".join(" ".join(s) for s in sentences) + "\n")
    out = tmp_path / "out"
    assert main(["glove", "--corpus", str(corpus), "--dim", "8", "--window", "3", "--min-count", "1",
                 "--epochs", "2", "--batch-size", "64", "--out", str(out), "--save-cooccurrence"]) == 0
    kv = KeyedVectors.load_word2vec_format(str(out / "vectors.txt"))
    glove_kv = KeyedVectors.load_word2vec_format(str(out / "vectors.glove.txt"), no_header=True)
    assert kv.vector_size == 8 and len(kv) == 44 and list(kv.index_to_key) == list(glove_kv.index_to_key)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["nonzeros"] > 0 and metrics["epochs_run"] == 2 and np.isfinite(metrics["final_cost"])
    assert (out / "cooccurrence.npz").exists()
    assert main(["glove", "--corpus", str(corpus), "--window", "0", "--out", str(out)]) == 2  # a clear error
