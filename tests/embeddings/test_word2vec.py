"""word2vec.py: closed-form gradients, the sparse update against the dense one, a planted-structure
corpus, bit-reproducibility and resuming, bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings import word2vec as w2v
from scratchlm.embeddings.evaluate import evaluate_analogies, nearest_neighbours
from scratchlm.errors import CorpusError, ScratchlmError


def test_closed_form_gradient_equals_autodiff(x64):
    keys = jax.random.split(jax.random.key(0), 3)
    v_c = jax.random.normal(keys[0], (7,), jnp.float64)
    u_o = jax.random.normal(keys[1], (7,), jnp.float64)
    u_neg = jax.random.normal(keys[2], (4, 7), jnp.float64)
    auto = jax.jit(jax.grad(w2v.negative_sampling_loss, argnums=(0, 1, 2)))(v_c, u_o, u_neg)
    closed = jax.jit(w2v.negative_sampling_grads)(v_c, u_o, u_neg)
    for a, c in zip(auto, closed):
        np.testing.assert_allclose(c, a, rtol=1e-12, atol=1e-14)  # float64 round-off of a few ops


def test_loss_equals_its_equation_in_numpy():
    rng = np.random.default_rng(1)
    v_c, u_o, u_neg = rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal((3, 5))
    sig = lambda x: 1 / (1 + np.exp(-x))
    expected = -np.log(sig(u_o @ v_c)) - np.sum(np.log(sig(-(u_neg @ v_c))))
    got = w2v.negative_sampling_loss(*(jnp.asarray(x, jnp.float32) for x in (v_c, u_o, u_neg)))
    assert float(got) == pytest.approx(expected, rel=1e-5)  # float32


def _batch(V=6, D=4, B=5, J=4, K=3, seed=0):
    """A batch with repeated rows (V is small), masked slots and a noise word equal to its target."""
    rng = np.random.default_rng(seed)
    params = {"v": jnp.asarray(rng.standard_normal((V, D))), "u": jnp.asarray(rng.standard_normal((V, D)))}
    context = jnp.asarray(rng.integers(0, V, (B, J)))
    mask = jnp.asarray(rng.random((B, J)) < 0.7).at[0].set(False)  # centre 0 has no context word
    target = jnp.asarray(rng.integers(0, V, B))
    noise = jnp.asarray(rng.integers(0, V, (B, K))).at[1, 0].set(target[1])
    return params, context, mask, target, noise


def _dense_loss(params, context, mask, target, noise, model):
    """The batch loss as a function of the whole tables; its jax.grad is the dense [V, D] gradient."""
    v, u = params["v"], params["u"]
    out = jnp.concatenate([target[:, None], noise], 1)
    out_mask = jnp.concatenate([jnp.ones_like(target[:, None], bool), noise != target[:, None]], 1)
    sign = jnp.where(jnp.arange(out.shape[1]) == 0, 1.0, -1.0)
    if model == "skipgram":
        s = jnp.einsum("bjd,bkd->bjk", v[context], u[out])
        return -jnp.sum(jnp.where(mask[:, :, None] & out_mask[:, None, :], jax.nn.log_sigmoid(sign * s), 0.0))
    count = mask.sum(1)
    total = jnp.einsum("bj,bjd->bd", mask.astype(v.dtype), v[context])
    # value: the mean; gradient: as if h were the sum -- the C tool's CBOW rule (full error to each context word)
    h = total + jax.lax.stop_gradient(total / jnp.maximum(count, 1)[:, None] - total)
    s = jnp.einsum("bd,bkd->bk", h, u[out])
    return -jnp.sum(jnp.where(out_mask & (count > 0)[:, None], jax.nn.log_sigmoid(sign * s), 0.0))


@pytest.mark.parametrize("model", ["skipgram", "cbow"])
def test_sparse_update_equals_dense_update(x64, model):
    params, context, mask, target, noise = _batch()
    alpha = 0.1
    update = w2v.skipgram_update if model == "skipgram" else w2v.cbow_update
    sparse, loss, _ = jax.jit(update)(params, context, mask, target, noise, alpha)
    loss_dense, grads = jax.jit(jax.value_and_grad(_dense_loss), static_argnums=5)(params, context, mask, target, noise, model)
    for name in ("v", "u"):
        np.testing.assert_allclose(sparse[name], params[name] - alpha * grads[name], rtol=1e-12, atol=1e-12)
    assert float(loss) == pytest.approx(float(loss_dense), rel=1e-12)


@pytest.mark.parametrize("normalize_duplicates", [False, True])
def test_skipgram_groups_update_equals_the_padded_update(x64, normalize_duplicates):
    """Centres in groups of context widths 2 and 4 (as the step groups them by reduced window): the
    numbers of skipgram_update on the same slots padded to width 4 with masked slots."""
    params, context, mask, target, noise = _batch(B=6, J=4)
    narrow = mask.at[:3, 2:].set(False)  # centres 0-2 use slots 0-1 only: the padded layout of a width-2 group
    groups = [(context[:3, :2], narrow[:3, :2]), (context[3:], narrow[3:])]
    alpha = 0.1
    expected, loss, n = jax.jit(w2v.skipgram_update, static_argnames="normalize_duplicates")(
        params, context, narrow, target, noise, alpha, normalize_duplicates=normalize_duplicates)
    got, loss_g, n_g = jax.jit(w2v.skipgram_groups_update, static_argnames="normalize_duplicates")(
        params, groups, target, noise, alpha, normalize_duplicates=normalize_duplicates)
    for name in ("v", "u"):  # float64: only the order of the sums differs
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-12)
    assert float(loss_g) == pytest.approx(float(loss), rel=1e-12) and int(n_g) == int(n)


@pytest.mark.parametrize("normalize_duplicates, share", [(False, 2), (True, 3)])
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_shared_noise_update_equals_the_update_with_each_sets_noise_repeated(normalize_duplicates, share, seed):
    """Sets of `share` centres sharing K noise words (skipgram_shared_update): the numbers of
    skipgram_groups_update given each centre its set's noise, over two groups of widths 2 and 4, with
    repeated rows, masked slots and noise words equal to some centres' targets."""
    with jax.enable_x64(True):  # float64 inside each example (hypothesis reruns the body, not a fixture)
        _check_shared_noise_update(normalize_duplicates, share, seed)


