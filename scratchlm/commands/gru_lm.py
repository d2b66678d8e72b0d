"""`scratchlm gru-lm`: pretrain the GRU language model, sample from it, fine-tune it on polarity.

    scratchlm gru-lm train --corpus wiki --tokenizer word --layers 2 --hidden 512 --embed 256 \\
        --dropout 0.1 --seq-len 64 --batch-size 32 --steps 2000 --out runs/gru
    scratchlm gru-lm generate --checkpoint runs/gru --prompt "the history of" --top-p 0.9
    scratchlm gru-lm classify --checkpoint runs/gru --steps 200

``train`` holds out the last ``--valid-fraction`` of the corpus's paragraphs (whole articles of the
Wikipedia sample, in file order) and writes into the run folder ``--out``
(:mod:`scratchlm.training.run`: resumed, found complete or refused when run again): ``run.json``,
``config.json``, the tokenizer (``vocab.json`` or ``tokenizer.json``), the loop's checkpoints
(``checkpoints/``, dropped at the end unless ``--keep-checkpoints``), ``params.msgpack`` (the final
weights), ``metrics.jsonl`` (the loop's log), ``metrics.json`` (train and validation perplexity, the
unigram baseline, tokens/s) and ``curves.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from scratchlm import checks, jsonio
from scratchlm.commands.common import add_run_arguments, check_run_folder, complete_run, start_run
from scratchlm.commands.flags import config_flag, seed
from scratchlm.data.codec import MAX_VOCAB, MIN_COUNT
from scratchlm.io import atomic_write_text

# Defaults live once, in the library: training/lm.py (LMConfig, sample_text), models/gru_lm.py (GRULMConfig),
# training/classify.py (HoldoutConfig), data/codec.py (the word vocabulary's size and count, JAX-free, read
# here).  A flag left out is None and takes its default when the command runs: reading the dataclasses
# while the parser is built would import JAX before ``cli.use_compile_cache`` sets the environment JAX
# reads at import (``--help`` reads them: commands.flags.config_flag).  The run configs' fields are the flags'
# names; the model's follow HuggingFace's (``hidden_size``: ``--hidden``).
_LM_FLAGS = {name: name for name in ("seq_len", "batch_size", "steps", "lr", "clip_norm", "valid_fraction",
                                     "eval_every", "seed")}
_MODEL_FLAGS = {"embed_size": "embed", "hidden_size": "hidden", "num_layers": "layers", "dropout": "dropout",
                "tie_embeddings": "tie", "variant": "variant"}
_HOLDOUT_FLAGS = {name: name for name in ("steps", "lr", "batch_size", "test_fraction", "seed")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    lm, model = "scratchlm.training.lm:LMConfig.", "scratchlm.models.gru_lm:GRULMConfig."
    holdout = "scratchlm.training.classify:HoldoutConfig."
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="pretrain on a corpus with truncated BPTT")
    t.add_argument("--corpus", default="wiki", help="wiki, lee, or a UTF-8 text file (one paragraph a line)")
    t.add_argument("--tokenizer", default="word", help="'word' (a word vocabulary) or PATH to a tokenizer.json")
    t.add_argument("--vocab-size", type=int, default=MAX_VOCAB,
                   help="largest word vocabulary, in words, specials excluded (with --tokenizer word)")
    t.add_argument("--min-count", type=int, default=MIN_COUNT, help="rarer words become <unk>, in occurrences")
    config_flag(t, "--layers", type=int, help="GRU layers", source=model + "num_layers")
    config_flag(t, "--hidden", type=int, help="hidden size, in units", source=model + "hidden_size")
    config_flag(t, "--embed", type=int, help="embedding size, in components", source=model + "embed_size")
    config_flag(t, "--dropout", type=float, help="drop rate between layers and on the output", source=model + "dropout")
    config_flag(t, "--variant", choices=["cudnn", "cho"], help="GRU variant", source=model + "variant")
    config_flag(t, "--tie", action="store_true", source=model + "tie_embeddings",
                help="tie the output layer to the embedding (needs --embed == --hidden)")
    config_flag(t, "--seq-len", type=int, help="truncated-BPTT window, in tokens", source=lm + "seq_len")
    config_flag(t, "--batch-size", type=int, help="parallel streams", source=lm + "batch_size")
    config_flag(t, "--steps", type=int, help="optimizer steps", source=lm + "steps")
    config_flag(t, "--lr", type=float, help="AdamW's peak learning rate, cosine schedule", source=lm + "lr")
    config_flag(t, "--clip-norm", type=float, help="global gradient-norm clip (Pascanu et al. 2013); 0: none",
                source=lm + "clip_norm")
    config_flag(t, "--valid-fraction", type=float, help="share of the paragraphs held out, from the end",
                source=lm + "valid_fraction")
    config_flag(t, "--eval-every", type=int, help="held-out perplexity every N steps, 0: at the end only",
                source=lm + "eval_every")
    config_flag(t, "--seed", type=seed, help="initialisation, dropout and stream order", source=lm + "seed")
    add_run_arguments(t)

    g = sub.add_parser("generate", help="continue a prompt")
    g.add_argument("--checkpoint", type=Path, required=True, help="a folder written by `gru-lm train`")
    g.add_argument("--prompt", required=True, help="the text to continue")
    sample = "scratchlm.training.lm:sample_text."
    config_flag(g, "--max-new-tokens", type=int, help="tokens to sample", source=sample + "max_new_tokens")
    config_flag(g, "--temperature", type=float, help="0 = greedy", source=sample + "temperature")
    config_flag(g, "--top-k", type=int, help="0: no top-k cut", source=sample + "top_k")
    config_flag(g, "--top-p", type=float, help="nucleus mass, a fraction in (0, 1]", source=sample + "top_p")
    config_flag(g, "--samples", type=int, help="continuations to print", source=sample + "samples")
    g.add_argument("--seed", type=seed, default=0, help="the sampling draws")

    c = sub.add_parser("classify", help="fine-tune a classification head on the polarity sentences")
    c.add_argument("--checkpoint", type=Path, required=True, help="a folder written by `gru-lm train`")
    config_flag(c, "--steps", type=int, help="optimizer steps", source=holdout + "steps")
    config_flag(c, "--lr", type=float, help="AdamW's peak learning rate", source=holdout + "lr")
    config_flag(c, "--batch-size", type=int, help="sentences per step", source=holdout + "batch_size")
    config_flag(c, "--test-fraction", type=float, help="share of the sentences held out",
                source=holdout + "test_fraction")
    config_flag(c, "--seed", type=seed, help="split, initialisation and order", source=holdout + "seed")


def _given(args: argparse.Namespace, flags: dict[str, str]) -> dict:
    """``{config field: value}`` for the flags the user gave (not None); the others keep the config's default."""
    return {field: getattr(args, flag) for field, flag in flags.items() if getattr(args, flag, None) is not None}


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        metrics = train_command(args)
        print(jsonio.dumps(metrics))
    elif args.action == "generate":
        for text in generate_command(args):
            print(text)
    else:
        print(json.dumps(classify_command(args)))
    return 0


