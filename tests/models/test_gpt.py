"""scratchlm's GPT-2 against HuggingFace's ``GPT2LMHeadModel`` made from the same files, plus its invariants.

Tolerances: float32 round-off is ~6e-8 relative per operation.  The tiny model (2 blocks, width 16)
chains ~100 roundings per logit on activations of magnitude <= ~10 (weights N(0, 0.3^2)), so the two
implementations differ by ~1e-6 and 1e-4 (the issue's bound) leaves two orders of margin while any
wrong term (a missing bias, the erf GELU for the tanh one: ~1e-3 at |x| ~ 1, a transposed Conv1D) moves
logits by 1e-3 or more.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.errors import ScratchlmError
from scratchlm.models import gpt
from scratchlm.testing import check_grads
from tests.random_params import random_params

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

V = 61
TINY = gpt.GPTConfig(vocab_size=V, n_positions=24, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
_apply = jax.jit(gpt.apply, static_argnames=("config", "train"))
_loss = jax.jit(gpt.causal_lm_loss, static_argnames=("config", "train"))


def _hf_model(seed=0):
    """A GPT2LMHeadModel of TINY's shape with every weight random: N(0, 0.3^2), layer-norm gains 1 + N(0, 0.3^2),
    so a missing bias or a gain applied in the wrong place shows in the logits."""
    cfg = transformers.GPT2Config(vocab_size=V, n_positions=24, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0,
                                  embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    torch.manual_seed(seed)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.3)
            if ".ln_" in name and name.endswith("weight"):
                p.add_(1.0)
    return model


@pytest.fixture(scope="module")
def hf_and_ours(tmp_path_factory):
    path = tmp_path_factory.mktemp("gpt2")
    model = _hf_model(seed=2)  # a seed whose greedy rollouts vary (random models often repeat one token)
    model.save_pretrained(str(path))
    config, params = gpt.from_pretrained(path)
    return model, config, params


def _batch(seed, B=3, T=9, left=False):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, V, (B, T))
    lengths = np.array([T] + list(rng.integers(min(2, T), T + 1, B - 1)))
    mask = (np.arange(T)[None] < lengths[:, None]).astype(np.int64)
    if left:
        mask = mask[:, ::-1].copy()
    return ids, mask


def _hf_logits(model, ids, mask, position_ids=None):
    with torch.no_grad():
        kwargs = {} if position_ids is None else {"position_ids": torch.tensor(np.asarray(position_ids))}
        return model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), **kwargs).logits.numpy()


def test_config_is_read_from_the_checkpoint(hf_and_ours):
    _, config, _ = hf_and_ours
    assert (config.vocab_size, config.n_positions, config.n_embd, config.n_layer, config.n_head) == (V, 24, 16, 2, 2)


@pytest.mark.parametrize("left", [False, True])
def test_logits_equal_huggingface_on_a_padded_batch(hf_and_ours, left):
    """Right padding with HuggingFace's default positions 0..T-1; left padding with the positions generate()
    builds (position_ids_from_mask), passed to both.  Compared at real tokens only: a padding query's logits are
    not defined by the model (it may see no key) and HuggingFace's mask arithmetic differs there."""
    model, config, params = hf_and_ours
    ids, mask = _batch(1, left=left)
    assert mask.min() == 0
    pos = np.asarray(gpt.position_ids_from_mask(jnp.asarray(mask))) if left else None
    batch = {"input_ids": jnp.asarray(ids), "attention_mask": jnp.asarray(mask)}
    if left:
        batch["position_ids"] = jnp.asarray(pos)
    ours = np.asarray(_apply(params, batch, config=config)["logits"])
    ref = _hf_logits(model, ids, mask, pos)
    real = mask.astype(bool)
    assert np.abs(ref[real]).max() > 1.0  # logits of size: 1e-4 is a relative bound well below 1e-3
    np.testing.assert_allclose(ours[real], ref[real], atol=1e-4, rtol=0)


