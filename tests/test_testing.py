"""scratchlm.testing: the toolkit accepts right gradients and rejects wrong ones, naming where."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.testing import check_closed_form_grad, check_grads


@jax.custom_jvp
def wrong_tanh(x):
    return jnp.tanh(x)


@wrong_tanh.defjvp
def _wrong_tanh_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.tanh(x), (1.0 - jnp.tanh(x)) * t  # deliberately wrong: should be 1 - tanh^2


def test_accepts_a_right_gradient():
    params = {"w": np.arange(6.0).reshape(2, 3) / 10, "b": np.ones(3)}
    check_grads(lambda p, x: jnp.sum(jnp.tanh(x @ p["w"] + p["b"]) ** 2), (params, np.array([0.3, -0.2])))


def test_rejects_a_wrong_gradient_and_names_the_element():
    with pytest.raises(AssertionError, match=r"args\[0\]\['x'\]\[1\]"):
        check_grads(lambda p: jnp.sum(wrong_tanh(p["x"])), ({"x": np.array([0.0, 0.5, 1.0])},))


def test_rejects_a_wrong_gradient_in_random_direction_mode():
    with pytest.raises(AssertionError, match="random direction"):
        check_grads(lambda x: jnp.sum(wrong_tanh(x)), (np.linspace(0.1, 1.0, 600),), max_full=100)


def test_random_direction_mode_accepts_a_right_gradient():
    check_grads(lambda x: jnp.sum(jnp.sin(x) * x), (np.linspace(-1, 1, 600),), max_full=100)


def test_integer_leaves_pass_through():
    labels = np.array([0, 2, 1])
    check_grads(lambda x, y: jnp.sum(jnp.take_along_axis(x, y[:, None], 1) ** 2), (np.ones((3, 3)), labels))


def test_float64_is_restored_afterwards():
    before = jax.config.jax_enable_x64
    check_grads(jnp.sin, (np.array([0.1, 0.2]),))
    assert jax.config.jax_enable_x64 == before


def test_closed_form_accepts_right_and_rejects_wrong():
    def f(w, x):
        return jnp.sum((x @ w) ** 2)

    def right(w, x):
        return 2 * jnp.outer(x, x @ w)

    def wrong(w, x):
        return jnp.outer(x, x @ w)  # missing the factor 2

    args = (np.array([[1.0, 2.0], [0.5, -1.0]]), np.array([0.3, 0.7]))
    check_closed_form_grad(f, right, args)
    with pytest.raises(AssertionError, match="closed form"):
        check_closed_form_grad(f, wrong, args)
