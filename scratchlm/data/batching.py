"""Batches for the training recipes: padding rows of ids to one width, length buckets, and the
deterministic minibatch order (a function of the step, so a resumed run sees the same batches).

No JAX here: every function returns NumPy arrays.  Shapes are kept few on purpose: a jitted step
compiles once per distinct batch shape, so widths are rounded up (:func:`bucket_length`,
:func:`pad_batch`) and short sets are padded to a fixed row count by the recipes.

This is also where ids are checked (:func:`check_ids`): inside ``jit`` an out-of-range index raises
nothing.  XLA clamps a gather's index into range (``table[V + 5]`` reads row ``V - 1``; a negative
id reads row 0) and drops a scatter's out-of-range update, so a tokenizer larger than the model's
table would train silently on the wrong rows.  A batch is checked once, in NumPy, when it is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from scratchlm.errors import ScratchlmError

IGNORE = -100  # label of positions left out of the loss (HuggingFace's ignore_index)


def check_ids(ids: np.ndarray, vocab_size: int, what: str = "token ids") -> np.ndarray:
    """``ids`` (any shape) all in ``[0, vocab_size)``, or a :class:`ScratchlmError` naming the first one outside.

    Called where batches are built, before any of them reaches a jitted function (which would clamp a
    gather's index and drop a scatter's: no error, wrong rows)."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        bad = np.argwhere((ids < 0) | (ids >= vocab_size))[0]
        raise ScratchlmError(f"{what}: id {int(ids[tuple(bad)])} at index {tuple(int(i) for i in bad)} is outside "
                             f"[0, {vocab_size}), the model's vocabulary; the tokenizer and the model disagree "
                             "(use the tokenizer the model was trained with)")
    return ids


def pad_ids(rows: Sequence[Sequence[int]], length: int | None = None, pad: int = 0, *,
            vocab_size: int | None = None) -> np.ndarray:
    """Rows of token ids right-padded with ``pad`` to [N, length] int32; longer rows are cut to ``length``.

    ``length`` defaults to the longest row (at least 1).  With ``vocab_size`` every id (``pad`` included)
    is checked to lie in ``[0, vocab_size)`` (:func:`check_ids`).
    """
    rows = list(rows)
    T = length or max(1, max(len(r) for r in rows))
    out = np.full((len(rows), T), pad, np.int32)
    for i, r in enumerate(rows):
        out[i, : min(len(r), T)] = r[:T]
    return out if vocab_size is None else check_ids(out, vocab_size)