def test_save_pretrained_loads_in_huggingface_with_the_same_logits(tmp_path):
    params = random_params(gpt.init, TINY, std=0.3)
    gpt.save_pretrained(tmp_path, params, TINY)
    model = transformers.GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    assert torch.equal(model.lm_head.weight, model.transformer.wte.weight)  # the head came back tied
    ids, mask = _batch(2)
    ours = np.asarray(_apply(params, {"input_ids": jnp.asarray(ids), "attention_mask": jnp.asarray(mask)},
                             config=TINY)["logits"])
    real = mask.astype(bool)
    np.testing.assert_allclose(ours[real], _hf_logits(model, ids, mask)[real], atol=1e-4, rtol=0)
    config, loaded = gpt.from_pretrained(tmp_path)  # and back: the same tree, bit for bit
    assert config == TINY
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@settings(max_examples=8)
@given(seed=st.integers(0, 2**16), t=st.integers(0, 7))
def test_changing_later_tokens_never_changes_earlier_logits(seed, t):
    """Causality: z_{<=t} is a function of x_{<=t} alone.  Exactly, not approximately: a future key's weight
    is exp(float32 min - max) = 0 and adds 0 * v = 0, and the same program sums the same terms."""
    params = random_params(gpt.init, TINY, std=0.3)
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, (2, 8))
    changed = ids.copy()
    changed[:, t + 1 :] = rng.integers(0, V, changed[:, t + 1 :].shape)
    a = np.asarray(_apply(params, {"input_ids": jnp.asarray(ids)}, config=TINY)["logits"])
    b = np.asarray(_apply(params, {"input_ids": jnp.asarray(changed)}, config=TINY)["logits"])
    np.testing.assert_array_equal(a[:, : t + 1], b[:, : t + 1])
    if t < 7 and not np.array_equal(ids[:, t + 1 :], changed[:, t + 1 :]):
        assert not np.allclose(a[:, t + 1 :], b[:, t + 1 :])  # the later logits do see the change


def test_gradients_float64(x64):
    """The whole model (embeddings, both blocks, ln_f, tied head) through the next-token loss, on a right-padded
    batch, against central differences in 48 random directions."""
    config = gpt.GPTConfig(vocab_size=11, n_positions=8, n_embd=8, n_layer=2, n_head=2, resid_pdrop=0.0,
                           embd_pdrop=0.0, attn_pdrop=0.0, dtype="float64")
    params = random_params(gpt.init, config, std=0.3)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, 11, (2, 5)))
    mask = jnp.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    check_grads(lambda p: gpt.causal_lm_loss(p, {"input_ids": ids, "attention_mask": mask}, config=config),
                (params,), max_full=0, directions=48)


def test_loss_is_the_mean_next_token_nll_over_real_targets():
    """causal_lm_loss against log-softmax of the logits picked by hand at the 8 + 3 real targets."""
    params = random_params(gpt.init, TINY, std=0.3)
    ids = np.random.default_rng(3).integers(0, V, (2, 9))
    mask = np.array([[1] * 9, [1] * 4 + [0] * 5])
    batch = {"input_ids": jnp.asarray(ids), "attention_mask": jnp.asarray(mask)}
    logits = np.asarray(_apply(params, batch, config=TINY)["logits"], np.float64)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    nll = [-log_p[b, t, ids[b, t + 1]] for b in range(2) for t in range(8) if mask[b, t + 1]]
    assert len(nll) == 11
    assert float(_loss(params, batch, config=TINY)) == pytest.approx(np.mean(nll), rel=1e-5)


def test_last_token_state_picks_the_last_real_position():
    h = jnp.arange(2 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 1)
    got = gpt.last_token_state(h, jnp.array([[1, 1, 0, 0], [0, 1, 1, 1]]))  # right- and left-padded rows
    np.testing.assert_array_equal(np.asarray(got)[:, 0], [1.0, 7.0])


# ----------------------------------------------------------------------------------------- generation


def test_greedy_generation_equals_huggingface_generate(hf_and_ours):
    """Left-padded prompts, pad_token_id set: the cached greedy rollout is HuggingFace's token for token.  The
    comparison is well posed only where the top two logits are further apart than the 1e-4 the logits agree
    to; the recompute test below checks those margins on our side."""
    model, config, params = hf_and_ours
    ids, mask = _batch(4, B=3, T=6, left=True)
    with torch.no_grad():
        ref = model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                             max_new_tokens=8, pad_token_id=0, eos_token_id=None).numpy()[:, 6:]
    got = gpt.generate(params, ids, attention_mask=mask, config=config, max_new_tokens=8)
    assert len(set(got.ravel().tolist())) > 3  # not a degenerate repetition of one token
    np.testing.assert_array_equal(got, ref)


