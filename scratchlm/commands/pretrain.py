"""`scratchlm pretrain`: masked-LM pretraining of a BERT-style encoder, or causal-LM pretraining of GPT-2.

    scratchlm pretrain --corpus wiki --layers 4 --hidden 256 --heads 4 --seq-len 128 --batch-size 32 \\
        --steps 2000 --out runs/bert-small                  # trains a WordPiece vocabulary first
    scratchlm pretrain --corpus wiki --init minilm --steps 200 --out runs/minilm-wiki   # continued
    scratchlm pretrain --arch gpt --corpus wiki --steps 2000 --out runs/gpt-small   # byte-level BPE, next token

``--arch gpt`` (:mod:`scratchlm.training.causal_lm`) trains a byte-level BPE vocabulary with
``<|endoftext|>`` (or reads ``--tokenizer``), builds ``SMALL_GPT`` (or continues ``--init DIR``, a GPT-2
folder) and writes the same run folder, with ``model/`` in HuggingFace's GPT-2 layout (``scratchlm
generate --model DIR/model`` reads it) and ``metrics.json`` holding ``heldout_loss_start``,
``heldout_loss_end``, ``perplexity``, the unigram baseline, tokens/s and MFU.

Without ``--tokenizer`` a WordPiece vocabulary of ``--vocab-size`` is trained on the corpus by
scratchlm (with ``--init minilm``, MiniLM's own tokenizer is used).  With ``--init`` the model's
shape comes from the checkpoint and ``--layers/--hidden/--heads`` are ignored.  ``--out``, the run
folder (:mod:`scratchlm.training.run`: resumed, found complete or refused when run again), receives
``run.json``, ``model/`` (a folder transformers loads as it is: ``model.safetensors`` with
HuggingFace names, ``config.json`` (``BertForMaskedLM``), ``tokenizer.json``, ``tokenizer_config.json``,
``special_tokens_map.json``, ``vocab.txt``; ``pipeline("fill-mask", model=OUT/model)``),
``checkpoints/`` (the loop's, while it runs), ``train_log.jsonl``, ``curves.png`` and ``metrics.json``
(held-out MLM loss and accuracy before and after, tokens/s, MFU where the device's peak is known).
``--init`` takes ``minilm``, a folder (or another pretraining run's folder) or a HuggingFace Hub id.

``--mesh data=8`` trains data parallel over 8 devices, ``--mesh data=4,model=2`` with parameters and
AdamW moments sharded 2 ways (FSDP); ``--coordinator HOST:PORT --num-processes N --process-id I``
runs one process per host (see :mod:`scratchlm.distributed` for the launch on GPU clusters and TPU pods).
Both architectures train there through one function
(:func:`scratchlm.training.pretrain_loop.train_on_mesh`); ``--batch-size`` must be a multiple of the
mesh's ``data`` axis and of the number of processes, checked before any work; ``metrics.json`` records
the ``mesh``, and a run resumes from its checkpoints on any mesh::

    scratchlm pretrain --arch gpt --corpus wiki --mesh data=4,model=2 --batch-size 32 --out runs/gpt-fsdp
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from scratchlm.commands.common import (
    add_parallel_arguments,
    add_run_arguments,
    check_run_folder,
    complete_run,
    init_source,
    resolve_init,
    result_settings,
    setup_parallel,
    start_run,
)
from scratchlm.commands.flags import config_flag, seed

# Defaults live once, in the library's config dataclasses (training/pretrain.py: PretrainConfig, and
# SMALL_BERT, the encoder built when no --init is given; models/bert.py: BertConfig).  A flag left out
# is None here and takes that default in :func:`pretrain_command`: reading the dataclasses while the
# parser is built would import JAX before ``cli.use_compile_cache`` sets the environment JAX reads at
# import, so the parser stays free of JAX and the defaults are resolved when the command runs.
_RUN_FLAGS = {name: name for name in ("seq_len", "batch_size", "steps", "lr", "warmup_steps", "weight_decay",
                                      "eval_every", "seed")}
_MODEL_FLAGS = {"vocab_size": "vocab_size", "num_hidden_layers": "layers", "hidden_size": "hidden",
                "num_attention_heads": "heads", "intermediate_size": "intermediate"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    small, run = "scratchlm.training.pretrain:SMALL_BERT.", "scratchlm.training.pretrain:PretrainConfig."
    parser.add_argument("--arch", choices=["bert", "gpt"], default="bert",
                        help="bert: masked-LM encoder; gpt: causal-LM decoder (GPT-2)")
    parser.add_argument("--corpus", default="wiki", help="wiki, lee, or a UTF-8 text file (one document a line)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="a tokenizer.json (default: train WordPiece)")
    config_flag(parser, "--vocab-size", type=int, help="WordPiece vocabulary to train, in tokens",
                source=small + "vocab_size")
    config_flag(parser, "--layers", type=int, help="encoder layers", source=small + "num_hidden_layers")
    config_flag(parser, "--hidden", type=int, help="hidden size H", source=small + "hidden_size")
    config_flag(parser, "--heads", type=int, help="attention heads", source=small + "num_attention_heads")
    parser.add_argument("--intermediate", type=int, default=None, help="feed-forward width (default 4 x hidden)")
    config_flag(parser, "--seq-len", type=int, help="tokens per packed row", source=run + "seq_len")
    config_flag(parser, "--batch-size", type=int, help="rows per step", source=run + "batch_size")
    config_flag(parser, "--steps", type=int, help="optimizer steps", source=run + "steps")
    config_flag(parser, "--lr", type=float, help="AdamW's peak learning rate", source=run + "lr")
    parser.add_argument("--warmup-steps", type=int, default=None,
                        help="steps of linear warm-up (default: 10%% of --steps, at least 1, below --steps)")
    config_flag(parser, "--weight-decay", type=float, help="AdamW's decoupled weight decay",
                source=run + "weight_decay")
    config_flag(parser, "--dropout", type=float, help="hidden and attention drop rate",
                source="scratchlm.models.bert:BertConfig.hidden_dropout_prob")
    parser.add_argument("--init", default=None, help="'minilm', a folder with config.json + model.safetensors, "
                        "or a HuggingFace Hub id")
    parser.add_argument("--bf16", action="store_true", help="compute in bfloat16 (parameters stay float32)")
    parser.add_argument("--fused", action="store_true",
                        help="fused attention (cuDNN flash on GPU); sets attention dropout to 0")
    parser.add_argument("--pre-ln", action="store_true", help="pre-layer-norm encoder (new models only)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N documents (default: all)")
    config_flag(parser, "--eval-every", type=int, help="held-out evaluation every N steps, 0: at the start and the "
                "end only", source=run + "eval_every")
    config_flag(parser, "--seed", type=seed, help="masking, dropout, initialisation and batch order",
                source=run + "seed")
    add_run_arguments(parser)
    add_parallel_arguments(parser)  # --mesh data=8 | data=4,model=2; --coordinator/--num-processes/--process-id


def run(args: argparse.Namespace) -> int:
    if args.arch == "gpt":
        metrics = pretrain_gpt_command(args)
        print(_gpt_summary(metrics))
    else:
        metrics = pretrain_command(args)
        print(_summary(metrics))
    print(f"model written to {args.out / 'model'}; metrics in {args.out / 'metrics.json'}")
    return 0


def _summary(m: dict) -> str:
    return (f"held-out MLM loss {m['heldout_mlm_loss_start']:.2f} -> {m['heldout_mlm_loss_end']:.2f}, "
            f"accuracy {m['heldout_mlm_accuracy_start']:.1%} -> {m['heldout_mlm_accuracy_end']:.1%} "
            f"({m['steps']} steps, {m['tokens_per_s']:.3g} tokens/s"
            + (f", MFU {m['mfu']:.1%}" if m.get("mfu") else "") + ")")


def _gpt_summary(m: dict) -> str:
    return (f"held-out loss {m['heldout_loss_start']:.2f} -> {m['heldout_loss_end']:.2f} nats/token, perplexity "
            f"{m['perplexity']:.1f} (unigram {m['unigram_perplexity']:.1f}) ({m['steps']} steps, "
            f"{m['tokens_per_s']:.3g} tokens/s" + (f", MFU {m['mfu']:.1%}" if m.get("mfu") else "") + ")")


def _given(args: argparse.Namespace, flags: dict[str, str]) -> dict:
    """``{config field: value}`` for the flags the user gave (not None); the others keep the config's default."""
    return {field: getattr(args, flag) for field, flag in flags.items() if getattr(args, flag, None) is not None}


