"""Freezing policies of fine-tuning (BERT, GPT-2) as data: a bool pytree like the params (the optax mask of
:func:`scratchlm.training.loop.make_optimizer`'s ``trainable``), never a branch in the step.

Policies: ``none``, ``embeddings``, ``encoder`` and ``all-but-top-N`` (document 004 §3.2), on the
model's :class:`FreezeLayout`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax

from scratchlm.errors import ScratchlmError

FREEZE_POLICIES = ("none", "embeddings", "encoder", "all-but-top-N")


def parse_freeze(freeze: str) -> int | None:
    """``"all-but-top-3"`` -> 3; the other policies -> None.  Unknown policies raise ScratchlmError."""
    if freeze in ("none", "embeddings", "encoder"):
        return None
    prefix = "all-but-top-"
    if freeze.startswith(prefix) and freeze[len(prefix):].isdigit():
        return int(freeze[len(prefix):])
    raise ScratchlmError(f"--freeze must be one of none, embeddings, encoder, all-but-top-N (N an integer), "
                         f"got {freeze!r}")


@dataclass(frozen=True)
class FreezeLayout:
    """Where a model keeps what the policies freeze: the top-level keys of its ``embeddings``, the path to
    its list of Transformer ``layers``, and the top-level keys of its ``body`` (what ``encoder`` freezes:
    all but the head)."""

    embeddings: tuple[str, ...]
    layers: tuple[str, ...]
    body: tuple[str, ...]


BERT = FreezeLayout(embeddings=("embeddings",), layers=("encoder", "layer"), body=("embeddings", "encoder"))
GPT2 = FreezeLayout(embeddings=("wte", "wpe"), layers=("h",), body=("wte", "wpe", "h", "ln_f"))


def trainable_mask(params: dict, freeze: str, layout: FreezeLayout = BERT) -> dict:
    """A bool pytree shaped like ``params``: True where the optimiser may change the parameter.

    - ``none``: everything trains.
    - ``embeddings``: the embedding tables and their layer norm are frozen.
    - ``encoder``: embeddings and every Transformer layer are frozen; only the pooler (the first
      layer of ``BertForSequenceClassification``'s head) and the classifier train — "only the top
      layer" of document 004 §3.2 (GPT-2, without a pooler: its final layer norm frozen too, the
      ``score`` alone trains).
    - ``all-but-top-N``: embeddings and all but the top N Transformer layers are frozen.
    """
    top = parse_freeze(freeze)
    layers = functools.reduce(lambda node, k: node[k], layout.layers, params)
    L = len(layers)
    if top is not None and top > L:
        raise ScratchlmError(f"--freeze {freeze}: the model has only {L} layers")

    def mark(tree, value):
        return jax.tree.map(lambda _: value, tree)

    mask = mark(params, True)
    if freeze == "none":
        return mask
    for k in layout.body if freeze == "encoder" else layout.embeddings:
        mask[k] = mark(params[k], False)
    if top is not None:
        *parents, last = layout.layers
        node = mask
        for k in parents:
            node[k] = dict(node[k])
            node = node[k]
        node[last] = [mark(layer, l >= L - top) for l, layer in enumerate(layers)]
    return mask
