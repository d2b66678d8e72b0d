"""scratchlm.models.classifier: pooling ignores padding, gradients, it learns, and on real polarity data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.models import classifier as C
from scratchlm.nn.losses import bce_risk
from scratchlm.testing import check_grads

CONFIG = C.ClassifierConfig(vocab_size=7, embed_dim=3)


def params():
    p = C.init(jax.random.key(0), CONFIG)
    return {**p, "output": {"w": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array(0.1)}}


def test_mean_pooling_by_hand():
    """ids [3, 5, pad] -> h = (E_3 + E_5)/2, z = w.h + b."""
    p = params()
    E, w, b = (np.asarray(a, np.float64) for a in (p["embedding"], p["output"]["w"], p["output"]["b"]))
    z = C.apply(p, jnp.array([[3, 5, 0]]), config=CONFIG)
    np.testing.assert_allclose(z, [(E[3] + E[5]) / 2 @ w + b], rtol=1e-6)


@given(st.lists(st.integers(1, 6), min_size=1, max_size=5), st.integers(0, 4))
@settings(max_examples=10)
def test_padding_never_changes_the_logit(ids, n_pad):
    p = params()
    f = jax.jit(lambda x: C.apply(p, x, config=CONFIG))
    short = f(jnp.array([ids + [0] * (5 - len(ids))]))
    long = f(jnp.array([ids + [0] * (5 - len(ids) + n_pad)]))
    np.testing.assert_allclose(long, short, rtol=1e-6, atol=1e-7)  # same sum and count; only the padded length differs


def test_grads(x64):
    ids, y = jnp.array([[1, 2, 0], [4, 4, 6], [0, 0, 0]]), np.array([1.0, 0.0, 1.0])
    check_grads(lambda p: bce_risk(C.apply(p, ids, config=CONFIG), y), (params(),))


def test_rejects_unbatched_ids():
    with pytest.raises(ValueError, match=r"ids \[B, T\]"):
        C.apply(params(), jnp.array([1, 2]), config=CONFIG)


def test_learns_a_planted_rule():
    """100 sentences: 'good' makes one positive, 'bad' negative, hidden among 6 of 20 filler words drawn at
    random; 5-fold CV must be perfect (with only 60 sentences chance correlations of fillers cost a few)."""
    rng = np.random.default_rng(0)
    filler = [f"w{i}" for i in range(20)]
    texts, labels = [], []
    for i in range(100):
        words = list(rng.choice(filler, size=6)) + ["good" if i % 2 else "bad"]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(i % 2)
    r = C.cross_validate(texts, labels, C.CVConfig(learning_rate=0.05))
    assert r["accuracy"] == 1.0 and r["majority"] == 0.5


def test_polarity_accuracy_above_the_majority_rate():
    """Real data: the 200 Pang-Lee sentences (100 positive, majority rate 0.50), 5-fold CV repeated with
    three fold shuffles (seeds 0, 1, 2; every sentence is held out once per repetition).

    Measured on CPU: accuracies 0.550, 0.590, 0.545 -> mean 0.562.  For scale: scikit-learn's
    bag-of-words logistic regression gets 0.56-0.575 and binary naive Bayes 0.61 on the same
    5-fold split (seed 0), so 200 short sentences carry little learnable signal for any word-count
    model.  The bound 0.54 is above the majority rate by more than the 0.02 that three
    repetitions' worth of 600 held-out predictions could give a coin by luck more than 1 time in 6
    (binomial sd of the mean 0.02); it is a regression check on a deterministic run, and the
    planted-rule test above is the strong evidence that the model and loop learn.
    """
    from scratchlm.data.corpora import polarity_sentences

    data = polarity_sentences()
    texts, labels = [t for t, _ in data], [y for _, y in data]
    results = [C.cross_validate(texts, labels, C.CVConfig(seed=s)) for s in range(3)]
    assert results[0]["majority"] == 0.5 and results[0]["evaluation"] == "5-fold cross-validation"
    mean = float(np.mean([r["accuracy"] for r in results]))
    assert mean > 0.54, [r["accuracy"] for r in results]


def test_demo_step_and_command(tmp_path, capsys):
    import argparse

    from scratchlm.commands import classify

    parser = argparse.ArgumentParser()
    classify.add_arguments(parser)
    data = tmp_path / "tiny.txt"
    data.write_text("".join(f"__label__{'pos' if i % 2 else 'neg'} {'good' if i % 2 else 'bad'} film w{i % 3}\n" for i in range(20)))
    assert classify.run(parser.parse_args(["--data", str(data), "--steps", "30", "--lr", "0.05", "--out", str(tmp_path / "o")])) == 0
    out = capsys.readouterr().out
    assert "polarity accuracy 1.00 (5-fold CV; majority 0.50)" in out
    assert (tmp_path / "o" / "summary.json").exists() and (tmp_path / "o" / "fold0.jsonl").exists()