def check_flags(args: argparse.Namespace) -> None:
    """The flags that no config dataclass checks, and the paths: before any work."""
    from scratchlm import checks
    from scratchlm.errors import ScratchlmError

    check_run_folder(args)
    for name in ("vocab_size", "intermediate", "limit"):
        if getattr(args, name) is not None:
            checks.at_least(name, getattr(args, name), 1)
    checks.source(args.corpus, "--corpus")
    if args.tokenizer is not None:
        checks.input_file(args.tokenizer, "--tokenizer")
    if args.init:
        init_source(args.init)
        shaping = [flag for flag, value in (("--layers", args.layers), ("--hidden", args.hidden),
                                            ("--heads", args.heads), ("--intermediate", args.intermediate),
                                            ("--pre-ln", args.pre_ln or None)) if value is not None]
        if shaping:  # they were ignored, and recorded as if they had shaped the model
            raise ScratchlmError(f"{', '.join(shaping)} shape a new model; --init {args.init} brings its own")
    if args.tokenizer is not None and args.vocab_size is not None:
        raise ScratchlmError("--vocab-size sizes the tokenizer pretrain trains; --tokenizer brings its own")


def _read_inputs(args: argparse.Namespace, init_path, from_pretrained, compute: dict):
    """(config, params, tokenizer) of ``--init`` (its folder's tokenizer.json unless ``--tokenizer``), or
    (None, None, the ``--tokenizer`` file or None): read, and a damaged one refused, before any work."""
    from scratchlm import tokenizers
    from scratchlm.errors import ScratchlmError

    if not args.init:
        return None, None, tokenizers.load(args.tokenizer) if args.tokenizer else None
    config, params = from_pretrained(init_path, **compute)
    tok_path = args.tokenizer or init_path / "tokenizer.json"
    if not Path(tok_path).is_file():
        raise ScratchlmError(f"--init {args.init}: no tokenizer.json in {init_path}; pass --tokenizer")
    tokenizer = tokenizers.load(tok_path)
    if args.tokenizer and tokenizer.get_vocab_size() != config.vocab_size:  # its ids would mean other tokens
        raise ScratchlmError(f"--tokenizer {args.tokenizer} has {tokenizer.get_vocab_size()} tokens, the model of "
                             f"--init {args.init} {config.vocab_size}: continue a model with its own tokenizer")
    return config, params, tokenizer


