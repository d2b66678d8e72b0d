r"""The pretrained models fine-tuning takes (:mod:`scratchlm.training.finetune`), each as a small adapter.

The recipe is one: a pretrained encoder, a fresh linear head, the head's loss, AdamW, folds and early
stopping.  What differs between BERT and GPT-2 is data the recipe reads from the adapter:

- how to build the :class:`~scratchlm.training.classify.Classifier` (which features the head reads) and
  which params key holds the head (``head_key``);
- how to initialise the head on the pretrained params (:meth:`init_head`);
- which params are the encoder (:meth:`pretrained`, the tensors kept from a checkpoint) and how the
  freezing policies find its embeddings and layers (``freeze_layout``);
- how the text is framed (:meth:`special_ids`: ``[CLS] A [SEP]`` or the text as it is);
- how the fine-tuned model is saved as a HuggingFace folder (:meth:`save_pretrained`) and its LoRA
  adapters as a PEFT folder (``peft_layout``, :meth:`lora_config`, :meth:`modules_to_save`).

**BERT** (:class:`BertEncoder`, Devlin et al. 2019, §4): the pooled ``[CLS]`` vector,
:math:`\tanh(W_p h^{(L)}_{[CLS]} + b_p)`, or every position's :math:`h^{(L)}_t`, under the ``classifier``.

**GPT-2** (:class:`GPTEncoder`, Radford et al. 2018, §3.3): the final-layer-normed state of each text's
last real token, :math:`\mathrm{LN}_f(h^{(L)})_{b,\,t_b}` (:func:`scratchlm.models.gpt.sequence_state`), under
the bias-free ``score`` of ``GPT2ForSequenceClassification``.  The text is fed as it is (GPT-2's tokenizer
has no template), padded with the end-of-text id, HuggingFace's convention for GPT-2, which its
``config.json`` names ``pad_token_id``.  Token classification is refused: under the causal mask a
token's state has not read the words after it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import jax

from scratchlm.data.tasks import SpecialIds
from scratchlm.errors import ScratchlmError
from scratchlm.models import bert, gpt, heads, peft_format
from scratchlm.nn import lora
from scratchlm.training import classify, freeze


@dataclass(frozen=True)
class BertEncoder:
    """BERT (or MiniLM) as the recipe's encoder; hashable, so compiled programs are cached per config."""

    config: bert.BertConfig
    arch: ClassVar[str] = "bert"
    head_key: ClassVar[str] = "classifier"
    lora_targets: ClassVar[tuple[str, ...]] = ("query", "value")  # PEFT's default for BERT (Hu et al. 2021, §7.1)
    freeze_layout: ClassVar[freeze.FreezeLayout] = freeze.BERT
    peft_layout: ClassVar[peft_format.Layout] = peft_format.BERT
    unpads: ClassVar[bool] = True  # bert.apply runs a batch with a "layout" on its real tokens only

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_positions(self) -> int:
        return self.config.max_position_embeddings

    def with_dropout(self, rate: float | None) -> BertEncoder:
        """Hidden and attention dropout set to ``rate`` (unchanged when None)."""
        if rate is None:
            return self
        return BertEncoder(dataclasses.replace(self.config, hidden_dropout_prob=rate,
                                               attention_probs_dropout_prob=rate))

    def pretrained(self, params: dict) -> dict:
        """The encoder's tensors of a checkpoint (an MLM head or an old classifier dropped)."""
        return {k: v for k, v in params.items() if k in ("embeddings", "encoder", "pooler")}

    def special_ids(self, tok) -> SpecialIds:
        ids = SpecialIds(cls=tok.cls_token_id, sep=tok.sep_token_id, pad=tok.pad_token_id, unk=tok.unk_token_id)
        missing = [name for name, i in (("[CLS]", ids.cls), ("[SEP]", ids.sep), ("[PAD]", ids.pad)) if i is None]
        if missing:  # BERT's input is [CLS] text [SEP], padded: a tokenizer without them cannot make it
            raise ScratchlmError(f"the model's tokenizer has no {', '.join(missing)} token: a BERT encoder reads "
                                 "[CLS] text [SEP] padded with [PAD] (a WordPiece tokenizer trained with "
                                 "--special [PAD] [UNK] [CLS] [SEP] [MASK] has them)")
        return ids

    def init_head(self, key: jax.Array, params: dict, task: str, outputs: int) -> dict:
        """``params`` with a fresh ``classifier`` (:math:`W \\sim N(0, 0.02^2)`, :math:`b = 0`).

        A token classifier reads every position's :math:`h^{(L)}_t`, never the pooler, so the pooler
        is dropped (as in HuggingFace's ``BertForTokenClassification``): without a gradient, AdamW's
        weight decay alone would shrink it and the saved model would carry a damaged, unused pooler.
        A sequence classifier on a checkpoint without a pooler (scratchlm's MLM pretraining saves
        none) gets a freshly initialised one."""
        if task == "token":
            params = {k: v for k, v in params.items() if k != "pooler"}
            return {**params, "classifier": bert.init_token_classifier(key, self.config, outputs)}
        if "pooler" not in params:  # a pretraining checkpoint (MLM trains no pooler): a fresh one, as HuggingFace does
            k_pool, key = jax.random.split(key)
            H = self.config.hidden_size
            params = {**params, "pooler": {"dense": bert.init_dense(k_pool, H, H, self.config.initializer_range)}}
        return {**params, "classifier": bert.init_sequence_classifier(key, self.config, outputs)}

    def classifier(self, task: str, head: str, lora_config: lora.LoraConfig | None = None) -> classify.Classifier:
        r"""The pooled ``[CLS]`` vector (sequence) or every position's :math:`h^{(L)}_t` (token) under a linear
        head with the encoder's hidden dropout (``BertFor{Sequence,Token}Classification``); ``head`` the loss,
        softmax or sigmoid.  With ``lora_config`` the encoder is :func:`scratchlm.nn.lora.wrap` of BERT's
        ``apply`` (:math:`W' = W_0 + \frac{\alpha}{r}BA` on the target layers), BERT's ``apply`` unchanged."""
        feature = "last_hidden_state" if task == "token" else "pooler_output"
        apply = bert.apply if lora_config is None else lora.wrap(bert.apply, lora_config)
        config = self.config

        def encode(params, batch, *, key, train):
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "layout") if k in batch}
            # the pooler reads only [CLS]: the last layer computes no other position (same numbers, less work)
            return apply(params, inputs, config=config, key=key, train=train, cls_only=task != "token")[feature]

        def linear(p, h, *, key, train):
            return heads.linear(p, h, rate=config.hidden_dropout_prob, key=key, train=train)

        return classify.Classifier(encode=encode, head=linear, kind=head)

    def save_pretrained(self, path: str | Path, params: dict, *, tokenizer, labels, task: str) -> Path:
        """``BertFor{Sequence,Token}Classification``'s folder (:func:`scratchlm.models.bert.save_pretrained`)."""
        return bert.save_pretrained(path, params, self.config, tokenizer=tokenizer, labels=labels, task=task)

    @classmethod
    def lora_config(cls, config: lora.LoraConfig, *, default_targets: bool) -> lora.LoraConfig:
        """The run's adapters as this model needs them: BERT's dense layers are ``[out, in]``, and
        ``LoraConfig``'s default targets are BERT's."""
        return config

    def modules_to_save(self, pretrained: dict, task: str) -> tuple[str, ...]:
        """What PEFT saves whole beside the adapters: the head, and the fresh pooler of a checkpoint without one."""
        return ("classifier",) if "pooler" in pretrained or task == "token" else ("pooler", "classifier")


