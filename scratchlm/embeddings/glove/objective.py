r"""The GloVe objective as the paper writes it, for one non-zero :math:`X_{ij}` (Pennington et al. 2014, §3).

.. math::  J = \sum_{i,j:\,X_{ij}>0} f(X_{ij})\,\bigl(w_i^\top \tilde w_j + b_i + \tilde b_j - \log X_{ij}\bigr)^2

The design document (002, §4.2) writes this loss as a Huber loss of the residual; the paper's loss,
implemented here, is a *weighted least-squares* loss: plain squared residuals weighted by
:math:`f(X_{ij})`.  We follow the paper.

These are the equations: :func:`weighting` (eq. 9), :func:`residual`, :func:`entry_cost` (one term
of eq. 8) and :func:`entry_gradients`, its closed-form gradient, each for ONE entry :math:`(i, j)`;
:func:`loss` and :func:`gradients` are their sums over given entries (``jax.vmap``, then a sum per
row).  The training step does not re-derive them: the minibatch kernels in
:mod:`scratchlm.embeddings.glove.kernels` call ``jax.vmap(entry_gradients)`` and only choose how the
per-entry terms are summed per row, and the tests check every kernel against this module in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Params = dict[str, jax.Array]  # {"W": [V, D], "b": [V], "W_tilde": [V, D], "b_tilde": [V]}
#: Which index selects each parameter's rows: the centre word i or the context word j.
ROW_OF = {"W": "i", "b": "i", "W_tilde": "j", "b_tilde": "j"}


def weighting(x_ij: jax.Array, *, x_max: float, alpha: float) -> jax.Array:
    r"""The weighting function (Pennington et al. 2014, eq. 9).

    .. math::  f(x) = \begin{cases} (x / x_{\max})^{\alpha} & x < x_{\max} \\ 1 & \text{otherwise} \end{cases}

    Args: x_ij [...] co-occurrence counts (>= 0). f(0) = 0, so absent pairs would contribute nothing.
    """
    return jnp.where(x_ij < x_max, (x_ij / x_max) ** alpha, 1.0)


def residual(w_i, b_i, w_tilde_j, b_tilde_j, log_x_ij):
    r"""The residual of one entry, :math:`\delta_{ij} = w_i^\top \tilde w_j + b_i + \tilde b_j - \log X_{ij}`.

    Args: w_i, w_tilde_j [D]; b_i, b_tilde_j, log_x_ij scalars (leading batch axes broadcast).
    """
    return jnp.sum(w_i * w_tilde_j, axis=-1) + b_i + b_tilde_j - log_x_ij


def entry_cost(w_i, b_i, w_tilde_j, b_tilde_j, log_x_ij, f_ij):
    r"""One term of eq. 8: :math:`J_{ij} = f(X_{ij})\,\delta_{ij}^2`.

    Args: as :func:`residual`, and f_ij = :math:`f(X_{ij})` (:func:`weighting`).
    """
    return f_ij * residual(w_i, b_i, w_tilde_j, b_tilde_j, log_x_ij) ** 2


def entry_gradients(w_i, b_i, w_tilde_j, b_tilde_j, log_x_ij, f_ij):
    r"""One entry's cost :math:`J_{ij}` and its closed-form gradient with respect to the rows it touches.

    .. math::
        \frac{\partial J_{ij}}{\partial w_i} = 2 f(X_{ij})\,\delta_{ij}\,\tilde w_j, \quad
        \frac{\partial J_{ij}}{\partial \tilde w_j} = 2 f(X_{ij})\,\delta_{ij}\,w_i, \quad
        \frac{\partial J_{ij}}{\partial b_i} = \frac{\partial J_{ij}}{\partial \tilde b_j} = 2 f(X_{ij})\,\delta_{ij}

    The gradient of :math:`J` is the sum of these terms over the entries that share a row:
    :math:`\partial J / \partial w_i = 2 \sum_j f(X_{ij})\,\delta_{ij}\,\tilde w_j` (:func:`gradients`).

    Args: w_i, w_tilde_j [D]; b_i, b_tilde_j, log_x_ij, f_ij scalars.
    Returns ``(cost, grads)``: ``cost`` a scalar, ``grads`` ``{"W": [D], "b": (), "W_tilde": [D], "b_tilde": ()}``.
    """
    delta = residual(w_i, b_i, w_tilde_j, b_tilde_j, log_x_ij)
    g = 2.0 * f_ij * delta
    grads = {"W": g * w_tilde_j, "b": g, "W_tilde": g * w_i, "b_tilde": g}
    return f_ij * delta**2, grads


def _entry_terms(params: Params, i, j, x_ij, *, x_max: float, alpha: float):
    """Every entry's :func:`entry_gradients`, by ``jax.vmap`` over the entries (i, j, x_ij [N])."""
    f_ij = weighting(x_ij, x_max=x_max, alpha=alpha)
    return jax.vmap(entry_gradients)(params["W"][i], params["b"][i], params["W_tilde"][j], params["b_tilde"][j],
                                     jnp.log(x_ij), f_ij)


def loss(params: Params, i: jax.Array, j: jax.Array, x_ij: jax.Array, *, x_max: float, alpha: float) -> jax.Array:
    r"""The GloVe objective over the given non-zeros (eq. 8), a weighted least-squares loss.

    .. math::  J = \sum_{(i,j)} f(X_{ij})\,\bigl(w_i^\top \tilde w_j + b_i + \tilde b_j - \log X_{ij}\bigr)^2

    Args: i, j [N] int word / context ids; x_ij [N] their counts (> 0); x_max, alpha: :func:`weighting`'s.
    """
    f_ij = weighting(x_ij, x_max=x_max, alpha=alpha)
    costs = jax.vmap(entry_cost)(params["W"][i], params["b"][i], params["W_tilde"][j], params["b_tilde"][j],
                                 jnp.log(x_ij), f_ij)
    return jnp.sum(costs)


def gradients(params: Params, i: jax.Array, j: jax.Array, x_ij: jax.Array, *, x_max: float,
              alpha: float) -> Params:
    r""":math:`\nabla J` over the given non-zeros: each entry's :func:`entry_gradients` summed into its row.

    .. math::  \frac{\partial J}{\partial w_r} = \sum_{e:\, i_e = r} \frac{\partial J_e}{\partial w_{i_e}}
               \quad (\text{and } b \text{ by } i;\ \tilde w, \tilde b \text{ by } j)

    Dense ``[V, ...]`` arrays, one ``segment_sum`` per parameter: the reference the kernels are tested against.
    """
    V = params["W"].shape[0]
    _, grads = _entry_terms(params, i, j, x_ij, x_max=x_max, alpha=alpha)
    rows = {"i": i, "j": j}
    return {name: jax.ops.segment_sum(g, rows[ROW_OF[name]], num_segments=V) for name, g in grads.items()}