def pretrain_command(args: argparse.Namespace, *, progress: bool | None = None) -> dict:
    """Flags -> (tokenizer, BertConfig, PretrainConfig) -> :func:`scratchlm.training.pretrain.pretrain`."""
    from dataclasses import replace


    check_flags(args)
    mesh = setup_parallel(args)  # before any other JAX call: jax.distributed.initialize comes first

    from scratchlm.data import corpora
    from scratchlm.models import bert
    from scratchlm.models.hub import model_folder
    from scratchlm.tokenizers.pipelines import BERT_SPECIAL_TOKENS, train_bert_wordpiece
    from scratchlm.training.plots import plot_curves
    from scratchlm.training.pretrain import SMALL_BERT, PretrainConfig, pretrain
    from scratchlm.training.pretrain_loop import local_batch
    from scratchlm.training.run import data_digest

    run_config = PretrainConfig(**_given(args, _RUN_FLAGS))
    local_batch(run_config.batch_size, mesh)  # a batch the mesh cannot split: refused before any work
    dropout = args.dropout if args.dropout is not None else bert.BertConfig.hidden_dropout_prob
    compute = {"dtype": "bfloat16" if args.bf16 else "float32", "fused_attention": args.fused,
               "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": 0.0 if args.fused else dropout}
    if not args.init:  # the new encoder's shape, checked (BertConfig) before the corpus is read
        shape = replace(SMALL_BERT, **_given(args, _MODEL_FLAGS))
        if args.intermediate is None:
            shape = replace(shape, intermediate_size=4 * shape.hidden_size)  # Vaswani et al. 2017, §3.3
        replace(shape, **compute)
    init_path = model_folder(resolve_init(args.init)) if args.init else None  # a Hub id fetched once
    texts = corpora.load_corpus(args.corpus)
    if args.limit is not None:
        texts = texts[: args.limit]
    inputs = [Path(p) for p in (args.tokenizer, init_path) if p is not None and Path(p).exists()]
    # the new encoder's shape; with --init the checkpoint's (its files are in the data digest; --layers etc. ignored)
    model_settings = dataclasses.asdict(replace(shape, **compute)) if not args.init else compute
    settings = {"run": dataclasses.asdict(run_config), "model": model_settings,
                **result_settings(args, drop=tuple(_RUN_FLAGS.values()) + tuple(_MODEL_FLAGS.values()) +
                                  ("corpus", "arch"))}
    settings.update(tokenizer="file" if args.tokenizer else None, init=init_source(args.init) if args.init else None)
    digest = data_digest(texts, *inputs)
    if complete_run(args, command="pretrain", settings=settings, data=digest):  # before any model is read
        return json.loads((Path(args.out) / "metrics.json").read_text())
    config, init_params, tokenizer = _read_inputs(args, init_path, bert.from_pretrained, compute)
    run = start_run(args, command="pretrain", settings=settings, data=digest, total_steps=run_config.steps)
    if not args.init:
        if tokenizer is None:
            tokenizer = train_bert_wordpiece(texts, shape.vocab_size, special_tokens=BERT_SPECIAL_TOKENS,
                                             limit_alphabet=1000)
        config = replace(shape, vocab_size=tokenizer.get_vocab_size(),
                         max_position_embeddings=max(run_config.seq_len, SMALL_BERT.max_position_embeddings),
                         pad_token_id=tokenizer.pad_token_id or 0, pre_layer_norm=args.pre_ln, **compute)
    with run.training():
        metrics = pretrain(texts, tokenizer, config, run_config, out=run.out, init_params=init_params,
                           progress=progress, mesh=mesh, checkpoint_seconds=run.config.checkpoint_every)
    plot_curves(run.out / "curves.png", [run.out / "train_log.jsonl"], title="masked-LM pretraining (pretrain)",
                loss="MLM cross-entropy (nats/masked token)", metric="mlm_loss")
    run.finish()
    return metrics


