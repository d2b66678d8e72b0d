r"""kernels.py: every batched update equals ``jax.vmap`` of objective.py's gradient, scattered as it scatters.

The reference for each kernel takes the step apart into its examples (skip-gram: one per real
(context word, centre word) pair; CBOW: one per centre word with a context), evaluates
:func:`~scratchlm.embeddings.word2vec.objective.negative_sampling_grads` /
:func:`~scratchlm.embeddings.word2vec.objective.cbow_grads` on each with ``jax.vmap``, and applies
:math:`\theta_r \leftarrow \theta_r - \alpha\,G_r` with :math:`G_r` the sum of the gradients of the
examples that use row :math:`r` (``np.add.at``), divided by :math:`\sqrt{m_r}` under
``normalize_duplicates``, :math:`m_r` the row's multiplicity as the kernel counts it (stated per
kernel).  Inputs are random with a vocabulary of 5 words, so one step uses the same word as centre,
context and noise word several times; a noise word equal to its centre (the C tool's skip) and a
centre without context are planted.

Tolerance (float64, :math:`\epsilon = 2^{-52}`), from the arithmetic: with :math:`M` the largest
table entry, every gradient term is at most :math:`(K+1)M` (a sigmoid factor :math:`\le 1` times a
vector, or a sum of :math:`K + 1` of them) and carries a relative round-off of at most
:math:`(D + K + 4)\epsilon` from its dot products, sigmoid and sums, plus :math:`\tfrac14 D M^2
\epsilon` through the sigmoid's argument; summing :math:`n` such terms in another order adds
:math:`n\epsilon` of their total.  The two sides each err by at most that, times :math:`\alpha`,
plus the final rounding of :math:`\theta_r` (:math:`\epsilon M` each): see :func:`_atol`, with
:math:`n` the number of gradient vectors the step scatters (CBOW: plus the :math:`J` averaged into
:math:`h`).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.embeddings.word2vec import kernels, objective, sampling

EPS = np.finfo(np.float64).eps
V, D, K = 5, 4, 3  # a 5-word vocabulary: every step repeats rows
ALPHA = 0.1


def _atol(params, n_terms: int) -> float:
    """The bound of the module docstring for one table entry, ``n_terms`` gradient terms scattered."""
    M = max(float(np.max(np.abs(t))) for t in params.values())
    per_term = (K + 1) * M * EPS * (n_terms + D + K + 4 + D * M * M / 4)
    return 2 * ALPHA * n_terms * per_term + 2 * EPS * M


def _loss_tol(params, n_examples: int) -> float:
    """A summed loss of ``n_examples`` terms, each at most (K+1)(D M^2 + 1), summed in another order."""
    M = max(float(np.max(np.abs(t))) for t in params.values())
    return 2 * EPS * (D + K + 4 + n_examples) * n_examples * (K + 1) * (D * M * M + 1)


def _apply(table, rows, grads, normalize, count_rows, count_uses):
    """``table - ALPHA * G``: G[r] the summed gradients of row r, over sqrt(m_r) if ``normalize``."""
    table, grads = np.asarray(table), np.asarray(grads).reshape(-1, D)
    G = np.zeros_like(table)
    np.add.at(G, np.asarray(rows).reshape(-1), grads)
    if normalize:
        m = np.zeros(table.shape[0])
        np.add.at(m, np.asarray(count_rows).reshape(-1), np.asarray(count_uses, np.float64).reshape(-1))
        G = G / np.sqrt(np.maximum(m, 1.0))[:, None]
    return table - ALPHA * G


def _skipgram_reference(params, ctx, tgt, noise, real, normalize, u_count):
    """One example per (context word ``ctx[p]``, centre word ``tgt[p]``) pair with its noise words ``noise[p]``,
    real where ``real[p]``; the input rows' multiplicity counts real pairs, ``u_count`` is the output rows'.
    Returns (params, summed loss, number of pairs)."""
    v, u = params["v"], params["u"]
    noise_mask = noise != tgt[:, None]
    d_c, d_o, d_neg = jax.vmap(objective.negative_sampling_grads)(v[ctx], u[tgt], u[noise], noise_mask)
    losses = jax.vmap(objective.negative_sampling_loss)(v[ctx], u[tgt], u[noise], noise_mask)
    w = np.asarray(real, np.float64)
    d_c, d_o, d_neg = d_c * w[:, None], d_o * w[:, None], d_neg * w[:, None, None]
    new = {"v": _apply(v, ctx, d_c, normalize, ctx, real),
           "u": _apply(u, np.concatenate([tgt, noise.reshape(-1)]), np.concatenate([d_o, d_neg.reshape(-1, D)]),
                       normalize, *u_count)}
    return new, float(np.sum(w * losses)), int(np.sum(real))


def _cbow_reference(params, context, mask, target, noise, normalize, u_count):
    """One example per centre word (context [B, J] with ``mask``, ``target`` [B], ``noise`` [B, K]); centres
    without a real slot are none.  Input rows counted per real slot, output rows by ``u_count``."""
    v, u = params["v"], params["u"]
    real = np.asarray(mask).any(axis=1)
    safe = jnp.asarray(mask).at[:, 0].set(mask[:, 0] | ~real)  # a centre without context: any slot, weight 0
    noise_mask = noise != target[:, None]
    args = (v[context], safe, u[target], u[noise], noise_mask)
    d_ctx, d_o, d_neg = jax.vmap(objective.cbow_grads)(*args)
    losses = jax.vmap(objective.cbow_loss)(*args)
    w = real.astype(np.float64)
    d_ctx, d_o, d_neg = d_ctx * w[:, None, None], d_o * w[:, None], d_neg * w[:, None, None]
    new = {"v": _apply(v, context, d_ctx, normalize, context, mask),
           "u": _apply(u, np.concatenate([target, noise.reshape(-1)]), np.concatenate([d_o, d_neg.reshape(-1, D)]),
                       normalize, *u_count)}
    return new, float(np.sum(w * losses)), int(np.sum(real))


def _tables(rng):
    return {"v": jnp.asarray(rng.standard_normal((V, D))), "u": jnp.asarray(rng.standard_normal((V, D)))}


def _batch(seed, B=6, J=4):
    """Context [B, J], mask, target [B], noise [B, K] over V = 5 words, with the cases the kernels treat apart."""
    rng = np.random.default_rng(seed)
    context = rng.integers(0, V, (B, J))
    mask = rng.random((B, J)) < 0.7
    mask[0] = False  # centre 0 has no context word
    mask[1:, 0] = True
    target = rng.integers(0, V, B)
    noise = rng.integers(0, V, (B, K))
    noise[1, 0] = target[1]  # skipped, as in the C tool
    context[2, 0] = target[2]  # the centre word as its own context word
    noise[2, 1] = context[2, 0]  # ... and as a noise word
    ids = np.concatenate([context[mask], target, noise.ravel()])
    assert np.unique(ids).size < ids.size // 4  # rows repeat within the step
    return _tables(rng), context, mask, target, noise


def _assert_equal(got, loss, pairs, expected, loss_ref, pairs_ref, params, n_terms, n_examples):
    for name in ("v", "u"):
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=_atol(params, n_terms))
        assert not np.allclose(got[name], params[name])  # the step moved both tables: equality is not vacuous
    assert abs(float(loss) - loss_ref) <= _loss_tol(params, n_examples)
    assert int(pairs) == pairs_ref


def _all_outputs(target, noise):
    """The output rows' multiplicity as skipgram_update and cbow_update count it: every entry of [target, noise]."""
    rows = np.concatenate([target, noise.reshape(-1)])
    return rows, np.ones(rows.size)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_skipgram_update_is_vmap_of_the_pair_gradient(x64, seed, normalize):
    params, context, mask, target, noise = _batch(seed)
    B, J = context.shape
    got = jax.jit(kernels.skipgram_update, static_argnames="normalize_duplicates")(
        params, jnp.asarray(context), jnp.asarray(mask), jnp.asarray(target), jnp.asarray(noise), ALPHA,
        normalize_duplicates=normalize)
    expected = _skipgram_reference(params, context.reshape(-1), np.repeat(target, J), np.repeat(noise, J, axis=0),
                                   mask.reshape(-1), normalize, _all_outputs(target, noise))
    _assert_equal(*got, *expected, params, n_terms=B * J * (K + 2), n_examples=B * J)


