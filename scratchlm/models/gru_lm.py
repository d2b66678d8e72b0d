r"""The GRU language model of design document 003 §5.2: token embedding → stacked GRU → linear to the vocabulary.

.. math::
    e_t = E[w_t], \qquad h^{(1..L)}_t = \mathrm{GRU}(e_t, h_{t-1}), \qquad
    p(w_{t+1} \mid w_{\le t}) = \mathrm{softmax}(W_o h^{(L)}_t + b_o)

trained on next-token cross-entropy :math:`\mathcal{L} = -\frac{1}{N}\sum_t \log p(w_{t+1} \mid w_{\le t})`
with truncated backpropagation through time (Williams & Peng 1990; the recipe of Zaremba et al.
2014): the token stream is cut into ``B`` parallel streams, consecutive batches continue each stream,
the final state of one batch is the initial state of the next, and gradients stop at the boundary.
The document's ``forward`` predicts from the last step only (``fc(x[-1])``); a language model
scores every position, as here.  ``W_o`` may be tied to ``E`` (Press & Wolf 2017) when E = H.

Also here: perplexity :math:`\exp(\mathcal{L})`, sampling with temperature / top-k / top-p
(:func:`scratchlm.nn.sampling.sample_logits`, :func:`generate`), and the final state as a sequence encoder
(:func:`final_state`) for fine-tuning a classification head (:mod:`scratchlm.training.classify`).
The stream batching is NumPy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.errors import ScratchlmError
from scratchlm.nn import gru
from scratchlm.nn.losses import softmax_cross_entropy
from scratchlm.nn.sampling import sample_logits


@dataclass(frozen=True)
class GRULMConfig:
    vocab_size: int
    embed_size: int = 256  # design document 003 §5.2
    hidden_size: int = 512  # idem
    num_layers: int = 2  # idem
    dropout: float = 0.1  # idem: between GRU layers, as torch.nn.GRU(dropout=...)
    tie_embeddings: bool = False
    variant: str = "cudnn"  # the GRU variant (scratchlm.nn.gru); cudnn fuses U_r, U_z, U_n into one matmul

    def __post_init__(self):
        if self.tie_embeddings and self.embed_size != self.hidden_size:
            raise ScratchlmError(f"tied embeddings need embed_size == hidden_size, "
                                 f"got {self.embed_size} and {self.hidden_size}")
        if self.vocab_size < 2:
            raise ScratchlmError(f"a language model needs a vocabulary of at least 2 tokens, got {self.vocab_size}")
        for name, flag in (("num_layers", "--layers"), ("hidden_size", "--hidden"), ("embed_size", "--embed")):
            if getattr(self, name) < 1:
                raise ScratchlmError(f"{flag} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ScratchlmError(f"--dropout must be in [0, 1), got {self.dropout}")
        if self.variant not in ("cudnn", "cho"):
            raise ScratchlmError(f"--variant must be 'cudnn' or 'cho', got {self.variant!r}")

    @property
    def gru(self) -> gru.GRUConfig:
        return gru.GRUConfig(self.embed_size, self.hidden_size, self.num_layers, False, self.variant)


@functools.partial(jax.jit, static_argnames="config")
def init(key: jax.Array, config: GRULMConfig) -> dict:
    """``{"embedding": {"weight": [V, E]}, "gru": ..., "head": {"weight": [V, H], "bias": [V]}}``.

    Drawn as PyTorch draws the document's model: E ~ N(0, 1) (``nn.Embedding``), the GRU and the head
    ~ U(-1/√H, 1/√H) (``nn.GRU``, ``nn.Linear``).  A tied head has only its bias.
    """
    k_e, k_g, k_h = jax.random.split(key, 3)
    V, H = config.vocab_size, config.hidden_size
    bound = 1.0 / np.sqrt(H)
    # the head's weight and bias from one draw (a random kernel per tensor would each cost a compilation)
    u = jax.random.uniform(k_h, (V, H + 1), minval=-bound, maxval=bound)
    head = {"bias": u[:, H]}
    if not config.tie_embeddings:
        head["weight"] = u[:, :H]
    return {
        "embedding": {"weight": jax.random.normal(k_e, (V, config.embed_size))},
        "gru": gru.init(k_g, config.gru),
        "head": head,
    }


def check_ids(ids: Any, vocab_size: int, what: str = "token ids") -> None:
    """Raise a clear error for ids outside [0, V) when they are concrete (``jnp.take`` would clamp them silently)."""
    if isinstance(ids, jax.core.Tracer):
        return
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise ScratchlmError(f"{what} must be integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = ids[(ids < 0) | (ids >= vocab_size)]
        raise ScratchlmError(f"{what} out of range: {bad[:5].tolist()} not in [0, {vocab_size}) "
                             "(the model's vocab_size)")


def apply(params: dict, ids: jax.Array, h0: jax.Array | None = None, *, config: GRULMConfig,
          mask: jax.Array | None = None, key: jax.Array | None = None, train: bool = False,
          unroll: int = 1) -> tuple[jax.Array, jax.Array]:
    r"""Next-token logits :math:`W_o h^{(L)}_t + b_o` at every position, and the final GRU state.

    Args: ids [B, T] token ids in [0, V); h0 [L, B, H] or None; mask [B, T] (padding keeps the state).
    Returns: logits [B, T, V], h_n [L, B, H].
    """
    if ids.ndim != 2:
        raise ScratchlmError(f"expected input_ids [B, T], got shape {ids.shape}")
    check_ids(ids, config.vocab_size)
    e = jnp.take(params["embedding"]["weight"], ids, axis=0)  # [B, T] -> [B, T, E]
    h, h_n = gru.apply(params["gru"], e, h0, mask=mask, dropout=config.dropout, key=key, train=train, unroll=unroll)
    W_o = params["head"].get("weight", params["embedding"]["weight"])  # tied: W_o = E
    logits = h @ W_o.T + params["head"]["bias"]  # [B, T, H] -> [B, T, V]
    return logits, h_n


def tbptt_loss(params: dict, batch: dict, key: jax.Array, h0: jax.Array, *,
               config: GRULMConfig) -> tuple[jax.Array, tuple[dict, jax.Array]]:
    r"""Mean next-token cross-entropy of one truncated-BPTT batch, and the state to carry to the next.

    .. math::  \mathcal{L} = -\frac{1}{BT}\sum_{b,t} \log p(y_{bt} \mid x_{b,\le t}, h_0), \qquad
               h_0 = \mathrm{stop\_gradient}(h^{\text{prev}}_T) \cdot (1 - \text{reset})

    ``batch``: ``inputs`` [B, T], ``targets`` [B, T] (inputs shifted by one), ``reset`` [] 1.0 where a
    pass over the streams starts again (the state restarts at zero), 0.0 otherwise.
    Returns ``(loss, ({"loss", "perplexity"}, h_n))``.
    """
    h0 = jax.lax.stop_gradient(h0) * (1.0 - batch["reset"])  # gradients stop at the batch boundary
    logits, h_n = apply(params, batch["inputs"], h0, config=config, key=key, train=True)
    loss = softmax_cross_entropy(logits, batch["targets"])
    return loss, ({"loss": loss, "perplexity": jnp.exp(loss)}, h_n)


# ----------------------------------------------------------------------------- the token stream (NumPy)


def make_streams(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cut one token stream into ``B`` contiguous streams, [N] -> [B, N // B] (the tail is dropped)."""
    ids = np.asarray(ids)
    n = len(ids) // batch_size
    if n < 2:
        raise ScratchlmError(f"{len(ids)} tokens are too few for {batch_size} streams of at least 2 tokens")
    return ids[: n * batch_size].reshape(batch_size, n)  # [B, N]


