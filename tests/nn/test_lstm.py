"""scratchlm.nn.lstm: PyTorch parity, gradient checks through the scan, the cell's Jacobian, properties."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm import serialization
from scratchlm.errors import ScratchlmError
from scratchlm.nn import lstm
from scratchlm.testing import check_closed_form_grad, check_grads

torch = pytest.importorskip("torch")

_apply = jax.jit(lstm.apply)  # one compilation per shape, shared by the tests below


def _torch_pair(D=5, H=7, L=2, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    module = torch.nn.LSTM(D, H, num_layers=L, batch_first=True, bidirectional=bidirectional)
    params = lstm.params_from_torch({k: v.detach().numpy() for k, v in module.state_dict().items()})
    return module, params


def _numpy(*tensors):
    return [t.detach().numpy() for t in tensors]


# ----------------------------------------------------------------------------- PyTorch parity

# Each step is a handful of float32 ops on O(1) values (round-off ~1e-7 relative each); the gates are
# contractive at init's weight scale (|∂(h_t, c_t)/∂(h_{t-1}, c_{t-1})| < 1: f < 1 scales c, the U's are
# O(1/√H)), so the two implementations' different summation orders, over T = 6 steps and 2 layers, stay
# a few ulps of O(1) values (~1e-7), and 1e-5 leaves two orders of margin; a wrong gate order or bias is O(0.1).
ATOL = 1e-5


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, False), (2, True)])
def test_forward_equals_torch(num_layers, bidirectional):
    """Outputs, h_n and c_n equal torch.nn.LSTM's from a random (h0, c0)."""
    module, params = _torch_pair(L=num_layers, bidirectional=bidirectional)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 5), dtype=np.float32)
    h0, c0 = rng.standard_normal((2, num_layers * (1 + bidirectional), 3, 7), dtype=np.float32)
    out_t, (h_t, c_t) = module(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    outputs, (h_n, c_n) = _apply(params, jnp.asarray(x), (jnp.asarray(h0), jnp.asarray(c0)))
    assert params["config"] == lstm.LSTMConfig(5, 7, num_layers, bidirectional)
    for ours, theirs in zip((outputs, h_n, c_n), _numpy(out_t, h_t, c_t)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=ATOL)


@pytest.mark.parametrize("num_layers, bidirectional", [(1, False), (2, True)])
def test_mask_equals_torch_packed_sequence(num_layers, bidirectional):
    """Right-padded steps masked out give PyTorch's packed-sequence result: padded outputs are zero,
    h_n and c_n are the states at each sequence's own last token (backward direction: first)."""
    module, params = _torch_pair(L=num_layers, bidirectional=bidirectional, seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 5), dtype=np.float32)
    lengths = np.array([6, 2, 4])
    mask = np.arange(6)[None, :] < lengths[:, None]
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out_packed, (h_t, c_t) = module(packed)
    out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=6)
    outputs, (h_n, c_n) = _apply(params, jnp.asarray(x), mask=jnp.asarray(mask))
    for ours, theirs in zip((outputs, h_n, c_n), _numpy(out_t, h_t, c_t)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=ATOL)


