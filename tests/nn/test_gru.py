"""scratchlm.nn.gru: PyTorch parity, gradient checks through the scan, the cell's Jacobian, properties."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm import serialization
from scratchlm.errors import ScratchlmError
from scratchlm.nn import gru
from scratchlm.testing import check_closed_form_grad, check_grads

torch = pytest.importorskip("torch")

_apply = jax.jit(gru.apply)  # one compilation per shape, shared by the tests below


def _torch_pair(D=5, H=7, L=2, bidirectional=False, seed=0):
    torch.manual_seed(seed)
    module = torch.nn.GRU(D, H, num_layers=L, batch_first=True, bidirectional=bidirectional)
    params = gru.params_from_torch({k: v.detach().numpy() for k, v in module.state_dict().items()})
    return module, params


# ----------------------------------------------------------------------------- PyTorch parity


@pytest.mark.parametrize("bidirectional", [False, True])
def test_forward_equals_torch(bidirectional):
    """Outputs and h_n equal torch.nn.GRU's (2 layers, cuDNN variant) to 1e-5 in float32.

    Each step is a handful of float32 ops on O(1) values (round-off ~1e-7 each); gates are
    contractive (|∂h_t/∂h_{t-1}| < 1 at these weight scales), so over T = 6 steps the two
    implementations' different summation orders stay far below 1e-5.
    """
    module, params = _torch_pair(bidirectional=bidirectional)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 5), dtype=np.float32)
    h0 = rng.standard_normal((2 * (1 + bidirectional), 3, 7), dtype=np.float32)
    out_t, h_t = module(torch.tensor(x), torch.tensor(h0))
    outputs, h_n = gru.apply(params, jnp.asarray(x), jnp.asarray(h0))
    assert params["config"].variant == "cudnn" and params["config"].num_layers == 2
    np.testing.assert_allclose(outputs, out_t.detach().numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n, h_t.detach().numpy(), rtol=0, atol=1e-5)


def test_mask_equals_torch_packed_sequence():
    """Right-padded steps masked out give PyTorch's packed-sequence result (bidirectional, 2 layers):
    padded outputs are zero, h_n is the state at each sequence's own last token (backward: first)."""
    module, params = _torch_pair(bidirectional=True, seed=1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 5), dtype=np.float32)
    lengths = np.array([6, 2, 4])
    mask = np.arange(6)[None, :] < lengths[:, None]
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    out_packed, h_t = module(packed)
    out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=6)
    outputs, h_n = gru.apply(params, jnp.asarray(x), mask=jnp.asarray(mask))
    np.testing.assert_allclose(outputs, out_t.detach().numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n, h_t.detach().numpy(), rtol=0, atol=1e-5)