_GPT_FLAGS = {"vocab_size": "vocab_size", "n_layer": "layers", "n_embd": "hidden", "n_head": "heads",
              "n_inner": "intermediate"}


def pretrain_gpt_command(args: argparse.Namespace, *, progress: bool | None = None) -> dict:
    """Flags -> (byte-level BPE tokenizer, GPTConfig, PretrainConfig) ->
    :func:`scratchlm.training.causal_lm.pretrain`."""
    from dataclasses import replace

    from scratchlm.errors import ScratchlmError

    check_flags(args)
    if args.pre_ln:
        raise ScratchlmError("--pre-ln is not available with --arch gpt: GPT-2 is always pre-LN")
    if args.init == "minilm":
        raise ScratchlmError("--init minilm is a BERT encoder: with --arch gpt give a GPT-2 folder")
    mesh = setup_parallel(args)  # before any other JAX call: jax.distributed.initialize comes first

    from scratchlm.data import corpora
    from scratchlm.models import gpt
    from scratchlm.tokenizers.pipelines import train_bpe
    from scratchlm.training.causal_lm import END_OF_TEXT, SMALL_GPT, pretrain
    from scratchlm.training.plots import plot_curves
    from scratchlm.training.pretrain import PretrainConfig
    from scratchlm.training.pretrain_loop import local_batch
    from scratchlm.training.run import data_digest

    run_config = PretrainConfig(**_given(args, _RUN_FLAGS))
    local_batch(run_config.batch_size, mesh)  # a batch the mesh cannot split: refused before any work
    dropout = args.dropout if args.dropout is not None else gpt.GPTConfig.resid_pdrop
    compute = {"dtype": "bfloat16" if args.bf16 else "float32", "fused_attention": args.fused,
               "resid_pdrop": dropout, "embd_pdrop": dropout, "attn_pdrop": 0.0 if args.fused else dropout}
    if not args.init:
        shape = replace(SMALL_GPT, **_given(args, _GPT_FLAGS), **compute)  # GPTConfig checks the values
    texts = corpora.load_corpus(args.corpus)
    if args.limit is not None:
        texts = texts[: args.limit]
    inputs = [Path(p) for p in (args.tokenizer, args.init) if p is not None and Path(p).exists()]
    settings = {"arch": "gpt", "run": dataclasses.asdict(run_config),
                "model": dataclasses.asdict(shape) if not args.init else compute,
                **result_settings(args, drop=tuple(_RUN_FLAGS.values()) + tuple(_MODEL_FLAGS.values()) +
                                  ("corpus", "arch"))}
    settings.update(tokenizer="file" if args.tokenizer else None, init="folder" if args.init else None)
    digest = data_digest(texts, *inputs)
    if complete_run(args, command="pretrain", settings=settings, data=digest):  # before any model is read
        return json.loads((Path(args.out) / "metrics.json").read_text())
    config, init_params, tokenizer = _read_inputs(args, args.init and Path(args.init), gpt.from_pretrained,
                                                  compute)
    run = start_run(args, command="pretrain", settings=settings, data=digest, total_steps=run_config.steps)
    if not args.init:
        if tokenizer is None:
            tokenizer = train_bpe(texts, shape.vocab_size, special_tokens=[END_OF_TEXT])
        eos = tokenizer.token_to_id(END_OF_TEXT)
        config = replace(shape, vocab_size=tokenizer.get_vocab_size(), bos_token_id=eos, eos_token_id=eos,
                         n_positions=max(run_config.seq_len, SMALL_GPT.n_positions))
    with run.training():
        metrics = pretrain(texts, tokenizer, config, run_config, out=run.out, init_params=init_params,
                           progress=progress, mesh=mesh, checkpoint_seconds=run.config.checkpoint_every)
    plot_curves(run.out / "curves.png", [run.out / "train_log.jsonl"],
                title="causal-LM pretraining (pretrain --arch gpt)", loss="next-token cross-entropy (nats/token)",
                metric="loss")
    run.finish()
    return metrics