def model_config(args, vocab_size: int):
    from scratchlm.models.gru_lm import GRULMConfig

    return GRULMConfig(vocab_size, **_given(args, _MODEL_FLAGS))  # GRULMConfig checks the values


def write_run(out: Path, codec, model, config, result=None) -> None:
    """The run folder: ``config.json`` and the tokenizer (before training, ``result`` None), then
    ``params.msgpack`` and ``metrics.json`` (after)."""
    from scratchlm.training import checkpoint

    if result is None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps({"model": dataclasses.asdict(model), "tokenizer": codec.kind,
                                                           "seq_len": config.seq_len, "batch_size": config.batch_size,
                                                           "seed": config.seed}, indent=2) + "\n")
        codec.save(out)
        return
    checkpoint.save_params(out / "params.msgpack", result.params)
    jsonio.write(out / "metrics.json", result.metrics)


def pretrain(paragraphs: list[str], codec, model, config, run, *,
             progress: bool | None = None, eval_tokens: int | None = None) -> dict:
    """Train in the opened run folder ``run`` (:class:`scratchlm.training.run.Run`: resuming from its
    checkpoints) and write it; returns the metrics (those on disk when the run was complete)."""
    from scratchlm.training.lm import train_lm
    from scratchlm.training.plots import plot_curves

    if run.state == "complete":
        return json.loads((run.out / "metrics.json").read_text())
    write_run(run.out, codec, model, config)
    result = train_lm(paragraphs, codec, model, config, checkpoint_dir=run.checkpoints,
                      metrics_path=run.out / "metrics.jsonl", progress=progress, eval_tokens=eval_tokens,
                      checkpoint_seconds=run.config.checkpoint_every)
    write_run(run.out, codec, model, config, result)
    plot_curves(run.out / "curves.png", [run.out / "metrics.jsonl"], title="GRU language model (gru-lm train)",
                loss="cross-entropy (nats/token)", metric="valid_perplexity")
    run.finish()
    return result.metrics