@dataclass(frozen=True)
class GPTEncoder:
    """GPT-2 as the recipe's encoder (sequence tasks); hashable, so compiled programs are cached per config."""

    config: gpt.GPTConfig
    arch: ClassVar[str] = "gpt"
    head_key: ClassVar[str] = "score"
    lora_targets: ClassVar[tuple[str, ...]] = ("c_attn",)  # PEFT's default for GPT-2: W_q, W_k, W_v in one Conv1D
    freeze_layout: ClassVar[freeze.FreezeLayout] = freeze.GPT2
    peft_layout: ClassVar[peft_format.Layout] = peft_format.GPT2
    unpads: ClassVar[bool] = False  # GPT-2's batches stay padded (its last real token is read per row)

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    @property
    def max_positions(self) -> int:
        return self.config.n_positions

    @property
    def pad_token_id(self) -> int:
        """The end-of-text id, which pads (HuggingFace's convention for GPT-2, which has no padding token)."""
        if self.config.eos_token_id is None:
            raise ScratchlmError("the GPT-2 config has no eos_token_id: fine-tuning pads with the end-of-text id")
        return self.config.eos_token_id

    def with_dropout(self, rate: float | None) -> GPTEncoder:
        """Residual, embedding and attention dropout set to ``rate`` (unchanged when None)."""
        if rate is None:
            return self
        return GPTEncoder(dataclasses.replace(self.config, resid_pdrop=rate, embd_pdrop=rate, attn_pdrop=rate))

    def pretrained(self, params: dict) -> dict:
        """The decoder's tensors of a checkpoint (an old ``score`` dropped)."""
        return {k: v for k, v in params.items() if k != "score"}

    def special_ids(self, tok) -> SpecialIds:
        return SpecialIds(cls=None, sep=None, pad=self.pad_token_id, unk=None)

    def init_head(self, key: jax.Array, params: dict, task: str, outputs: int) -> dict:
        """``params`` with a fresh ``score`` (:func:`scratchlm.models.gpt.init_score`: no bias)."""
        check_task(self.arch, task)
        return {**params, "score": gpt.init_score(key, self.config, outputs)}

    def classifier(self, task: str, head: str, lora_config: lora.LoraConfig | None = None) -> classify.Classifier:
        r""":func:`scratchlm.models.gpt.sequence_state` under the bias-free linear ``score`` (no dropout of its
        own, as HuggingFace's has none); ``head`` the loss, softmax or sigmoid.  With ``lora_config`` the
        features are :func:`scratchlm.nn.lora.wrap`'s over the adapted ``c_attn`` (or other) weights."""
        check_task(self.arch, task)
        features = gpt.sequence_state if lora_config is None else lora.wrap(gpt.sequence_state, lora_config)
        config = self.config

        def encode(params, batch, *, key, train):
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            return features(params, inputs, config=config, key=key, train=train)

        def linear(p, h, *, key, train):
            return heads.linear(p, h)

        return classify.Classifier(encode=encode, head=linear, kind=head, head_key="score")

    def save_pretrained(self, path: str | Path, params: dict, *, tokenizer, labels, task: str) -> Path:
        """``GPT2ForSequenceClassification``'s folder (:func:`scratchlm.models.gpt.save_pretrained`)."""
        return gpt.save_pretrained(path, params, self.config, tokenizer=tokenizer, labels=labels,
                                   pad_token_id=self.pad_token_id)

    @classmethod
    def lora_config(cls, config: lora.LoraConfig, *, default_targets: bool) -> lora.LoraConfig:
        """``Conv1D`` weights are ``[in, out]``: ``fan_in_fan_out`` (as PEFT sets it for them); the targets
        PEFT's default for GPT-2, ``c_attn``, unless the user named others."""
        targets = cls.lora_targets if default_targets else config.target_modules
        return dataclasses.replace(config, fan_in_fan_out=True, target_modules=targets)

    def modules_to_save(self, pretrained: dict, task: str) -> tuple[str, ...]:
        return ("score",)


