"""`scratchlm generate`: continue a prompt with a GPT-2-layout model through the key/value cache.

    scratchlm generate --model runs/gpt/model --prompt "The history of" --top-p 0.9 --samples 3

``--model`` is a folder with ``config.json``, ``model.safetensors`` (HuggingFace's GPT-2 layout, as
``scratchlm pretrain --arch gpt`` writes it or ``GPT2LMHeadModel.save_pretrained`` does) and
``tokenizer.json``.  Prints one continuation a line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scratchlm.commands.flags import config_flag, seed

_SAMPLE = "scratchlm.models.gpt:generate_text."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True,
                        help="a folder with config.json, model.safetensors and tokenizer.json")
    parser.add_argument("--prompt", required=True, help="the text to continue")
    config_flag(parser, "--max-new-tokens", type=int, help="tokens to generate", source=_SAMPLE + "max_new_tokens")
    config_flag(parser, "--temperature", type=float, help="0 = greedy", source=_SAMPLE + "temperature")
    config_flag(parser, "--top-k", type=int, help="0: no top-k cut", source=_SAMPLE + "top_k")
    config_flag(parser, "--top-p", type=float, help="nucleus mass, a fraction in (0, 1]", source=_SAMPLE + "top_p")
    config_flag(parser, "--samples", type=int, help="continuations to print", source=_SAMPLE + "samples")
    parser.add_argument("--seed", type=seed, default=0, help="the sampling draws")


def run(args: argparse.Namespace) -> int:
    from scratchlm import checks
    from scratchlm.commands.flags import resolve
    from scratchlm.errors import ScratchlmError

    settings = {name: getattr(args, name) if getattr(args, name) is not None else resolve(_SAMPLE + name)
                for name in ("max_new_tokens", "temperature", "top_k", "top_p", "samples")}
    checks.at_least("max_new_tokens", settings["max_new_tokens"], 1)
    checks.at_least("temperature", settings["temperature"], 0)
    checks.at_least("top_k", settings["top_k"], 0)
    checks.fraction("top_p", settings["top_p"], low_open=True)
    checks.at_least("samples", settings["samples"], 1)
    checks.input_folder(args.model, "--model")
    tokenizer_file = args.model / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise ScratchlmError(f"{tokenizer_file} not found: --model needs the tokenizer beside the weights")

    import jax

    from scratchlm import tokenizers
    from scratchlm.models import gpt

    config, params = gpt.from_pretrained(args.model)
    tokenizer = tokenizers.load(tokenizer_file)
    for text in gpt.generate_text(params, args.prompt, config=config, tokenizer=tokenizer,
                                  key=jax.random.key(args.seed), **settings):
        print(text)
    return 0


def demo_step(ctx) -> dict:
    """The demo's GPT step: pretrain a small GPT on the cleaned Wikipedia sample (``pretrain --arch gpt``,
    byte-level BPE trained by scratchlm), report its held-out perplexity beside a GRU LM's and the unigram
    model's on the same tokens, continue a prompt through the key/value cache, and fine-tune it on the polarity
    sentences from the last real token's state (:func:`scratchlm.training.classify.gpt_encoder`, as ``gru-lm
    classify`` does for the GRU).

    The GRU LM (one layer as wide as the GPT, :func:`scratchlm.training.lm.train_on_ids`) trains on the GPT's
    training rows as one stream, for as many steps of as many tokens, and is scored on the GPT's held-out rows
    (:func:`scratchlm.training.causal_lm.token_rows`), each from a zero state as the GPT reads each row from its
    start: the same targets, the same contexts."""
    import jax

    from scratchlm import tokenizers
    from scratchlm.commands.pretrain import pretrain_gpt_command
    from scratchlm.data import corpora
    from scratchlm.models import gpt, gru_lm, heads
    from scratchlm.training import classify
    from scratchlm.training.causal_lm import token_rows
    from scratchlm.training.lm import LMConfig, train_on_ids
    from scratchlm.training.pretrain import PretrainConfig

    quick = ctx.quick
    # Sized for 2 CPU cores: seconds with --quick, about a minute otherwise (200 steps: at 400 the step, with
    # its GRU LM on the same tokens, took 125 s of a 324 s full demo, over the demo's 5-minute budget).
    args = argparse.Namespace(
        arch="gpt", corpus="wiki", tokenizer=None, vocab_size=1000 if quick else 4000, layers=2,
        hidden=64 if quick else 128, heads=2, intermediate=None, seq_len=64, batch_size=16 if quick else 32,
        steps=40 if quick else 200, lr=1e-3 if quick else 3e-3, warmup_steps=None, weight_decay=None, dropout=0.0,
        init=None, bf16=False, fused=False, pre_ln=False, limit=300 if quick else None, eval_every=None,
        seed=ctx.seed, mesh=None, coordinator=None, num_processes=None, process_id=None, **vars(ctx.args()))
    m = pretrain_gpt_command(args, progress=None)
    config, params = gpt.from_pretrained(ctx.out / "model")
    tokenizer = tokenizers.load(ctx.out / "model" / "tokenizer.json")
    texts = corpora.load_corpus("wiki")[: args.limit]
    train_rows, heldout_rows = token_rows(texts, tokenizer, PretrainConfig(seq_len=args.seq_len))
    assert len(heldout_rows) == m["heldout_sequences"], "the GPT's held-out rows"
    gru_config = gru_lm.GRULMConfig(config.vocab_size, embed_size=args.hidden, hidden_size=args.hidden, num_layers=1,
                                    dropout=0.0)
    # lr 1e-2: the GRU step's (commands/gru_lm.py: demo_step); the GPT's steps, batch and window, so both see as
    # many training tokens
    gru = train_on_ids(train_rows.ravel(), heldout_rows.ravel(), gru_config,
                       LMConfig(seq_len=args.seq_len, batch_size=args.batch_size, steps=args.steps, lr=1e-2,
                                seed=ctx.seed), progress=False)
    gru_perplexity = gru_lm.perplexity(gru.params, heldout_rows, config=gru_config, seq_len=heldout_rows.shape[1] - 1)
    text = gpt.generate_text(params, "The history of", config=config, tokenizer=tokenizer,
                             key=jax.random.key(ctx.seed), max_new_tokens=24, top_p=0.9)[0]

    def init_head(key, num_classes):
        return {"gpt": params, "classifier": heads.init_normal(key, config.n_embd, num_classes,
                                                               config.initializer_range)}

    def encode_text(text):
        return tokenizer.encode(text, add_special_tokens=False).ids[: config.n_positions]

    polarity = classify.holdout(classify.gpt_encoder(config), init_head, encode_text, corpora.polarity_sentences(),
                                classify.HoldoutConfig(steps=30 if quick else 150, seed=ctx.seed))
    return {"result": (f"held-out perplexity {m['perplexity_start']:.0f} -> {m['perplexity']:.0f} vs GRU LM "
                       f"{gru_perplexity:.0f} and unigram {m['unigram_perplexity']:.0f} on the same tokens (BPE "
                       f"V={m['vocab_size']}); polarity acc "
                       f"{polarity['test_accuracy']:.2f} (majority {polarity['majority_baseline']:.2f}); "
                       f"sample: \"{text}\""),
            **{f"polarity_{k}": v for k, v in polarity.items()},
            "heldout_loss_start": m["heldout_loss_start"], "heldout_loss_end": m["heldout_loss_end"],
            "perplexity": m["perplexity"], "unigram_perplexity": m["unigram_perplexity"],
            "gru_perplexity": gru_perplexity, "gru_parameters": sum(int(x.size) for x in jax.tree.leaves(gru.params)),
            "tokens_per_s": m["tokens_per_s"], "parameters": m["parameters"], "vocab_size": m["vocab_size"],
            "train_seconds": m["train_seconds"], "sample": text}
