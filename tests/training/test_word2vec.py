"""training/word2vec.py: a planted-structure corpus learnt, bit-reproducibility and resuming (also through
checkpoints), the mesh path, bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.embeddings.evaluate import evaluate_analogies, nearest_neighbours
from scratchlm.embeddings.word2vec import model, sampling
from scratchlm.embeddings.word2vec.config import Word2VecConfig
from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.training import word2vec as w2v

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


PLANTED_CONFIG = dict(dim=16, window=4, negative=5, min_count=1, sample=0.0, epochs=4, lr=0.025,
                      batch_size=64, steps_per_call=64)


@pytest.fixture(scope="module", params=[("skipgram", 1), ("cbow", 1), ("cbow", 8)],
                ids=["skipgram", "cbow", "cbow-shared-noise"])
def planted(request):
    kind, share = request.param
    config = Word2VecConfig(model=kind, noise_share=share, **PLANTED_CONFIG)
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


def _copy(params):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), params)


def _small_run(key, callback=None):
    sentences = planted_corpus(400, seed=1)
    config = Word2VecConfig(dim=8, min_count=1, sample=1e-2, epochs=2, batch_size=16, steps_per_call=8)
    vocab = sampling.build_vocab(sentences, config.min_count)
    corpus = w2v.make_corpus(*sampling.encode(sentences, vocab), vocab.counts, config.sample)
    params = model.init(jax.random.key(7), len(vocab), config)
    return config, corpus, params


def test_cbow_shared_noise_on_a_mesh_is_the_one_device_step():
    """With a mesh, CBOW's step runs cbow_update on each centre's set of noise words; the sets must be the
    ones cbow_block_update takes (across runs), so both paths train the same vectors."""
    from scratchlm import distributed

    config, corpus, params0 = _small_run(None)
    config = dataclasses.replace(config, model="cbow", run_length=4, noise_share=4)  # G = 4 runs of L = 4
    one, loss_one = w2v.train(_copy(params0), corpus, config, key=jax.random.key(3))
    mesh, loss_mesh = w2v.train(_copy(params0), corpus, config, key=jax.random.key(3), mesh=distributed.make_mesh())
    for name in ("v", "u"):  # float32: only the order of the sums differs
        np.testing.assert_allclose(np.asarray(mesh[name]), np.asarray(one[name]), rtol=1e-5, atol=1e-6)
    assert loss_mesh == pytest.approx(loss_one, rel=1e-5)
    assert not np.allclose(np.asarray(one["u"]), np.asarray(params0["u"]))


def test_bit_reproducible_and_resumable():
    config, corpus, params0 = _small_run(None)
    a, _ = w2v.train(_copy(params0), corpus, config, key=jax.random.key(3))
    b, _ = w2v.train(_copy(params0), corpus, config, key=jax.random.key(3))
    c, _ = w2v.train(_copy(params0), corpus, config, key=jax.random.key(4))
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
        w2v.train(_copy(params0), corpus, config, key=jax.random.key(3), callback=interrupt)
    assert 0 < saved["step"]
    resumed, _ = w2v.train(jax.tree.map(jnp.asarray, saved["params"]), corpus, config, key=jax.random.key(3),
                           start_epoch=saved["epoch"], start_step=saved["step"])
    for name in ("v", "u"):
        np.testing.assert_array_equal(np.asarray(resumed[name]), np.asarray(a[name]))


def test_seeded_init_is_the_eager_split_and_init():
    """The command's one-program start: key(seed) split into the tables' key and the training's, the tables
    drawn from the first, bit for bit as the eager calls draw them."""
    config = Word2VecConfig(dim=8)
    params, k_train = w2v.seeded_init(7, 13, config)
    k_init, k_expected = jax.random.split(jax.random.key(7))
    expected = model.init(k_init, 13, config)
    for name in ("v", "u"):
        np.testing.assert_array_equal(np.asarray(params[name]), np.asarray(expected[name]))
    np.testing.assert_array_equal(jax.random.key_data(k_train), jax.random.key_data(k_expected))


def test_ahead_draws_items_on_another_thread_in_order_and_raises_their_error():
    """train's dispatches are drawn by w2v._ahead: the same items in the same order, made off the calling
    thread (the point: the next dispatch's batches drawn while this one's steps run), and an error raised
    while drawing reaches the caller after the items before it."""
    import threading

    made_on = []

    def items(n, fail=False):
        for i in range(n):
            made_on.append(threading.get_ident())
            yield i
        if fail:
            raise ValueError("drawing failed")

    assert list(w2v._ahead(items(5))) == [0, 1, 2, 3, 4]
    assert threading.get_ident() not in made_on
    got = []
    with pytest.raises(ValueError, match="drawing failed"):
        for i in w2v._ahead(items(2, fail=True)):
            got.append(i)
    assert got == [0, 1]


def test_bad_inputs():
    with pytest.raises(CorpusError, match="no word"):
        w2v.fit([], Word2VecConfig(), key=jax.random.key(0))
    with pytest.raises(CorpusError, match="min_count=5"):
        w2v.fit([["a", "b"], ["a"]], Word2VecConfig(), key=jax.random.key(0))


def test_checkpoints_resume_bit_for_bit_and_refuse_other_settings(tmp_path):
    """train_with_checkpoints: a run resumed from the checkpoint before its last ends on the uninterrupted
    run's tables; a checkpoint written with other settings is refused; at checkpoint_every=0 the only
    checkpoint is the end's."""
    config, corpus, params0 = _small_run(None)
    settings = {"config": dataclasses.asdict(config), "seed": 3}
    run = dict(key=jax.random.key(3), checkpoint_dir=tmp_path / "end", settings=settings, checkpoint_every=0.0)
    full, loss, start = w2v.train_with_checkpoints(_copy(params0), corpus, config, **run)
    assert start == 0 and np.isfinite(loss)
    assert len(list((tmp_path / "end").glob("ckpt_*"))) == 1  # only at the end
    run = {**run, "checkpoint_dir": tmp_path / "every", "checkpoint_every": 1e-9}  # after every dispatch
    w2v.train_with_checkpoints(_copy(params0), corpus, config, **run)
    checkpoints = sorted((tmp_path / "every").glob("ckpt_*"))
    assert len(checkpoints) == 2  # the last two kept
    checkpoints[-1].unlink()
    messages = []
    resumed, _, start = w2v.train_with_checkpoints(_copy(params0), corpus, config, resume=True, log=messages.append,
                                                   **run)
    assert messages[0].startswith(f"resuming from {checkpoints[0]}")
    for name in ("v", "u"):
        np.testing.assert_array_equal(np.asarray(resumed[name]), np.asarray(full[name]))
    with pytest.raises(ScratchlmError, match="other settings"):
        w2v.train_with_checkpoints(_copy(params0), corpus, config, resume=True,
                                   **{**run, "settings": {**settings, "seed": 4}})