def train_command(args: argparse.Namespace) -> dict:
    from scratchlm.data import corpora
    from scratchlm.data.codec import TextCodec
    from scratchlm.training.lm import LMConfig, held_out

    given = _given(args, _LM_FLAGS)
    if given.get("clip_norm") == 0:
        given["clip_norm"] = None  # --clip-norm 0: no clipping
    config = LMConfig(**given)
    model_config(args, 2)  # the flags' checks, before the corpus is read
    checks.at_least("vocab_size", args.vocab_size, 1)
    checks.at_least("min_count", args.min_count, 1)
    checks.source(args.corpus, "--corpus")
    checks.source(args.tokenizer, "--tokenizer", ("word",))
    check_run_folder(args)
    paragraphs = corpora.load_corpus(args.corpus)
    vocabulary = {"tokenizer": args.tokenizer, "vocab_size": args.vocab_size, "min_count": args.min_count}
    data, settings = lm_run_settings(paragraphs, config, vocabulary)
    settings["model"] = dataclasses.asdict(model_config(args, 2))
    settings["model"].pop("vocab_size")  # follows from the data and the vocabulary's settings
    if complete_run(args, command="gru-lm train", settings=settings, data=data):  # before the vocabulary is built
        return json.loads((Path(args.out) / "metrics.json").read_text())
    n_valid = held_out(paragraphs, config.valid_fraction)
    codec = TextCodec.build(args.tokenizer, paragraphs[:-n_valid], max_vocab=args.vocab_size, min_count=args.min_count)
    model = model_config(args, codec.vocab_size)
    run = open_lm_run(args, paragraphs, model, config, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                      min_count=args.min_count)
    return pretrain(paragraphs, codec, model, config, run)


def lm_run_settings(paragraphs, config, vocabulary: dict) -> tuple[str, dict]:
    """The data digest and the settings of a GRU LM run known before its vocabulary is built: the LM's config
    and the vocabulary's (:func:`open_lm_run` adds the model's)."""
    from scratchlm.training.run import data_digest

    tokenizer = vocabulary.get("tokenizer", "word")
    data = data_digest(paragraphs, *([] if tokenizer == "word" else [Path(tokenizer)]))
    return data, {"lm": dataclasses.asdict(config),
                  **{k: (v if k != "tokenizer" or v == "word" else "file") for k, v in vocabulary.items()}}


def open_lm_run(args, paragraphs, model, config, **vocabulary):
    """The run folder of a GRU LM run: its settings are the two configs and the vocabulary's."""
    data, settings = lm_run_settings(paragraphs, config, vocabulary)
    settings = {"lm": settings.pop("lm"), "model": dataclasses.asdict(model), **settings}
    return start_run(args, command="gru-lm train", settings=settings, data=data, total_steps=config.steps)


def generate_command(args: argparse.Namespace) -> list[str]:
    import jax

    from scratchlm.training.lm import load_trained, sample_text

    for name in ("max_new_tokens", "samples"):
        if getattr(args, name) is not None:
            checks.at_least(name, getattr(args, name), 1)
    for name in ("temperature", "top_k"):
        if getattr(args, name) is not None:
            checks.at_least(name, getattr(args, name), 0)
    if args.top_p is not None:
        checks.fraction("top_p", args.top_p, low_open=True)
    checks.input_folder(args.checkpoint, "--checkpoint")
    params, config, codec = load_trained(args.checkpoint)
    given = {k: getattr(args, k) for k in ("max_new_tokens", "temperature", "top_k", "top_p", "samples")
             if getattr(args, k) is not None}  # the others: sample_text's defaults
    return sample_text(params, config, codec, args.prompt, key=jax.random.key(args.seed), **given)


