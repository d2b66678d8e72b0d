"""Polarity classifier: cross-validated accuracy by embedding initialisation, over several fold shuffles.

    python benchmarks/classifier.py --init random minilm PATH/vectors.txt --seeds 0 1 2

For each ``--init`` (see ``scratchlm classify --init``) and each table mode (fine-tuned, frozen),
every seed reshuffles the 5 folds and the learning rate is chosen per outer fold by nested CV over
``--lr``, so no figure saw its test fold.  Prints one JSON line: per setting, the accuracies, their
mean and standard deviation over seeds, and the majority-class rate.  No peer: the figures are
accuracies, not speeds (seconds are reported for scale).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

try:
    from benchmarks.common import report
except ModuleNotFoundError:  # run as a script: python benchmarks/classifier.py
    from common import report


def main(argv=None) -> dict:
    from scratchlm.commands.classify import LEARNING_RATES, _load
    from scratchlm.training.embedding_bag import CVConfig, cross_validate, load_vectors

    parser = argparse.ArgumentParser()
    parser.add_argument("--init", nargs="+", default=["random", "minilm"])
    parser.add_argument("--modes", nargs="+", default=["finetune", "frozen"], choices=["finetune", "frozen"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lr", type=float, nargs="+", default=list(LEARNING_RATES))
    parser.add_argument("--dim", type=int, default=16, help="width of the random table")
    parser.add_argument("--quick", action="store_true", help="a smoke run: the random table, one seed, lr 0.1")
    args = parser.parse_args(argv)
    if args.quick:
        args.init, args.seeds, args.lr = ["random"], [0], [0.1]
    texts, labels = _load("polarity")
    rows = []
    for init in args.init:
        vectors = load_vectors(init, texts)
        for mode in args.modes:
            t0 = time.perf_counter()
            runs = [cross_validate(texts, labels, CVConfig(seed=s, learning_rates=tuple(args.lr), embed_dim=args.dim,
                                                           freeze_embedding=mode == "frozen"), vectors=vectors)
                    for s in args.seeds]
            acc = [r["accuracy"] for r in runs]
            rows.append({"init": init, "mode": mode, "dim": args.dim if vectors is None else vectors.dim,
                         "accuracies": acc, "mean": float(np.mean(acc)),
                         "std": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                         "chosen_lr": [[f["learning_rate"] for f in r["folds"]] for r in runs],
                         "majority": runs[0]["majority"], "seconds": time.perf_counter() - t0})
            print(f"# {init} {mode}: {np.round(acc, 3)} mean {np.mean(acc):.3f}", flush=True)
    return report("classifier", [], settings={"seeds": args.seeds, "learning_rates": args.lr, "folds": 5,
                                              "inner_folds": 3, "steps": 100}, results=rows)


if __name__ == "__main__":
    main()
