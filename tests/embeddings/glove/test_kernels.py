r"""GloVe's kernels (scratchlm/embeddings/glove/kernels.py, sharded.py) against the objective's equations.

Every kernel is checked in float64 against a reference built here from
:func:`scratchlm.embeddings.glove.objective.entry_gradients` alone: ``jax.vmap`` of it over the
minibatch's entries, each entry's terms scattered into its row with ``np.add.at``, and AdaGrad as
:func:`~scratchlm.embeddings.glove.kernels.make_optimizer`'s docstring writes it,
:math:`G' = G + s^2` (or :math:`G + \sum_e g_e^2`), :math:`\theta' = \theta - s/\sqrt{G'}`.  The
minibatches repeat rows (B > V, and i == j entries), so the per-row sums are exercised.

Tolerances (float64, unit round-off :math:`u = 2^{-53}`): a kernel sums a row's :math:`n \le B` entry
terms in another order than ``np.add.at``, so each row sum :math:`s` differs by at most
:math:`(n-1)\,u \sum_e |g_e|`; we allow :math:`2 B u S` with :math:`S = \sum_e |g_e|` per element,
and propagate it through :math:`G' = G + s^2` and :math:`\theta' = \theta - s / \sqrt{G'}` to first
order, adding two roundings of each result (see :func:`adagrad_bounds`).  A kernel that dropped or
doubled one entry's gradient would be off by :math:`|g_e| / \sqrt{G'}`, about :math:`10^{13}` times that.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings.glove import kernels, objective
from scratchlm.embeddings.glove.config import GloveConfig
from scratchlm.embeddings.glove.objective import ROW_OF

U = 2.0**-53  # float64 unit round-off
X_MAX, ALPHA, ETA = 10.0, 0.75, 0.05


def f_numpy(x):
    x = np.asarray(x, np.float64)
    return np.where(x < X_MAX, (x / X_MAX) ** ALPHA, 1.0)


def random_minibatch(seed=0, V=11, B=48, D=6):
    """float64 params (scaled up so that the gradients are O(1)), a non-uniform accumulator, and B entries
    over V rows: i over all rows, j over the first half (rows >= V/2 of W~ untouched), i == j for 4 entries."""
    rng = np.random.default_rng(seed)
    config = GloveConfig(dim=D)
    params = {k: jnp.asarray(v, jnp.float64) * 30 for k, v in kernels.init(jax.random.key(seed), V, config).items()}
    i, j = rng.integers(0, V, B), rng.integers(0, V // 2, B)
    i[:4] = j[:4]
    x = np.exp(rng.uniform(-1, 4, B))  # both sides of x_max
    batch = (jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32), jnp.asarray(np.log(x)), jnp.asarray(f_numpy(x)))
    G = {k: 4.0 / ETA**2 + rng.uniform(0, 50, v.shape) for k, v in params.items()}
    return params, G, batch


def reference_terms(params, batch):
    """``jax.vmap(objective.entry_gradients)`` over the entries, each term scattered into its row.

    Returns ``(cost [B], s, S, Q)``: per row, the summed gradient s, the sum of |terms| S (the magnitude
    of the round-off bounds) and the sum of squared terms Q (glove.c's per-entry accumulator), dense [V, ...].
    """
    i, j, log_x, f = (np.asarray(a) for a in batch)
    P = {k: np.asarray(v) for k, v in params.items()}
    cost, g = jax.vmap(objective.entry_gradients)(P["W"][i], P["b"][i], P["W_tilde"][j], P["b_tilde"][j], log_x, f)
    rows = {"i": i, "j": j}

    def scatter(terms):
        out = {}
        for k, t in terms.items():
            out[k] = np.zeros(P[k].shape)
            np.add.at(out[k], rows[ROW_OF[k]], np.asarray(t))
        return out

    g = {k: np.asarray(v) for k, v in g.items()}
    return (np.asarray(cost), scatter(g), scatter({k: np.abs(v) for k, v in g.items()}),
            scatter({k: v**2 for k, v in g.items()}))


def adagrad_bounds(theta, G, s, S, Q, B, entrywise, u=U):
    r"""The reference AdaGrad step and its round-off bounds (module docstring); ``u``: float64's by default.

    :math:`\epsilon_s = 2BuS`; :math:`G' = G + s^2` with :math:`\epsilon_{G'} = 2|s|\epsilon_s + \epsilon_s^2
    + 2u G'` (entrywise: :math:`G + Q`, :math:`\epsilon_{G'} = 2BuQ + 2uG'`);
    :math:`\theta' = \theta - s/\sqrt{G'}` with :math:`\epsilon_{\theta'} = \epsilon_s/\sqrt{G'}
    + |s|\,\epsilon_{G'}/(2 G'^{3/2}) + 2u(|\theta| + |s|/\sqrt{G'})`.
    """
    eps_s = 2 * B * u * S
    if entrywise:
        G_new = G + Q
        eps_G = 2 * B * u * Q + 2 * u * G_new
    else:
        G_new = G + s**2
        eps_G = 2 * np.abs(s) * eps_s + eps_s**2 + 2 * u * G_new
    step = s / np.sqrt(G_new)
    theta_new = theta - step
    eps_theta = eps_s / np.sqrt(G_new) + np.abs(s) * eps_G / (2 * G_new**1.5) + 2 * u * (np.abs(theta) + np.abs(step))
    return theta_new, eps_theta, G_new, eps_G


def assert_within(got, want, eps, what):
    got, want = np.asarray(got), np.asarray(want)
    excess = np.abs(got - want) - eps
    assert np.all(excess <= 0), f"{what}: off by {np.max(np.abs(got - want))} where the bound allows {eps.max()}"


def check_step(new_params, new_state, params, G, batch, entrywise):
    """The kernel's result equals AdaGrad on the objective's per-row sums, to the derived bounds; the cost too."""
    B = batch[0].shape[0]
    cost, s, S, Q = reference_terms(params, batch)
    moved = 0.0
    for k in params:
        theta_new, eps_theta, G_new, eps_G = adagrad_bounds(np.asarray(params[k]), G[k], s[k], S[k], Q[k], B,
                                                            entrywise)
        assert_within(new_params[k], theta_new, eps_theta, f"params {k}")
        assert_within(new_state[0].sum_of_squares[k], G_new, eps_G, f"accumulator {k}")
        moved = max(moved, float(np.max(np.abs(theta_new - np.asarray(params[k])))))
    assert moved > 1e-3  # the step moved the parameters far beyond the bounds: the equality has teeth
    untouched = np.setdiff1d(np.arange(params["W"].shape[0]), np.asarray(batch[1]))
    assert untouched.size and np.array_equal(np.asarray(new_params["W_tilde"])[untouched],
                                             np.asarray(params["W_tilde"])[untouched])
    return cost


def state_of(G):
    return (optax.ScaleByRssState(sum_of_squares={k: jnp.asarray(v) for k, v in G.items()}), optax.EmptyState())


def test_minibatch_terms_are_vmap_of_entry_gradients_and_row_sums_scatter_them(x64):
    """The kernels' per-entry terms are ``jax.vmap(objective.entry_gradients)`` of the gathered rows (bit for
    bit: the same function), and ``_row_sums`` (one scatter-add for W with b, one for W~ with b~) equals
    ``np.add.at`` of them to 2 B u S."""
    params, _, batch = random_minibatch()
    rows, cost, g = kernels._minibatch_terms(params, batch)
    i, j, log_x, f = batch
    want_cost, want_g = jax.vmap(objective.entry_gradients)(params["W"][i], params["b"][i], params["W_tilde"][j],
                                                            params["b_tilde"][j], log_x, f)
    np.testing.assert_array_equal(cost, want_cost)
    jax.tree.map(np.testing.assert_array_equal, g, want_g)
    sums = jax.jit(kernels._row_sums)(g, rows, params)
    _, s, S, _ = reference_terms(params, batch)
    B = batch[0].shape[0]
    for k in params:
        assert_within(sums[k], s[k], 2 * B * U * S[k], k)


@pytest.mark.parametrize("entrywise", [False, True], ids=["minibatch", "entry"])
@pytest.mark.parametrize("update", [kernels.dense_update, kernels.row_update], ids=["dense", "rows"])
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_update_is_adagrad_on_the_objective_row_sums(x64, update, entrywise, jit):
    """dense_update and row_update: AdaGrad (minibatch or per-entry accumulator) applied to jax.vmap of
    objective.entry_gradients summed per row; the returned cost is sum_e f delta_e^2 (B terms: 2 B u)."""
    params, G, batch = random_minibatch()
    step = partial(update, optimizer=kernels.make_optimizer(GloveConfig(lr=ETA)), entrywise=entrywise)
    new_params, new_state, cost = (jax.jit(step) if jit else step)(params, state_of(G), batch)
    ref_cost = check_step(new_params, new_state, params, G, batch, entrywise)
    assert float(cost) == pytest.approx(float(np.sum(ref_cost)), rel=2 * batch[0].shape[0] * U)


@pytest.mark.parametrize("entrywise", [False, True], ids=["minibatch", "entry"])
def test_sharded_update_per_row_gradient_is_the_objective(x64, entrywise):
    """make_sharded_glove_update on a one-device mesh (the pytest process has one CPU device): its per-row
    gradient (segment sums over the unique rows, psum over data and model) and AdaGrad step equal the
    reference of the one-device kernels.  tests/test_parallel_glove.py runs it on 8 devices."""
    from scratchlm import distributed as parallel
    from scratchlm.embeddings.glove.sharded import PARTITION_RULES, make_sharded_glove_update

    params, G, batch = random_minibatch(seed=1)
    mesh = parallel.make_mesh(1, 1)
    optimizer = kernels.make_optimizer(GloveConfig(lr=ETA))
    copies = jax.tree.map(lambda a: jnp.array(a, copy=True), (params, state_of(G)))  # the step donates them
    p, s = parallel.shard(copies, mesh, PARTITION_RULES)
    step = make_sharded_glove_update(mesh, optimizer, entrywise=entrywise)
    new_params, new_state, cost = step(p, s, parallel.shard_batch(batch, mesh))
    ref_cost = check_step(jax.device_get(new_params), jax.device_get(new_state), params, G, batch, entrywise)
    assert float(cost) == pytest.approx(float(np.sum(ref_cost)), rel=2 * batch[0].shape[0] * U)


@settings(max_examples=30)
@given(r=st.lists(st.integers(0, 9), min_size=1, max_size=24))
def test_unique_rows_maps_each_entry_to_its_row(r):
    """segment[k] indexes r[k] among the sorted distinct rows; the rest of the slots hold ``fill``."""
    r = np.array(r, np.int32)
    size = min(r.size, 10)
    segment, rows = jax.jit(kernels.unique_rows, static_argnums=(1, 2))(jnp.asarray(r), size, 10)
    distinct = np.unique(r)
    np.testing.assert_array_equal(rows, np.concatenate([distinct, np.full(size - distinct.size, 10)]))
    np.testing.assert_array_equal(np.asarray(rows)[np.asarray(segment)], r)


def test_optimizer_without_squared_grads_is_optax_adagrad(x64):
    """make_optimizer's docstring: exactly optax.adagrad(1, initial_accumulator_value=4/eta^2, eps=0)."""
    params, _, _ = random_minibatch()
    g = jax.tree.map(lambda p: jnp.sin(p * 7.0), params)
    ours, ref = kernels.make_optimizer(GloveConfig(lr=ETA)), optax.adagrad(1.0, 4.0 / ETA**2, eps=0.0)
    (u1, s1), (u2, s2) = ours.update(g, ours.init(params)), ref.update(g, ref.init(params))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=4 * U), (u1, s1[0].sum_of_squares),
                 (u2, s2[0].sum_of_squares))


