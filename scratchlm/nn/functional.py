"""Pure activation, normalisation and dropout functions, each in its numerically stable form.

Every function works on arrays of any shape (the last axis is the feature axis where one is
needed) and is differentiable with ``jax.grad``; none holds state or draws hidden randomness.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from scratchlm.errors import ScratchlmError
from scratchlm.fusion import materialized


@jax.custom_jvp
def sigmoid(x: jax.Array) -> jax.Array:
    r"""Logistic sigmoid, overflow-free for every finite input.

    .. math::  \sigma(x) = \frac{1}{1 + e^{-x}} = \frac{e^{x}}{1 + e^{x}}

    The first form is used for :math:`x \ge 0`, the second for :math:`x < 0`, so that the exponent
    is :math:`e^{-|x|} \le 1` and never overflows; small outputs keep full relative precision.
    Its derivative, :math:`\sigma'(x) = \sigma(x)(1 - \sigma(x))`, is given to autodiff directly
    (design document 000 §4.1–4.3; the logistic function of Verhulst, as used throughout).

    Args: x [...] any shape.  Returns [...] in (0, 1).
    """
    e = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    s = sigmoid(x)
    return s, s * (1.0 - s) * t


@jax.custom_jvp
def log_sigmoid(x: jax.Array) -> jax.Array:
    r"""Logarithm of the sigmoid without overflow or ``log(0)``.

    .. math::  \log\sigma(x) = -\log(1 + e^{-x}) = \min(x, 0) - \log(1 + e^{-|x|})

    with derivative :math:`\tfrac{d}{dx}\log\sigma(x) = 1 - \sigma(x) = \sigma(-x)`.

    Args: x [...] any shape.  Returns [...] in (-inf, 0).
    """
    return jnp.minimum(x, 0.0) - jnp.log1p(jnp.exp(-jnp.abs(x)))


@log_sigmoid.defjvp
def _log_sigmoid_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return log_sigmoid(x), sigmoid(-x) * t


def log_softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    r"""Log of the softmax along ``axis``, through the log-sum-exp with the maximum subtracted.

    .. math::  \log \mathrm{softmax}(x)_j = x_j - m - \log \sum_k e^{x_k - m}, \qquad m = \max_k x_k

    Subtracting :math:`m` changes nothing mathematically (softmax is shift-invariant) and keeps
    every exponent :math:`\le 0`; :math:`m` is held constant for autodiff for the same reason.

    Args: x [..., C] scores.  Returns [..., C].
    """
    m = jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    shifted = x - m
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def softmax(x: jax.Array, axis: int = -1) -> jax.Array:
    r"""Softmax along ``axis`` (Bridle 1990), stable by subtracting the maximum.

    .. math::  \mathrm{softmax}(x)_j = \frac{e^{x_j - m}}{\sum_k e^{x_k - m}}, \qquad m = \max_k x_k

    Args: x [..., C] scores.  Returns [..., C], non-negative, summing to 1 along ``axis``.
    """
    m = jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(x - m)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def gelu(x: jax.Array, approximate: bool = False) -> jax.Array:
    r"""Gaussian error linear unit (Hendrycks & Gimpel 2016, eq. 1 and its tanh approximation).

    .. math::  \mathrm{GELU}(x) = x\,\Phi(x) = \tfrac{1}{2} x \left(1 + \mathrm{erf}(x/\sqrt{2})\right)

    .. math::  \mathrm{GELU}_{\tanh}(x) = \tfrac{1}{2} x
               \left(1 + \tanh\!\left(\sqrt{2/\pi}\,(x + 0.044715\,x^3)\right)\right)

    BERT (Devlin et al. 2019) and HuggingFace's ``"gelu"`` use the exact erf form, the default here.

    Args: x [...] any shape; approximate selects the tanh form.  Returns [...].
    """
    if approximate:
        return 0.5 * x * (1.0 + jnp.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + jax.lax.erf(x / math.sqrt(2.0)))


def layer_norm(x: jax.Array, gamma: jax.Array, beta: jax.Array, eps: float = 1e-12) -> jax.Array:
    r"""Layer normalisation over the last axis (Ba, Kiros & Hinton 2016, eq. 4).

    .. math::  \mu = \frac{1}{H}\sum_{i=1}^{H} x_i, \quad
               \sigma^2 = \frac{1}{H}\sum_{i=1}^{H} (x_i - \mu)^2, \quad
               y = \gamma \odot \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta

    The variance is the biased (1/H) one, as in the paper and PyTorch; ``eps = 1e-12`` is BERT's
    ``layer_norm_eps`` (Devlin et al. 2019, HuggingFace ``BertConfig``).

    Args: x [..., H]; gamma [H] gain; beta [H] bias.  Returns [..., H].
    """
    if x.shape[-1:] != gamma.shape or gamma.shape != beta.shape:
        raise ValueError(f"layer_norm: expected gamma and beta of shape {x.shape[-1:]}, "
                         f"got {gamma.shape} and {beta.shape}")
    mu = jnp.mean(x, axis=-1, keepdims=True)
    sigma2 = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
    return gamma * (x - mu) * jax.lax.rsqrt(sigma2 + eps) + beta


def dropout(x: jax.Array, rate: float, *, key: jax.Array | None, train: bool,
            of_shape: tuple[int, ...] | None = None) -> jax.Array:
    r"""Inverted dropout (Srivastava et al. 2014), scaled at training time so inference is the identity.

    .. math::  m_i \sim \mathrm{Bernoulli}(1 - p), \qquad y_i = \frac{m_i\, x_i}{1 - p}

    so that :math:`\mathbb{E}[y_i] = x_i`.  ``rate`` is the drop probability :math:`p` (not stax's
    keep probability).  With ``train=False`` or ``rate == 0`` the input is returned unchanged and no
    key is needed.

    Each mask entry costs 16 random bits, not the 32 of a float uniform: one 32-bit word gives two
    entries (its low half entry ``j`` of a row of ``x``'s last axis, its high half entry
    ``j + ceil(H/2)``), and an entry is kept when its 16 bits, read as an integer, fall below
    :math:`\mathrm{round}((1-p)\,2^{16})`.  The keep probability is therefore that threshold over
    :math:`2^{16}` (within :math:`2^{-17}` of :math:`1-p`: 0.899994 for :math:`p = 0.1`), and the
    scale divides by it, so :math:`\mathbb{E}[y_i] = x_i` holds exactly.  Half the bits make the mask
    about twice as fast where generating bits dominates, as on a CPU (a BERT step 8% faster there).

    ``of_shape``: ``x`` is the leading block (``[:n_0, :n_1, ...]``) of an array of this shape, and gets the
    mask entries that array's would have at its positions, as if the whole array were dropped out and then
    sliced.  A model that computes only some positions of a layer (:func:`scratchlm.nn.transformer.encoder`'s
    ``keep_first``) draws the same masks as the model that computes them all.

    Args: x [...] any shape; rate p in [0, 1); key a PRNG key (required when training); of_shape the
    shape of the array ``x`` is a leading block of (default: ``x.shape``).  Returns [...].
    """
    if not 0.0 <= rate < 1.0:
        raise ScratchlmError(f"dropout rate must be in [0, 1), got {rate}")  # a setting: the user's to fix
    if not train or rate == 0.0:
        return x
    if key is None:
        raise ValueError("dropout with train=True needs a PRNG key (key=...)")
    threshold = keep_threshold(rate)
    full = tuple(of_shape) if of_shape is not None else x.shape
    if len(full) != x.ndim or any(n > m for n, m in zip(x.shape, full)):
        raise ValueError(f"dropout: x {x.shape} is not a leading block of of_shape {full}")
    shape = full or (1,)
    last = shape[-1]
    # the words keep x's leading axes, so that a mesh splitting x's rows splits the draws the same way
    words = jax.random.bits(key, (*shape[:-1], (last + 1) // 2), jnp.uint32)
    bits16 = jnp.concatenate([words & 0xFFFF, words >> 16], axis=-1)[..., :last].reshape(full)
    if full != x.shape:
        bits16 = bits16[tuple(slice(0, n) for n in x.shape)]
    return jnp.where(bits16 < threshold, x / (threshold / 2**16), jnp.zeros_like(x))


def keep_threshold(rate: float) -> int:
    """:func:`dropout` keeps an entry whose 16 random bits are below this, i.e. with probability
    ``keep_threshold(rate) / 2**16`` (nearest to ``1 - rate``, at least ``2**-16``)."""
    return max(1, round((1.0 - rate) * 2**16))


def matmul(x: jax.Array, W: jax.Array) -> jax.Array:
    r"""The product of ``x``'s last axis with a weight stored ``[d_in, d_out]``, :math:`y = xW`, with its
    backward pass written out.

    .. math::  \bar x = \bar y\, W^\top, \qquad \bar W = x^\top \bar y

    (back-propagation through a matrix product; Goodfellow, Bengio & Courville 2016, *Deep Learning*, §6.5),
    the rows of ``x`` and :math:`\bar y` being every position of every sequence.  Not a new equation but a
    cost: for a weight stored ``[d_in, d_out]`` (GPT-2's ``Conv1D``) autodiff writes :math:`\bar W` as one
    product contracting both operands' leading axis, which XLA's CPU compiler runs in Eigen after copying
    :math:`\bar y` transposed, while its faster matmul (YNNPACK) takes only products contracting the left
    operand's last axis.  Here :math:`x^\top` is stored first (:func:`scratchlm.fusion.materialized`, a
    conditional on CPU and the identity elsewhere), so the weight's gradient runs on YNNPACK: a GPT-2-small
    training step on two cores 4.85 -> 4.4 s.  (PyTorch's layout, ``[d_out, d_in]``, needs none of this:
    XLA already gives :math:`\bar y^\top x` to YNNPACK, and :func:`scratchlm.nn.attention.dense` stays a
    plain ``einsum``.)  The values are the same sums; only their order may differ in the last bits.

    Args: x [..., d_in]; W [d_in, d_out] in x's dtype.  Returns [..., d_out].
    """
    y = _matmul(x.reshape(-1, x.shape[-1]), W)
    return y.reshape(*x.shape[:-1], W.shape[-1])


@jax.custom_vjp
def _matmul(x, W):  # x [N, d_in]
    return x @ W


def _matmul_fwd(x, W):
    return x @ W, (x, W)


def _matmul_bwd(residuals, y_bar):
    x, W = residuals
    return y_bar @ W.T, materialized(x.T) @ y_bar


_matmul.defvjp(_matmul_fwd, _matmul_bwd)