def classify_polarity(params, config, codec, holdout) -> dict:
    """The pretrained GRU with a fresh linear head, fine-tuned and tested on the polarity sentences."""
    from scratchlm.data import corpora
    from scratchlm.models import heads
    from scratchlm.training import classify

    def init_head(key, num_classes):
        return {"lm": params, "classifier": heads.init_uniform(key, config.hidden_size, num_classes)}

    return classify.holdout(classify.gru_encoder(config), init_head, codec.encode, corpora.polarity_sentences(),
                            holdout)


def classify_command(args: argparse.Namespace) -> dict:
    from scratchlm.training.classify import HoldoutConfig
    from scratchlm.training.lm import load_trained

    holdout = HoldoutConfig(**_given(args, _HOLDOUT_FLAGS))
    checks.input_folder(args.checkpoint, "--checkpoint")
    params, config, codec = load_trained(args.checkpoint)
    return classify_polarity(params, config, codec, holdout)


# ----------------------------------------------------------------------------- demo


def demo_step(ctx) -> dict:
    """Pretrain a small GRU LM on the cleaned Wikipedia sample, sample a sentence, fine-tune on polarity."""
    import jax

    from scratchlm.data import corpora
    from scratchlm.data.codec import EOS, TextCodec
    from scratchlm.models.gru_lm import GRULMConfig
    from scratchlm.training.classify import HoldoutConfig
    from scratchlm.training.lm import LMConfig, held_out, load_trained, sample_text

    paragraphs = corpora.wikipedia_paragraphs()
    # Sized for 2 CPU cores: a few seconds with --quick, about a minute otherwise (the model of
    # document 003 §5.2 at reduced width; `scratchlm gru-lm train` has the full-size defaults).  One layer:
    # in 400 steps (about one pass over the sample) a 2-layer stack is still on the unigram plateau
    # (held-out perplexity 272 vs unigram 265, measured 2026-11-23) while one layer reaches 161.
    if ctx.quick:
        sizes = dict(embed=32, hidden=64, layers=1, max_vocab=1000, steps=120, batch=32, seq_len=32, lr=1e-2)
    else:
        sizes = dict(embed=64, hidden=128, layers=1, max_vocab=4000, steps=400, batch=32, seq_len=32, lr=1e-2)
    config = LMConfig(seq_len=sizes["seq_len"], batch_size=sizes["batch"], steps=sizes["steps"], lr=sizes["lr"],
                      seed=ctx.seed)
    n_valid = held_out(paragraphs, config.valid_fraction)
    codec = TextCodec.build("word", paragraphs[:-n_valid], max_vocab=sizes["max_vocab"], min_count=MIN_COUNT)
    model = GRULMConfig(codec.vocab_size, sizes["embed"], sizes["hidden"], sizes["layers"], dropout=0.1)
    run = open_lm_run(ctx.args(), paragraphs, model, config, tokenizer="word", vocab_size=sizes["max_vocab"],
                      min_count=MIN_COUNT, eval_tokens=20000)
    metrics = pretrain(paragraphs, codec, model, config, run, eval_tokens=20000)
    params = load_trained(ctx.out)[0]
    text = sample_text(params, model, codec, "the", key=jax.random.key(ctx.seed), max_new_tokens=25, top_p=0.9)[0]
    sentence = text.split(EOS)[0].strip()
    polarity = classify_polarity(params, model, codec, HoldoutConfig(steps=30 if ctx.quick else 150, seed=ctx.seed))
    return {
        "result": (f"valid perplexity {metrics['valid_perplexity']:.0f} vs unigram {metrics['unigram_perplexity']:.0f} "
                   f"(V={model.vocab_size}); polarity acc {polarity['test_accuracy']:.2f} (majority "
                   f"{polarity['majority_baseline']:.2f}); sample: \"{sentence}\""),
        **metrics, **{f"polarity_{k}": v for k, v in polarity.items()}, "sample": text,
    }