def _check_shared_noise_update(normalize_duplicates, share, seed):
    C = 2 * share  # centres per group: two sets (fixed shapes: the examples share one compilation)
    params, context, mask, target, noise = _batch(V=5, B=2 * C, J=4, seed=seed)
    set_noise = noise[::share].at[0, 1].set(target[1])  # [2C / share, K]; a shared word equal to centre 1's target
    narrow = mask.at[:C, 2:].set(False)
    groups = [(context[:C, :2], narrow[:C, :2]), (context[C:], narrow[C:])]
    alpha = 0.1
    expected, loss, n = jax.jit(w2v.skipgram_groups_update, static_argnames="normalize_duplicates")(
        params, groups, target, jnp.repeat(set_noise, share, axis=0), alpha, normalize_duplicates=normalize_duplicates)
    got, loss_s, n_s = jax.jit(w2v.skipgram_shared_update, static_argnames=("share", "normalize_duplicates"))(
        params, groups, target, set_noise, alpha, share=share, normalize_duplicates=normalize_duplicates)
    for name in ("v", "u"):  # float64: only the order of the sums differs
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-12)
    assert float(loss_s) == pytest.approx(float(loss), rel=1e-12) and int(n_s) == int(n)


def test_log_sigmoid_equals_jax_in_float32():
    x = jnp.concatenate([jnp.linspace(-100.0, 100.0, 2001), jnp.array([-1e30, 0.0, 1e30])])
    np.testing.assert_allclose(w2v._log_sigmoid(x), jax.nn.log_sigmoid(x), rtol=2e-6, atol=1e-7)  # a few float32 ulps