def test_padding_entries_change_nothing():
    V = 5
    config = GloveConfig(dim=4)
    params = kernels.init(jax.random.key(0), V, config)
    optimizer = kernels.make_optimizer(config)
    state = optimizer.init(params)
    zeros = jnp.zeros(8, jnp.int32)
    batch = (zeros, zeros, jnp.zeros(8), jnp.zeros(8))  # what prepare_entries pads with: f = 0
    for update in (kernels.dense_update, kernels.row_update):
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
    accumulating (eta g)^2): the claim of make_optimizer's docstring.  Both float64; 30 steps of a few
    dozen operations each, every result within a few ulps of the other's: rtol 1e-10."""
    V, D, eta = 6, 4, 0.05
    config = GloveConfig(dim=D, x_max=10.0, lr=eta)
    rng = np.random.default_rng(0)
    params = {k: jnp.asarray(v, jnp.float64) * 40 for k, v in kernels.init(jax.random.key(1), V, config).items()}
    optimizer = kernels.make_optimizer(config)
    state = optimizer.init(params)
    P = {k: np.array(v) for k, v in params.items()}
    G = {k: np.ones_like(v) for k, v in P.items()}
    step = jax.jit(lambda p, s, batch: kernels.row_update(p, s, batch, optimizer=optimizer))
    for _ in range(30):
        i, j, x = int(rng.integers(V)), int(rng.integers(V)), float(np.exp(rng.uniform(-1, 4)))
        batch = (jnp.array([i]), jnp.array([j]), jnp.array([np.log(x)]), jnp.array([f_numpy(x)]))
        params, state, _ = step(params, state, batch)
        glove_c_entry_update(P, G, i, j, x, eta, 10.0, 0.75)
    for k in P:
        np.testing.assert_allclose(params[k], P[k], rtol=1e-10)
        # optax's accumulator holds sum (dJ)^2 + 4/eta^2 = (4/eta^2) * gradsq of glove.c
        np.testing.assert_allclose(state[0].sum_of_squares[k], G[k] * 4 / eta**2, rtol=1e-10)