def demo_step(ctx) -> dict:
    """MLM-pretrain a small encoder on the cleaned Wikipedia sample with a WordPiece vocabulary trained
    by scratchlm (about a minute on 2 CPU cores; seconds with ``ctx.quick``)."""
    quick = ctx.quick
    args = argparse.Namespace(
        corpus="wiki", tokenizer=None, vocab_size=1000 if quick else 4000, layers=2, hidden=64 if quick else 128,
        heads=2, intermediate=None, seq_len=64, batch_size=16 if quick else 32, steps=20 if quick else 400,
        lr=1e-3, warmup_steps=None, weight_decay=None, dropout=0.0, init=None, bf16=False, fused=False, pre_ln=False,
        limit=300 if quick else None, eval_every=None, seed=ctx.seed, **vars(ctx.args()))
    m = pretrain_command(args, progress=None)
    return {"result": _summary(m), "heldout_mlm_loss_start": m["heldout_mlm_loss_start"],
            "heldout_mlm_loss_end": m["heldout_mlm_loss_end"],
            "heldout_mlm_accuracy_end": m["heldout_mlm_accuracy_end"], "tokens_per_s": m["tokens_per_s"],
            "parameters": m["parameters"], "vocab_size": m["vocab_size"], "train_seconds": m["train_seconds"]}
