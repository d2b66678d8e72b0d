"""Freezing policies of BERT fine-tuning as data: a bool pytree like the params (the optax mask of
:func:`scratchlm.training.loop.make_optimizer`'s ``trainable``), never a branch in the step.

Policies: ``none``, ``embeddings``, ``encoder`` and ``all-but-top-N`` (document 004 §3.2).
"""

from __future__ import annotations

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


def trainable_mask(params: dict, freeze: str) -> dict:
    """A bool pytree shaped like ``params``: True where the optimiser may change the parameter.

    - ``none``: everything trains.
    - ``embeddings``: the embedding tables and their layer norm are frozen.
    - ``encoder``: embeddings and every Transformer layer are frozen; only the pooler (the first
      layer of ``BertForSequenceClassification``'s head) and the classifier train — "only the top
      layer" of document 004 §3.2.
    - ``all-but-top-N``: embeddings and all but the top N Transformer layers are frozen.
    """
    top = parse_freeze(freeze)
    L = len(params["encoder"]["layer"])
    if top is not None and top > L:
        raise ScratchlmError(f"--freeze {freeze}: the model has only {L} layers")

    def mark(tree, value):
        return jax.tree.map(lambda _: value, tree)

    mask = mark(params, True)
    if freeze == "none":
        return mask
    mask["embeddings"] = mark(params["embeddings"], False)
    if freeze == "encoder":
        mask["encoder"] = mark(params["encoder"], False)
    elif top is not None:
        mask["encoder"] = {**mask["encoder"],
                           "layer": [mark(layer, l >= L - top) for l, layer in enumerate(params["encoder"]["layer"])]}
    return mask