def test_gradients_equal_torch():
    """Gradients of L = Σ a ⊙ outputs + Σ b ⊙ h_n + Σ d ⊙ c_n w.r.t. every weight, x, h0 and c0 equal PyTorch's
    to 1e-4 (2 bidirectional layers).

    The backward pass sums T·B = 18 terms of size O(1) per weight entry; float32 round-off in either
    implementation is ~1e-6 relative per term, so 1e-4 absolute on O(1)-sized gradients is a bound the
    arithmetic allows with margin and a wrong term (a missing f, a gate's derivative) could not meet.
    """
    module, params = _torch_pair(bidirectional=True, seed=2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 6, 5), dtype=np.float32)
    h0, c0, b, d = rng.standard_normal((4, 4, 3, 7), dtype=np.float32)
    a = rng.standard_normal((3, 6, 14), dtype=np.float32)

    x_t, h0_t, c0_t = (torch.tensor(v, requires_grad=True) for v in (x, h0, c0))
    out_t, (h_t, c_t) = module(x_t, (h0_t, c0_t))
    ((out_t * torch.tensor(a)).sum() + (h_t * torch.tensor(b)).sum() + (c_t * torch.tensor(d)).sum()).backward()

    def loss(params, x, h0, c0):
        outputs, (h_n, c_n) = lstm.apply(params, x, (h0, c0))
        return jnp.sum(outputs * a) + jnp.sum(h_n * b) + jnp.sum(c_n * d)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)))(params, *map(jnp.asarray, (x, h0, c0)))
    for name, p in module.named_parameters():
        np.testing.assert_allclose(grads[0][name], p.grad.numpy(), rtol=0, atol=1e-4, err_msg=name)
    for ours, theirs in zip(grads[1:], (x_t, h0_t, c0_t)):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- the equations, independently


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def test_cell_equals_its_equations_in_numpy():
    """One layer over 6 steps equals the module docstring's six equations written out in float64 NumPy,
    gate blocks cut from PyTorch's layout [i; f; g; o] and the two biases added (b_hh made non-zero so the
    claim that both count is tested); float32 against float64 over 6 contractive steps: 1e-5."""
    params = lstm.init(jax.random.key(3), lstm.LSTMConfig(4, 5))
    params = {**params, "bias_hh_l0": params["bias_hh_l0"] + 0.3}
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 4), dtype=np.float32)
    h0, c0 = rng.standard_normal((2, 2, 5), dtype=np.float32)
    outputs, (h_n, c_n) = _apply(params, jnp.asarray(x), (jnp.asarray(h0[None]), jnp.asarray(c0[None])))

    W, U = (np.split(np.asarray(params[k], np.float64), 4) for k in ("weight_ih_l0", "weight_hh_l0"))
    b = np.split(np.asarray(params["bias_ih_l0"], np.float64) + np.asarray(params["bias_hh_l0"], np.float64), 4)
    h, c, outs = h0.astype(np.float64), c0.astype(np.float64), []
    for t in range(6):
        i, f, g, o = (x[:, t] @ W[k].T + h @ U[k].T + b[k] for k in range(4))
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c = f * c + i * g
        h = o * np.tanh(c)
        outs.append(h)
    np.testing.assert_allclose(outputs, np.stack(outs, 1), rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n[0], h, rtol=0, atol=1e-5)
    np.testing.assert_allclose(c_n[0], c, rtol=0, atol=1e-5)


def _step(state, x_t, params):
    """(h_t, c_t) of one example from (h_{t-1}, c_{t-1}) through lstm.cell."""
    h, c = state
    a_x = lstm.input_projection(x_t[None, None], params["weight_ih_l0"], params["bias_ih_l0"])[0]
    h_t, c_t = lstm.cell(a_x, h[None], c[None], params["weight_hh_l0"], params["bias_hh_l0"])
    return h_t[0], c_t[0]


def _closed_form_jacobian(params, x_t, h, c):
    r"""The one-step Jacobian blocks, from the chain rule on the cell's equations (one example):

    ∂c_t/∂c_{t-1} = diag(f),   ∂h_t/∂c_{t-1} = diag(o (1 - tanh² c_t) f),
    ∂c_t/∂h_{t-1} = diag(c_{t-1} f(1-f)) U_f + diag(g i(1-i)) U_i + diag(i (1-g²)) U_g,
    ∂h_t/∂h_{t-1} = diag(tanh(c_t) o(1-o)) U_o + diag(o (1 - tanh² c_t)) ∂c_t/∂h_{t-1}.
    """
    W_i, W_f, W_g, W_o = jnp.split(params["weight_ih_l0"], 4)
    U_i, U_f, U_g, U_o = jnp.split(params["weight_hh_l0"], 4)
    b_i, b_f, b_g, b_o = jnp.split(params["bias_ih_l0"] + params["bias_hh_l0"], 4)
    i = jax.nn.sigmoid(W_i @ x_t + U_i @ h + b_i)
    f = jax.nn.sigmoid(W_f @ x_t + U_f @ h + b_f)
    g = jnp.tanh(W_g @ x_t + U_g @ h + b_g)
    o = jax.nn.sigmoid(W_o @ x_t + U_o @ h + b_o)
    tanh_c = jnp.tanh(f * c + i * g)
    dc_dh = (c * f * (1 - f))[:, None] * U_f + (g * i * (1 - i))[:, None] * U_i + (i * (1 - g**2))[:, None] * U_g
    dh_dh = (tanh_c * o * (1 - o))[:, None] * U_o + (o * (1 - tanh_c**2))[:, None] * dc_dh
    return {"dh_dh": dh_dh, "dh_dc": jnp.diag(o * (1 - tanh_c**2) * f), "dc_dh": dc_dh, "dc_dc": jnp.diag(f)}


