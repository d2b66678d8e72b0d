"""scratchlm.data.batching: padding by hand, length buckets, and the step-determined minibatch order."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.data import batching


def test_pad_ids_by_hand():
    np.testing.assert_array_equal(batching.pad_ids([[5, 6], [7], [1, 2, 3]]), [[5, 6, 0], [7, 0, 0], [1, 2, 3]])
    np.testing.assert_array_equal(batching.pad_ids([[5, 6, 7]], length=2, pad=9), [[5, 6]])  # cut to length
    np.testing.assert_array_equal(batching.pad_ids([[5]], length=3, pad=9), [[5, 9, 9]])
    assert batching.pad_ids([[]]).shape == (1, 1)


def test_pad_batch_rounds_up_to_eight_and_ignores_padding_labels():
    batch = batching.pad_batch([[1, 7, 2], [1, 2]], [[0, 0, 0], [0, 0]], pad=0, labels=[[-100, 3, -100], [-100, -100]])
    assert batch["input_ids"].shape == (2, 8)
    np.testing.assert_array_equal(batch["input_ids"][0, :4], [1, 7, 2, 0])
    np.testing.assert_array_equal(batch["attention_mask"].sum(1), [3, 2])
    np.testing.assert_array_equal(batch["labels"][0], [-100, 3] + [-100] * 6)


def test_bucket_length_and_take():
    assert [batching.bucket_length(n) for n in (1, 32, 33, 64)] == [32, 32, 64, 64]
    data = {"input_ids": np.ones((3, 8), np.int32), "attention_mask": np.ones((3, 8), np.int32),
            "labels": np.full((3, 8), 2, np.int32)}
    rows = batching.take(data, np.array([2, 0]))
    assert rows["input_ids"].shape == (2, 32)  # a short set is padded up to its bucket
    assert (rows["labels"][:, 8:] == batching.IGNORE).all() and (rows["attention_mask"][:, 8:] == 0).all()


def test_epoch_batches_cover_an_epoch_once_and_skip_the_remainder():
    """n = 10, B = 3: three batches an epoch hold 9 distinct examples (one skipped: 10 mod 3), each epoch its
    own permutation of default_rng([seed, epoch]), the same for the same step (resuming continues)."""
    n, B, seed = 10, 3, 4
    epoch0 = np.concatenate([batching.epoch_batch(n, t, B, seed) for t in range(3)])
    assert len(set(epoch0.tolist())) == 9
    np.testing.assert_array_equal(epoch0, np.random.default_rng([seed, 0]).permutation(n)[:9])
    epoch1 = np.random.default_rng([seed, 1]).permutation(n)
    np.testing.assert_array_equal(batching.epoch_batch(n, 3, B, seed), epoch1[:3])
    assert batching.steps_per_epoch(n, B) == 3 and batching.steps_per_epoch(2, B) == 1  # B capped at n
    data = {"input_ids": np.arange(20).reshape(10, 2), "attention_mask": np.ones((10, 2), np.int32),
            "labels": np.arange(10)}
    b = batching.train_batch(data, 1, B, seed)
    np.testing.assert_array_equal(b["labels"], np.sort(batching.epoch_batch(n, 1, B, seed)))  # sorted rows


def test_ids_outside_the_vocabulary_are_an_error_where_the_batch_is_built():
    """Inside jit an out-of-range id raises nothing (a gather clamps it, a scatter drops it): the batch
    builders check every id against the model's vocabulary instead."""
    import jax.numpy as jnp
    import pytest

    from scratchlm.errors import ScratchlmError

    table = jnp.arange(4.0)[:, None]  # V = 4 rows
    assert float(table[jnp.asarray(9)][0]) == 3.0  # what the check prevents: row 9 silently reads row 3
    assert batching.check_ids(np.array([[0, 3]]), 4).tolist() == [[0, 3]]
    with pytest.raises(ScratchlmError, match=r"id 4 at index \(1, 0\) is outside \[0, 4\)"):
        batching.check_ids(np.array([[0, 3], [4, 1]]), 4)
    with pytest.raises(ScratchlmError, match=r"id -1 at index \(0,\)"):
        batching.check_ids(np.array([-1, 2]), 4)
    with pytest.raises(ScratchlmError, match="outside"):
        batching.pad_ids([[1, 2], [7]], vocab_size=5)
    with pytest.raises(ScratchlmError, match="outside"):
        batching.pad_batch([[1, 2, 9]], [[0, 0, 0]], pad=0, vocab_size=5)
    assert batching.pad_batch([[1, 2, 4]], [[0, 0, 0]], pad=0, vocab_size=5)["input_ids"].shape == (1, 8)


