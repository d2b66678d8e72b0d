"""BERT masking statistics, the MLM loss on selected positions only, packing, and pretraining runs
(a tiny encoder on the Wikipedia sample; continued pretraining from MiniLM through the CLI)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.models import bert
from scratchlm.training import pretrain as P
from tests.random_params import random_params

V, MASK, CLS, SEP, PAD = 1000, 4, 2, 3, 0


def _rows(B=64, T=128, seed=0):
    """Packed-looking rows with [CLS] … [SEP] and right padding on every other row."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, V, (B, T)).astype(np.int32)
    lengths = np.where(np.arange(B) % 2 == 0, T, rng.integers(20, T, B))
    ids[:, 0] = CLS
    ids[np.arange(B), lengths - 1] = SEP
    ids[np.arange(T)[None, :] >= lengths[:, None]] = PAD
    special = np.isin(ids, [CLS, SEP, PAD]).astype(np.int32)
    return ids, special


# jitted: eager dispatch compiles every primitive on its own, seconds per test on 2 cores
_mask = jax.jit(P.mask_tokens, static_argnames="masking")


def test_masking_statistics_match_bert():
    """Over 8 keys x 64 rows (~8,000 selections): exactly round(0.15 c) per row, never a special or
    padding token, and 80/10/10 within 5 binomial standard deviations (sigma = sqrt(p(1-p)/n) ~ 0.005)."""
    masking = P.MaskingConfig(mask_token_id=MASK, vocab_size=V)
    ids, special = _rows()
    counts = {"mask": 0, "random": 0, "same": 0}
    selected_per_position = np.zeros(ids.shape)
    for s in range(8):
        drawn = _mask(jax.random.key(s), jnp.asarray(ids), jnp.asarray(special), masking=masking)
        masked, positions, labels, weights = map(np.asarray, drawn)
        w = weights.astype(bool)
        c = (special == 0).sum(1)
        np.testing.assert_array_equal(w.sum(1), np.round(0.15 * c))  # exact count per row
        rows = np.broadcast_to(np.arange(len(ids))[:, None], positions.shape)
        sel_rows, sel_pos = rows[w], positions[w]
        assert len(set(zip(sel_rows, sel_pos))) == len(sel_rows)  # no position twice
        assert not special[sel_rows, sel_pos].any()  # specials and padding never selected
        np.testing.assert_array_equal(labels[w], ids[sel_rows, sel_pos])
        unselected = np.ones(ids.shape, bool)
        unselected[sel_rows, sel_pos] = False
        np.testing.assert_array_equal(masked[unselected], ids[unselected])  # nothing else touched
        new = masked[sel_rows, sel_pos]
        counts["mask"] += int((new == MASK).sum())
        counts["same"] += int((new == labels[w]).sum())
        counts["random"] += int(((new != MASK) & (new != labels[w])).sum())
        selected_per_position[sel_rows, sel_pos] += 1
    n = sum(counts.values())
    # a random token equals the original (or [MASK]) with probability ~1/V: the 10% shifts by 1e-4
    for kind, p in (("mask", 0.8 + 0.1 / V), ("random", 0.1 * (1 - 2 / V)), ("same", 0.1 + 0.1 / V)):
        sigma = math.sqrt(p * (1 - p) / n)
        assert abs(counts[kind] / n - p) < 5 * sigma, (kind, counts[kind] / n, p)
    # no position bias: a uniform n_b-subset of row b's c_b candidates selects each one with probability
    # p_b = n_b / c_b, so the selections in the first and the last half of the positions have mean
    # sum p_b and variance at most sum p_b (1 - p_b) (a subset's indicators are negatively correlated)
    cand = special == 0
    p = np.round(0.15 * cand.sum(1)) / cand.sum(1)  # [B]
    for half in (np.arange(ids.shape[1]) < 64, np.arange(ids.shape[1]) >= 64):
        where = cand & half
        mean = 8 * (where * p[:, None]).sum()
        sigma = math.sqrt(8 * (where * (p * (1 - p))[:, None]).sum())
        assert abs(selected_per_position[where].sum() - mean) < 5 * sigma, (selected_per_position[where].sum(), mean)


TINY = bert.BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                       max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def test_mlm_loss_is_cross_entropy_on_selected_positions_only():
    masking = P.MaskingConfig(mask_token_id=MASK, vocab_size=V)
    ids, special = _rows(B=4, T=32, seed=1)
    params = random_params(bert.init, TINY)
    params["cls"] = random_params(bert.init_mlm_head, TINY, seed=1)
    batch = {"input_ids": jnp.asarray(ids), "attention_mask": jnp.asarray((ids != PAD).astype(np.int32)),
             "special_tokens_mask": jnp.asarray(special)}

    @jax.jit  # the loss and the reference's pieces in one program: one compilation
    def loss_and_reference(params, batch, key):
        loss, metrics = P.mlm_loss(params, batch, key, config=TINY, masking=masking, train=False)
        # the same masking (mlm_loss splits its key the same way), then the logits at every position
        k_mask, _ = jax.random.split(key)
        masked, positions, labels, weights = P.mask_tokens(k_mask, batch["input_ids"], batch["special_tokens_mask"],
                                                           masking=masking)
        h = bert.apply(params, {"input_ids": masked, "attention_mask": batch["attention_mask"]}, config=TINY)
        return loss, metrics, positions, labels, weights, bert.mlm_logits(params, h["last_hidden_state"], config=TINY)

    loss, metrics, positions, labels, weights, logits = loss_and_reference(params, batch, jax.random.key(7))
    positions, labels, weights = map(np.asarray, (positions, labels, weights))
    logits = np.asarray(logits, np.float64)  # [B, T, V]: the NLL averaged over the selected positions, here
    logp = logits - logits.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    rows = np.broadcast_to(np.arange(4)[:, None], positions.shape)
    w = weights.astype(bool)
    nll = -logp[rows[w], positions[w], labels[w]]
    np.testing.assert_allclose(float(loss), nll.mean(), rtol=1e-5)  # float32 logits, V = 1000 terms
    assert int(metrics["predictions"]) == w.sum()