def test_one_step_jacobian_closed_form(x64):
    """∂c_t/∂c_{t-1} = diag(f_t) (the constant error carousel, gated), and the other three blocks, by autodiff
    equal the closed form (float64: both sides exact formulas, agreeing to a few ulps; rtol 1e-9)."""
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), lstm.init(jax.random.key(4), lstm.LSTMConfig(3, 4)))
    rng = np.random.default_rng(4)
    x_t, h, c = rng.standard_normal(3), rng.standard_normal(4), 2 * rng.standard_normal(4)
    (dh_dh, dh_dc), (dc_dh, dc_dc) = jax.jacrev(_step)((h, c), x_t, params)
    want = _closed_form_jacobian(params, x_t, h, c)
    for name, got in (("dh_dh", dh_dh), ("dh_dc", dh_dc), ("dc_dh", dc_dh), ("dc_dc", dc_dc)):
        np.testing.assert_allclose(got, want[name], rtol=1e-9, atol=1e-12, err_msg=name)
    # and as a vector-Jacobian product through the library's helper, in a random direction
    a, b = rng.standard_normal(4), rng.standard_normal(4)

    def vjp_closed_form(state, x_t, params):
        J = _closed_form_jacobian(params, x_t, *state)
        return (J["dh_dh"].T @ a + J["dc_dh"].T @ b, J["dh_dc"].T @ a + J["dc_dc"].T @ b)

    def projected(state, x_t, params):
        h_t, c_t = _step(state, x_t, params)
        return a @ h_t + b @ c_t

    check_closed_form_grad(projected, jax.jit(vjp_closed_form), ((h, c), x_t, params))


@pytest.mark.parametrize(("masked", "reverse", "everything"),
                         [(False, False, True), (True, False, True), (False, True, True), (True, True, True),
                          (True, False, False), (False, True, False)])