@pytest.mark.parametrize("normalize_duplicates, share", [(False, 1), (True, 1), (False, 5), (True, 3)])
def test_cbow_block_update_equals_per_centre_update(x64, normalize_duplicates, share):
    """Runs of consecutive centres sharing one block of rows: the same numbers as cbow_update on
    explicit contexts of the same centres (sentence boundaries, the corpus end, repeated words).
    share > 1: sets of centres taken across runs (3 = one position of every run, 5 = sets spanning
    two positions) sharing their noise words, against cbow_update given each centre its set's words."""
    from scratchlm.embeddings import sampling

    rng = np.random.default_rng(2)
    V, D, G, L, W, K, N = 7, 4, 3, 5, 2, 3, 40
    params = {"v": jnp.asarray(rng.standard_normal((V, D))), "u": jnp.asarray(rng.standard_normal((V, D)))}
    ids = jnp.asarray(rng.integers(0, V, N))
    sentence = jnp.asarray(np.sort(rng.integers(0, 5, N)))
    run = jnp.array([0, 3, 7])  # the last run reaches past n = N - 2: its tail is padding
    centre = (run[:, None] * L + jnp.arange(L)).reshape(-1)
    b = jnp.asarray(rng.integers(1, W + 1, G * L))
    position, mask = sampling.context_positions(centre, b, sentence, jnp.int32(N - 2), W)
    target = ids[jnp.clip(centre, 0, N - 1)]
    noise = jnp.asarray(rng.integers(0, V, (G * L, K)))
    noise_in = noise.reshape(G, L, K)
    if share > 1:  # centre l of run g is centre l·G + g in position-major order; set = that // share
        set_of = ((jnp.arange(L)[None, :] * G + jnp.arange(G)[:, None]) // share).reshape(-1)  # [G·L], run order
        noise_in = noise[:G * L // share].at[set_of[1], 0].set(target[1])  # a shared word equal to centre 1's own
        noise = noise_in[set_of]
    block = ids[jnp.clip(run[:, None] * L - W + jnp.arange(L + 2 * W), 0, N - 1)]
    alpha = 0.1
    expected, loss, n = jax.jit(w2v.cbow_update, static_argnames="normalize_duplicates")(
        params, ids[position], mask, target, noise, alpha, normalize_duplicates=normalize_duplicates)
    got, loss_b, n_b = jax.jit(w2v.cbow_block_update, static_argnames="normalize_duplicates")(
        params, block, mask.reshape(G, L, 2 * W), target.reshape(G, L), noise_in, alpha,
        normalize_duplicates=normalize_duplicates)
    for name in ("v", "u"):  # float64: only the order of the sums differs
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-12, atol=1e-12)
    assert float(loss_b) == pytest.approx(float(loss), rel=1e-12) and int(n_b) == int(n)
    assert not np.allclose(got["v"], params["v"])  # the step did update the inputs


def test_init_is_the_c_tools():
    config = w2v.Word2VecConfig(dim=50)
    params = w2v.init(jax.random.key(0), 300, config)
    assert params["v"].shape == params["u"].shape == (300, 50)
    assert float(jnp.abs(params["v"]).max()) <= 0.5 / 50 and float(jnp.abs(params["v"]).max()) > 0.45 / 50
    assert not params["u"].any()


# ----------------------------------------------------------------------------- planted structure

TOPICS, ROLES, FILLERS = 4, 2, 4


def planted_corpus(n_sentences=3000, seed=0):
    """Word x{i}_{j} (topic i, role j) appears with topic-i fillers t{i}_* and role-j fillers r{j}_*.

    So x{i}_{j}'s contexts are (topic i) + (role j): analogies x{i}_0 : x{i}_1 :: x{k}_0 : x{k}_1
    hold by construction, and the fillers of one topic (of one role) are interchangeable.
    """
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(n_sentences):
        i, j = rng.integers(TOPICS), rng.integers(ROLES)
        words = [f"x{i}_{j}"] + [f"t{i}_{f}" for f in rng.choice(FILLERS, 2, replace=False)]
        words += [f"r{j}_{f}" for f in rng.choice(FILLERS, 2, replace=False)]
        sentences.append([words[p] for p in rng.permutation(5)])
    return sentences


PLANTED_CONFIG = dict(dim=16, window=4, negative=5, min_count=1, sample=0.0, epochs=4, alpha=0.025,
                      batch_size=64, steps_per_call=64)


@pytest.fixture(scope="module", params=[("skipgram", 1), ("cbow", 1), ("cbow", 8)], ids=["skipgram", "cbow", "cbow-shared-noise"])
def planted(request):
    model, share = request.param
    config = w2v.Word2VecConfig(model=model, noise_share=share, **PLANTED_CONFIG)
    wv, vocab, loss = w2v.fit(planted_corpus(), config, key=jax.random.key(0))
    return wv, loss


def test_planted_groups_are_nearest_neighbours(planted):
    wv, loss = planted
    assert np.isfinite(loss)
    for group, size in (("t", TOPICS), ("r", ROLES)):
        for g in range(size):
            members = {f"{group}{g}_{f}" for f in range(FILLERS)}
            for word in members:
                top = {w for w, _ in nearest_neighbours(wv, word, k=FILLERS - 1)}
                assert top == members - {word}, (word, top)


def test_planted_analogies_are_solved(planted):
    wv, _ = planted
    questions = [(f"x{i}_0", f"x{i}_1", f"x{k}_0", f"x{k}_1") for i in range(TOPICS) for k in range(TOPICS) if i != k]
    questions += [(f"x{i}_0", f"x{k}_0", f"x{i}_1", f"x{k}_1") for i in range(TOPICS) for k in range(TOPICS) if i != k]
    result = evaluate_analogies(wv, questions)
    # all 24 by construction; allow one miss for the finite, randomly ordered corpus
    assert result.answered == len(questions) and result.correct >= len(questions) - 1


# ----------------------------------------------------------------------------- reproducibility, resume


def _small_run(key, callback=None):
    sentences = planted_corpus(400, seed=1)
    config = w2v.Word2VecConfig(dim=8, min_count=1, sample=1e-2, epochs=2, batch_size=16, steps_per_call=8)
    from scratchlm.embeddings import sampling

    vocab = sampling.build_vocab(sentences, config.min_count)
    corpus = w2v.make_corpus(*sampling.encode(sentences, vocab), vocab.counts, config.sample)
    params = w2v.init(jax.random.key(7), len(vocab), config)
    return config, corpus, params


def test_cbow_shared_noise_on_a_mesh_is_the_one_device_step():
    """With a mesh, CBOW's step runs cbow_update on each centre's set of noise words; the sets must be the
    ones cbow_block_update takes (across runs), so both paths train the same vectors."""
    from scratchlm import parallel

    config, corpus, params0 = _small_run(None)
    config = dataclasses.replace(config, model="cbow", run_length=4, noise_share=4)  # G = 4 runs of L = 4
    copy = lambda p: jax.tree.map(lambda x: jnp.array(x, copy=True), p)
    one, loss_one = w2v.train(copy(params0), corpus, config, key=jax.random.key(3))
    mesh, loss_mesh = w2v.train(copy(params0), corpus, config, key=jax.random.key(3), mesh=parallel.make_mesh())
    for name in ("v", "u"):  # float32: only the order of the sums differs
        np.testing.assert_allclose(np.asarray(mesh[name]), np.asarray(one[name]), rtol=1e-5, atol=1e-6)
    assert loss_mesh == pytest.approx(loss_one, rel=1e-5)
    assert not np.allclose(np.asarray(one["u"]), np.asarray(params0["u"]))


def test_bit_reproducible_and_resumable():
    config, corpus, params0 = _small_run(None)
    copy = lambda p: jax.tree.map(lambda x: jnp.array(x, copy=True), p)
    a, _ = w2v.train(copy(params0), corpus, config, key=jax.random.key(3))
    b, _ = w2v.train(copy(params0), corpus, config, key=jax.random.key(3))
    c, _ = w2v.train(copy(params0), corpus, config, key=jax.random.key(4))
    for name in ("v", "u"):
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]))
    assert not np.array_equal(np.asarray(a["v"]), np.asarray(c["v"]))

    saved = {}

    class Stop(Exception):
        pass

    def interrupt(params, progress):
        if progress.epoch == 1 and "params" not in saved:
            saved.update(params={k: np.array(x) for k, x in params.items()}, epoch=progress.epoch, step=progress.step)
            raise Stop

    with pytest.raises(Stop):
        w2v.train(copy(params0), corpus, config, key=jax.random.key(3), callback=interrupt)
    assert 0 < saved["step"]
    resumed, _ = w2v.train(jax.tree.map(jnp.asarray, saved["params"]), corpus, config, key=jax.random.key(3),
                           start_epoch=saved["epoch"], start_step=saved["step"])
    for name in ("v", "u"):
        np.testing.assert_array_equal(np.asarray(resumed[name]), np.asarray(a[name]))