Encoder = BertEncoder | GPTEncoder
ARCHS = {"bert": BertEncoder, "gpt": GPTEncoder}  # by the ``arch`` a checkpoint's model_type names


def of(config: bert.BertConfig | gpt.GPTConfig) -> Encoder:
    """The adapter of a model config."""
    if isinstance(config, gpt.GPTConfig):
        return GPTEncoder(config)
    if isinstance(config, bert.BertConfig):
        return BertEncoder(config)
    raise TypeError(f"no fine-tuning adapter for {type(config).__name__}")


def init_arch(path: Path, spec: str | Path) -> str:
    """``"bert"`` or ``"gpt"``: the architecture a model folder's ``config.json`` names (``model_type``);
    ``spec`` is what the user named it by, for the error."""
    model_type = "bert"
    if (path / "config.json").exists():
        try:
            model_type = json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type", "bert")
        except (UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            model_type = "bert"  # a damaged config.json: bert.from_pretrained says what is wrong with it
    if model_type == "gpt2":
        return "gpt"
    if model_type not in bert.MODEL_TYPES:
        raise ScratchlmError(f"--init {spec}: model_type {model_type!r}; fine-tuning supports BERT-family encoders "
                             "and GPT-2 (a GRU language model head is not implemented yet)")
    return "bert"


def load_init(spec: str | Path):
    """(model config, params, tokenizer) of a pretrained model: ``minilm``, a checkpoint folder (or the run
    folder of ``scratchlm pretrain``, :func:`scratchlm.models.hub.model_folder`) or a HuggingFace Hub id
    (:func:`scratchlm.models.hub.resolve`); a ``BertConfig``, or a ``GPTConfig`` for a GPT-2 folder; params
    the encoder's tensors only (:meth:`BertEncoder.pretrained`); the folder's tokenizer (MiniLM's when a BERT
    folder holds none) without padding or truncation."""
    from scratchlm import tokenizers
    from scratchlm.data import corpora
    from scratchlm.models import hub

    path = hub.model_folder(hub.resolve(spec))
    arch = init_arch(path, spec)
    config, params = (gpt if arch == "gpt" else bert).from_pretrained(path)
    params = of(config).pretrained(params)
    tok_file = path / "tokenizer.json"
    if not tok_file.exists() and arch == "gpt":
        raise ScratchlmError(f"--init {spec}: {path} holds no tokenizer.json; a GPT-2 model reads the byte-level BPE "
                             "it was trained with")
    if not tok_file.exists():
        print(f"note: {path} holds no tokenizer.json; using MiniLM's", flush=True)
        tok_file = corpora.minilm_path() / "tokenizer.json"
    tok = tokenizers.load(tok_file)
    tok.no_padding()
    tok.no_truncation()
    return config, params, tok


def check_task(arch: str, task: str) -> None:
    """Refuse what an architecture cannot fine-tune: token classification with GPT-2."""
    if arch == "gpt" and task != "sequence":
        raise ScratchlmError("token classification with GPT-2 is not supported: under the causal mask a token's "
                             "state has not read the words after it; fine-tune a BERT-style encoder (--init minilm)")


__all__ = ["ARCHS", "BertEncoder", "GPTEncoder", "Encoder", "check_task", "init_arch", "load_init", "of"]
