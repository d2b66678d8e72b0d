"""`scratchlm pretrain`: masked-LM pretraining of a BERT-style encoder.

    scratchlm pretrain --corpus wiki --layers 4 --hidden 256 --heads 4 --seq-len 128 --batch 32 \\
        --steps 2000 --out runs/bert-small                  # trains a WordPiece vocabulary first
    scratchlm pretrain --corpus wiki --init minilm --steps 200 --out runs/minilm-wiki   # continued

Without ``--tokenizer`` a WordPiece vocabulary of ``--vocab-size`` is trained on the corpus by
scratchlm (with ``--init minilm``, MiniLM's own tokenizer is used).  With ``--init`` the model's
shape comes from the checkpoint and ``--layers/--hidden/--heads`` are ignored.  ``--out``, the run
folder (:mod:`scratchlm.training.run`: resumed, found complete or refused when run again), receives
``run.json``, ``model/`` (``model.safetensors`` with HuggingFace names, ``config.json``,
``tokenizer.json``), ``checkpoints/`` (the loop's, while it runs), ``train_log.jsonl``,
``curves.png`` and ``metrics.json`` (held-out MLM loss and accuracy before and after, tokens/s, MFU
where the device's peak is known).

``--mesh data=8`` trains data parallel over 8 devices, ``--mesh data=4,model=2`` with parameters and
AdamW moments sharded 2 ways (FSDP); ``--coordinator HOST:PORT --num-processes N --process-id I``
runs one process per host (see :mod:`scratchlm.distributed` for the launch on GPU clusters and TPU pods).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from scratchlm.commands.common import (
    add_parallel_arguments,
    add_run_arguments,
    result_settings,
    setup_parallel,
    start_run,
)

# Defaults live once, in the library's config dataclasses (training/pretrain.py: PretrainConfig, and
# SMALL_BERT, the encoder built when no --init is given; models/bert.py: BertConfig).  A flag left out
# is None here and takes that default in :func:`pretrain_command`: reading the dataclasses while the
# parser is built would import JAX before ``cli.use_compile_cache`` sets the environment JAX reads at
# import, so the parser stays free of JAX and the defaults are resolved when the command runs.
_RUN_FLAGS = {"seq_len": "seq_len", "batch_size": "batch", "steps": "steps", "learning_rate": "lr",
              "warmup_steps": "warmup", "weight_decay": "weight_decay", "eval_every": "eval_every", "seed": "seed"}
_MODEL_FLAGS = {"vocab_size": "vocab_size", "num_hidden_layers": "layers", "hidden_size": "hidden",
                "num_attention_heads": "heads", "intermediate_size": "intermediate"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    def small(field):  # where a left-out model flag's default is stated
        return f"(default: SMALL_BERT.{field}, scratchlm.training.pretrain)"

    def run(field):  # where a left-out run flag's default is stated
        return f"(default: PretrainConfig.{field}, scratchlm.training.pretrain)"

    parser.add_argument("--corpus", default="wiki", help="wiki, lee, or a UTF-8 text file (one document a line)")
    parser.add_argument("--tokenizer", type=Path, default=None, help="a tokenizer.json (default: train WordPiece)")
    parser.add_argument("--vocab-size", type=int, help="WordPiece vocabulary to train " + small("vocab_size"))
    parser.add_argument("--layers", type=int, help="encoder layers " + small("num_hidden_layers"))
    parser.add_argument("--hidden", type=int, help="hidden size H " + small("hidden_size"))
    parser.add_argument("--heads", type=int, help="attention heads " + small("num_attention_heads"))
    parser.add_argument("--intermediate", type=int, default=None, help="feed-forward width (default 4 x hidden)")
    parser.add_argument("--seq-len", type=int, help="tokens per packed row " + run("seq_len"))
    parser.add_argument("--batch", type=int, help="rows per step " + run("batch_size"))
    parser.add_argument("--steps", type=int, help="training steps " + run("steps"))
    parser.add_argument("--lr", type=float, help="AdamW's peak learning rate " + run("learning_rate"))
    parser.add_argument("--warmup", type=int, default=None, help="warmup steps (default 10%% of --steps)")
    parser.add_argument("--weight-decay", type=float, help="AdamW's decoupled weight decay " + run("weight_decay"))
    parser.add_argument("--dropout", type=float, help="hidden and attention dropout "
                        "(default: BertConfig.hidden_dropout_prob, scratchlm.models.bert)")
    parser.add_argument("--init", default=None, help="'minilm' or a folder with config.json + model.safetensors")
    parser.add_argument("--bf16", action="store_true", help="compute in bfloat16 (parameters stay float32)")
    parser.add_argument("--fused", action="store_true",
                        help="fused attention (cuDNN flash on GPU); sets attention dropout to 0")
    parser.add_argument("--pre-ln", action="store_true", help="pre-layer-norm encoder (new models only)")
    parser.add_argument("--max-docs", type=int, default=None, help="use only the first N documents")
    parser.add_argument("--eval-every", type=int,
                        help="held-out evaluation every N steps, 0: at the start and the end only " + run("eval_every"))
    parser.add_argument("--seed", type=int, help="masking, dropout, initialisation and batch order " + run("seed"))
    add_run_arguments(parser)
    add_parallel_arguments(parser)  # --mesh data=8 | data=4,model=2; --coordinator/--num-processes/--process-id


def run(args: argparse.Namespace) -> int:
    metrics = pretrain_command(args)
    print(_summary(metrics))
    print(f"model written to {args.out / 'model'}; metrics in {args.out / 'metrics.json'}")
    return 0


def _summary(m: dict) -> str:
    return (f"held-out MLM loss {m['heldout_mlm_loss_start']:.2f} -> {m['heldout_mlm_loss_end']:.2f}, "
            f"accuracy {m['heldout_mlm_accuracy_start']:.1%} -> {m['heldout_mlm_accuracy_end']:.1%} "
            f"({m['steps']} steps, {m['tokens_per_s']:.3g} tokens/s"
            + (f", MFU {m['mfu']:.1%}" if m.get("mfu") else "") + ")")


def _given(args: argparse.Namespace, flags: dict[str, str]) -> dict:
    """``{config field: value}`` for the flags the user gave (not None); the others keep the config's default."""
    return {field: getattr(args, flag) for field, flag in flags.items() if getattr(args, flag, None) is not None}


