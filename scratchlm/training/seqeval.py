r"""Entity-level precision, recall and F1 as seqeval computes them, and the classification reports.

An entity is a maximal chunk ``(type, first, last)`` read off a tag sequence by seqeval's default
(non-strict, CoNLL ``conlleval``) rules, ported here from ``seqeval.metrics.sequence_labeling``:
a chunk starts at ``B-T``, ``S-T``, or at any ``I-T``/``E-T`` that does not continue a chunk of type
``T`` — so an ill-formed ``I-T`` without a ``B-T`` still opens an entity — and it ends where the
next tag neither continues it nor has its type.  Sentences are joined with an ``O`` between them.

A predicted entity is correct only if its span and type both match a true one exactly:

.. math::
    P = \frac{|\hat E \cap E|}{|\hat E|}, \qquad R = \frac{|\hat E \cap E|}{|E|}, \qquad
    F_1 = \frac{2PR}{P + R}

with :math:`E` the true and :math:`\hat E` the predicted entity sets (0 where a denominator is 0,
as seqeval's ``zero_division`` default does after its warning).  Sources: Tjong Kim Sang & De
Meulder (2003), CoNLL-2003 shared task, §4; Nakayama (2018), seqeval.

:func:`classification_report` prints the per-type entity table seqeval prints;
:func:`tag_report` prints the per-tag (token-level) table of the design document's example, the
layout of scikit-learn's ``classification_report`` with three digits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

Tags = Sequence[str]


def _split(tag: str) -> tuple[str, str]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", "_")`` (seqeval's placeholder type)."""
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_))


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != type_))


def get_entities(tags: Tags | Sequence[Tags]) -> list[tuple[str, int, int]]:
    """Chunks ``(type, first, last)`` (inclusive) of a tag sequence, or of sentences joined by ``O``."""
    if tags and not isinstance(tags[0], str):
        tags = [t for sentence in tags for t in [*sentence, "O"]]
    chunks, prev_tag, prev_type, begin = [], "O", "", 0
    for i, chunk in enumerate([*tags, "O"]):
        tag, type_ = _split(chunk)
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def _prf(correct: int, predicted: int, true: int) -> tuple[float, float, float]:
    P = correct / predicted if predicted else 0.0
    R = correct / true if true else 0.0
    F1 = 2 * P * R / (P + R) if P + R else 0.0
    return P, R, F1


def entity_scores(y_true: Sequence[Tags], y_pred: Sequence[Tags]) -> dict[str, dict[str, float]]:
    """Per-type and micro-averaged entity P/R/F1 and support: ``{"PER": {...}, "micro": {...}}``."""
    if len(y_true) != len(y_pred) or any(len(t) != len(p) for t, p in zip(y_true, y_pred)):
        raise ValueError("y_true and y_pred must hold the same number of sentences and tags per sentence")
    E, E_hat = set(get_entities(list(y_true))), set(get_entities(list(y_pred)))
    hits = E & E_hat

    def by(chunks):  # chunks per entity type
        return Counter(t for t, _, _ in chunks)

    n_true, n_pred, n_hit = by(E), by(E_hat), by(hits)
    out = {}
    for type_ in sorted(set(n_true) | set(n_pred)):
        P, R, F1 = _prf(n_hit[type_], n_pred[type_], n_true[type_])
        out[type_] = {"precision": P, "recall": R, "f1": F1, "support": n_true[type_]}
    P, R, F1 = _prf(len(hits), len(E_hat), len(E))
    out["micro"] = {"precision": P, "recall": R, "f1": F1, "support": len(E)}
    return out


def entity_f1(y_true: Sequence[Tags], y_pred: Sequence[Tags]) -> float:
    """Micro-averaged entity F1 (seqeval's ``f1_score``)."""
    return entity_scores(y_true, y_pred)["micro"]["f1"]


def _format(rows: list[tuple[str, float, float, float, int]], averages: list[tuple[str, float, float, float, int]],
            digits: int = 3) -> str:
    """scikit-learn's / seqeval's report layout: name, precision, recall, f1-score, support."""
    width = max([len(n) for n, *_ in rows + averages] + [len("weighted avg")])
    head = f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"

    def line(n, p, r, f, s):
        return f"{n:>{width}} {p:>9.{digits}f} {r:>9.{digits}f} {f:>9.{digits}f} {s:>9}"

    return "\n".join([head, "", *[line(*r) for r in rows], "", *[line(*a) for a in averages]]) + "\n"


def _averages(rows: list[tuple[str, float, float, float, int]], micro: tuple[float, float, float]):
    total = sum(r[4] for r in rows)
    macro = [sum(r[k] for r in rows) / len(rows) if rows else 0.0 for k in (1, 2, 3)]
    weighted = [sum(r[k] * r[4] for r in rows) / total if total else 0.0 for k in (1, 2, 3)]
    return [("micro avg", *micro, total), ("macro avg", *macro, total), ("weighted avg", *weighted, total)]


def classification_report(y_true: Sequence[Tags], y_pred: Sequence[Tags], digits: int = 3) -> str:
    """The entity-level report seqeval prints: one row per entity type, then micro/macro/weighted."""
    scores = entity_scores(y_true, y_pred)
    micro = scores.pop("micro")
    rows = [(t, s["precision"], s["recall"], s["f1"], int(s["support"])) for t, s in scores.items()]
    return _format(rows, _averages(rows, (micro["precision"], micro["recall"], micro["f1"])), digits)


def tag_report(y_true: Sequence[Tags], y_pred: Sequence[Tags], digits: int = 3) -> str:
    """The token-level report of the design document's example: one row per tag (``B-LOC`` ... ``O``).

    Each tag is scored as a class of its own over all tokens; micro-averaged P = R = F1 = accuracy.
    """
    true = [t for s in y_true for t in s]
    pred = [p for s in y_pred for p in s]
    if len(true) != len(pred):
        raise ValueError("y_true and y_pred must hold the same number of tags")
    n_true, n_pred = Counter(true), Counter(pred)
    n_hit = Counter(t for t, p in zip(true, pred) if t == p)
    tags = sorted(set(n_true) | set(n_pred), key=lambda t: (t == "O", t[2:], t))
    rows = [(t, *_prf(n_hit[t], n_pred[t], n_true[t]), n_true[t]) for t in tags]
    accuracy = sum(n_hit.values()) / len(true) if true else 0.0
    return _format(rows, _averages(rows, (accuracy, accuracy, accuracy)), digits)