def _groups(context, mask, C):
    """Centres 0..C-1 at width 2 (slots 0-1), the rest at width J: as the step groups them by reduced window."""
    return [(context[:C, :2], mask[:C, :2]), (context[C:], mask[C:])]


def _group_pairs(groups, per_centre_noise):
    ctx, centre, real = [], [], []
    start = 0
    for c, m in groups:
        n, J = c.shape
        ctx.append(c.reshape(-1))
        centre.append(np.repeat(np.arange(start, start + n), J))
        real.append(m.reshape(-1))
        start += n
    centre = np.concatenate(centre)
    return np.concatenate(ctx), centre, per_centre_noise[centre], np.concatenate(real)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_skipgram_groups_update_is_vmap_of_the_pair_gradient(x64, seed, normalize):
    """Groups of context widths 2 and 4; an input row counts its real uses, an output row every entry."""
    params, context, mask, target, noise = _batch(seed)
    groups = _groups(context, mask, 3)
    got = jax.jit(kernels.skipgram_groups_update, static_argnames="normalize_duplicates")(
        params, [tuple(map(jnp.asarray, g)) for g in groups], jnp.asarray(target), jnp.asarray(noise), ALPHA,
        normalize_duplicates=normalize)
    ctx, centre, pair_noise, real = _group_pairs(groups, noise)
    expected = _skipgram_reference(params, ctx, target[centre], pair_noise, real, normalize,
                                   _all_outputs(target, noise))
    _assert_equal(*got, *expected, params, n_terms=ctx.size * (K + 2), n_examples=ctx.size)


