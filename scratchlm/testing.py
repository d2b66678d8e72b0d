"""Gradient checks, public so that anyone extending scratchlm can prove a new layer the same way.

``check_grads`` compares reverse-mode autodiff with central finite differences in float64;
``check_closed_form_grad`` compares autodiff with a gradient written out by hand from an equation.
Both enable float64 only inside the call (``jax.enable_x64``) and restore the previous setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

# Central differences in float64: the truncation error is about eps^2 |f'''| / 6 (1e-10 at
# eps = 1e-5) and the round-off about 2^-52 |f| / eps (2e-11 |f|), so autodiff and the quotient agree
# to ~1e-9 for well-scaled f; rtol 1e-6 / atol 1e-8 leave margin yet catch any wrong term.
DEFAULT_EPS = 1e-5
DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-8


def _is_float(a) -> bool:
    return jnp.issubdtype(a.dtype if hasattr(a, "dtype") else np.result_type(a), jnp.floating)


def _to_f64(tree):
    """Floating leaves as float64 arrays; integer leaves (labels, ids) left exactly as given."""
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if _is_float(a) else a, tree)


def _leaf_names(args) -> list[tuple[str, tuple[int, ...]]]:
    paths, _ = jax.tree_util.tree_flatten_with_path(args)
    return [(f"args{jax.tree_util.keystr(path)}", np.shape(leaf)) for path, leaf in paths]


def check_grads(
    f: Callable[..., Any],
    args: Sequence[Any],
    *,
    eps: float = DEFAULT_EPS,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    max_full: int = 512,
    directions: int = 16,
    seed: int = 0,
) -> None:
    r"""Assert that autodiff of ``f`` matches central finite differences, in float64.

    .. math::  \frac{\partial f}{\partial \theta_k}
               \approx \frac{f(\theta + \epsilon e_k) - f(\theta - \epsilon e_k)}{2\epsilon},
               \qquad \nabla f \cdot u \approx \frac{f(\theta + \epsilon u) - f(\theta - \epsilon u)}{2\epsilon}

    Every floating-point leaf of ``args`` is differentiated (integer leaves such as labels pass
    through unchanged).  When the floating leaves hold at most ``max_full`` numbers each element is
    checked (the first form); otherwise ``directions`` random unit directions :math:`u` are (the
    second).  A non-scalar output is reduced to the scalar :math:`\sum c \odot f` with fixed random
    :math:`c`, so one call checks the whole Jacobian in those directions.  On failure the
    ``AssertionError`` names the worst element (its leaf path and index) with both values.

    Args: f function of ``*args``; args its arguments (pytrees); eps the step; rtol, atol the bound
    :math:`|g_{ad} - g_{fd}| \le atol + rtol \max(|g_{ad}|, |g_{fd}|)`.
    """
    args = tuple(args)
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        args64 = _to_f64(args)
        leaves, treedef = jax.tree.flatten(args64)
        is_float = [_is_float(leaf) for leaf in leaves]
        theta, unravel = ravel_pytree([leaf for leaf, fl in zip(leaves, is_float) if fl])
        if theta.size == 0:
            raise ValueError("check_grads: args hold no floating-point leaf to differentiate")

        def rebuild(vec):
            floats = iter(unravel(vec))
            return jax.tree.unflatten(treedef, [next(floats) if fl else leaf for leaf, fl in zip(leaves, is_float)])

        out_shape = jax.eval_shape(lambda v: f(*rebuild(v)), theta).shape
        c = jnp.asarray(rng.standard_normal(out_shape))

        def scalar_f(vec):
            return jnp.sum(c * f(*rebuild(vec)))

        full = theta.size <= max_full
        if full:
            U = jnp.eye(theta.size, dtype=theta.dtype)
        else:
            u = rng.standard_normal((directions, theta.size))
            U = jnp.asarray(u / np.linalg.norm(u, axis=1, keepdims=True))

        @jax.jit  # one compilation for the whole check instead of op-by-op dispatch
        def both(theta, U):
            f_pm = jax.vmap(lambda u: jnp.stack([scalar_f(theta + eps * u), scalar_f(theta - eps * u)]))(U)
            return jax.grad(scalar_f)(theta), (f_pm[:, 0] - f_pm[:, 1]) / (2 * eps)

        g_ad, g_fd = (np.asarray(a) for a in both(theta, U))
        if not np.all(np.isfinite(g_ad)):
            bad = int(np.flatnonzero(~np.isfinite(g_ad))[0])
            where = _describe(bad, leaves, is_float, args)
            raise AssertionError(f"check_grads: autodiff gradient is not finite at {where}")
        g_ad_dir = g_ad if full else np.asarray(U) @ g_ad

    err = np.abs(g_ad_dir - g_fd)
    bound = atol + rtol * np.maximum(np.abs(g_ad_dir), np.abs(g_fd))
    if np.all(err <= bound):
        return
    worst = int(np.argmax(err - bound))
    where = _describe(worst, leaves, is_float, args) if full else f"random direction {worst} of {directions}"
    raise AssertionError(
        f"check_grads: autodiff and central differences disagree at {where}: "
        f"autodiff {g_ad_dir[worst]:.10g}, finite difference {g_fd[worst]:.10g}, "
        f"|error| {err[worst]:.3g} > bound {bound[worst]:.3g} (eps={eps}, rtol={rtol}, atol={atol}); "
        f"{int(np.sum(err > bound))} of {err.size} checks failed"
    )


def _describe(flat_index: int, leaves, is_float, args) -> str:
    """Leaf path and multi-index of element ``flat_index`` of the raveled floating leaves."""
    names = [name for name, fl in zip(_leaf_names(args), is_float) if fl]
    for (name, shape), leaf in zip(names, [leaf for leaf, fl in zip(leaves, is_float) if fl]):
        if flat_index < np.size(leaf):
            index = np.unravel_index(flat_index, shape) if shape else ()
            return f"{name}[{', '.join(map(str, index))}]"
        flat_index -= np.size(leaf)
    return "<out of range>"


def check_closed_form_grad(
    f: Callable[..., Any],
    grad_fn: Callable[..., Any],
    args: Sequence[Any],
    *,
    argnums: int = 0,
    rtol: float = 1e-9,
    atol: float = 1e-12,
) -> None:
    r"""Assert that autodiff of scalar ``f`` equals a hand-derived gradient ``grad_fn``, in float64.

    .. math::  \nabla_{\theta} f(\theta, \ldots) \overset{!}{=} \texttt{grad\_fn}(\theta, \ldots)

    ``grad_fn(*args)`` must return the gradient with respect to ``args[argnums]`` with the same
    pytree structure.  Both sides are exact formulas evaluated in float64, so they agree to a few
    ulps times the depth of the computation; rtol 1e-9 leaves ample margin and still exposes any
    wrong factor.  The failure names the worst leaf and element.

    Args: f scalar function; grad_fn the closed-form gradient; args shared arguments.
    """
    with jax.enable_x64(True):
        args64 = _to_f64(tuple(args))
        g_ad = jax.jit(jax.grad(f, argnums=argnums))(*args64)  # one compilation, not op-by-op dispatch
        g_cf = grad_fn(*args64)
        paths_ad, tree_ad = jax.tree_util.tree_flatten_with_path(g_ad)
        leaves_cf, tree_cf = jax.tree.flatten(g_cf)
        if tree_ad != tree_cf:
            raise AssertionError(f"check_closed_form_grad: closed form has structure {tree_cf}, autodiff {tree_ad}")
        worst = None
        for (path, a), b in zip(paths_ad, leaves_cf):
            a, b = np.asarray(a), np.asarray(b)
            if a.shape != b.shape:
                raise AssertionError(f"check_closed_form_grad: shape {b.shape} at {jax.tree_util.keystr(path)}, "
                                     f"autodiff {a.shape}")
            excess = np.abs(a - b) - (atol + rtol * np.maximum(np.abs(a), np.abs(b)))
            i = int(np.argmax(excess)) if excess.size else 0
            if excess.size and (worst is None or excess.flat[i] > worst[0]):
                worst = (excess.flat[i], jax.tree_util.keystr(path), np.unravel_index(i, a.shape), a.flat[i], b.flat[i])
    if worst is not None and worst[0] > 0:
        _, name, index, a, b = worst
        raise AssertionError(
            f"check_closed_form_grad: at grad{name}[{', '.join(map(str, index))}] autodiff {a:.12g} "
            f"but closed form {b:.12g} (rtol={rtol}, atol={atol})"
        )
