"""`scratchlm gru-lm`: pretrain the GRU language model, sample from it, fine-tune it on polarity.

    scratchlm gru-lm train --corpus wiki --tokenizer word --layers 2 --hidden 512 --embed 256 \\
        --dropout 0.1 --seq-len 64 --batch 32 --steps 2000 --out runs/gru
    scratchlm gru-lm generate --checkpoint runs/gru --prompt "the history of" --top-p 0.9
    scratchlm gru-lm classify --checkpoint runs/gru --steps 200

``train`` holds out the last ``--valid-fraction`` of the corpus's paragraphs (whole articles of the
Wikipedia sample, in file order) and writes into ``--out``: ``config.json``, the tokenizer
(``vocab.json`` or ``tokenizer.json``), the loop's checkpoints (``checkpoints/``, resumed when the
command is run again), ``params.msgpack`` (the final weights), ``metrics.jsonl`` (the loop's log)
and ``metrics.json`` (train and validation perplexity, the unigram baseline, tokens/s).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from scratchlm.errors import ScratchlmError

EOS = "<eos>"  # ends each paragraph in the word-level token stream


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = sub.add_parser("train", help="pretrain on a corpus with truncated BPTT")
    t.add_argument("--corpus", default="wiki", help="wiki, lee, or a UTF-8 text file (one paragraph a line)")
    t.add_argument("--tokenizer", default="word", help="'word' (a word vocabulary) or PATH to a tokenizer.json")
    t.add_argument("--max-vocab", type=int, default=10000, help="word vocabulary size (specials excluded)")
    t.add_argument("--min-count", type=int, default=2, help="rarer words become <unk>")
    t.add_argument("--layers", type=int, default=2)
    t.add_argument("--hidden", type=int, default=512)
    t.add_argument("--embed", type=int, default=256)
    t.add_argument("--dropout", type=float, default=0.1)
    t.add_argument("--variant", default="cudnn", choices=["cudnn", "cho"])
    t.add_argument("--tie", action="store_true", help="tie the output layer to the embedding (needs --embed == --hidden)")
    t.add_argument("--seq-len", type=int, default=64, help="truncated-BPTT window")
    t.add_argument("--batch", type=int, default=32, help="parallel streams")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--clip", type=float, default=1.0, help="global gradient-norm clip (Pascanu et al. 2013)")
    t.add_argument("--valid-fraction", type=float, default=0.05)
    t.add_argument("--eval-every", type=int, default=0, help="held-out perplexity every N steps (0: at the end only)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", type=Path, required=True)

    g = sub.add_parser("generate", help="continue a prompt")
    g.add_argument("--checkpoint", type=Path, required=True, help="a folder written by `gru-lm train`")
    g.add_argument("--prompt", required=True)
    g.add_argument("--max-new-tokens", type=int, default=40)
    g.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--top-p", type=float, default=0.9)
    g.add_argument("--samples", type=int, default=1)
    g.add_argument("--seed", type=int, default=0)

    c = sub.add_parser("classify", help="fine-tune a classification head on the polarity sentences")
    c.add_argument("--checkpoint", type=Path, required=True, help="a folder written by `gru-lm train`")
    c.add_argument("--steps", type=int, default=200)
    c.add_argument("--lr", type=float, default=1e-3)
    c.add_argument("--batch", type=int, default=16)
    c.add_argument("--test-fraction", type=float, default=0.25)
    c.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    if args.action == "train":
        metrics = train_command(args)
        print(json.dumps(metrics))
    elif args.action == "generate":
        for text in generate_command(args):
            print(text)
    else:
        print(json.dumps(classify_command(args)))
    return 0


# ----------------------------------------------------------------------------- text <-> ids


class TextCodec:
    """The LM's tokenizer: a word :class:`~scratchlm.tokenizers.Vocab` or any tokenizer.json (no JAX here)."""

    def __init__(self, kind: str, impl):
        self.kind, self.impl = kind, impl  # kind: "word" | "file"

    @classmethod
    def build(cls, spec: str, paragraphs: list[str], *, max_vocab: int, min_count: int) -> TextCodec:
        from scratchlm import tokenizers
        from scratchlm.data.corpora import word_tokens

        if spec == "word":
            vocab = tokenizers.Vocab.from_corpus((word_tokens(p) for p in paragraphs), min_count=min_count,
                                                 max_size=max_vocab, specials=("<pad>", "<unk>", EOS))
            return cls("word", vocab)
        if not Path(spec).is_file():
            raise ScratchlmError(f"--tokenizer {spec!r}: give 'word' or the path of a tokenizer.json")
        tok = tokenizers.load(spec)
        tok.no_padding()
        tok.no_truncation()
        return cls("file", tok)

    @classmethod
    def load(cls, folder: Path) -> TextCodec:
        from scratchlm import tokenizers

        if (folder / "vocab.json").is_file():
            return cls("word", tokenizers.Vocab.load(folder / "vocab.json"))
        tok = tokenizers.load(folder / "tokenizer.json")
        tok.no_padding()
        tok.no_truncation()
        return cls("file", tok)

    def save(self, folder: Path) -> None:
        self.impl.save(folder / ("vocab.json" if self.kind == "word" else "tokenizer.json"))

    @property
    def vocab_size(self) -> int:
        return len(self.impl) if self.kind == "word" else self.impl.get_vocab_size()

    @property
    def eos_id(self) -> int | None:
        if self.kind == "word":
            return self.impl.token_to_id(EOS)
        return self.impl.sep_token_id if self.impl.sep_token_id is not None else self.impl.token_to_id("</s>")

    def encode(self, text: str) -> list[int]:
        if self.kind == "word":
            from scratchlm.data.corpora import word_tokens

            return self.impl.encode(word_tokens(text))
        return list(self.impl.encode(text, add_special_tokens=False).ids)

    def decode(self, ids) -> str:
        if self.kind == "word":
            return " ".join(self.impl.decode(ids))
        return self.impl.decode([int(i) for i in ids], skip_special_tokens=False)

    def stream(self, paragraphs: list[str]):
        """All paragraphs as one id stream, each followed by the end-of-paragraph id (when there is one)."""
        import numpy as np

        eos = [] if self.eos_id is None else [self.eos_id]
        return np.asarray([i for p in paragraphs for i in self.encode(p) + eos], dtype=np.int32)