def test_prepare_entries_shuffles_pads_and_weights_by_eq_9(x64):
    """The entries in [n_batches, B]: a permutation of the input, the tail padded with f = 0, log X and
    f(X) = objective.weighting (float64, then rounded once to float32: equal to the float32 of the equation)."""
    rng = np.random.default_rng(0)
    N, B = 37, 8
    i, j, x = rng.integers(0, 9, N), rng.integers(0, 9, N), np.exp(rng.uniform(-1, 4, N))
    ii, jj, log_x, f = (np.asarray(a) for a in kernels.prepare_entries(i, j, x, config=GloveConfig(batch_size=B),
                                                                       seed=3))
    assert ii.shape == (5, B) and ii.dtype == np.int32 and log_x.dtype == np.float32
    flat = lambda a: a.reshape(-1)[:N]  # noqa: E731
    assert np.all(f.reshape(-1)[N:] == 0)
    order = np.lexsort((flat(log_x), flat(jj), flat(ii)))
    ref = np.lexsort((np.log(x).astype(np.float32), j, i))
    np.testing.assert_array_equal(flat(ii)[order], i[ref])
    np.testing.assert_array_equal(flat(jj)[order], j[ref])
    want_f = np.asarray(objective.weighting(jnp.asarray(x), x_max=10.0, alpha=0.75)).astype(np.float32)
    np.testing.assert_array_equal(flat(f)[order], want_f[ref])


def test_epoch_compiles_once():
    from scratchlm.training.loop import init_train_state

    rng = np.random.default_rng(0)
    V, N = 20, 150
    keys = rng.choice(V * V, N, replace=False)
    config = GloveConfig(dim=4, batch_size=32)
    entries = kernels.prepare_entries(keys // V, keys % V, np.exp(rng.uniform(-1, 3, N)), config=config, seed=0)
    optimizer = kernels.make_optimizer(config)
    epoch = kernels.make_epoch_step(partial(kernels.row_update, optimizer=optimizer), nnz=N)
    state = init_train_state(kernels.init(jax.random.key(0), V, config), optimizer, jax.random.key(1))
    for _ in range(3):
        state, metrics = epoch(state, entries)
    assert epoch._cache_size() == 1 and int(state.step) == 3 and np.isfinite(float(metrics["loss"]))


def test_output_vectors():
    params = kernels.init(jax.random.key(0), 3, GloveConfig(dim=2))
    np.testing.assert_array_equal(kernels.vectors(params), params["W"] + params["W_tilde"])
    np.testing.assert_array_equal(kernels.vectors(params, output="word"), params["W"])