def pretrain_command(args: argparse.Namespace, *, progress: bool | None = None) -> dict:
    """Flags -> (tokenizer, BertConfig, PretrainConfig) -> :func:`scratchlm.training.pretrain.pretrain`."""
    from scratchlm import tokenizers

    mesh = setup_parallel(args)  # before any other JAX call: jax.distributed.initialize comes first
    from dataclasses import replace

    from scratchlm.data import corpora
    from scratchlm.errors import ScratchlmError
    from scratchlm.models import bert
    from scratchlm.tokenizers.pipelines import BERT_SPECIAL_TOKENS, train_bert_wordpiece
    from scratchlm.training.plots import plot_curves
    from scratchlm.training.pretrain import SMALL_BERT, PretrainConfig, pretrain
    from scratchlm.training.run import data_digest

    run_config = PretrainConfig(**_given(args, _RUN_FLAGS))
    texts = corpora.load_corpus(args.corpus)
    if args.max_docs:
        texts = texts[: args.max_docs]
    dropout = args.dropout if args.dropout is not None else bert.BertConfig.hidden_dropout_prob
    compute = {"dtype": "bfloat16" if args.bf16 else "float32", "fused_attention": args.fused,
               "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": 0.0 if args.fused else dropout}
    shape = replace(SMALL_BERT, **_given(args, _MODEL_FLAGS), **compute)  # the flags checked before any work
    init_path = None if not args.init else corpora.minilm_path() if args.init == "minilm" else Path(args.init)
    inputs = [Path(p) for p in (args.tokenizer, init_path) if p is not None and Path(p).exists()]
    settings = {"run": dataclasses.asdict(run_config), "model": dataclasses.asdict(shape),
                **result_settings(args, drop=tuple(_RUN_FLAGS.values()) + tuple(_MODEL_FLAGS.values()) + ("corpus",))}
    settings.update(tokenizer="file" if args.tokenizer else None, init="minilm" if args.init == "minilm" else
                    ("folder" if args.init else None))
    run = start_run(args, command="pretrain", settings=settings, data=data_digest(texts, *inputs),
                    total_steps=run_config.steps)
    if run.state == "complete":
        return json.loads((run.out / "metrics.json").read_text())
    init_params = None
    if args.init:
        path = corpora.minilm_path() if args.init == "minilm" else Path(args.init)
        config, init_params = bert.from_pretrained(path, **compute)
        tok_path = args.tokenizer or path / "tokenizer.json"
        if not Path(tok_path).is_file():
            raise ScratchlmError(f"--init {args.init}: no tokenizer.json in {path}; pass --tokenizer")
        tokenizer = tokenizers.load(tok_path)
    else:
        shape = replace(SMALL_BERT, **_given(args, _MODEL_FLAGS))
        if not args.intermediate:  # None (or 0): 4 H
            shape = replace(shape, intermediate_size=4 * shape.hidden_size)  # Vaswani et al. 2017, §3.3
        if args.tokenizer:
            tokenizer = tokenizers.load(args.tokenizer)
        else:
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


def demo_step(ctx) -> dict:
    """MLM-pretrain a small encoder on the cleaned Wikipedia sample with a WordPiece vocabulary trained
    by scratchlm (about a minute on 2 CPU cores; seconds with ``ctx.quick``)."""
    quick = ctx.quick
    args = argparse.Namespace(
        corpus="wiki", tokenizer=None, vocab_size=1000 if quick else 4000, layers=2, hidden=64 if quick else 128,
        heads=2, intermediate=None, seq_len=64, batch=16 if quick else 32, steps=20 if quick else 400,
        lr=1e-3, warmup=None, weight_decay=None, dropout=0.0, init=None, bf16=False, fused=False, pre_ln=False,
        max_docs=300 if quick else None, eval_every=None, seed=ctx.seed, **vars(ctx.args()))
    m = pretrain_command(args, progress=None)
    return {"result": _summary(m), "heldout_mlm_loss_start": m["heldout_mlm_loss_start"],
            "heldout_mlm_loss_end": m["heldout_mlm_loss_end"],
            "heldout_mlm_accuracy_end": m["heldout_mlm_accuracy_end"], "tokens_per_s": m["tokens_per_s"],
            "parameters": m["parameters"], "vocab_size": m["vocab_size"], "train_seconds": m["train_seconds"]}