def test_pad_batch_rejects_rows_that_do_not_fit_or_disagree():
    import pytest

    from scratchlm.errors import ScratchlmError

    with pytest.raises(ScratchlmError, match="does not fit the batch width 2"):
        batching.pad_batch([[1, 2, 3]], [[0, 0, 0]], pad=0, length=2)
    with pytest.raises(ScratchlmError, match="row 0: 3 ids but 2 segment ids"):
        batching.pad_batch([[1, 2, 3]], [[0, 0]], pad=0)
    with pytest.raises(ScratchlmError, match="and 1 labels"):
        batching.pad_batch([[1, 2]], [[0, 0]], pad=0, labels=[[1]])
    with pytest.raises(ScratchlmError, match="no examples"):
        batching.pad_batch([], [], pad=0)


_needs = st.lists(st.tuples(st.sampled_from([32, 64, 96, 128, 160]), st.sampled_from([8, 16, 32, 48])),
                  min_size=1, max_size=40)


def _work(shape):  # strictly increasing on each axis, as a step's work is
    return shape[0] + shape[1] ** 2 // 20  # integers: sums compare exactly


@settings(max_examples=80, deadline=None)
@given(_needs, st.floats(0, 2000))
def test_plan_shapes_covers_every_step_and_trades_compilations_for_padding(needs, compile_cost):
    """Every need has a covering shape; the plan only holds needs and their axis-wise maximum; its steps' work
    is at most the single covering shape's and each shape it keeps saves at least ``compile_cost``, or is
    the last one dropping it would leave uncovered."""
    plan = batching.plan_shapes(needs, _work, compile_cost)
    top = (max(n for n, _ in needs), max(t for _, t in needs))
    assert plan == sorted(set(plan)) and set(plan) <= set(needs) | {top}
    work = sum(_work(batching.cheapest_cover(plan, n, _work)) for n in needs)
    assert work <= len(needs) * _work(top)
    for shape in plan:
        rest = [s for s in plan if s != shape]
        if rest and all(any(all(a >= b for a, b in zip(s, n)) for s in rest) for n in needs):
            without = sum(_work(batching.cheapest_cover(rest, n, _work)) for n in needs)
            assert without - work >= compile_cost or shape == top


def test_plan_shapes_at_the_extremes():
    needs = [(64, 16)] * 5 + [(96, 16)] * 3 + [(64, 32)]
    assert batching.plan_shapes(needs, _work, 0.0) == [(64, 16), (64, 32), (96, 16)]  # compiling is free
    assert batching.plan_shapes(needs, _work, float("inf")) == [(96, 32)]  # one program, the cover of all
    assert batching.plan_shapes([], _work, 1.0) == []
    with pytest.raises(ValueError, match="no planned shape covers"):
        batching.cheapest_cover([(64, 16)], (96, 16), _work)


def test_fit_shape_widens_the_grid_and_lays_out_the_rows():
    batch = {"input_ids": np.array([[1, 5, 2], [1, 2, 0]], np.int32),
             "attention_mask": np.array([[1, 1, 1], [1, 1, 0]]),
             "labels": np.array([[-100, 3, -100], [-100, -100, -100]])}
    out = batching.fit_shape(batch, (8, 5))
    assert out["input_ids"].shape == out["labels"].shape == (2, 5)
    np.testing.assert_array_equal(out["labels"][0], [-100, 3, -100, -100, -100])
    np.testing.assert_array_equal(out["layout"]["token_index"], [0, 5, 1, 2, 6, 10, 10, 10])
    assert out["layout"]["grid_index"].shape == (2, 5)