@pytest.mark.parametrize("normalize, share", [(False, 2), (True, 2), (True, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_skipgram_shared_update_is_vmap_of_the_pair_gradient(x64, seed, normalize, share):
    """Sets of ``share`` consecutive centres share K noise words: each pair is the objective's example with
    its set's words.  An output row counts 1 as a centre's word and ``share`` as a set's noise word (the
    ``share`` per-centre draws it stands for)."""
    C = 2 * share  # centres per group: two sets each
    params, context, mask, target, noise = _batch(seed, B=2 * C)
    set_noise = noise[::share].copy()  # [B / share, K]
    set_noise[0, 1] = target[1]  # a shared word equal to one centre's own word: skipped for that centre only
    groups = _groups(context, mask, C)
    got = jax.jit(kernels.skipgram_shared_update, static_argnames=("share", "normalize_duplicates"))(
        params, [tuple(map(jnp.asarray, g)) for g in groups], jnp.asarray(target), jnp.asarray(set_noise), ALPHA,
        share=share, normalize_duplicates=normalize)
    ctx, centre, pair_noise, real = _group_pairs(groups, np.repeat(set_noise, share, axis=0))
    u_rows = np.concatenate([target, set_noise.reshape(-1)])
    u_uses = np.concatenate([np.ones(target.size), np.full(set_noise.size, share)])
    expected = _skipgram_reference(params, ctx, target[centre], pair_noise, real, normalize, (u_rows, u_uses))
    _assert_equal(*got, *expected, params, n_terms=ctx.size * (K + 2), n_examples=ctx.size)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_cbow_update_is_vmap_of_the_cbow_gradient(x64, seed, normalize):
    params, context, mask, target, noise = _batch(seed)
    B, J = context.shape
    got = jax.jit(kernels.cbow_update, static_argnames="normalize_duplicates")(
        params, jnp.asarray(context), jnp.asarray(mask), jnp.asarray(target), jnp.asarray(noise), ALPHA,
        normalize_duplicates=normalize)
    expected = _cbow_reference(params, context, mask, target, noise, normalize, _all_outputs(target, noise))
    _assert_equal(*got, *expected, params, n_terms=B * (J + K + 1) + J, n_examples=B)


@pytest.mark.parametrize("normalize, share", [(False, 1), (True, 1), (False, 5), (True, 3)])
def test_cbow_block_update_is_vmap_of_the_cbow_gradient(x64, normalize, share):
    """Runs of consecutive centres sharing one block of input rows (sentence boundaries, a run reaching past
    the corpus end, repeated words), against the objective on each centre's explicit context.
    share > 1: sets of centres taken across runs (3 = one position of every run, 5 = sets spanning two
    positions) share their noise words; a set's word counts ``share`` uses, as in skipgram_shared_update."""
    rng = np.random.default_rng(2)
    G, L, W, N = 3, 5, 2, 40
    params = _tables(rng)
    ids = jnp.asarray(rng.integers(0, V, N))
    sentence = jnp.asarray(np.sort(rng.integers(0, 5, N)))
    run = jnp.array([0, 3, 7])  # the last run reaches past n = N - 2: its tail is padding
    centre = (run[:, None] * L + jnp.arange(L)).reshape(-1)
    b = jnp.asarray(rng.integers(1, W + 1, G * L))
    position, mask = sampling.context_positions(centre, b, sentence, jnp.int32(N - 2), W)
    target = np.asarray(ids[jnp.clip(centre, 0, N - 1)])
    noise = rng.integers(0, V, (G * L, K))
    noise_in, u_count = noise.reshape(G, L, K), _all_outputs(target, noise)
    if share > 1:  # centre l of run g is centre l·G + g in position-major order; set = that // share
        set_of = ((np.arange(L)[None, :] * G + np.arange(G)[:, None]) // share).reshape(-1)  # [G·L], run order
        noise_in = noise[:G * L // share].copy()
        noise_in[set_of[1], 0] = target[1]  # a shared word equal to centre 1's own
        noise = noise_in[set_of]
        u_count = (np.concatenate([target, noise_in.reshape(-1)]),
                   np.concatenate([np.ones(target.size), np.full(noise_in.size, share)]))
    block = ids[jnp.clip(run[:, None] * L - W + jnp.arange(L + 2 * W), 0, N - 1)]
    got = jax.jit(kernels.cbow_block_update, static_argnames="normalize_duplicates")(
        params, block, mask.reshape(G, L, 2 * W), jnp.asarray(target).reshape(G, L), jnp.asarray(noise_in), ALPHA,
        normalize_duplicates=normalize)
    mask = np.asarray(mask)
    assert not mask.all(axis=1).all() and not mask.any(axis=1).all()  # masked slots, and centres without context
    expected = _cbow_reference(params, np.asarray(ids[position]), mask, target, noise, normalize, u_count)
    _assert_equal(*got, *expected, params, n_terms=G * L * (2 * W + K + 1) + 2 * W, n_examples=G * L)


def test_log_sigmoid_equals_jax_in_float32():
    x = jnp.concatenate([jnp.linspace(-100.0, 100.0, 2001), jnp.array([-1e30, 0.0, 1e30])])
    # both are log(sigma) rounded to float32 through a few ops: a few ulps relative, 1e-7 near zero
    np.testing.assert_allclose(kernels._log_sigmoid(x), jax.nn.log_sigmoid(x), rtol=2e-6, atol=1e-7)
