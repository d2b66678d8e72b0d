"""scratchlm's BERT against HuggingFace ``transformers`` loaded from the same files, plus its contract and errors.

Tolerances: float32 round-off is ~6e-8 relative per operation; a 6-layer MiniLM forward chains a few
hundred of them on activations of magnitude <= ~10, so differences of ~1e-5 are round-off and 1e-4
(the issue's bound) catches any wrong term (a missing bias or a mis-scaled softmax moves outputs by
1e-2 or more).  Tiny random models keep |h| ~ 1 and use 1e-5.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.data.batching import unpad_layout
from scratchlm.errors import ScratchlmError
from scratchlm.models import bert
from scratchlm.testing import check_grads
from tests.random_params import random_params

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SENTENCES = [
    ("The cat sat on the mat.", None),
    ("Attention weights are a softmax over scaled dot products.", "They sum to one."),
    ("Paris is the capital of France.", "Berlin is the capital of Germany, and it is large."),
    ("Short.", None),
]

# Forward passes are jitted (config is a frozen, hashable dataclass): eager dispatch compiles every
# primitive on its own and costs seconds per test on 2 cores.
_apply = jax.jit(bert.apply, static_argnames=("config", "train"))

TINY = bert.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=24, max_position_embeddings=20, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)


def _encode_minilm(texts):
    """A right-padded batch of single sentences and pairs, tokenized by scratchlm's own WordPiece tokenizer."""
    from scratchlm import tokenizers
    from scratchlm.data.corpora import minilm_path

    tok = tokenizers.load(minilm_path() / "tokenizer.json")
    tok.no_padding()  # one sentence at a time here; the batch is padded below with the pad id 0
    encs = [tok.encode(a, pair=b) for a, b in texts]
    T = max(len(e.ids) for e in encs)

    def pad(rows):
        return np.array([list(r) + [0] * (T - len(r)) for r in rows], dtype=np.int32)

    assert tok.pad_token_id == 0
    return {"input_ids": pad(e.ids for e in encs), "attention_mask": pad(e.attention_mask for e in encs),
            "token_type_ids": pad(e.type_ids for e in encs)}


@pytest.fixture(scope="module")
def minilm():
    from scratchlm.data.corpora import minilm_path

    path = minilm_path()
    config, params = bert.from_pretrained(path)
    hf = transformers.BertModel.from_pretrained(str(path)).eval()
    batch = _encode_minilm(SENTENCES)
    with torch.no_grad():
        ref = hf(**{k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()})
    return config, params, batch, ref


@pytest.mark.parametrize("unpadded", [False, True])
def test_minilm_hidden_states_equal_huggingface(minilm, unpadded):
    """Padded, and unpadded (the real tokens end to end, :mod:`scratchlm.nn.unpadding`, as fine-tuning runs it)."""
    config, params, batch, ref = minilm
    assert batch["token_type_ids"].max() == 1 and batch["attention_mask"].min() == 0  # pairs and padding present
    inputs = {k: jnp.asarray(v) for k, v in batch.items()}
    if unpadded:
        inputs["layout"] = {k: jnp.asarray(v) for k, v in unpad_layout(batch["attention_mask"]).items()}
    out = _apply(params, inputs, config=config)
    real = batch["attention_mask"].astype(bool)
    h, h_ref = np.asarray(out["last_hidden_state"]), ref.last_hidden_state.numpy()
    assert h.shape == h_ref.shape == (*batch["input_ids"].shape, config.hidden_size)
    np.testing.assert_allclose(h[real], h_ref[real], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(out["pooler_output"]), ref.pooler_output.numpy(), atol=1e-4, rtol=0)