def test_gradients_equal_torch():
    """Gradients of L = Σ c ⊙ outputs + Σ d ⊙ h_n w.r.t. every weight, x and h0 equal PyTorch's to 1e-4.

    The backward pass sums T·B terms of size O(1) per weight entry; float32 round-off in either
    implementation is ~1e-6 relative per term, so 1e-4 absolute on O(1)-sized gradients is a
    bound the arithmetic allows with margin and a wrong term could not meet.
    """
    module, params = _torch_pair(seed=2)
    rng = np.random.default_rng(2)
    x, h0 = rng.standard_normal((3, 6, 5), dtype=np.float32), rng.standard_normal((2, 3, 7), dtype=np.float32)
    c, d = rng.standard_normal((3, 6, 7), dtype=np.float32), rng.standard_normal((2, 3, 7), dtype=np.float32)

    x_t, h0_t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out_t, h_t = module(x_t, h0_t)
    ((out_t * torch.tensor(c)).sum() + (h_t * torch.tensor(d)).sum()).backward()

    def loss(params, x, h0):
        outputs, h_n = gru.apply(params, x, h0)
        return jnp.sum(outputs * c) + jnp.sum(h_n * d)

    g_params, g_x, g_h0 = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(params, jnp.asarray(x), jnp.asarray(h0))
    for name, p in module.named_parameters():
        np.testing.assert_allclose(g_params[name], p.grad.numpy(), rtol=0, atol=1e-4, err_msg=name)
    np.testing.assert_allclose(g_x, x_t.grad.numpy(), rtol=0, atol=1e-4)
    np.testing.assert_allclose(g_h0, h0_t.grad.numpy(), rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- the equations, independently


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _numpy_cho_flipped(params, x, h0):
    """The issue's form of Cho's cell (Chung et al. 2014: h = (1 - z') h + z' h~), in NumPy, one layer,
    with W_z, U_z, b_z negated: the module docstring claims it is the same model as ours."""
    W, U = np.asarray(params["weight_ih_l0"], np.float64), np.asarray(params["weight_hh_l0"], np.float64)
    b = np.asarray(params["bias_ih_l0"], np.float64) + np.asarray(params["bias_hh_l0"], np.float64)
    (W_r, W_z, W_h), (U_r, U_z, U_h), (b_r, b_z, b_h) = np.split(W, 3), np.split(U, 3), np.split(b, 3)
    h, outs = np.asarray(h0, np.float64), []
    for t in range(x.shape[1]):
        x_t = x[:, t]
        r = _sigmoid(x_t @ W_r.T + h @ U_r.T + b_r)
        z_flipped = _sigmoid(x_t @ -W_z.T + h @ -U_z.T - b_z)
        h_tilde = np.tanh(x_t @ W_h.T + (r * h) @ U_h.T + b_h)
        h = (1 - z_flipped) * h + z_flipped * h_tilde
        outs.append(h)
    return np.stack(outs, 1), h


def test_cho_variant_equals_its_equations_in_numpy():
    """The "cho" variant computes Cho et al. (2014) eqs. 5-8, written out in float64 NumPy with the
    update gate in the flipped convention; float32 vs float64 over 6 steps agree to 1e-5."""
    params = gru.init(jax.random.key(3), gru.GRUConfig(4, 5, variant="cho"))
    params = {**params, "bias_hh_l0": params["bias_hh_l0"] + 0.3}  # non-zero b_hh so the b_ih + b_hh claim is tested
    rng = np.random.default_rng(3)
    x, h0 = rng.standard_normal((2, 6, 4), dtype=np.float32), rng.standard_normal((2, 5), dtype=np.float32)
    outputs, h_n = _apply(params, jnp.asarray(x), jnp.asarray(h0[None]))
    want_out, want_h = _numpy_cho_flipped(params, x.astype(np.float64), h0)
    np.testing.assert_allclose(outputs, want_out, rtol=0, atol=1e-5)
    np.testing.assert_allclose(h_n[0], want_h, rtol=0, atol=1e-5)


def _closed_form_jacobian(params, x_t, h, variant):
    r"""∂h_t/∂h_{t-1} for one example, from the chain rule on the docstring's equations:

    J = diag(z) + diag(h - h~) diag(z(1-z)) U_z + diag(1-z) diag(1-h~²) ∂a_n/∂h, with
    cudnn: ∂a_n/∂h = diag(a^h_n) diag(r(1-r)) U_r + diag(r) U_n
    cho:   ∂a_n/∂h = U_n (diag(r) + diag(h) diag(r(1-r)) U_r)
    """
    W, U = params["weight_ih_l0"], params["weight_hh_l0"]
    b_ih, b_hh = params["bias_ih_l0"], params["bias_hh_l0"]
    (W_r, W_z, W_n), (U_r, U_z, U_n) = jnp.split(W, 3), jnp.split(U, 3)
    (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = jnp.split(b_ih, 3), jnp.split(b_hh, 3)
    r = jax.nn.sigmoid(W_r @ x_t + b_ir + U_r @ h + b_hr)
    z = jax.nn.sigmoid(W_z @ x_t + b_iz + U_z @ h + b_hz)
    dr = (r * (1 - r))[:, None] * U_r  # ∂r/∂h
    if variant == "cudnn":
        a_h_n = U_n @ h + b_hn
        h_tilde = jnp.tanh(W_n @ x_t + b_in + r * a_h_n)
        da_n = a_h_n[:, None] * dr + r[:, None] * U_n
    else:
        h_tilde = jnp.tanh(W_n @ x_t + b_in + U_n @ (r * h) + b_hn)
        da_n = U_n @ (jnp.diag(r) + h[:, None] * dr)
    dz = (z * (1 - z))[:, None] * U_z
    return jnp.diag(z) + (h - h_tilde)[:, None] * dz + ((1 - z) * (1 - h_tilde**2))[:, None] * da_n


@pytest.mark.parametrize("variant", gru.VARIANTS)
def test_one_step_jacobian_closed_form(variant):
    """c^T ∂h_t/∂h_{t-1} by autodiff equals the closed form (float64, rtol 1e-9)."""
    params = gru.init(jax.random.key(4), gru.GRUConfig(3, 4, variant=variant))
    rng = np.random.default_rng(4)
    x_t, h = rng.standard_normal(3), rng.standard_normal(4)

    def h_t(h, x_t, params):
        a_x = gru.input_projection(x_t[None, None], params["weight_ih_l0"], params["bias_ih_l0"])[0]
        return gru.cell(a_x, h[None], params["weight_hh_l0"], params["bias_hh_l0"], variant=variant)[0]

    c = rng.standard_normal(4)  # a random cotangent: any wrong entry of J shows in J^T c almost surely
    check_closed_form_grad(lambda h, x_t, params: c @ h_t(h, x_t, params),
                           jax.jit(lambda h, x_t, params: _closed_form_jacobian(params, x_t, h, variant).T @ c),
                           (h, x_t, params))


@pytest.mark.parametrize("variant, num_layers, bidirectional", [("cudnn", 2, True), ("cho", 1, False)])
def test_check_grads_through_the_scan(x64, variant, num_layers, bidirectional):
    """Backpropagation through time (masked) against central differences in float64: 2 bidirectional
    layers for the cuDNN variant, one forward layer for Cho's cell (the stacking and direction code is
    shared by both variants; only the cell differs, and a small program compiles in half the time)."""
    config = gru.GRUConfig(2, 3, num_layers=num_layers, bidirectional=bidirectional, variant=variant)
    params = gru.init(jax.random.key(5), config)
    rng = np.random.default_rng(5)
    x, h0 = rng.standard_normal((2, 4, 2)), rng.standard_normal((num_layers * config.num_directions, 2, 3))
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool)

    @jax.jit
    def f(params, x, h0):
        outputs, h_n = gru.apply(params, x, h0, mask=mask)
        return jnp.concatenate([outputs.ravel(), h_n.ravel()])

    # Up to 364 numbers: 32 random directions (max_full=0) check the whole gradient at a tenth of the cost.
    check_grads(f, (params, x, h0), max_full=0, directions=32)


# ----------------------------------------------------------------------------- properties

_CONFIG = {v: gru.GRUConfig(3, 4, variant=v) for v in gru.VARIANTS}
seeds = st.integers(0, 2**31 - 1)


def _draw(seed, variant, B=2, T=6, scale=1.0):
    """Weights (init's U(-1/√H, 1/√H), times ``scale``), inputs x ~ N(0, 1) [B, T, 3] and h0 ~ N(0, 9) [1, B, 4].
    NumPy draws the data: every JAX random kernel of a new shape costs a compilation."""
    rng = np.random.default_rng(seed)
    params = {k: v if k == "config" else jnp.asarray(scale * np.asarray(v))
              for k, v in gru.init(jax.random.key(seed), _CONFIG[variant]).items()}
    x = jnp.asarray(rng.standard_normal((B, T, 3), dtype=np.float32))
    h0 = jnp.asarray(3.0 * rng.standard_normal((1, B, 4), dtype=np.float32))
    return params, x, h0


@settings(max_examples=8)
@given(seed=seeds, variant=st.sampled_from(gru.VARIANTS), scale=st.floats(0.5, 20.0))
def test_state_stays_in_the_convex_hull_bound(seed, variant, scale):
    """h_t = z h_{t-1} + (1 - z) h~ with z ∈ (0,1) and |h~| ≤ 1, so |h_t| ≤ max(|h_{t-1}|, 1) elementwise."""
    params, x, h0 = _draw(seed, variant, scale=scale)
    outputs, _ = _apply(params, x, h0)
    previous = jnp.concatenate([h0[0][:, None], outputs[:, :-1]], axis=1)
    assert bool(jnp.all(jnp.abs(outputs) <= jnp.maximum(jnp.abs(previous), 1.0) + 1e-6))


@settings(max_examples=5)
@given(seed=seeds, variant=st.sampled_from(gru.VARIANTS))
def test_saturated_update_gate_keeps_the_state(seed, variant):
    """z = σ(b_z) = 1 exactly (b_z = 100 rounds σ to 1.0 in float32) gives h_t = h_{t-1} at every step."""
    params, x, h0 = _draw(seed, variant)
    H = 4
    params = {**params, "bias_ih_l0": params["bias_ih_l0"].at[H : 2 * H].set(100.0)}
    outputs, h_n = _apply(params, x, h0)
    np.testing.assert_array_equal(h_n, h0)
    np.testing.assert_array_equal(outputs, jnp.broadcast_to(h0[0][:, None], outputs.shape))


@settings(max_examples=10)
@given(seed=seeds, variant=st.sampled_from(gru.VARIANTS), pads=st.lists(st.integers(0, 6), min_size=3, max_size=3))
def test_padding_steps_change_nothing(seed, variant, pads):
    """Padded steps inserted anywhere (with garbage inputs) leave the real steps' outputs and h_n as they were."""
    params, x, h0 = _draw(seed, variant)
    positions = sorted(pads)  # insert one padded step before each of these real positions
    is_real = np.ones(9, bool)
    for k, p in enumerate(positions):
        is_real[p + k] = False
    garbage = 10 * np.random.default_rng(seed).standard_normal((2, 9, 3), dtype=np.float32)
    x_padded = jnp.asarray(garbage).at[:, is_real].set(x)
    outputs, h_n = _apply(params, x, h0)
    outputs_p, h_n_p = _apply(params, x_padded, h0, mask=jnp.broadcast_to(jnp.asarray(is_real), (2, 9)))
    np.testing.assert_allclose(h_n_p, h_n, rtol=0, atol=1e-6)
    np.testing.assert_allclose(outputs_p[:, is_real], outputs, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(outputs_p[:, ~is_real], 0.0)


@settings(max_examples=6)
@given(seed=seeds, variant=st.sampled_from(gru.VARIANTS))
def test_two_chunks_with_carried_state_equal_the_whole(seed, variant):
    """Running x[:, :3] and then x[:, 3:] from the first chunk's h_n equals one run over x (truncated BPTT's
    premise; two chunks of one length: one compilation per variant)."""
    params, x, h0 = _draw(seed, variant)
    outputs, h_n = _apply(params, x, h0)
    out_1, h_1 = _apply(params, x[:, :3], h0)
    out_2, h_2 = _apply(params, x[:, 3:], h_1)
    np.testing.assert_allclose(jnp.concatenate([out_1, out_2], axis=1), outputs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(h_2, h_n, rtol=0, atol=1e-6)


def test_jit_unroll_and_eager_agree():
    """jit, unrolled scans and eager execution compute the same numbers (to float32 round-off)."""
    params, x, h0 = _draw(7, "cudnn")
    eager = gru.apply(params, x, h0)
    for got in (_apply(params, x, h0), jax.jit(gru.apply, static_argnames="unroll")(params, x, h0, unroll=5)):
        for a, b in zip(got, eager):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_dropout_between_layers_only_when_training():
    params = gru.init(jax.random.key(8), gru.GRUConfig(3, 4, num_layers=2))
    x = jnp.asarray(np.random.default_rng(9).standard_normal((2, 5, 3), dtype=np.float32))

    @jax.jit  # the three settings in one program: one compilation
    def three(params, x, key):
        return (gru.apply(params, x)[0], gru.apply(params, x, dropout=0.5, key=key, train=False)[0],
                gru.apply(params, x, dropout=0.5, key=key, train=True)[0])

    plain, evaluated, dropped = three(params, x, jax.random.key(1))
    np.testing.assert_array_equal(evaluated, plain)
    assert not np.allclose(dropped, plain)
    np.testing.assert_array_equal(three(params, x, jax.random.key(1))[2], dropped)
    assert not np.allclose(three(params, x, jax.random.key(2))[2], dropped)
    with pytest.raises(ValueError, match="key"):
        gru.apply(params, x, dropout=0.5, train=True)


def test_config_survives_msgpack_round_trip():
    params = gru.init(jax.random.key(0), gru.GRUConfig(3, 4, num_layers=2, bidirectional=True, variant="cho"))
    blank = gru.init(jax.random.key(1), gru.GRUConfig(3, 4, num_layers=2, bidirectional=True, variant="cho"))
    restored = serialization.from_bytes(blank, serialization.to_bytes(params))
    assert restored["config"] == params["config"]
    for name in params:
        if name != "config":
            np.testing.assert_array_equal(restored[name], params[name])


# ----------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_errors():
    params = gru.init(jax.random.key(0), gru.GRUConfig(3, 4, num_layers=2))
    with pytest.raises(ValueError, match=r"expected x \[B, T, 3\]"):
        gru.apply(params, jnp.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match=r"expected h0 \[2, 2, 4\]"):
        gru.apply(params, jnp.zeros((2, 5, 3)), jnp.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"expected mask \[2, 5\]"):
        gru.apply(params, jnp.zeros((2, 5, 3)), mask=jnp.ones((2, 4), bool))
    with pytest.raises(ScratchlmError, match="variant"):
        gru.GRUConfig(3, 4, variant="keras")
    state_dict = {k: np.asarray(v) for k, v in params.items() if k != "config"}
    with pytest.raises(ScratchlmError, match="lacks 'bias_hh_l1'"):
        gru.params_from_torch({k: v for k, v in state_dict.items() if k != "bias_hh_l1"})
    with pytest.raises(ScratchlmError, match=r"weight_hh_l1.*shape \(12, 3\)"):
        gru.params_from_torch({**state_dict, "weight_hh_l1": np.zeros((12, 3))})
    with pytest.raises(ScratchlmError, match="weight_ih_l0"):
        gru.params_from_torch({"weight": np.zeros(3)})
    # an LSTM's weights are named as an LSTM's, whether or not 4H divides by 3 (H 2: 8 rows; H 3: 12)
    for hidden in (2, 3):
        lstm_weights = {k: v.detach().numpy() for k, v in torch.nn.LSTM(3, hidden).state_dict().items()}
        with pytest.raises(ScratchlmError, match="LSTM"):
            gru.params_from_torch(lstm_weights)
    with pytest.raises(ScratchlmError, match="bias=False"):
        gru.params_from_torch({k: v.detach().numpy() for k, v in torch.nn.GRU(3, 4, bias=False).state_dict().items()})


@pytest.mark.parametrize("variant", ["cudnn", "cho"])
def test_mixed_dtypes_promote_and_each_gradient_keeps_its_leafs_dtype(variant):
    # as the LSTM's: one dtype for the scan's carry, each gradient in its own leaf's dtype
    params = gru.init(jax.random.key(0), gru.GRUConfig(3, 4, num_layers=2, bidirectional=True, variant=variant))
    x = jax.random.normal(jax.random.key(1), (2, 5, 3)).astype(jnp.bfloat16)
    out, h_n = gru.apply(params, x)
    assert out.dtype == h_n.dtype == jnp.float32
    np.testing.assert_array_equal(out, gru.apply(params, x.astype(jnp.float32))[0])
    assert jax.grad(lambda x: gru.apply(params, x)[0].sum())(x).dtype == jnp.bfloat16
    half = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    grads = jax.grad(lambda p: gru.apply(p, x.astype(jnp.float32))[0].sum())(half)
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.bfloat16)}