def test_bad_inputs():
    with pytest.raises(ScratchlmError, match="dim must be positive"):
        w2v.Word2VecConfig(dim=0)
    with pytest.raises(ScratchlmError, match="model must be"):
        w2v.Word2VecConfig(model="glove")
    with pytest.raises(CorpusError, match="no word"):
        w2v.fit([], w2v.Word2VecConfig(), key=jax.random.key(0))
    with pytest.raises(CorpusError, match="min_count=5"):
        w2v.fit([["a", "b"], ["a"]], w2v.Word2VecConfig(), key=jax.random.key(0))


def test_command_writes_vectors_gensim_loads_and_resumes(tmp_path):
    """`scratchlm word2vec` end to end on a tiny file corpus: vectors.txt, metrics.json, checkpoints;
    a resume from an earlier checkpoint rewrites bit-identical vectors."""
    from scratchlm.cli import main

    gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
    corpus = tmp_path / "c.txt"
    # the corpus and settings of _small_run, so the jitted steps compiled there are reused
    corpus.write_text("\n".join(" ".join(s) for s in planted_corpus(400, seed=1)) + "\n")
    argv = ["word2vec", "--corpus", str(corpus), "--epochs", "2", "--dim", "8", "--min-count", "1", "--sample", "1e-2",
            "--batch", "16", "--steps-per-call", "8", "--checkpoint-every", "1e-9", "--no-progress", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    full = (tmp_path / "o" / "vectors.txt").read_bytes()
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(tmp_path / "o" / "vectors.txt"))
    assert len(kv.index_to_key) == TOPICS * ROLES + (TOPICS + ROLES) * FILLERS
    assert "words_per_second" in (tmp_path / "o" / "metrics.json").read_text()
    checkpoints = sorted((tmp_path / "o" / "checkpoints").iterdir())
    checkpoints[-1].unlink()  # as if killed before the last save
    assert main(argv + ["--resume"]) == 0
    assert (tmp_path / "o" / "vectors.txt").read_bytes() == full


