"""model.py and config.py: the C tool's initialisation, the batch and dispatch sizes, the settings' checks."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings.word2vec import model, sampling
from scratchlm.embeddings.word2vec.config import Word2VecConfig
from scratchlm.errors import ScratchlmError


def test_init_is_the_c_tools():
    config = Word2VecConfig(dim=50)
    params = model.init(jax.random.key(0), 300, config)
    assert params["v"].shape == params["u"].shape == (300, 50)
    assert float(jnp.abs(params["v"]).max()) <= 0.5 / 50 and float(jnp.abs(params["v"]).max()) > 0.45 / 50
    assert not params["u"].any()


def test_config_rejects_bad_settings():
    with pytest.raises(ScratchlmError, match="--dim must be at least 1"):
        Word2VecConfig(dim=0)
    with pytest.raises(ScratchlmError, match="--lr must be a positive"):
        Word2VecConfig(lr=-0.025)
    with pytest.raises(ScratchlmError, match=r"--min-lr \(0.1\) must not exceed --lr"):
        Word2VecConfig(lr=0.025, min_lr=0.1)
    with pytest.raises(ScratchlmError, match="model must be"):
        Word2VecConfig(model="glove")
    with pytest.raises(ScratchlmError, match="must divide batch_size"):
        Word2VecConfig(model="cbow", batch_size=100, noise_share=8)


@settings(max_examples=40)
@given(n_words=st.integers(10, 3000), scale=st.floats(1.0, 5000.0), sample=st.sampled_from([0.0, 1e-3, 1e-5]))
def test_accelerator_batch_is_the_largest_power_of_two_leaving_enough_steps(n_words, scale, sample):
    counts = np.maximum(1, np.round(scale * 1000 / np.arange(1, n_words + 1))).astype(np.int64)  # Zipf-like
    kept = float(np.sum(counts * sampling.keep_probability(counts, sample)))
    B = model.accelerator_batch(counts, sample, cap=16_384, floor=512, min_steps=256)
    assert B & (B - 1) == 0 and 512 <= B <= 16_384
    assert B == 512 or kept / B >= 256  # enough steps an epoch, unless already at the floor
    assert B == 16_384 or kept / (2 * B) < 256  # and no larger power of two would do


@settings(max_examples=40)
@given(n_words=st.integers(10, 3000), scale=st.floats(1.0, 5000.0), sample=st.sampled_from([0.0, 1e-3, 1e-5]),
       batch=st.sampled_from([64, 384, 1024]))
def test_epoch_dispatch_steps_cover_an_epoch_in_the_fewest_dispatches(n_words, scale, sample, batch):
    counts = np.maximum(1, np.round(scale * 1000 / np.arange(1, n_words + 1))).astype(np.int64)  # Zipf-like
    steps = float(np.sum(counts * sampling.keep_probability(counts, sample))) / batch * 1.02  # expected, 2 % spare
    n = math.ceil(steps / 256)  # the fewest dispatches of at most 256 steps
    per_call = model.epoch_dispatch_steps(counts, sample, batch, cap=256)
    assert per_call % 8 == 0 or per_call == 256
    assert per_call <= 256 and n * per_call >= steps  # n dispatches cover the epoch with the margin
    assert (n * per_call - steps) < n * 8 or per_call == 256  # and draw at most a rounding's worth more


def test_accelerator_batch_on_the_wikipedia_sample_sizes():
    # The sample's vocabulary (as the command builds it) keeps about 330 k tokens an epoch: B = 1,024,
    # the largest batch that scored as gensim on an H100; the sample repeated 100 times gets the cap.
    from scratchlm.data.corpora import load_tokenized_corpus
    vocab = sampling.build_vocab(load_tokenized_corpus("wiki"), 5)
    assert model.accelerator_batch(vocab.counts, 1e-3) == 1024
    assert model.accelerator_batch(vocab.counts * 100, 1e-3) == 16_384
    # CBOW's CPU batch, 1,024: about 304 steps an epoch, so two dispatches of 160 (not 256 + 256)
    assert model.epoch_dispatch_steps(vocab.counts, 1e-3, 1024) == 160


def test_run_config_takes_what_is_given_and_derives_the_rest_per_device():
    # the one place the command and benchmarks/word2vec.py take their settings from
    counts = np.full(2000, 1000.0)  # 2 M tokens, all kept at sample 1e-3 (each word is 1/2000 of the corpus)
    gpu = model.run_config(accelerator=True, counts=counts, model="skipgram", dim=8)
    assert gpu.batch_size == model.accelerator_batch(counts, Word2VecConfig.sample) > 2048
    assert gpu.normalize_duplicates and gpu.noise_share == 1 and gpu.dim == 8
    assert model.run_config(accelerator=True, model="skipgram").batch_size == 16_384  # before the counts
    cpu = model.run_config(accelerator=False, counts=counts, model="cbow")
    assert (cpu.batch_size, cpu.normalize_duplicates, cpu.noise_share) == (1024, False, 32)
    assert cpu.steps_per_call == model.epoch_dispatch_steps(counts, Word2VecConfig.sample, 1024)
    assert model.run_config(accelerator=False, model="skipgram").steps_per_call == Word2VecConfig.steps_per_call
    kept = model.run_config(accelerator=True, counts=counts, model="cbow", batch_size=512, normalize_duplicates=True,
                            noise_share=4, steps_per_call=7)
    assert (kept.batch_size, kept.normalize_duplicates, kept.noise_share, kept.steps_per_call) == (512, True, 4, 7)
