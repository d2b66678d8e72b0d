"""`scratchlm classify`: the embedding-bag sigmoid classifier (design document 001 §5.2) on polarity.

Trains on the 200 Pang–Lee movie-review sentences shipped with gensim (or a file of
``__label__pos|neg text`` lines), scoring it by k-fold cross-validation against the majority rate.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="polarity", help="'polarity' (gensim's sentences) or a file of '__label__pos|neg text' lines")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=16, help="embedding width")
    parser.add_argument("--steps", type=int, default=100, help="full-batch AdamW steps per fold")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for per-fold JSON-lines metrics and a summary")


def _load(spec: str) -> tuple[list[str], list[int]]:
    from scratchlm.data import corpora
    from scratchlm.errors import CorpusError

    if spec == "polarity":
        pairs = corpora.polarity_sentences()
    else:
        pairs = []
        for number, line in enumerate(corpora.read_lines(spec), start=1):
            label, _, text = line.partition(" ")
            if label not in ("__label__pos", "__label__neg"):
                raise CorpusError(f"{spec}:{number}: expected '__label__pos' or '__label__neg' first, got {label!r}")
            pairs.append((text, int(label == "__label__pos")))
    return [t for t, _ in pairs], [y for _, y in pairs]


def evaluate(args_like) -> dict:
    from scratchlm.models.classifier import CVConfig, cross_validate

    texts, labels = _load(args_like.data)
    config = CVConfig(
        folds=args_like.folds, embed_dim=args_like.dim, steps=args_like.steps, learning_rate=args_like.lr,
        weight_decay=args_like.weight_decay, seed=args_like.seed,
    )
    out = args_like.out
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    result = cross_validate(texts, labels, config, metrics_dir=out)
    if out is not None:
        (Path(out) / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _line(r: dict) -> str:
    return f"polarity accuracy {r['accuracy']:.2f} ({r['evaluation'].replace(' cross-validation', ' CV')}; majority {r['majority']:.2f})"


def run(args: argparse.Namespace) -> int:
    r = evaluate(args)
    for f in r["folds"]:
        print(f"fold {f['fold']}: accuracy {f['accuracy']:.3f}  macro-F1 {f['macro_f1']:.3f}  ({f['n_test']} held out)")
    print(_line(r) + f"; macro-F1 {r['macro_f1']:.2f}")
    return 0


def demo_step(ctx) -> dict:
    args = argparse.Namespace(data="polarity", folds=5, dim=16, steps=100, lr=0.01, weight_decay=0.01, seed=ctx.seed, out=ctx.out)
    r = evaluate(args)
    return {"result": _line(r), "accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "majority": r["majority"], "folds": r["folds"]}