@settings(max_examples=5)
@given(seed=st.integers(0, 2**16), T0=st.integers(1, 6), n=st.integers(1, 5), pad=st.booleans())
def test_cached_greedy_equals_recomputing_the_whole_sequence(seed, T0, n, pad):
    """Each token from the cache is the argmax of apply() over the whole sequence before it (left padding,
    positions from the mask).  One apply() over prompt + continuation gives all of those at once: by causality
    (tested above, exactly) the logits at position t are those of the prefix x_{<=t}.  Compared wherever the
    top two logits are further apart than float32 noise (a near-tie may break either way)."""
    params = random_params(gpt.init, TINY, std=0.3, seed=seed % 7)
    ids, mask = _batch(seed, B=2, T=T0, left=True)
    if not pad:
        mask = np.ones_like(mask)
    got = gpt.generate(params, ids, attention_mask=mask, config=TINY, max_new_tokens=n)
    seq = np.concatenate([ids, got], 1)
    m = np.concatenate([mask, np.ones_like(got)], 1)
    batch = {"input_ids": jnp.asarray(seq), "attention_mask": jnp.asarray(m),
             "position_ids": gpt.position_ids_from_mask(jnp.asarray(m))}
    z = np.asarray(_apply(params, batch, config=TINY)["logits"])[:, T0 - 1 : T0 - 1 + n]  # [B, n, V]
    top2 = np.sort(z, axis=-1)[..., -2:]
    clear = top2[..., 1] - top2[..., 0] > 1e-4
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(got[clear], np.argmax(z, -1)[clear])


def test_generation_stops_at_eos_and_pads_finished_rows():
    params = random_params(gpt.init, TINY, std=0.3)
    ids = np.random.default_rng(0).integers(1, V, (2, 3))
    free = gpt.generate(params, ids, config=TINY, max_new_tokens=6)
    eos = int(free[0, 1])  # row 0 emits this at step 1, so make it the end-of-text id
    got = gpt.generate(params, ids, config=TINY, max_new_tokens=6, eos_token_id=eos, pad_token_id=60)
    for row, out in zip(free, got):
        stop = list(row).index(eos) if eos in row else len(row)
        np.testing.assert_array_equal(out[: stop + 1], row[: stop + 1])  # the same up to and with eos
        assert np.all(out[stop + 1 :] == 60)  # then padding, as HuggingFace pads finished rows


def test_sampling_is_reproducible_and_respects_top_k():
    params = random_params(gpt.init, TINY, std=0.3)
    ids = np.random.default_rng(0).integers(0, V, (4, 3))
    a = gpt.generate(params, ids, config=TINY, max_new_tokens=5, key=jax.random.key(1), top_k=1)
    assert np.array_equal(a, gpt.generate(params, ids, config=TINY, max_new_tokens=5))  # top-1 is greedy
    b = gpt.generate(params, ids, config=TINY, max_new_tokens=5, key=jax.random.key(2), temperature=2.0)
    c = gpt.generate(params, ids, config=TINY, max_new_tokens=5, key=jax.random.key(2), temperature=2.0)
    d = gpt.generate(params, ids, config=TINY, max_new_tokens=5, key=jax.random.key(3), temperature=2.0)
    assert np.array_equal(b, c) and not np.array_equal(b, d)


def test_decode_step_compiles_once_per_batch_size_and_length():
    params = random_params(gpt.init, TINY, std=0.3)
    ids = np.random.default_rng(0).integers(0, V, (2, 3))
    gpt.generate(params, ids, config=TINY, max_new_tokens=5)
    before = gpt.decode_step._cache_size()
    gpt.generate(params, ids[:, 1:], config=TINY, max_new_tokens=6)  # same S = 8, same B: no new program
    assert gpt.decode_step._cache_size() == before


# -------------------------------------------------------------------------------------------- errors


def _corrupt(tmp_path, edit):
    from safetensors.numpy import load_file, save_file

    gpt.save_pretrained(tmp_path, random_params(gpt.init, TINY), TINY)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(tmp_path / "model.safetensors"))


def test_missing_unexpected_and_misshaped_tensors_are_named(tmp_path):
    def edit(t):
        del t["transformer.h.1.mlp.c_fc.bias"]
        t["transformer.h.0.extra.weight"] = np.zeros(3, np.float32)
        t["transformer.h.0.attn.c_attn.weight"] = np.ascontiguousarray(t["transformer.h.0.attn.c_attn.weight"].T)

    _corrupt(tmp_path, edit)
    with pytest.raises(ScratchlmError) as err:
        gpt.from_pretrained(tmp_path)
    msg = str(err.value)
    assert "missing tensors: ['h.1.mlp.c_fc.bias']" in msg and "unexpected tensors: ['h.0.extra.weight']" in msg
    assert "h.0.attn.c_attn.weight: checkpoint (48, 16), config expects (16, 48)" in msg