def pad_batch(rows: list[list[int]], segments: list[list[int]], pad: int, length: int | None = None,
              labels: list[list[int]] | None = None, *, vocab_size: int | None = None) -> dict[str, np.ndarray]:
    """Stack encoded rows into ``input_ids``, ``attention_mask``, ``token_type_ids`` (and ``labels``),
    right-padded with id ``pad`` (label ``IGNORE``) to ``length`` (default: the longest row rounded up
    to a multiple of 8, so that a few shapes serve a whole data set and the jitted step compiles few
    times).  A row longer than ``length``, or a segment or label row of another length than its
    row, is an error; with ``vocab_size`` every id is checked (:func:`check_ids`)."""
    if not rows:
        raise ScratchlmError("no examples to batch")
    longest = max(len(r) for r in rows)
    T = length or -(-longest // 8) * 8
    if longest > T:
        raise ScratchlmError(f"a row of {longest} ids does not fit the batch width {T}")
    for i, row in enumerate(rows):
        if len(segments[i]) != len(row) or (labels is not None and len(labels[i]) != len(row)):
            raise ScratchlmError(f"row {i}: {len(row)} ids but {len(segments[i])} segment ids"
                                 + ("" if labels is None else f" and {len(labels[i])} labels"))
    B = len(rows)
    batch = {"input_ids": np.full((B, T), pad, np.int32),
             "attention_mask": np.zeros((B, T), np.int32),
             "token_type_ids": np.zeros((B, T), np.int32)}
    if labels is not None:
        batch["labels"] = np.full((B, T), IGNORE, np.int32)
    for i, (row, seg) in enumerate(zip(rows, segments)):
        batch["input_ids"][i, : len(row)] = row
        batch["attention_mask"][i, : len(row)] = 1
        batch["token_type_ids"][i, : len(seg)] = seg
        if labels is not None:
            batch["labels"][i, : len(labels[i])] = labels[i]
    if vocab_size is not None:
        check_ids(batch["input_ids"], vocab_size)
    return batch


def bucket_length(n: int, multiple: int = 32) -> int:
    """Round a sequence length up to a multiple of 32, so that few shapes are ever compiled."""
    return max(multiple, -(-n // multiple) * multiple)


def subset(data: dict, index: np.ndarray) -> dict:
    """Rows ``index`` of every array of ``data``."""
    return {k: v[index] for k, v in data.items()}


def take(data: dict, index: np.ndarray) -> dict:
    """Rows ``index`` of every array of ``data`` at their bucketed longest length T.

    Arrays narrower than T (a data set whose longest example is short) are padded to T, with
    attention mask 0 and label ``IGNORE``, so every batch of a bucket has one shape whatever the
    data set: the train, dev and test sets of a run (and of different runs) share compilations.
    """
    T = bucket_length(int(data["attention_mask"][index].sum(1).max()))

    def rows(k, v):
        if v.ndim != 2:
            return v[index]
        v = v[index, :T]
        return np.pad(v, ((0, 0), (0, T - v.shape[1])), constant_values=IGNORE if k == "labels" else 0)

    return {k: rows(k, v) for k, v in data.items()}


def unpad_layout(attention_mask: np.ndarray, rows: int | None = None) -> dict:
    """The unpadded layout of a right-padded batch (:mod:`scratchlm.nn.unpadding`): its real tokens end to end.

    ``token_index`` [N]: the grid position ``b * T + t`` of each unpadded row, each text's first token
    first (rows ``0..B-1``, in text order), then every other real token in reading order, then filler
    rows holding ``B * T`` up to ``rows`` (default: the real tokens rounded up to a multiple of 32).
    ``grid_index`` [B, T]: the unpadded row of each grid position, ``N`` at padding.

    Args: attention_mask [B, T] 1/0, each row's ones leading, none empty.  Returns int32 arrays.
    """
    mask = np.asarray(attention_mask) > 0
    B, T = mask.shape
    lengths = mask.sum(1)
    if (lengths == 0).any() or (mask != (np.arange(T)[None] < lengths[:, None])).any():
        raise ValueError("unpad_layout needs right padding and at least one real token in every row")
    grid = np.arange(B * T).reshape(B, T)
    real = np.concatenate([grid[:, 0], grid[:, 1:][mask[:, 1:]]])  # first tokens lead
    N = unpadded_rows(int(lengths.sum())) if rows is None else rows
    if N < len(real):
        raise ValueError(f"{len(real)} real tokens do not fit in {N} unpadded rows")
    token_index = np.full(N, B * T, np.int32)
    token_index[: len(real)] = real
    grid_index = np.full(B * T, N, np.int32)
    grid_index[real] = np.arange(len(real))
    return {"token_index": token_index, "grid_index": grid_index.reshape(B, T)}


def unpadded_rows(tokens: int, multiple: int = 32) -> int:
    """The unpadded rows of a batch of ``tokens`` real tokens: rounded up to a multiple of ``multiple``."""
    return max(multiple, -(-tokens // multiple) * multiple)


def plan_shapes(needs: Sequence[tuple[int, ...]], cost, compile_cost: float) -> list[tuple[int, ...]]:
    r"""The few batch shapes a run pads its steps to, chosen knowing every step's ``needs``.

    A jitted step compiles once per batch shape, and on a CPU one compilation of a BERT step costs as
    much as a dozen steps; the batch order is a function of the step, so a run knows every batch
    before its first.  ``needs`` holds each step's smallest shape (for an unpadded batch ``(N, T)``:
    its rows and its grid's width); a shape covers a need when it is at least as large on every axis,
    and each step takes the cheapest covering shape of the plan (:func:`cheapest_cover`).

    Greedy: start from every distinct need plus their axis-wise maximum (which covers all), then drop
    the shape whose loss adds least to the steps' work :math:`\sum_{steps} \mathrm{cost}(\text{shape})`,
    as long as that addition is below ``compile_cost``, the compilation it saves (same units);
    shapes no step takes are dropped too.  Returns the plan in ascending order.
    """
    counts: dict[tuple[int, ...], int] = {}
    for need in needs:
        counts[tuple(need)] = counts.get(tuple(need), 0) + 1
    if not counts:
        return []
    top = tuple(max(axis) for axis in zip(*counts))

    def work(shapes):
        return sum(n * cost(cheapest_cover(shapes, need, cost)) for need, n in counts.items())

    plan = sorted(set(counts) | {top})
    current = work(plan)
    while len(plan) > 1:
        options = [(work([t for t in plan if t != s]), s) for s in plan if s != top]  # top covers every need
        if not options or min(options)[0] - current >= compile_cost:
            break
        current, drop = min(options)
        plan.remove(drop)
    return sorted({cheapest_cover(plan, need, cost) for need in counts})


def fit_shape(batch: dict, shape: tuple[int, int]) -> dict:
    """``batch`` padded to the grid width ``T`` of ``shape = (N, T)`` (mask 0, label ``IGNORE``), with the
    :func:`unpad_layout` of ``N`` rows as ``batch["layout"]``."""
    N, T = shape
    width = batch["attention_mask"].shape[1]

    def widen(k, v):
        if v.ndim != 2 or width == T:
            return v
        return np.pad(v, ((0, 0), (0, T - width)), constant_values=IGNORE if k == "labels" else 0)

    out = {k: widen(k, v) for k, v in batch.items()}
    out["layout"] = unpad_layout(out["attention_mask"], N)
    return out


def cheapest_cover(shapes: Sequence[tuple[int, ...]], need: tuple[int, ...], cost) -> tuple[int, ...]:
    """The cheapest of ``shapes`` at least as large as ``need`` on every axis (ValueError when none is)."""
    covers = [s for s in shapes if all(a >= b for a, b in zip(s, need))]
    if not covers:
        raise ValueError(f"no planned shape covers {need}: {list(shapes)}")
    return min(covers, key=cost)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches per epoch of ``n`` examples (the ``n mod B`` left over are skipped; ``B <= n``)."""
    return n // min(batch_size, n)


def epoch_batch(n: int, step: int, batch_size: int, seed: int) -> np.ndarray:
    """Example indices of minibatch number ``step``: a deterministic function of the step (so resuming continues).

    Each epoch draws a fresh permutation of ``range(n)`` from ``default_rng([seed, epoch])`` and
    cuts it into ``n // B`` batches of ``B = min(batch_size, n)``; the ``n mod B`` examples left over
    in an epoch are skipped in that epoch only (a fixed batch shape keeps one compiled step).
    Returned in the permutation's order.
    """
    B = min(batch_size, n)
    epoch, i = divmod(step, n // B)
    return np.random.default_rng([seed, epoch]).permutation(n)[i * B:(i + 1) * B]


def train_batch(data: dict, step: int, batch_size: int, seed: int) -> dict:
    """Training batch number ``step`` of an encoder task (:func:`epoch_batch`'s rows, sorted, through :func:`take`)."""
    return take(data, np.sort(epoch_batch(len(data["labels"]), step, batch_size, seed)))
