"""sampling.py: vocabulary, the subsampling formula, the noise distribution and the dynamic window.

Statistical tests fix their PRNG seed and bound each empirical frequency by 5 binomial standard
deviations, sqrt(p(1-p)/n): a correct sampler fails such a bound with probability < 1e-6 per check.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.embeddings.word2vec import sampling
from scratchlm.errors import CorpusError


def test_vocab_order_min_count_and_encoding():
    sentences = [["c", "a", "b", "a"], ["b", "c", "d", "a"], ["e"]]
    vocab = sampling.build_vocab(sentences, min_count=2)
    assert vocab.words == ("a", "b", "c")  # a:3, then b:2 and c:2 by the word (c was seen first)
    assert vocab.counts.tolist() == [3, 2, 2]
    ids, sentence = sampling.encode(sentences, vocab)
    assert ids.tolist() == [2, 0, 1, 0, 1, 2, 0]  # d and e dropped before windowing
    assert sentence.tolist() == [0, 0, 0, 0, 1, 1, 1]


def test_vocab_bad_inputs():
    with pytest.raises(CorpusError, match="no word"):
        sampling.build_vocab([[], []])
    with pytest.raises(CorpusError, match="min_count=3"):
        sampling.build_vocab([["a", "b", "a"]], min_count=3)


def test_keep_probability_worked_example():
    """counts (64, 36), t = 0.04: f = (0.64, 0.36); keep = (sqrt(f/t) + 1) t/f = (4+1)·0.04/0.64 = 0.3125
    and (3+1)·0.04/0.36 = 4/9.  counts (1, 1), t = 0.5: (1+1)·0.5/0.5 = 2, capped at 1."""
    np.testing.assert_allclose(sampling.keep_probability(np.array([64, 36]), 0.04), [0.3125, 4 / 9], rtol=1e-6)
    assert (sampling.keep_probability(np.array([1, 1]), 0.5) == 1).all()
    assert (sampling.keep_probability(np.array([90, 9, 1]), 0.0) == 1).all()


def test_subsample_keep_rates_match_formula():
    rng = np.random.default_rng(0)
    counts = np.array([20_000, 8_000, 3_000, 1_000, 300])
    ids = rng.permutation(np.repeat(np.arange(5), counts)).astype(np.int32)
    sentence = np.arange(len(ids), dtype=np.int32) // 7
    p = sampling.keep_probability(counts, 1e-2)
    kept_ids, kept_sentence, n = sampling.subsample(jax.random.key(0), jnp.asarray(ids), jnp.asarray(sentence),
                                                    jnp.asarray(p))
    n = int(n)
    kept_ids, kept_sentence = np.asarray(kept_ids), np.asarray(kept_sentence)
    rate = np.bincount(kept_ids[:n], minlength=5) / counts
    assert (np.abs(rate - p) <= 5 * np.sqrt(p * (1 - p) / counts) + 1e-9).all()
    assert (kept_sentence[n:] == -1).all()
    assert (np.diff(kept_sentence[:n]) >= 0).all()  # order kept, so windows run along the text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=40), st.integers(1, 5000))
def test_noise_table_is_the_slot_search(counts, size):
    # slot i holds the word whose cumulative-probability interval holds (i + 1/2) / size, capped at V - 1:
    # the definition, searched slot by slot
    counts = np.array(counts)
    cumulative = np.cumsum(sampling.noise_probabilities(counts, sampling.NOISE_POWER))
    slots = (np.arange(size) + 0.5) / size
    expected = np.minimum(np.searchsorted(cumulative, slots, side="right"), len(counts) - 1)
    table = sampling.noise_table(counts, size=size)
    assert table.dtype == np.int32 and table.shape == (size,)
    np.testing.assert_array_equal(table, expected)


def test_noise_table_shares():
    counts = np.array([1000, 300, 50, 7, 1])
    table = sampling.noise_table(counts, size=1 << 16)
    p = counts ** 0.75 / np.sum(counts ** 0.75)
    assert (np.abs(np.bincount(table, minlength=5) - p * (1 << 16)) <= 1).all()


@pytest.mark.parametrize("size", [1 << 12, 1000])  # top bits, modulo
def test_negative_draws_are_the_tables_words(size):
    """A draw searched in the ends is the word of the C tool's table at the same slot: the slots read
    through ends = 1 .. size - 1 (slot i has i ends at or below it), then looked up in the table."""
    counts = np.array([700, 300, 300, 20, 5, 1, 1])
    key, n = jax.random.key(4), 20_000
    slots = np.asarray(sampling.draw_negatives(key, jnp.arange(1, size, dtype=jnp.int32), (n,), size))
    ends = jnp.asarray(sampling.noise_ends(counts, size))
    np.testing.assert_array_equal(np.asarray(sampling.draw_negatives(key, ends, (n,), size)),
                                  sampling.noise_table(counts, size)[slots])


def test_negative_draws_follow_unigram_to_the_three_quarters():
    counts = np.array([5000, 1200, 300, 40, 3])
    ends = jnp.asarray(sampling.noise_ends(counts))
    n = 400_000
    draws = np.asarray(sampling.draw_negatives(jax.random.key(1), ends, (n,)))
    p = counts ** 0.75 / np.sum(counts ** 0.75)
    freq = np.bincount(draws, minlength=5) / n
    assert (np.abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / n)).all()
    assert np.abs(freq - counts / counts.sum()).max() > 0.05  # and clearly not the plain unigram


@pytest.mark.parametrize("size", [1 << 16, 3 * 5 * 7 * 11 * 13])  # 2^m slots: top bits; others: modulo
def test_negative_draws_are_uniform_over_the_slots(size):
    """Each slot of a table of `size` slots is drawn with probability 1/size: over n draws, the counts of
    the slots in 16 equal bands are n/16 each within 5 binomial standard deviations, and every slot is in range."""
    n = 400_000
    # ends 1 .. size - 1: slot i has i ends at or below it, so each draw is its slot
    slots = np.asarray(sampling.draw_negatives(jax.random.key(5), jnp.arange(1, size, dtype=jnp.int32), (n,), size))
    assert slots.min() >= 0 and slots.max() < size
    bands = np.bincount(slots * 16 // size, minlength=16) / n
    assert (np.abs(bands - 1 / 16) <= 5 * np.sqrt((1 / 16) * (15 / 16) / n)).all()


def test_samplers_take_a_key_or_the_words_drawn_from_it():
    """A step draws its words once and hands each sampler a slice: the same numbers as the key itself gives."""
    key = jax.random.key(6)
    words = jax.random.bits(key, (60,), jnp.uint32)
    ends = jnp.asarray(sampling.noise_ends(np.array([50, 20, 5]), size=1 << 10))
    np.testing.assert_array_equal(sampling.reduced_windows(words, (60,), 5), sampling.reduced_windows(key, (60,), 5))
    key_20, words_20 = jax.random.key(7), jax.random.bits(jax.random.key(7), (20,), jnp.uint32)  # 5 rows x 4 cells
    np.testing.assert_array_equal(sampling.window_groups(words_20, 11, 5, 2), sampling.window_groups(key_20, 11, 5, 2))
    np.testing.assert_array_equal(sampling.draw_negatives(words.reshape(12, 5), ends, (12, 5), 1 << 10),
                                  sampling.draw_negatives(key, ends, (12, 5), 1 << 10))
    with pytest.raises(ValueError, match="uint32"):
        sampling.reduced_windows(words[:59], (60,), 5)
    with pytest.raises(ValueError, match="uint32"):
        sampling.draw_negatives(words.astype(jnp.int32), ends, (60,), 1 << 10)


def test_reduced_window_is_uniform():
    W, n = 5, 200_000
    b = np.asarray(sampling.reduced_windows(jax.random.key(2), (n,), W))
    assert b.min() == 1 and b.max() == W
    freq = np.bincount(b, minlength=W + 1)[1:] / n
    assert (np.abs(freq - 1 / W) <= 5 * np.sqrt(0.2 * 0.8 / n)).all()


@pytest.mark.parametrize("multiple, C", [(1, 3), (2, 4)])
def test_window_groups_place_every_centre_once_with_a_uniform_window(multiple, C):
    """B = 12 centres, W = 5: a [5, 3] grid with 3 empty cells ([5, 4] with 8 when rows must split into
    sets of 2).  Each centre's row (its window b - 1) is uniform over 5 rows: over n = 4000 draws each
    (centre, row) frequency is 1/5 within 5 binomial standard deviations."""
    B, W, n = 12, 5, 4_000
    keys = jax.random.split(jax.random.key(4), n)
    grids = np.asarray(jax.vmap(lambda k: sampling.window_groups(k, B, W, multiple))(keys))
    assert grids.shape == (n, W, C)
    flat = grids.reshape(n, -1)
    empty = [B] * (W * C - B)
    assert (np.sort(flat, axis=1) == np.array(list(range(B)) + empty)).all()  # every centre once, the rest empty
    rows = np.argmax((grids[..., None] == np.arange(B)).any(axis=2), axis=1)  # [n, B]: each centre's row
    freq = np.stack([(rows == r).mean(axis=0) for r in range(W)])  # [W, B]
    assert (np.abs(freq - 1 / W) <= 5 * np.sqrt(0.2 * 0.8 / n)).all()


def test_dynamic_window_pair_counts_match_expectation():
    """One sentence of n tokens: a context at distance d is used with probability (W - d + 1)/W, so
    E[#pairs at distance d] = 2 (n - d)(W - d + 1)/W; each is a sum of 2(n-d) Bernoulli draws."""
    W, n = 4, 5_000
    sentence = jnp.zeros(n, jnp.int32)
    centre = jnp.arange(n)
    b = sampling.reduced_windows(jax.random.key(3), (n,), W)
    position, mask = sampling.context_positions(centre, b, sentence, jnp.int32(n), W)
    distance = np.abs(np.asarray(position) - np.arange(n)[:, None])[np.asarray(mask)]
    for d in range(1, W + 1):
        q = (W - d + 1) / W
        trials = 2 * (n - d)
        assert abs(np.sum(distance == d) - trials * q) <= 5 * np.sqrt(trials * q * (1 - q)) + 1e-9


_CAPACITY = 120  # every example padded to this length, so each window size compiles once


@jax.jit(static_argnames="W")
def _pairs(key, sentence_padded, n, W):
    b = sampling.reduced_windows(key, (_CAPACITY,), W)
    return (b,) + sampling.context_positions(jnp.arange(_CAPACITY), b, sentence_padded, n, W)


@settings(max_examples=20)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=12), st.sampled_from([1, 3, 5]), st.integers(0, 2**31 - 1))
def test_every_pair_is_within_window_and_sentence(lengths, W, seed):
    sentence = np.repeat(np.arange(len(lengths)), lengths).astype(np.int32)
    n = len(sentence)
    sentence_padded = jnp.asarray(np.concatenate([sentence, np.full(_CAPACITY - n, -1, np.int32)]))
    b, position, mask = map(np.asarray, _pairs(jax.random.key(seed), sentence_padded, jnp.int32(n), W))
    c, j = np.nonzero(mask)
    p = position[c, j]
    assert (c < n).all() and (p >= 0).all() and (p < n).all()
    assert (p != c).all()
    assert (np.abs(p - c) <= np.asarray(b)[c]).all()
    assert (sentence[p] == sentence[c]).all()
    # and every such pair is there: count them independently
    b_np = np.asarray(b)
    expected = sum(1 for i in range(n) for q in range(n)
                   if q != i and abs(q - i) <= b_np[i] and sentence[q] == sentence[i])
    assert len(p) == expected


