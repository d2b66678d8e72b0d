"""`scratchlm generate`: continue a prompt with a GPT-2-layout model through the key/value cache.

    scratchlm generate --model runs/gpt/model --prompt "The history of" --top-p 0.9 --samples 3

``--model`` is a folder with ``config.json``, ``model.safetensors`` (HuggingFace's GPT-2 layout, as
``scratchlm pretrain --arch gpt`` writes it or ``GPT2LMHeadModel.save_pretrained`` does) and
``tokenizer.json``.  Prints one continuation a line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scratchlm.commands.flags import config_flag

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
    parser.add_argument("--seed", type=int, default=0, help="the sampling draws")


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