def test_hand_written_backward_equals_autodiff_of_the_scan(x64, reverse, masked, everything):
    """lstm.recurrence (feature-major, the input projection inside the step, its custom VJP) equals
    lstm.input_projection then autodiff of lstm.scan_recurrence (cell in a plain scan), in value and in the
    gradients of x, h0, c0 and all four weights, with and without a mask, in float64: the same chain rule summed
    in another order, so they agree to round-off (~1e-15 relative per op over 5 steps); 1e-10 exposes any wrong
    term.  ``everything=False``: a loss on the final state alone, differentiated in the weights alone, so
    the backward pass gets a symbolic zero for the outputs and skips the inputs' gradient."""
    rng = np.random.default_rng(6)
    T, B, D, H = 5, 3, 2, 4
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((2, B, H))
    weight_ih, weight_hh = 0.5 * rng.standard_normal((4 * H, D)), 0.5 * rng.standard_normal((4 * H, H))
    bias_ih, bias_hh = 0.5 * rng.standard_normal((2, 4 * H))
    mask = jnp.asarray(np.array([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]], bool)) if masked else None
    cot = [rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))]

    def plain(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
        a_x = lstm.input_projection(x, weight_ih, bias_ih)
        return lstm.scan_recurrence(a_x, h0, c0, weight_hh, bias_hh, mask, reverse)

    def fast(x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):  # [T, B, D] <-> [T, D, B], [B, H] <-> [H, B]
        out, h_T, c_T = lstm.recurrence(jnp.swapaxes(x, 1, 2), h0.T, c0.T, weight_ih, weight_hh, bias_ih, bias_hh,
                                        mask, reverse, 1, None)
        return jnp.swapaxes(out, 1, 2), h_T.T, c_T.T

    names = ("x", "h0", "c0", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
    argnums = tuple(range(7)) if everything else (3, 4, 5, 6)
    read = slice(0, 3) if everything else slice(1, 3)

    def loss(fn):
        def f(*args):
            return sum(jnp.sum(o * w) for o, w in zip(fn(*args)[read], cot[read]))
        return jax.jit(jax.value_and_grad(f, argnums=argnums))

    args = tuple(map(jnp.asarray, (x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh)))
    (v_fast, g_fast), (v_plain, g_plain) = loss(fast)(*args), loss(plain)(*args)
    assert g_fast[0].dtype == jnp.float64
    np.testing.assert_allclose(v_fast, v_plain, rtol=1e-12)
    for name, a, b in zip((names[i] for i in argnums), g_fast, g_plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=name)
    if masked:  # the padded outputs are zeros, as the plain scan's
        np.testing.assert_array_equal(np.asarray(fast(*args)[0])[~np.asarray(mask)], 0.0)


def test_check_grads_through_the_scan(x64):
    """Backpropagation through time (masked, from a given (h0, c0)) against central differences in float64,
    2 bidirectional layers."""
    config = lstm.LSTMConfig(2, 3, num_layers=2, bidirectional=True)
    params = lstm.init(jax.random.key(5), config)
    rng = np.random.default_rng(5)
    x, state = rng.standard_normal((2, 4, 2)), tuple(rng.standard_normal((2, 4, 2, 3)))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)

    @jax.jit
    def f(params, x, state):
        outputs, (h_n, c_n) = lstm.apply(params, x, state, mask=mask)
        return jnp.concatenate([outputs.ravel(), h_n.ravel(), c_n.ravel()])

    # ~470 numbers: 32 random directions (max_full=0) check the whole gradient at a fraction of the cost.
    check_grads(f, (params, x, state), max_full=0, directions=32)


# ----------------------------------------------------------------------------- properties

_CONFIG = lstm.LSTMConfig(3, 4)
seeds = st.integers(0, 2**31 - 1)


def _draw(seed, B=2, T=6, scale=1.0):
    """Weights (init's U(-1/√H, 1/√H), times ``scale``), inputs x ~ N(0, 1) [B, T, 3] and (h0, c0) with
    h0 ~ U(-1, 1) (a reachable h: |h| < 1) and c0 ~ N(0, 9), each [1, B, 4].  NumPy draws the data: every
    JAX random kernel of a new shape costs a compilation."""
    rng = np.random.default_rng(seed)
    params = {k: v if k == "config" else jnp.asarray(scale * np.asarray(v))
              for k, v in lstm.init(jax.random.key(seed), _CONFIG).items()}
    x = jnp.asarray(rng.standard_normal((B, T, 3), dtype=np.float32))
    h0 = jnp.asarray(rng.uniform(-1, 1, (1, B, 4)).astype(np.float32))
    c0 = jnp.asarray(3.0 * rng.standard_normal((1, B, 4), dtype=np.float32))
    return params, x, (h0, c0)


@settings(max_examples=8)
@given(seed=seeds, scale=st.floats(0.5, 20.0))
def test_state_bounds(seed, scale):
    """h_t = o tanh(c_t) with o ∈ (0, 1): |h_t| ≤ 1; c_t = f c_{t-1} + i g with f, i ∈ (0, 1), |g| ≤ 1:
    |c_t| ≤ |c_{t-1}| + 1 elementwise, at any weight scale (1e-6: float32 round-off of values O(10))."""
    params, x, state = _draw(seed, scale=scale)
    c_prev = state[1][0]
    h_t, c_t = state
    for t in range(x.shape[1]):  # one cell step at a time: the cell states of every step
        _, (h_t, c_t) = _apply(params, x[:, t : t + 1], (h_t, c_t))
        assert bool(jnp.all(jnp.abs(h_t) <= 1.0))
        assert bool(jnp.all(jnp.abs(c_t[0]) <= jnp.abs(c_prev) + 1.0 + 1e-6))
        c_prev = c_t[0]


@settings(max_examples=5)
@given(seed=seeds)
def test_zero_forget_gate_forgets(seed):
    """b_f = -200 makes f = σ(a_f) exactly 0 in float32 (e^{200} overflows), so c_t = i ⊙ g: two runs from
    different c0 give bit-identical outputs and states, while with the initial forget bias they differ."""
    params, x, (h0, c0) = _draw(seed)
    H = 4
    forgetful = {**params, "bias_ih_l0": params["bias_ih_l0"].at[H : 2 * H].set(-200.0)}
    other_c0 = c0 + 5.0
    out_a, (h_a, c_a) = _apply(forgetful, x, (h0, c0))
    out_b, (h_b, c_b) = _apply(forgetful, x, (h0, other_c0))
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(c_a, c_b)
    assert not np.allclose(_apply(params, x, (h0, c0))[0], _apply(params, x, (h0, other_c0))[0])


@settings(max_examples=10)
@given(seed=seeds, pads=st.lists(st.integers(0, 6), min_size=3, max_size=3))
def test_padding_steps_change_nothing(seed, pads):
    """Padded steps inserted anywhere (with garbage inputs) leave the real steps' outputs, h_n and c_n as they
    were, and padded outputs are zero (1e-6: the same float32 ops, fused differently at another length)."""
    params, x, state = _draw(seed)
    positions = sorted(pads)  # insert one padded step before each of these real positions
    is_real = np.ones(9, bool)
    for k, p in enumerate(positions):
        is_real[p + k] = False
    garbage = 10 * np.random.default_rng(seed).standard_normal((2, 9, 3), dtype=np.float32)
    x_padded = jnp.asarray(garbage).at[:, is_real].set(x)
    outputs, (h_n, c_n) = _apply(params, x, state)
    outputs_p, (h_n_p, c_n_p) = _apply(params, x_padded, state, mask=jnp.broadcast_to(jnp.asarray(is_real), (2, 9)))
    np.testing.assert_allclose(h_n_p, h_n, rtol=0, atol=1e-6)
    np.testing.assert_allclose(c_n_p, c_n, rtol=0, atol=1e-6)
    np.testing.assert_allclose(outputs_p[:, is_real], outputs, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(outputs_p[:, ~is_real], 0.0)


@settings(max_examples=6)
@given(seed=seeds)
def test_two_chunks_with_carried_state_equal_the_whole(seed):
    """Running x[:, :3] and then x[:, 3:] from the first chunk's (h_n, c_n) equals one run over x."""
    params, x, state = _draw(seed)
    outputs, (h_n, c_n) = _apply(params, x, state)
    out_1, state_1 = _apply(params, x[:, :3], state)
    out_2, (h_2, c_2) = _apply(params, x[:, 3:], state_1)
    np.testing.assert_allclose(jnp.concatenate([out_1, out_2], axis=1), outputs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(h_2, h_n, rtol=0, atol=1e-6)
    np.testing.assert_allclose(c_2, c_n, rtol=0, atol=1e-6)


def test_jit_unroll_and_eager_agree():
    """jit, unrolled scans and eager execution compute the same numbers (to float32 round-off)."""
    params, x, state = _draw(7)
    eager = jax.tree.leaves(lstm.apply(params, x, state))
    for got in (_apply(params, x, state), jax.jit(lstm.apply, static_argnames="unroll")(params, x, state, unroll=5)):
        for a, b in zip(jax.tree.leaves(got), eager):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_dropout_between_layers_only_when_training():
    params = lstm.init(jax.random.key(8), lstm.LSTMConfig(3, 4, num_layers=2))
    x = jnp.asarray(np.random.default_rng(9).standard_normal((2, 5, 3), dtype=np.float32))

    @jax.jit  # the three settings in one program: one compilation
    def three(params, x, key):
        return (lstm.apply(params, x)[0], lstm.apply(params, x, dropout=0.5, key=key, train=False)[0],
                lstm.apply(params, x, dropout=0.5, key=key, train=True)[0])

    plain, evaluated, dropped = three(params, x, jax.random.key(1))
    np.testing.assert_array_equal(evaluated, plain)
    assert not np.allclose(dropped, plain)
    np.testing.assert_array_equal(three(params, x, jax.random.key(1))[2], dropped)
    with pytest.raises(ValueError, match="key"):
        lstm.apply(params, x, dropout=0.5, train=True)


def test_config_survives_msgpack_round_trip():
    params = lstm.init(jax.random.key(0), lstm.LSTMConfig(3, 4, num_layers=2, bidirectional=True))
    blank = lstm.init(jax.random.key(1), lstm.LSTMConfig(3, 4, num_layers=2, bidirectional=True))
    restored = serialization.from_bytes(blank, serialization.to_bytes(params))
    assert restored["config"] == params["config"]
    for name in params:
        if name != "config":
            np.testing.assert_array_equal(restored[name], params[name])


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    params = lstm.init(jax.random.key(0), lstm.LSTMConfig(3, 4, num_layers=2))
    with pytest.raises(ValueError, match=r"expected x \[B, T, 3\]"):
        lstm.apply(params, jnp.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match=r"expected initial_state \(h0, c0\) each \[2, 2, 4\]"):
        lstm.apply(params, jnp.zeros((2, 5, 3)), (jnp.zeros((2, 2, 4)), jnp.zeros((1, 2, 4))))
    with pytest.raises(ValueError, match=r"expected mask \[2, 5\]"):
        lstm.apply(params, jnp.zeros((2, 5, 3)), mask=jnp.ones((2, 4), bool))
    with pytest.raises(ScratchlmError, match="positive"):
        lstm.LSTMConfig(3, 0)
    state_dict = {k: np.asarray(v) for k, v in params.items() if k != "config"}
    with pytest.raises(ScratchlmError, match="lacks 'bias_hh_l1'"):
        lstm.params_from_torch({k: v for k, v in state_dict.items() if k != "bias_hh_l1"})
    with pytest.raises(ScratchlmError, match=r"weight_hh_l1.*shape \(16, 3\)"):
        lstm.params_from_torch({**state_dict, "weight_hh_l1": np.zeros((16, 3))})
    with pytest.raises(ScratchlmError, match="4H"):
        lstm.params_from_torch({**state_dict, "weight_ih_l0": np.zeros((15, 3))})
    with pytest.raises(ScratchlmError, match="weight_hr_l0"):
        lstm.params_from_torch({**state_dict, "weight_hr_l0": np.zeros((2, 4))})
    with pytest.raises(ScratchlmError, match="weight_ih_l0"):
        lstm.params_from_torch({"weight": np.zeros(3)})
    # PyTorch's options this cell lacks are named, not reported as a mis-shaped tensor
    for module, option in ((torch.nn.LSTM(3, 4, proj_size=2), "proj_size"),
                           (torch.nn.LSTM(3, 4, bias=False), "bias=False")):
        with pytest.raises(ScratchlmError, match=option):
            lstm.params_from_torch({k: v.detach().numpy() for k, v in module.state_dict().items()})


def test_mixed_dtypes_promote_and_each_gradient_keeps_its_leafs_dtype():
    # jnp's promotion over weights, inputs and states gives the scan's carry one dtype; astype's own
    # gradient casts each leaf's gradient back (optax's update then keeps the params' dtypes)
    params = lstm.init(jax.random.key(0), lstm.LSTMConfig(3, 4, num_layers=2, bidirectional=True))
    x = jax.random.normal(jax.random.key(1), (2, 5, 3)).astype(jnp.bfloat16)
    out, (h_n, c_n) = lstm.apply(params, x)
    assert out.dtype == h_n.dtype == c_n.dtype == jnp.float32
    # bf16 -> f32 is exact, so the numbers are float32 inputs' holding the same values, bit for bit
    np.testing.assert_array_equal(out, lstm.apply(params, x.astype(jnp.float32))[0])
    assert jax.grad(lambda x: lstm.apply(params, x)[0].sum())(x).dtype == jnp.bfloat16
    half = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    grads = jax.grad(lambda p: lstm.apply(p, x.astype(jnp.float32))[0].sum())(half)
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.bfloat16)}