def test_an_untied_head_and_a_foreign_config_are_refused(tmp_path):
    _corrupt(tmp_path, lambda t: t.update({"lm_head.weight": t["transformer.wte.weight"] + 1.0}))
    with pytest.raises(ScratchlmError, match="lm_head.weight differs"):
        gpt.from_pretrained(tmp_path)
    with pytest.raises(ScratchlmError, match="scale_attn_by_inverse_layer_idx"):
        gpt.GPTConfig.from_hf_dict({"scale_attn_by_inverse_layer_idx": True})
    with pytest.raises(ScratchlmError, match="outside"):
        gpt.apply(random_params(gpt.init, TINY), {"input_ids": jnp.array([[1, V]])}, config=TINY)


def test_bfloat16_compute_keeps_float32_logits_close():
    """dtype="bfloat16": activations rounded to 8 mantissa bits (2^-9 relative per rounding), statistics, softmax
    and logits in float32.  Through 2 blocks of width 16 the errors add like a random walk over ~50 roundings of
    O(3) activations feeding O(5) logits: ~sqrt(50) * 2^-9 * 5 = 0.07; 0.25 bounds it and still catches a
    float16 overflow or a dropped float32 statistic (errors of O(1))."""
    import dataclasses

    params = random_params(gpt.init, TINY, std=0.3)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, V, (2, 8)))
    z32 = np.asarray(_apply(params, {"input_ids": ids}, config=TINY)["logits"])
    out = _apply(params, {"input_ids": ids}, config=dataclasses.replace(TINY, dtype="bfloat16"))
    assert out["logits"].dtype == jnp.float32 and out["last_hidden_state"].dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(out["logits"]), z32, atol=0.25, rtol=0)


def test_one_training_step_changes_every_parameter():
    """Every leaf gets a non-zero gradient from the next-token loss (no dead branch, the head tied to wte); dropout
    on, so the training path runs too."""
    import dataclasses

    config = dataclasses.replace(TINY, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    params = random_params(gpt.init, config, std=0.3)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, V, (4, 24)))  # every position of wpe used
    grads = jax.jit(jax.grad(lambda p, k: gpt.causal_lm_loss(p, {"input_ids": ids}, config=config, key=k,
                                                             train=True)))(params, jax.random.key(0))
    flat = jax.tree_util.tree_leaves_with_path(grads)
    dead = [jax.tree_util.keystr(path) for path, g in flat if not np.any(np.asarray(g) != 0)]
    assert not dead, dead


def test_an_old_gpt2_model_layout_loads(tmp_path):
    """The Hub's original gpt2 files: names without ``transformer.``, a causal-mask buffer ``h.N.attn.bias``
    [1, 1, n, n] and ``h.N.attn.masked_bias`` per block, which are no parameters."""
    params = random_params(gpt.init, TINY)  # what _corrupt saves (the same seed)

    def edit(t):
        for k in list(t):
            t[k[len("transformer."):]] = t.pop(k)
        for n in range(TINY.n_layer):
            t[f"h.{n}.attn.bias"] = np.tril(np.ones((24, 24), np.float32))[None, None]
            t[f"h.{n}.attn.masked_bias"] = np.array(-1e4, np.float32)

    _corrupt(tmp_path, edit)
    _, loaded = gpt.from_pretrained(tmp_path)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(loaded)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_positions_and_flops_worked_examples():
    """Left padding [0, 0, 1, 1, 1] -> positions [1, 1, 0, 1, 2] (HF generate's cumsum - 1, pads at 1).  GPT-2
    small's count by hand: N = 12 (4 * 768^2 + 2 * 768 * 3072) + 50257 * 768 = 84,934,656 + 38,597,376 =
    123,532,032; 6N = 741,192,192; 12 L H T at T = 1024 is 12 * 12 * 768 * 1024 = 113,246,208; sum 854,438,400."""
    np.testing.assert_array_equal(np.asarray(gpt.position_ids_from_mask(jnp.array([[0, 0, 1, 1, 1]]))),
                                  [[1, 1, 0, 1, 2]])
    assert gpt.flops_per_token(gpt.GPTConfig(), 1024) == 854_438_400