@settings(max_examples=30)
@given(corpus=st.lists(st.lists(st.sampled_from("abcdefg"), max_size=9), min_size=1, max_size=8)
       .filter(lambda s: any(s)), shares=st.integers(1, 4), min_count=st.integers(1, 3))
def test_vocabulary_from_merged_share_counts_equals_the_whole_corpus(corpus, shares, min_count):
    """Counts of consecutive shares summed in order give the whole corpus's vocabulary, ties included
    (first appearance), and the shares' encodings concatenated give its ids."""
    from scratchlm import distributed as parallel
    from scratchlm.errors import CorpusError

    parts = [parallel.process_shard(corpus, p, shares) for p in range(shares)]
    merged = parallel.merge_counts([sampling.word_counts(s) for s in parts])
    try:
        whole = sampling.build_vocab(corpus, min_count)
    except CorpusError:
        with pytest.raises(CorpusError):
            sampling.vocab_from_counts(merged, min_count)
        return
    vocab = sampling.vocab_from_counts(merged, min_count)
    assert vocab.words == whole.words and np.array_equal(vocab.counts, whole.counts)
    ids = np.concatenate([sampling.encode(s, vocab, allow_empty=True)[0] for s in parts])
    np.testing.assert_array_equal(ids, sampling.encode(corpus, whole)[0])
