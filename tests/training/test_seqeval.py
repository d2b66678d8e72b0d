"""Entity-level scoring against a brute-force definition, and the two report layouts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.training import seqeval

TAG = st.sampled_from(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
SENTENCES = st.lists(st.lists(TAG, min_size=1, max_size=8), min_size=1, max_size=4)


def brute_force_entities(sentences):
    """Every span (i, j, T) tested against the definition, per sentence, without a state machine.

    [i..j] is an entity of type T iff tag i is B-T, or I-T not continuing a T chunk (i == 0 or tag
    i-1 is O or of another type); tags i+1..j are all I-T; and tag j+1 (if any) is not I-T.
    """
    out = set()
    for s_index, tags in enumerate(sentences):
        n = len(tags)
        type_of = [t[2:] if t != "O" else None for t in tags]
        for i in range(n):
            if tags[i] == "O":
                continue
            T = type_of[i]
            opens = tags[i].startswith("B-") or i == 0 or type_of[i - 1] != T
            if not opens:
                continue
            for j in range(i, n):
                if j > i and tags[j] != f"I-{T}":
                    break
                if j + 1 == n or tags[j + 1] != f"I-{T}":
                    out.add((s_index, T, i, j))
    return out


def brute_force_f1(y_true, y_pred):
    E, E_hat = brute_force_entities(y_true), brute_force_entities(y_pred)
    hit = len(E & E_hat)
    P = hit / len(E_hat) if E_hat else 0.0
    R = hit / len(E) if E else 0.0
    return 2 * P * R / (P + R) if P + R else 0.0


@settings(max_examples=200)
@given(st.data())
def test_entity_f1_equals_brute_force_span_comparison(data):
    y_true = data.draw(SENTENCES)
    y_pred = [data.draw(st.lists(TAG, min_size=len(s), max_size=len(s))) for s in y_true]
    assert seqeval.entity_f1(y_true, y_pred) == pytest.approx(brute_force_f1(y_true, y_pred), abs=1e-12)


@settings(max_examples=100)
@given(SENTENCES)
def test_entities_per_sentence_match_brute_force(sentences):
    offsets, start = [], 0
    for s in sentences:
        offsets.append(start)
        start += len(s) + 1  # sentences are joined by one "O"
    expected = {(T, offsets[k] + i, offsets[k] + j) for k, T, i, j in brute_force_entities(sentences)}
    assert set(seqeval.get_entities(sentences)) == expected


def test_worked_example_with_ill_formed_tags():
    """true: PER 0-1, LOC 3.  pred: I-PER opens a PER at 0 (ill-formed but counted), B-PER opens
    PER 2, and I-LOC after B-PER opens LOC 3-4.  Hits: PER 0-1 only, so P = 1/3, R = 1/2,
    F1 = 2 (1/3)(1/2) / (5/6) = 2/5."""
    y_true = [["B-PER", "I-PER", "O", "B-LOC", "O"]]
    y_pred = [["I-PER", "I-PER", "B-PER", "I-LOC", "I-LOC"]]
    assert seqeval.get_entities(y_pred[0]) == [("PER", 0, 1), ("PER", 2, 2), ("LOC", 3, 4)]
    scores = seqeval.entity_scores(y_true, y_pred)
    assert scores["micro"]["precision"] == pytest.approx(1 / 3)
    assert scores["micro"]["recall"] == pytest.approx(1 / 2)
    assert scores["micro"]["f1"] == pytest.approx(2 / 5)
    assert scores["PER"]["precision"] == pytest.approx(1 / 2) and scores["LOC"]["recall"] == 0.0


def test_classification_report_lists_types_and_averages():
    y_true = [["B-PER", "I-PER", "O", "B-LOC"]]
    y_pred = [["B-PER", "I-PER", "O", "O"]]
    report = seqeval.classification_report(y_true, y_pred)
    lines = [l.split() for l in report.splitlines() if l.strip()]
    assert lines[0] == ["precision", "recall", "f1-score", "support"]
    assert lines[1] == ["LOC", "0.000", "0.000", "0.000", "1"]
    assert lines[2] == ["PER", "1.000", "1.000", "1.000", "1"]
    # micro: P = 1/1, R = 1/2, F1 = 2/3; macro: mean of the rows.
    assert lines[3] == ["micro", "avg", "1.000", "0.500", "0.667", "2"]
    assert lines[4] == ["macro", "avg", "0.500", "0.500", "0.500", "2"]


# A value printed to 3 digits is at most half a unit of the third digit off, 5e-4, reached on a tie (0.0625 prints
# as 0.062, rounding half to even), plus the binary error of reading back the printed decimal (< 1e-16).
PRINTED = 5e-4 + 1e-12


@settings(max_examples=30)
@given(st.data())
def test_tag_report_matches_scikit_learn(data):
    metrics = pytest.importorskip("sklearn.metrics")
    y_true = data.draw(SENTENCES)
    y_pred = [data.draw(st.lists(TAG, min_size=len(s), max_size=len(s))) for s in y_true]
    ours = [l.split() for l in seqeval.tag_report(y_true, y_pred).splitlines()[2:] if l.strip()]
    true = [t for s in y_true for t in s]
    pred = [p for s in y_pred for p in s]
    labels = sorted(set(true) | set(pred))
    theirs = metrics.classification_report(true, pred, labels=labels, digits=3, output_dict=True, zero_division=0)
    for row in ours:
        if row[0] in labels:
            ref = theirs[row[0]]
            assert [float(x) for x in row[1:4]] == pytest.approx(
                [ref["precision"], ref["recall"], ref["f1-score"]], abs=PRINTED)
            assert int(row[4]) == ref["support"]
    for name in ("macro", "weighted"):
        row = next(r for r in ours if r[0] == name)
        ref = theirs[f"{name} avg"]
        want = [ref["precision"], ref["recall"], ref["f1-score"]]
        assert [float(x) for x in row[2:5]] == pytest.approx(want, abs=PRINTED)