@settings(max_examples=40)
@given(n_words=st.integers(10, 3000), scale=st.floats(1.0, 5000.0), sample=st.sampled_from([0.0, 1e-3, 1e-5]))
def test_accelerator_batch_is_the_largest_power_of_two_leaving_enough_steps(n_words, scale, sample):
    from scratchlm.embeddings import sampling

    counts = np.maximum(1, np.round(scale * 1000 / np.arange(1, n_words + 1))).astype(np.int64)  # Zipf-like
    kept = float(np.sum(counts * sampling.keep_probability(counts, sample)))
    B = w2v.accelerator_batch(counts, sample, cap=16_384, floor=512, min_steps=256)
    assert B & (B - 1) == 0 and 512 <= B <= 16_384
    assert B == 512 or kept / B >= 256  # enough steps an epoch, unless already at the floor
    assert B == 16_384 or kept / (2 * B) < 256  # and no larger power of two would do


def test_accelerator_batch_on_the_wikipedia_sample_sizes():
    # The sample's vocabulary (as the command builds it) keeps about 330 k tokens an epoch: B = 1,024,
    # the largest batch that scored as gensim on an H100; the sample repeated 100 times gets the cap.
    from scratchlm.data.corpora import load_tokenized_corpus
    from scratchlm.embeddings import sampling

    vocab = sampling.build_vocab(load_tokenized_corpus("wiki"), 5)
    assert w2v.accelerator_batch(vocab.counts, 1e-3) == 1024
    assert w2v.accelerator_batch(vocab.counts * 100, 1e-3) == 16_384


@pytest.mark.parametrize("argv, batch, normalize, share", [
    ([], 384, False, 8),  # this CPU: the command's CPU default, sets of 8 centres sharing noise words
    (["--model", "cbow"], 1024, False, 32),  # CBOW: sets of 32 centres across runs
    (["--model", "cbow", "--batch", "1000"], 1000, False, 8),  # a set size that divides the batch
    (["--batch", "1024"], 1024, False, 8),  # the plain sum scores as gensim up to here
    (["--batch", "4096"], 4096, True, 8),  # damped above 2,048
    (["--batch", "16384", "--normalize-duplicates", "--noise-share", "1"], 16384, True, 1),
])
def test_command_batch_and_duplicate_damping_defaults(argv, batch, normalize, share):
    import argparse

    from scratchlm.commands import word2vec as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    config = command._config(parser.parse_args(argv))
    assert (config.batch_size, config.normalize_duplicates, config.noise_share) == (batch, normalize, share)
