"""GPT through the one classification recipe: features from the last real token, equal to HuggingFace's
GPT2ForSequenceClassification, independent of the padding side, and fitted on a small task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scratchlm.models import gpt, heads
from scratchlm.training import classify
from tests.random_params import random_params

V = 40
CONFIG = gpt.GPTConfig(vocab_size=V, n_positions=16, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0,
                       embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
MODEL = classify.gpt_encoder(CONFIG)
_logits = jax.jit(lambda p, b: classify.logits(MODEL, p, b))


def _params(seed=0, C=3):
    return {"gpt": random_params(gpt.init, CONFIG, std=0.3, seed=seed),
            "classifier": heads.init_normal(jax.random.key(seed), CONFIG.n_embd, C, 0.3)}


def _padded(ids, lengths, left):
    T = ids.shape[1]
    mask = np.arange(T)[None] < np.asarray(lengths)[:, None]
    if left:  # move each row's real tokens to the end
        ids = np.stack([np.roll(r, T - n) for r, n in zip(ids, lengths)])
        mask = mask[:, ::-1]
    return np.where(mask, ids, 0), mask


def test_left_and_right_padding_give_the_same_logits():
    """The last real token's state is the same function of the same tokens at the same positions (positions from
    the mask): equal to float32 round-off of two differently-shaped attention sums (1e-5 on O(1) logits)."""
    params = _params()
    ids = np.random.default_rng(0).integers(1, V, (4, 7))
    lengths = [7, 3, 5, 1]
    right = _logits(params, dict(zip(("ids", "mask"), _padded(ids, lengths, False))))
    left = _logits(params, dict(zip(("ids", "mask"), _padded(ids, lengths, True))))
    np.testing.assert_allclose(np.asarray(left), np.asarray(right), atol=1e-5, rtol=0)


def test_features_equal_huggingface_gpt2_for_sequence_classification(tmp_path):
    """HF's score layer has no bias: with ours at 0 the logits agree to the 1e-4 float32 bound of
    tests/models/test_gpt.py; HF finds each row's last token by pad_token_id (0 here, never a real token)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    params = _params(C=3)
    params["classifier"]["bias"] = jnp.zeros(3)
    gpt.save_pretrained(tmp_path, params["gpt"], CONFIG)
    hf = transformers.GPT2ForSequenceClassification.from_pretrained(str(tmp_path), num_labels=3, pad_token_id=0)
    with torch.no_grad():
        hf.score.weight.copy_(torch.tensor(np.asarray(params["classifier"]["weight"])))
    hf.eval()
    ids, mask = _padded(np.random.default_rng(1).integers(1, V, (3, 6)), [6, 2, 4], left=False)
    ours = np.asarray(_logits(params, {"ids": jnp.asarray(ids), "mask": jnp.asarray(mask)}))
    with torch.no_grad():
        ref = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask.astype(np.int64))).logits.numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_the_recipe_fits_a_task_only_the_last_token_decides():
    """Label = the last real token mod 2, with lengths varying per row: pooling any other position (the first,
    or the last padded one) cannot fit it; the last real token's state can, within 150 steps."""
    from scratchlm.training import loop

    rng = np.random.default_rng(2)
    ids = rng.integers(1, V, (16, 6))
    lengths = rng.integers(1, 7, 16)
    ids, mask = _padded(ids, lengths, left=False)
    labels = ids[np.arange(16), lengths - 1] % 2
    params = _params(seed=1, C=2)
    tx, step = classify.make_step(MODEL, classify.OptimizerConfig(3e-2, 150, schedule="constant"))
    batch = {"ids": ids, "mask": mask, "labels": labels}
    result = classify.fit(params, tx, step, lambda s: batch, key=jax.random.key(0),
                          config=loop.LoopConfig(steps=150, log_every=0, progress=False))
    z = _logits(result.state.params, {"ids": ids, "mask": mask})
    np.testing.assert_array_equal(np.argmax(np.asarray(z), -1), labels)