# ----------------------------------------------------------------------------- pretraining


def train_lm(paragraphs: list[str], codec: TextCodec, model_config, *, out: Path, seq_len: int, batch: int,
             steps: int, lr: float = 3e-3, clip: float | None = 1.0, valid_fraction: float = 0.05,
             eval_every: int = 0, seed: int = 0, progress: bool | None = None, eval_tokens: int | None = None) -> tuple[dict, dict]:
    """Pretrain through the shared loop; returns ``(params, metrics)`` and writes ``out`` (see the module doc)."""
    import jax
    import numpy as np

    from scratchlm.models import gru_lm
    from scratchlm.training import checkpoint, loop

    if not 0.0 < valid_fraction < 1.0:
        raise ScratchlmError(f"--valid-fraction must be in (0, 1), got {valid_fraction}")
    n_valid = max(1, round(len(paragraphs) * valid_fraction))
    if len(paragraphs) - n_valid < 1:
        raise ScratchlmError(f"the corpus has {len(paragraphs)} paragraph(s): too few to hold some out for validation")
    train_ids, valid_ids = codec.stream(paragraphs[:-n_valid]), codec.stream(paragraphs[-n_valid:])
    if eval_tokens:
        valid_ids = valid_ids[:eval_tokens]
    streams = gru_lm.make_streams(train_ids, batch)
    valid_streams = gru_lm.make_streams(valid_ids, min(batch, max(1, len(valid_ids) // (seq_len + 1))))

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps({"model": dataclasses.asdict(model_config), "tokenizer": codec.kind,
                                                 "seq_len": seq_len, "batch": batch, "seed": seed}, indent=2) + "\n")
    codec.save(out)

    key_init, key_run = jax.random.split(jax.random.key(seed))
    params = gru_lm.init(key_init, model_config)
    optimizer = loop.make_optimizer(learning_rate=lr, total_steps=steps, schedule="cosine", clip_norm=clip)
    h0 = np.zeros((model_config.num_layers, batch, model_config.hidden_size), np.float32)
    state = loop.init_train_state(params, optimizer, key_run, carry=h0)

    def loss_fn(params, batch, key, h):
        return gru_lm.tbptt_loss(params, batch, key, h, config=model_config)

    def eval_fn(params):
        return {"valid_perplexity": gru_lm.perplexity(params, valid_streams, config=model_config, seq_len=seq_len)}

    step_fn = loop.make_train_step(loss_fn, optimizer, carry=True)
    config = loop.LoopConfig(steps=steps, eval_every=eval_every or steps, log_every=max(1, min(50, steps // 10)),
                             checkpoint_dir=out / "checkpoints", metrics_path=out / "metrics.jsonl", progress=progress)
    t0 = time.perf_counter()
    found = checkpoint.latest_checkpoint(config.checkpoint_dir)
    start = int(checkpoint.read_extra(found).get("data_position", 0)) if found else 0  # a resumed run's first step
    result = loop.train(state, step_fn, lambda step: gru_lm.tbptt_batch(streams, step, seq_len), config=config, eval_fn=eval_fn)
    seconds = time.perf_counter() - t0
    params = result.state.params
    checkpoint.save_params(out / "params.msgpack", params)

    train_sample = gru_lm.make_streams(train_ids[: len(valid_ids)], valid_streams.shape[0])
    metrics = {
        "train_perplexity": gru_lm.perplexity(params, train_sample, config=model_config, seq_len=seq_len),
        "valid_perplexity": result.history[-1]["valid_perplexity"] if result.history else eval_fn(params)["valid_perplexity"],
        "unigram_perplexity": gru_lm.unigram_perplexity(train_ids, valid_streams, model_config.vocab_size),
        "tokens_per_s": (steps - start) * batch * seq_len / seconds if steps > start else None,
        "steps": steps, "train_tokens": int(train_ids.size), "valid_tokens": int(valid_streams.size),
        "vocab_size": model_config.vocab_size, "seconds": seconds,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return params, metrics


def _model_config(args, vocab_size: int):
    from scratchlm.models import gru_lm

    return gru_lm.GRULMConfig(vocab_size, args.embed, args.hidden, args.layers, args.dropout, args.tie, args.variant)


def train_command(args: argparse.Namespace) -> dict:
    from scratchlm.data import corpora

    for name in ("layers", "hidden", "embed", "seq_len", "batch", "steps"):
        if getattr(args, name) < 1:
            raise ScratchlmError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0.0 <= args.dropout < 1.0:
        raise ScratchlmError(f"--dropout must be in [0, 1), got {args.dropout}")
    paragraphs = corpora.load_corpus(args.corpus)
    n_valid = max(1, round(len(paragraphs) * args.valid_fraction))
    codec = TextCodec.build(args.tokenizer, paragraphs[:-n_valid], max_vocab=args.max_vocab, min_count=args.min_count)
    _, metrics = train_lm(paragraphs, codec, _model_config(args, codec.vocab_size), out=args.out, seq_len=args.seq_len,
                          batch=args.batch, steps=args.steps, lr=args.lr, clip=args.clip,
                          valid_fraction=args.valid_fraction, eval_every=args.eval_every, seed=args.seed)
    return metrics


# ----------------------------------------------------------------------------- loading, sampling, fine-tuning


def load_trained(folder: Path):
    """``(params, model_config, codec)`` from a folder written by :func:`train_lm`."""
    import jax

    from scratchlm.models import gru_lm
    from scratchlm.training import checkpoint

    if not (folder / "config.json").is_file() or not (folder / "params.msgpack").is_file():
        raise ScratchlmError(f"{folder} is not a `gru-lm train` output folder (config.json and params.msgpack expected)")
    config = gru_lm.GRULMConfig(**json.loads((folder / "config.json").read_text())["model"])
    target = jax.eval_shape(lambda: gru_lm.init(jax.random.key(0), config))  # shapes only: nothing to draw
    try:
        params = checkpoint.load_params(folder / "params.msgpack", target)
    except ValueError as err:  # flax names the missing or unexpected tensors
        raise ScratchlmError(f"{folder / 'params.msgpack'} does not hold the model of its config.json: {err}") from None
    return params, config, TextCodec.load(folder)


def sample_text(params, config, codec: TextCodec, prompt: str, *, key, max_new_tokens: int = 40, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 0.9, samples: int = 1) -> list[str]:
    """``samples`` continuations of ``prompt`` (the prompt's text followed by the sampled tokens)."""
    import numpy as np

    from scratchlm.models import gru_lm

    ids = codec.encode(prompt)
    if not ids:
        raise ScratchlmError(f"the prompt {prompt!r} holds no token the tokenizer knows: give at least one word")
    new = gru_lm.generate(params, np.tile(np.asarray(ids, np.int32), (samples, 1)), config=config, key=key,
                          max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p)
    return [codec.decode(ids + row.tolist()) for row in new]


def generate_command(args: argparse.Namespace) -> list[str]:
    import jax

    params, config, codec = load_trained(args.checkpoint)
    return sample_text(params, config, codec, args.prompt, key=jax.random.key(args.seed), max_new_tokens=args.max_new_tokens,
                       temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, samples=args.samples)


def finetune_classifier(params, config, codec: TextCodec, examples, *, steps: int, lr: float = 1e-3, batch: int = 16,
                        test_fraction: float = 0.25, seed: int = 0) -> dict:
    """Fine-tune a head on the pretrained GRU over labelled ``(text, label)`` pairs through the shared loop.

    The examples are shuffled once (seeded) and split; minibatches are a deterministic function of
    the step (a fresh permutation per epoch from ``fold_in(seed, epoch)``), all padded to the longest
    text so the step compiles once.  Returns test accuracy beside the majority-class baseline (the
    training split's most frequent class, predicted for every test example).
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from scratchlm.models import gru_lm
    from scratchlm.training import loop

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(examples))
    encoded = [codec.encode(examples[i][0]) or [0] for i in order]
    labels = np.asarray([examples[i][1] for i in order], np.int32)
    T = max(map(len, encoded))
    ids = np.zeros((len(encoded), T), np.int32)
    mask = np.zeros((len(encoded), T), bool)
    for row, seq in enumerate(encoded):
        ids[row, : len(seq)], mask[row, : len(seq)] = seq, True
    n_test = max(1, round(len(encoded) * test_fraction))
    train, test = slice(n_test, None), slice(0, n_test)
    n_train = len(encoded) - n_test
    batch = min(batch, n_train)
    num_classes = int(labels.max()) + 1

    head_params = gru_lm.init_classifier(jax.random.key(seed), params, config, num_classes)
    optimizer = loop.make_optimizer(learning_rate=lr, total_steps=steps, schedule="linear",
                                    warmup_steps=max(1, steps // 10) if steps > 1 else 0, clip_norm=1.0)
    state = loop.init_train_state(head_params, optimizer, jax.random.key(seed + 1))
    step_fn = loop.make_train_step(lambda p, b, k: gru_lm.classifier_loss(p, b, k, config=config), optimizer)
    per_epoch = n_train // batch

    def batch_fn(step: int) -> dict:
        epoch, i = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(n_train)[i * batch : (i + 1) * batch]
        return {"ids": ids[train][perm], "mask": mask[train][perm], "labels": labels[train][perm]}

    result = loop.train(state, step_fn, batch_fn, config=loop.LoopConfig(steps=steps, log_every=0, progress=False))
    logits = jax.jit(lambda p, i, m: gru_lm.classifier_logits(p, i, m, config=config))(result.state.params, ids[test], mask[test])
    accuracy = float(jnp.mean(jnp.argmax(logits, -1) == labels[test]))
    # the baseline a classifier could know: the training split's most frequent class, scored on the test
    # split (the test split's own majority rate would use its labels)
    majority_class = int(np.argmax(np.bincount(labels[train], minlength=num_classes)))
    majority = float(np.mean(labels[test] == majority_class))
    return {"test_accuracy": accuracy, "majority_baseline": majority, "train_examples": n_train, "test_examples": n_test}


def classify_command(args: argparse.Namespace) -> dict:
    from scratchlm.data import corpora

    params, config, codec = load_trained(args.checkpoint)
    return finetune_classifier(params, config, codec, corpora.polarity_sentences(), steps=args.steps, lr=args.lr,
                               batch=args.batch, test_fraction=args.test_fraction, seed=args.seed)


# ----------------------------------------------------------------------------- demo


def demo_step(ctx) -> dict:
    """Pretrain a small GRU LM on the cleaned Wikipedia sample, sample a sentence, fine-tune on polarity."""
    import jax

    from scratchlm.data import corpora
    from scratchlm.models import gru_lm

    paragraphs = corpora.wikipedia_paragraphs()
    # Sized for 2 CPU cores: a few seconds with --quick, about a minute otherwise (the model of
    # document 003 §5.2 at reduced width; `scratchlm gru-lm train` has the full-size defaults).  One layer:
    # in 400 steps (about one pass over the sample) a 2-layer stack is still on the unigram plateau
    # (held-out perplexity 272 vs unigram 265, measured 2026-11-23) while one layer reaches 161.
    if ctx.quick:
        sizes = dict(embed=32, hidden=64, layers=1, max_vocab=1000, steps=120, batch=32, seq_len=32, lr=1e-2)
    else:
        sizes = dict(embed=64, hidden=128, layers=1, max_vocab=4000, steps=400, batch=32, seq_len=32, lr=1e-2)
    n_valid = max(1, round(len(paragraphs) * 0.05))
    codec = TextCodec.build("word", paragraphs[:-n_valid], max_vocab=sizes["max_vocab"], min_count=2)
    config = gru_lm.GRULMConfig(codec.vocab_size, sizes["embed"], sizes["hidden"], sizes["layers"], dropout=0.1)
    params, metrics = train_lm(paragraphs, codec, config, out=ctx.out, seq_len=sizes["seq_len"], batch=sizes["batch"],
                               steps=sizes["steps"], lr=sizes["lr"], seed=ctx.seed, progress=None, eval_tokens=20000)
    text = sample_text(params, config, codec, "the", key=jax.random.key(ctx.seed), max_new_tokens=25, top_p=0.9)[0]
    sentence = text.split(EOS)[0].strip()
    polarity = finetune_classifier(params, config, codec, corpora.polarity_sentences(), steps=30 if ctx.quick else 150,
                                   seed=ctx.seed)
    return {
        "result": (f"valid perplexity {metrics['valid_perplexity']:.0f} vs unigram {metrics['unigram_perplexity']:.0f} "
                   f"(V={config.vocab_size}); polarity acc {polarity['test_accuracy']:.2f} (majority "
                   f"{polarity['majority_baseline']:.2f}); sample: \"{sentence}\""),
        **metrics, **{f"polarity_{k}": v for k, v in polarity.items()}, "sample": text,
    }
