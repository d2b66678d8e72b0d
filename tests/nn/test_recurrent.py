"""scratchlm.nn.recurrent.stacked: the wiring of layers and directions that the GRU and the LSTM share (their
numbers against PyTorch's are tests/nn/test_gru.py's and test_lstm.py's)."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.errors import ScratchlmError
from scratchlm.nn import gru, lstm
from scratchlm.nn.recurrent import stacked


def test_layers_and_directions_are_wired_and_indexed_as_pytorch_does():
    """A stand-in recurrence that records its calls: PyTorch's parameter suffixes and state index l·dirs + d, the
    backward direction reversed, layer 2 reading the concatenation [forward; backward] of layer 1, the mask
    time-major, and the final states stacked in the same order."""
    B, T, D = 2, 3, 4
    config = SimpleNamespace(num_layers=2, num_directions=2)
    calls = []

    def direction(s, x, states, mask, reverse):
        calls.append((s, x.shape, reverse, float(states[0][0, 0]), float(states[1][0, 0]), mask.shape))
        out = jnp.sum(x, axis=-1, keepdims=True) + (10.0 if reverse else 1.0)  # [T, B, 1]
        return out, (states[0] + 100.0, out[0 if reverse else -1])

    x = jnp.ones((B, T, D))
    h0 = jnp.broadcast_to(jnp.arange(4.0)[:, None, None], (4, B, 1))  # state k holds k
    c0 = -h0
    mask = jnp.ones((B, T), bool)
    outputs, (h_n, c_n) = stacked(direction, config, x, (h0, c0), mask=mask)
    assert [c[0] for c in calls] == ["_l0", "_l0_reverse", "_l1", "_l1_reverse"]
    assert [c[2] for c in calls] == [False, True, False, True]
    assert [(c[3], c[4]) for c in calls] == [(0, 0), (1, -1), (2, -2), (3, -3)]
    assert [c[1] for c in calls] == [(T, B, D), (T, B, D), (T, B, 2), (T, B, 2)]
    assert all(c[5] == (T, B) for c in calls)
    # layer 1: forward D + 1 = 5, backward D + 10 = 14; layer 2 reads them: 19 + 1 and 19 + 10
    np.testing.assert_array_equal(outputs, np.broadcast_to([20.0, 29.0], (B, T, 2)))
    np.testing.assert_array_equal(h_n[:, 0, 0], [100.0, 101.0, 102.0, 103.0])
    np.testing.assert_array_equal(c_n[:, 0, 0], [5.0, 14.0, 20.0, 29.0])


def test_dropout_falls_between_layers_only_with_a_fresh_draw_per_layer():
    """Layer 1 reads x itself; layers 2 and 3 read dropped-out inputs, each layer its own draw from the key."""
    seen = []

    def direction(s, x, states, mask, reverse):
        seen.append(np.asarray(x))
        return x, (x[-1],)

    x = jnp.ones((1, 5, 64))
    stacked(direction, SimpleNamespace(num_layers=3, num_directions=1), x, (jnp.zeros((3, 1, 64)),), dropout=0.5,
            key=jax.random.key(0), train=True)
    assert (seen[0] == 1.0).all()
    dropped = [s == 0.0 for s in seen[1:]]
    assert all(d.any() and not d.all() for d in dropped) and (dropped[0] != dropped[1]).any()


def test_feature_major_wiring_equals_batch_major():
    """stacked(feature_major=True) hands the recurrence [T, D, B] sequences and [H, B] states and gives back the
    same outputs, final states and dropout masks as the batch-major wiring, for a recurrence that is the same
    map in both layouts (a mix over features and time, each direction's own weights, masked, 2 bidirectional
    layers with dropout between them)."""
    B, T, D, H = 3, 5, 4, 2
    rng = np.random.default_rng(0)
    weights = {s: jnp.asarray(rng.standard_normal((H, d))) for s, d in
               (("_l0", D), ("_l0_reverse", D), ("_l1", 2 * H), ("_l1_reverse", 2 * H))}

    def direction(feature_major):
        def run(s, x, states, mask, reverse):
            x_bm = jnp.swapaxes(x, 1, 2) if feature_major else x  # [T, B, D]
            state = states[0].T if feature_major else states[0]  # [B, H]
            out = jnp.tanh(jnp.einsum("tbd,hd->tbh", jnp.cumsum(x_bm[::-1] if reverse else x_bm, 0), weights[s])
                           + state) * mask[:, :, None]
            last = out[0] if reverse else out[-1]
            return (jnp.swapaxes(out, 1, 2), (last.T,)) if feature_major else (out, (last,))
        return run

    config = SimpleNamespace(num_layers=2, num_directions=2)
    x = jnp.asarray(rng.standard_normal((B, T, D)))
    h0 = jnp.asarray(rng.standard_normal((4, B, H)))
    mask = jnp.asarray(rng.random((B, T)) < 0.8)
    kwargs = dict(mask=mask, dropout=0.5, key=jax.random.key(1), train=True)
    out_bm, (h_bm,) = stacked(direction(False), config, x, (h0,), **kwargs)
    out_fm, (h_fm,) = stacked(direction(True), config, x, (h0,), feature_major=True, **kwargs)
    assert out_fm.shape == (B, T, 2 * H) and h_fm.shape == (4, B, H)
    np.testing.assert_array_equal(out_fm, out_bm)  # the same ops on the same numbers, only moved
    np.testing.assert_array_equal(h_fm, h_bm)


def test_an_extra_tensor_is_named_with_what_each_module_does_not_support():
    """load_torch_tensors, through both modules' params_from_torch: an unexpected tensor is refused, named, with
    the module's own words for what it does not support."""
    for module, config, words in ((gru, gru.GRUConfig(3, 4), "a GRU does not have: ['extra'] (bias=False is not "
                                   "supported)"),
                                  (lstm, lstm.LSTMConfig(3, 4), "this LSTM does not have: ['extra'] (bias=False and "
                                   "proj_size > 0 are not supported)")):
        state_dict = {k: np.asarray(v) for k, v in module.init(jax.random.key(0), config).items() if k != "config"}
        with pytest.raises(ScratchlmError) as caught:
            module.params_from_torch({**state_dict, "extra": np.zeros(2)})
        assert str(caught.value) == "state_dict holds tensors " + words
        loaded = module.params_from_torch(state_dict)
        assert loaded["config"] == config and all(loaded[k].dtype == np.float32 for k in state_dict)