def test_minilm_mean_pooled_embeddings_match_sentence_transformers_pooling(minilm):
    """Values, not only directions: sentence-transformers' Pooling(mean), sum_t m_t h_t / clamp(sum_t m_t, 1e-9),
    applied to HuggingFace's hidden states.

    Tolerance: each of our hidden states is within 1e-4 of HuggingFace's (the test above), and a mean of
    numbers each within 1e-4 of its reference is within 1e-4 of the reference's mean; float32 summing of
    <= 20 terms adds ~20 ulp of values O(1), ~2e-6.  So 1e-4 + 1e-5.  A wrong denominator (the padded
    length T, or sum m + 1) scales a padded row by T / sum m or sum m / (sum m + 1): >= 5% of values of
    magnitude ~0.1-1 here, hundreds of times the bound.
    """
    config, params, batch, ref = minilm
    assert (batch["attention_mask"].sum(1) < batch["attention_mask"].shape[1]).any()  # padded rows present
    embed = jax.jit(bert.sentence_embeddings, static_argnames=("config", "normalize"))
    jbatch = {k: jnp.asarray(v) for k, v in batch.items()}
    e = np.asarray(embed(params, jbatch, config=config))
    m = torch.tensor(batch["attention_mask"], dtype=torch.float32)[..., None]
    e_ref = ((ref.last_hidden_state * m).sum(1) / m.sum(1).clamp(min=1e-9)).numpy()
    np.testing.assert_allclose(e, e_ref, atol=1.1e-4, rtol=0)
    # all-MiniLM-L6-v2 then divides by the L2 norm (sentence-transformers' Normalize()).  With e = e_ref + d,
    # |d_i| <= 1.1e-4: u_i - u_ref,i = d_i / |e| - u_ref,i (e_ref . d) / |e|^2 + O(d^2), so per component
    # |u_i - u_ref,i| <= 1.1e-4 (1 + max|u_ref| sqrt(H)) / |e| to first order
    e_unit = np.asarray(embed(params, jbatch, config=config, normalize=True))
    norm = np.linalg.norm(e_ref, axis=-1, keepdims=True)
    u_ref = e_ref / norm
    bound = 1.1e-4 * (1 + np.abs(u_ref).max() * np.sqrt(config.hidden_size)) / norm
    assert np.all(np.abs(e_unit - u_ref) <= bound)


def test_mean_pool_worked_example():
    """h = [[1, 2], [3, 4], [100, 100]] with mask [1, 1, 0]: (h_0 + h_1) / 2 = [2, 3] (the padded 100s
    neither add to the sum nor to the count); an all-padding row gives 0 / max(0, 1e-9) = 0, not NaN."""
    h = jnp.array([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]])
    got = np.asarray(bert.mean_pool(h, jnp.array([[1, 1, 0], [0, 0, 0]])))
    np.testing.assert_array_equal(got, [[2.0, 3.0], [0.0, 0.0]])


