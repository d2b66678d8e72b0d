"""What a run draws: ``curves.png`` (loss and the held-out metric over steps) and the embeddings' 2-D projection.

Both need matplotlib (the ``plot`` extra); without it they draw nothing and return a note saying so.
JAX-free: they read the JSON-lines logs the loop writes (``{"step", "split": "train", "loss"}`` and
``{"step", "split": "eval", METRIC}`` records) or a word-vector table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

NO_MATPLOTLIB = 'no plot: matplotlib is not installed (pip install "scratchlm[plot]")'

# The embedding commands' projection: groups whose geometry the analogies test (country-capital, gender, number, colour)
WORD_GROUPS = {
    "country": ("france", "germany", "italy", "spain", "england"),
    "capital": ("paris", "berlin", "rome", "madrid", "london"),
    "person": ("king", "queen", "man", "woman", "boy", "girl"),
    "number": ("one", "two", "three", "four"),
    "colour": ("red", "blue", "green"),
}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def warm_up() -> None:
    """Import pyplot now (0.4-0.8 s on 2 busy cores): a command calls it on a second thread while its model
    trains, so that drawing after training starts at once."""
    _pyplot()


def _records(path: Path | list[dict]) -> list[dict]:
    if isinstance(path, list):  # records already in memory
        return path
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_curves(path: Path, logs: Sequence[Path | list[dict]], *, title: str, loss: str, metric: str | None,
                step_unit: str = "step", labels: Sequence[str] | None = None) -> str:
    """``path``: training loss (left) and held-out ``metric`` (right) against ``step_unit``, one line per log
    (a JSON-lines file or its records).

    ``loss`` names the loss and its unit on the y axis (e.g. ``"cross-entropy (nats/token)"``).
    Returns a one-line note: where the plot is, or why there is none.
    """
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    fig, axes = plt.subplots(1, 2 if metric else 1, figsize=(10 if metric else 5.5, 3.8), squeeze=False)
    ax_loss = axes[0][0]
    ax_metric = axes[0][1] if metric else None
    for i, log in enumerate(logs):
        records = _records(log)
        label = labels[i] if labels else None
        train = [r for r in records if r.get("split") == "train" and r.get("loss") is not None]
        ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label=label)
        if ax_metric is not None:
            held = [r for r in records if r.get("split") == "eval" and r.get(metric) is not None]
            ax_metric.plot([r["step"] for r in held], [r[metric] for r in held], marker="o", label=label)
    ax_loss.set(title="training loss", xlabel=step_unit, ylabel=loss)
    if ax_metric is not None:
        ax_metric.set(title=f"held-out {metric}", xlabel=step_unit, ylabel=metric)
    if labels:
        (ax_metric or ax_loss).legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot: {path}"


def plot_projection(path: Path, words: Sequence[str], vectors: np.ndarray, groups: Sequence[str], *,
                    title: str) -> str:
    """The 2-D principal-component projection of ``vectors`` (one row per word), coloured by ``groups``.

    Equal scales on both axes (distances in the picture are distances in the plane), each axis
    labelled with the share of variance it explains, and labels nudged apart where they would overlap.
    """
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    x = np.asarray(vectors, np.float64)
    x = x - x.mean(0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    explained = s**2 / max(float(np.sum(s**2)), 1e-300)
    xy = x @ vt[:2].T  # [n, 2]
    fig, ax = plt.subplots(figsize=(7, 6))
    names = list(dict.fromkeys(groups))
    colours = plt.get_cmap("tab10")
    for g, name in enumerate(names):
        rows = [i for i, gi in enumerate(groups) if gi == name]
        ax.scatter(xy[rows, 0], xy[rows, 1], s=14, color=colours(g % 10), label=name)
    for (px, py), w, (dx, dy) in zip(xy, words, _label_offsets(xy)):
        ax.annotate(w, (px, py), fontsize=9, xytext=(dx, dy), textcoords="offset points")
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of the variance)")
    ax.set_ylabel(f"PC 2 ({explained[1] if len(explained) > 1 else 0.0:.0%} of the variance)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot: {path}"


def _label_offsets(xy: np.ndarray, *, near: float = 0.04) -> list[tuple[float, float]]:
    """Text offsets (points) that keep labels of nearby points apart: a point within ``near`` of the
    plot's extent from an earlier one gets its label moved down a line for each such neighbour."""
    span = float(np.ptp(xy, axis=0).max()) or 1.0
    offsets = []
    for i in range(len(xy)):
        close = sum(1 for j in range(i) if np.linalg.norm(xy[i] - xy[j]) < near * span)
        offsets.append((3.0, 3.0 - 10.0 * close))
    return offsets


def plot_word_groups(path: Path, wv, *, title: str, groups: dict[str, Sequence[str]] = WORD_GROUPS) -> str:
    """:func:`plot_projection` of the words of ``groups`` that ``wv`` (a word-vector table with ``index``
    and ``vectors``) holds; a note when fewer than three are there."""
    found = [(w, g) for g, words in groups.items() for w in words if w in wv.index]
    if len(found) < 3:
        return "no plot: too few of the chosen words are in the vocabulary"
    vectors = np.asarray(wv.vectors)[[wv.index[w] for w, _ in found]]
    return plot_projection(path, [w for w, _ in found], vectors, [g for _, g in found], title=title)


def plot_confusion(path: Path, y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]],
                   names: Sequence[str], *, title: str = "token confusion (test)") -> str:
    """``path``: the confusion counts of the tags in ``y_true`` against ``y_pred`` (sentences of tag strings),
    true tag by row, predicted by column, shaded by log(1 + count) so that rare tags show beside ``O``."""
    plt = _pyplot()
    if plt is None:
        return NO_MATPLOTLIB
    index = {t: i for i, t in enumerate(names)}
    M = np.zeros((len(names), len(names)), int)
    for t, p in zip((t for s in y_true for t in s), (p for s in y_pred for p in s)):
        M[index[t], index[p]] += 1
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(names), 1 + 0.6 * len(names)))
    ax.imshow(np.log1p(M), cmap="Blues")
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(M[i, j]), ha="center", va="center", fontsize=8)
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names,
           xlabel="predicted tag", ylabel="true tag", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot: {path}"