def num_windows(streams: np.ndarray, seq_len: int) -> int:
    """How many consecutive [B, seq_len] windows (with their shifted targets) one pass holds."""
    return max((streams.shape[1] - 1) // seq_len, 1)


def tbptt_batch(streams: np.ndarray, step: int, seq_len: int) -> dict:
    """The batch of training step ``step``: window ``step mod n`` of the streams, a deterministic function of the step.

    Window i holds columns [i·T, (i+1)·T) as inputs and the next column of each as targets; window 0
    sets ``reset`` so each pass starts from the zero state.
    """
    n = num_windows(streams, seq_len)
    i = step % n
    T = min(seq_len, streams.shape[1] - 1)
    window = streams[:, i * T : i * T + T + 1]
    return {"inputs": window[:, :-1], "targets": window[:, 1:], "reset": np.float32(i == 0)}


@functools.partial(jax.jit, static_argnames=("config",))
def _window_nll(params, h, inputs, targets, *, config):
    logits, h_n = apply(params, inputs, h, config=config)
    return softmax_cross_entropy(logits, targets, reduction="sum"), h_n


def perplexity(params: dict, streams: np.ndarray, *, config: GRULMConfig, seq_len: int) -> float:
    r"""Held-out perplexity :math:`\exp(-\frac{1}{N}\sum_t \log p(w_{t+1} \mid w_{\le t}))` over whole streams.

    The streams are read window after window with the state carried (as in training), so every
    token but the first of each stream is scored with its full history.
    """
    check_ids(streams, config.vocab_size)
    B, N = streams.shape
    h = jnp.zeros((config.num_layers, B, config.hidden_size))
    total, count = 0.0, 0
    for start in range(0, N - 1, seq_len):
        window = streams[:, start : min(start + seq_len, N - 1) + 1]
        nll, h = _window_nll(params, h, window[:, :-1], window[:, 1:], config=config)
        total, count = total + float(nll), count + window[:, 1:].size
    return float(np.exp(total / count))


def unigram_perplexity(train_ids: np.ndarray, eval_ids: np.ndarray, vocab_size: int) -> float:
    """The baseline: perplexity of the add-one-smoothed unigram model of ``train_ids`` on ``eval_ids``
    (:func:`unigram_perplexity_of_counts` of their counts over ``vocab_size`` words)."""
    return unigram_perplexity_of_counts(np.bincount(np.asarray(train_ids).ravel(), minlength=vocab_size), eval_ids)


def unigram_perplexity_of_counts(counts: np.ndarray, eval_ids: np.ndarray) -> float:
    r"""The add-one-smoothed unigram model's perplexity on ``eval_ids`` from the training counts :math:`c(w)`
    (``counts [V]``, summed over several processes' shares if need be):

    .. math::  p(w) = \frac{c(w) + 1}{N + V}, \qquad \mathrm{PPL} = \exp\Big(-\frac{1}{M}\sum_{m} \log p(w_m)\Big)

    (Laplace's add-one rule; :math:`N = \sum_w c(w)`, :math:`M` evaluation tokens)."""
    counts = np.asarray(counts).astype(np.float64)
    log_p = np.log((counts + 1.0) / (counts.sum() + len(counts)))
    return float(np.exp(-log_p[np.asarray(eval_ids).ravel()].mean()))


# ----------------------------------------------------------------------------- sampling


@functools.partial(jax.jit, static_argnames=("config", "max_new_tokens"))
def _generate(params, prompt_ids, key, *, config, max_new_tokens, temperature, top_k, top_p):
    logits, h = apply(params, prompt_ids, config=config)  # the prompt sets the state

    def step(carry, key_t):
        logits_t, h = carry
        w = sample_logits(logits_t, key_t, temperature=temperature, top_k=top_k, top_p=top_p)  # [B]
        logits, h = apply(params, w[:, None], h, config=config)
        return (logits[:, 0], h), w

    keys = jax.random.split(key, max_new_tokens)
    _, new = jax.lax.scan(step, (logits[:, -1], h), keys)  # [max_new_tokens, B]
    return new.T


def generate(params: dict, prompt_ids: Any, *, config: GRULMConfig, key: jax.Array, max_new_tokens: int = 30,
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> np.ndarray:
    """Continue each prompt by ``max_new_tokens`` sampled tokens (one jit-compiled ``lax.scan``).

    Args: prompt_ids [B, T] or [T] with T >= 1; key explicit.  Returns [B, max_new_tokens] (or [max_new_tokens]).
    """
    prompt = np.asarray(prompt_ids)
    if prompt.size == 0:
        raise ScratchlmError("the prompt is empty: give at least one token the model knows to start from")
    check_ids(prompt, config.vocab_size, "prompt token ids")
    if max_new_tokens < 1:
        raise ScratchlmError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if temperature < 0 or not 0.0 < top_p <= 1.0 or not 0 <= top_k <= config.vocab_size:
        raise ScratchlmError(f"need temperature >= 0, 0 < top_p <= 1, 0 <= top_k <= {config.vocab_size}; "
                             f"got {temperature}, {top_p}, {top_k}")
    batched = prompt.ndim == 2
    new = _generate(params, jnp.asarray(prompt if batched else prompt[None], jnp.int32), key, config=config,
                    max_new_tokens=int(max_new_tokens), temperature=jnp.float32(temperature), top_k=jnp.int32(top_k),
                    top_p=jnp.float32(top_p))
    new = np.asarray(new)
    return new if batched else new[0]


# ----------------------------------------------------------------------------- the LM as an encoder


def final_state(lm_params: dict, ids: jax.Array, mask: jax.Array, *, config: GRULMConfig,
                key: jax.Array | None = None, train: bool = False) -> jax.Array:
    r"""The top layer's final state :math:`h^{(L)}_{T_b}`: the LM as a sequence encoder (features [B, H]).

    With padding masked, :math:`h^{(L)}_{T_b}` is the state at each sequence's own last real token;
    a classification head (:func:`scratchlm.models.heads.linear`) reads it.
    Args: ids [B, T]; mask [B, T] true at real tokens.  Returns [B, H].
    """
    check_ids(ids, config.vocab_size)
    e = jnp.take(lm_params["embedding"]["weight"], ids, axis=0)  # [B, T, E]
    _, h_n = gru.apply(lm_params["gru"], e, mask=mask, dropout=config.dropout, key=key, train=train)
    return h_n[-1]