def test_pack_sequences_wraps_chunks_in_cls_sep():
    rows = P.pack_sequences([[10, 11, 12], [], [13, 14, 15, 16, 17]], 5, cls_id=CLS, sep_id=SEP)
    # stream: 10 11 12 SEP 13 14 15 16 17 SEP -> bodies of 3: [10 11 12] [SEP 13 14] [15 16 17]; tail dropped
    np.testing.assert_array_equal(rows, [[CLS, 10, 11, 12, SEP], [CLS, SEP, 13, 14, SEP], [CLS, 15, 16, 17, SEP]])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The whole entry point, as a user runs it: WordPiece trained on 400 Wikipedia paragraphs, then a
    1-layer encoder pretrained for 120 steps (compiling the step costs more than running it: 2 layers
    learn no faster here, 6.39 -> 5.67 both, and compile longer)."""
    from scratchlm.cli import main

    out = tmp_path_factory.mktemp("pretrain")
    rc = main(["pretrain", "--corpus", "wiki", "--limit", "400", "--vocab-size", "600", "--layers", "1",
               "--hidden", "32", "--heads", "2", "--seq-len", "32", "--batch-size", "16", "--steps", "120",
               "--lr", "3e-3", "--dropout", "0", "--out", str(out)])
    assert rc == 0
    return out, json.loads((out / "metrics.json").read_text())


def test_pretraining_on_wikipedia_reduces_heldout_mlm_loss(tiny_run):
    r"""The untrained loss, from the initialisation: the decoder's logits are z E^T + b with b = 0, E ~ N(0, 0.02^2)
    and z layer-normed (gain 1, bias 0: |z|^2 = H = 32), so each logit is ~N(0, s^2), s^2 = 0.02^2 * 32 = 0.0128,
    and the cross-entropy -z_y + log sum_j e^{z_j} has mean ln V + s^2 / 2 = ln 600 + 0.0064 = 6.403 and a
    standard deviation ~s = 0.11 per position; over the >= 100 held-out predictions, 0.05 is > 4 standard
    deviations of their mean.  Then 120 steps must cut it by half a nat (perplexity -40%)."""
    _, m = tiny_run
    assert abs(m["heldout_mlm_loss_start"] - (math.log(600) + 0.02**2 * 32 / 2)) < 0.05, m["heldout_mlm_loss_start"]
    assert m["heldout_mlm_loss_end"] < m["heldout_mlm_loss_start"] - 0.5, m
    assert m["heldout_mlm_accuracy_end"] > m["heldout_mlm_accuracy_start"]
    assert m["tokens_per_s"] > 0 and math.isfinite(m["final_train_loss"])
    assert "mfu" in m and (m["mfu"] is None) == (m["peak_flops"] is None)  # MFU where the device's peak is known


def test_pretraining_writes_a_huggingface_loadable_model(tiny_run):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    out, m = tiny_run
    assert m["steps"] == 120 and m["vocab_size"] == 600
    config, params = bert.from_pretrained(out / "model")
    assert "cls" in params and "pooler" not in params
    hf = transformers.BertForMaskedLM.from_pretrained(str(out / "model")).eval()
    ids = np.array([[2, 10, 11, 4, 12, 3]], np.int32)
    @jax.jit
    def logits(p, b):
        return bert.mlm_logits(p, bert.apply(p, b, config=config)["last_hidden_state"], config=config)

    ours = np.asarray(logits(params, {"input_ids": jnp.asarray(ids)}))
    with torch.no_grad():
        theirs = hf(input_ids=torch.tensor(ids, dtype=torch.long)).logits.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)  # float32, 1 layer, logits O(10)


def _cli_continue(init, out, *flags):
    from scratchlm.cli import main

    rc = main(["pretrain", "--corpus", "wiki", "--init", init, "--seq-len", "32", "--steps", "2", "--limit", "40",
               "--lr", "1e-5", "--out", str(out), *flags])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert math.isfinite(m["heldout_mlm_loss_end"]) and m["steps"] == 2
    return m, *bert.from_pretrained(out / "model")


def test_continued_pretraining_from_a_saved_model_via_cli(tiny_run, tmp_path):
    """The saved model and its tokenizer.json load through --init and training goes on from its weights: the
    held-out loss starts below an untrained model's 6.40 +- 0.05 (derived in the test above).  (Batch 16 and no
    dropout, as the run that saved it, so its compiled evaluation program serves here too.)"""
    out, _ = tiny_run
    m, config, params = _cli_continue(str(out / "model"), tmp_path, "--batch-size", "16", "--dropout", "0")
    assert m["model_config"]["hidden_size"] == 32 and "cls" in params
    assert m["heldout_mlm_loss_start"] < 6.0, m["heldout_mlm_loss_start"]


@pytest.mark.slow  # MiniLM's train step compiles for a minute on 2 cores; the test above runs the same code
def test_continued_pretraining_from_minilm_via_cli(tmp_path):
    m, config, params = _cli_continue("minilm", tmp_path, "--batch-size", "2")
    assert m["model_config"]["hidden_size"] == 384
    assert "pooler" in params and "cls" in params  # MiniLM's pooler kept, a new MLM head added