@settings(max_examples=20)
@given(st.integers(0, 2**16))
def test_mean_pool_ignores_padded_values_and_keeps_a_constant(seed):
    """Padded positions enter as 0 * h = 0, so any values there (here +-1e6) leave the mean bit for bit; a row
    whose real positions all hold the vector c pools to c (n float32 additions of c, then a division by n:
    within n + 1 ulp of c, n <= 6)."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((3, 6, 4)).astype(np.float32)
    mask = (rng.random((3, 6)) < 0.6).astype(np.int32)
    mask[:, 0] = 1
    garbage = np.where(mask[..., None] == 1, h, rng.choice([-1e6, 1e6], size=h.shape)).astype(np.float32)
    pooled = np.asarray(_mean_pool(jnp.asarray(h), jnp.asarray(mask)))
    np.testing.assert_array_equal(np.asarray(_mean_pool(jnp.asarray(garbage), jnp.asarray(mask))), pooled)
    c = rng.standard_normal(4).astype(np.float32)
    constant = np.where(mask[..., None] == 1, c, h).astype(np.float32)
    np.testing.assert_allclose(np.asarray(_mean_pool(jnp.asarray(constant), jnp.asarray(mask))),
                               np.broadcast_to(c, (3, 4)), rtol=7 * np.finfo(np.float32).eps, atol=0)


_mean_pool = jax.jit(bert.mean_pool)


def test_flops_per_token_of_bert_base_by_hand():
    r"""BERT-base (H = 768, L = 12, I = 3072, V = 30522) at T = 128 with K = round(0.15 T) = 19 predictions.

    Weights N of the encoder layers (embedding lookups are gathers, no matmul; biases and layer norms are
    O(H) per layer, negligible next to O(H^2), and not counted):
      per layer  W^Q, W^K, W^V, W^O: 4 H^2 = 4 * 589,824          =  2,359,296
                 FFN W_1, W_2:       2 H I = 2 * 768 * 3072        =  4,718,592
                                                                 =  7,077,888
      N = 12 * 7,077,888                                          = 84,934,656
    A matmul costs 2 FLOPs (multiply, add) per weight per token forward and 4 backward (the gradients
    with respect to the input and to the weight): 6N = 509,607,936.
    Attention without weights, per layer per token: the scores q_t k_s over T keys, 2 T H, and the
    weighted sum of T values, 2 T H; forward 4 T H, with backward 3x: 12 T H; over L layers
      12 L H T = 12 * 12 * 768 * 128                              = 14,155,776.
    The masked-LM head, on K of the T positions: the transform W_t (H^2) and the tied decoder E (V H),
      6 (H^2 + V H) K / T = 6 * (589,824 + 23,440,896) * 19 / 128 = 21,402,360.
    Total 509,607,936 + 14,155,776 + 21,402,360 = 545,166,072 (all integers below 2^53: exact in float64).
    """
    base = bert.BertConfig()
    assert (base.hidden_size, base.num_hidden_layers, base.intermediate_size, base.vocab_size) == (768, 12, 3072, 30522)
    assert bert.flops_per_token(base, 128, 19) == 545_166_072
    # without a head term (K = 0): 6N + 12 L H T alone
    assert bert.flops_per_token(base, 128, 0) == 509_607_936 + 14_155_776
    # predictions_per_seq=None decodes every position: K = T, the head's 6 (H^2 + V H) in full
    assert bert.flops_per_token(base, 128) == 509_607_936 + 14_155_776 + 6 * 24_030_720


@pytest.mark.parametrize("cfg, T", [(bert.BertConfig(), 512), (TINY, 20),
                                    (bert.BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                                                     intermediate_size=1536), 256)])
def test_flops_per_token_is_the_palm_formula(cfg, T):
    r"""PaLM, appendix B (Chowdhery et al. 2022): a model of N non-embedding parameters with L layers, H heads
    of size Q, at sequence length T trains at 6N + 12 L H Q T FLOPs per token.  N is counted here from the
    parameter tree ``bert.init`` builds (every weight matrix of the encoder layers), independently of the
    closed form inside ``flops_per_token``; K = 0 leaves out the masked-LM head, which PaLM's decoder-only
    formula has no counterpart for."""
    shapes = jax.eval_shape(lambda: bert.init(jax.random.key(0), cfg))
    N = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes["encoder"]["layer"]) if leaf.ndim == 2)
    n_heads, Q = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    palm = 6 * N + 12 * cfg.num_hidden_layers * n_heads * Q * T
    assert bert.flops_per_token(cfg, T, 0) == palm


def _tiny_batch(seed=0, B=3, T=7):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, TINY.vocab_size, size=(B, T)).astype(np.int32)
    mask = np.ones((B, T), np.int32)
    mask[1, 5:] = 0
    ids[1, 5:] = 0
    types = np.zeros((B, T), np.int32)
    types[:, 4:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _torch_batch(batch):
    return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}


@pytest.mark.parametrize("head", ["mlm", "sequence", "token"])
def test_save_pretrained_loads_in_huggingface_with_equal_outputs(tmp_path, head):
    params = random_params(bert.init, TINY)  # biases and layer norms non-trivial, so every tensor's name matters
    if head == "mlm":
        params["cls"] = random_params(bert.init_mlm_head, TINY, seed=1)
    elif head == "sequence":
        params["classifier"] = random_params(bert.init_sequence_classifier, TINY, 3, seed=1)
    else:
        params["classifier"] = random_params(bert.init_token_classifier, TINY, 5, seed=1)
    bert.save_pretrained(tmp_path, params, TINY)
    batch = _tiny_batch()
    jbatch = {k: jnp.asarray(v) for k, v in batch.items()}
    out = _apply(params, jbatch, config=TINY)
    hf_class = {"mlm": transformers.BertForMaskedLM, "sequence": transformers.BertForSequenceClassification,
                "token": transformers.BertForTokenClassification}[head]
    hf = hf_class.from_pretrained(str(tmp_path)).eval()
    with torch.no_grad():
        ref = hf(**_torch_batch(batch)).logits.numpy()
    if head == "mlm":
        logits = bert.mlm_logits(params, out["last_hidden_state"], config=TINY)
    elif head == "sequence":
        logits = bert.sequence_logits(params, out, config=TINY)
    else:
        logits = bert.token_logits(params, out, config=TINY)
    assert logits.dtype == jnp.float32
    real = batch["attention_mask"].astype(bool)
    got = np.asarray(logits)
    np.testing.assert_allclose(got[real] if head != "sequence" else got, ref[real] if head != "sequence" else ref,
                               atol=1e-5, rtol=0)

    # and back into scratchlm: the same tree, bit for bit
    config2, params2 = bert.from_pretrained(tmp_path)
    assert config2 == TINY
    assert jax.tree.structure(params2) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(params2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_heads_gradients_float64(x64):
    """The masked-LM head (transform, layer norm, tied decoder, bias) and both classifiers, float64 central
    differences on a 1-layer encoder (the encoder's own check is in tests/nn/test_transformer.py).  The
    word embeddings receive gradient through the lookup and, tied, through the decoder: both paths count."""
    import dataclasses

    cfg = dataclasses.replace(TINY, dtype="float64", vocab_size=7, hidden_size=4, num_hidden_layers=1,
                              intermediate_size=6, max_position_embeddings=5)
    params = random_params(bert.init, cfg)
    params["cls"] = random_params(bert.init_mlm_head, cfg, seed=1)
    heads = {"sequence": random_params(bert.init_sequence_classifier, cfg, 3, seed=2),
             "token": random_params(bert.init_token_classifier, cfg, 2, seed=3)}
    batch = {"input_ids": jnp.array([[1, 5, 3, 2], [1, 6, 2, 0]]),
             "attention_mask": jnp.array([[1, 1, 1, 1], [1, 1, 1, 0]])}

    def f(params, heads):
        out = bert.apply(params, batch, config=cfg)
        mlm = bert.mlm_logits(params, out["last_hidden_state"], config=cfg)
        seq = bert.sequence_logits({**params, "classifier": heads["sequence"]}, out, config=cfg)
        tok = bert.token_logits({**params, "classifier": heads["token"]}, out, config=cfg)
        return jnp.concatenate([mlm.ravel(), seq.ravel(), tok.ravel()])

    check_grads(f, (params, heads), max_full=0, directions=48)


def _corrupt_checkpoint(tmp_path, edit):
    from safetensors.numpy import load_file, save_file

    bert.save_pretrained(tmp_path, random_params(bert.init, TINY), TINY)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(tmp_path / "model.safetensors"))


def test_missing_tensor_is_named(tmp_path):
    _corrupt_checkpoint(tmp_path, lambda t: t.pop("encoder.layer.1.attention.self.key.bias"))
    with pytest.raises(ScratchlmError, match=r"missing tensors: \['encoder.layer.1.attention.self.key.bias'\]"):
        bert.from_pretrained(tmp_path)


def test_misshaped_tensor_is_named(tmp_path):
    def edit(t):
        t["encoder.layer.0.intermediate.dense.weight"] = np.zeros((25, 16), np.float32)

    _corrupt_checkpoint(tmp_path, edit)
    with pytest.raises(ScratchlmError, match=r"encoder.layer.0.intermediate.dense.weight: checkpoint \(25, 16\), "
                                             r"config expects \(24, 16\)"):
        bert.from_pretrained(tmp_path)


def test_unexpected_tensor_is_named(tmp_path):
    def edit(t):
        t["encoder.layer.2.output.dense.weight"] = np.zeros((16, 24), np.float32)

    _corrupt_checkpoint(tmp_path, edit)
    with pytest.raises(ScratchlmError, match=r"unexpected tensors: \['encoder.layer.2.output.dense.weight'\]"):
        bert.from_pretrained(tmp_path)


def test_config_json_missing_is_clear(tmp_path):
    _corrupt_checkpoint(tmp_path, lambda t: None)
    (tmp_path / "config.json").unlink()
    with pytest.raises(ScratchlmError, match="config.json"):
        bert.from_pretrained(tmp_path)


def test_too_long_sequence_and_out_of_range_ids_are_clear():
    params = random_params(bert.init, TINY)
    long = {"input_ids": jnp.ones((1, TINY.max_position_embeddings + 1), jnp.int32)}
    with pytest.raises(ScratchlmError, match="sequence length 21 exceeds the position table"):
        bert.apply(params, long, config=TINY)
    with pytest.raises(ScratchlmError, match=r"input_ids holds 50 at position \(0, 2\), outside \[0, 50\)"):
        bert.apply(params, {"input_ids": jnp.array([[1, 2, 50]])}, config=TINY)
    with pytest.raises(ScratchlmError, match="input_ids holds -1"):
        bert.apply(params, {"input_ids": jnp.array([[1, -1]])}, config=TINY)
    with pytest.raises(ScratchlmError, match="token_type_ids holds 2"):
        bert.apply(params, {"input_ids": jnp.array([[1, 2]]), "token_type_ids": jnp.array([[0, 2]])}, config=TINY)
    with pytest.raises(ScratchlmError, match=r"expected input_ids \[B, T\]"):
        bert.apply(params, {"input_ids": jnp.array([1, 2])}, config=TINY)


def test_config_roundtrips_through_huggingface_json(tmp_path):
    cfg = bert.BertConfig(hidden_size=32, num_attention_heads=4, num_hidden_layers=1, intermediate_size=64,
                          vocab_size=99, pre_layer_norm=True)
    hf = transformers.BertConfig.from_dict(json.loads(json.dumps(cfg.to_hf_dict())))
    assert (hf.hidden_size, hf.num_attention_heads, hf.vocab_size) == (32, 4, 99)
    assert bert.BertConfig.from_hf_dict(cfg.to_hf_dict()) == cfg


def test_bfloat16_compute_keeps_float32_params_and_float32_logits():
    cfg32 = TINY
    cfg16 = bert.BertConfig(**{**cfg32.__dict__, "dtype": "bfloat16"})
    params = random_params(bert.init, cfg32)
    params["cls"] = random_params(bert.init_mlm_head, cfg32, seed=1)
    batch = {k: jnp.asarray(v) for k, v in _tiny_batch().items()}
    out32 = _apply(params, batch, config=cfg32)
    out16 = _apply(params, batch, config=cfg16)
    assert out16["last_hidden_state"].dtype == jnp.bfloat16
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))
    logits16 = jax.jit(bert.mlm_logits, static_argnames="config")(params, out16["last_hidden_state"], config=cfg16)
    assert logits16.dtype == jnp.float32
    # bfloat16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); layer-normed outputs are O(1), so a few
    # rounding steps through 2 layers stay below 0.1 while a wrong computation would be O(1) off
    np.testing.assert_allclose(np.asarray(out16["last_hidden_state"], np.float32),
                               np.asarray(out32["last_hidden_state"]), atol=0.1, rtol=0)


# ------------------------------------------------------------------------------------------- encode

ENCODE_TEXTS = ["The cat sat on the mat.", "", "Attention weights are a softmax over scaled dot products. " * 4,
                "Short.", "Paris is the capital of France.", "naïve café", "x " * 40]


@pytest.fixture(scope="module")
def minilm_tok():
    from scratchlm import tokenizers
    from scratchlm.data.corpora import minilm_path

    return tokenizers.load(minilm_path() / "tokenizer.json")


@pytest.mark.parametrize("normalize", [False, True])
def test_encode_equals_mean_pool_of_apply_text_by_text(minilm, minilm_tok, normalize):
    """encode sorts, buckets, pads and fills up batches; each row must still be mean_pool(apply(...)) of its
    own text alone, unpadded.  The padded positions are masked out of every softmax (weight exactly 0) and
    of the mean, so only the summation order of the longer rows differs: a few hundred float32 roundings of
    values |h| <~ 10, ~1e-5 at most; a pad token counted in the mean or attended to moves rows by >1e-2."""
    config, params, _, _ = minilm
    minilm_tok.no_padding()
    got = bert.encode(params, ENCODE_TEXTS, config=config, tokenizer=minilm_tok, batch_size=3, normalize=normalize)
    assert got.shape == (len(ENCODE_TEXTS), config.hidden_size) and got.dtype == np.float32
    for text, row in zip(ENCODE_TEXTS, got):
        ids = minilm_tok.encode(text).ids
        batch = {"input_ids": jnp.asarray([ids], jnp.int32), "attention_mask": jnp.ones((1, len(ids)), jnp.int32),
                 "token_type_ids": jnp.zeros((1, len(ids)), jnp.int32)}
        h = _apply(params, batch, config=config)["last_hidden_state"]
        e = np.asarray(bert.mean_pool(h, batch["attention_mask"]))[0]
        expected = e / np.linalg.norm(e) if normalize else e
        np.testing.assert_allclose(row, expected, atol=1e-5, rtol=0)
    one = bert.encode(params, ENCODE_TEXTS[4], config=config, tokenizer=minilm_tok, normalize=normalize)
    assert one.shape == (config.hidden_size,)  # a str gives one vector, as sentence-transformers
    np.testing.assert_allclose(one, got[4], atol=1e-5, rtol=0)


def test_encode_compiles_once_per_length_bucket(minilm, minilm_tok):
    """Texts of 9 to 16 tokens ([CLS] and [SEP] included) fall in the 16 bucket: a second call with other
    texts of that bucket (and a different count, so a partly filled last batch) compiles nothing new."""
    config, params, _, _ = minilm
    encode = bert.encode
    encode(params, ["one two three four five six seven"] * 5, config=config, tokenizer=minilm_tok, batch_size=4)
    compiled = bert._embed._cache_size()
    others = ["a b c d e f g h i j", "the movie was great fun and long too"] * 3
    encode(params, others, config=config, tokenizer=minilm_tok, batch_size=4)
    assert bert._embed._cache_size() == compiled
    assert [bert._bucket(n, 512) for n in (1, 8, 9, 16, 17, 128, 129, 300, 600)] == [16, 16, 16, 16, 32, 128, 192,
                                                                                    320, 512]
    assert bert._bucket(90, 100) == 96 and bert._bucket(99, 100) == 100  # capped at max_length


def test_encode_matches_sentence_transformers(minilm, minilm_tok):
    """One call against SentenceTransformer.encode on the same folder (mean pooling, then Normalize):
    unit vectors whose components agree to the 1.1e-4 of the pooling test above divided by |e| >~ 1."""
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from scratchlm.data.corpora import minilm_path

    config, params, _, _ = minilm
    model = sentence_transformers.SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
    ref = model.encode(ENCODE_TEXTS[:6], batch_size=4)
    got = bert.encode(params, ENCODE_TEXTS[:6], config=config, tokenizer=minilm_tok, batch_size=4, normalize=True)
    np.testing.assert_allclose(got, ref, atol=1.1e-4, rtol=0)
