"""LoRA (Hu et al. 2021) against full fine-tuning of MiniLM, both through scratchlm's one fine-tuning recipe.

The same folds, dev splits, batches, initial classifier, epochs and schedule (AdamW, decay 0.01, clip 1,
10% warm-up then linear decay, dropout 0.1, best dev epoch kept) on both sides; what differs is what
trains: every weight (full) or rank-``r`` adapters on ``query`` and ``value`` plus the classifier
(LoRA, PEFT's default targets), and the learning rate (LoRA's adapters start at B = 0 and are
scaled by alpha / r, so they take a larger one: Hu et al. 2021, Table 9, use 4e-4 to 5e-4 for
RoBERTa-base).

Figures: polarity accuracy by k-fold cross-validation over several seeds (every sentence predicted
once per seed), silver-NER entity F1 (``--ner-train 0`` skips it), the trainable fraction, the
optimizer state's bytes and the training seconds per epoch (steady state, compilation excluded).  The
"peer" column is full fine-tuning.  Run: ``python -m benchmarks.lora [--quick]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys

import numpy as np

from benchmarks.common import figure, report
from scratchlm.data import batching
from scratchlm.training import cv


def polarity(config, pretrained, encoder, data, folds: int) -> dict:
    """k-fold accuracy and median seconds per epoch of one seed (``config.seed``)."""
    import jax

    from scratchlm.training import finetune as ft

    labels, seed = data["labels"], config.seed
    predicted, seconds = np.full(len(labels), -1), []
    for f, (train_index, test_index) in enumerate(cv.kfold(len(labels), folds, seed, stratify_by=labels)):
        fit_index, dev_index = cv.dev_split(labels, train_index, 0.1, seed + f)
        train, dev, test = (batching.subset(data, i) for i in (fit_index, dev_index, test_index))
        start = ft.init_classifier(jax.random.fold_in(jax.random.key(seed), f), pretrained, encoder, config)
        result = ft.fit(start, train, dev, encoder=encoder, config=config)
        predicted[test_index] = ft.predict(result.params, test, encoder=encoder, config=config)
        seconds.append(result.seconds_per_epoch)
    timed = [s for s in seconds if s is not None]
    return {"accuracy": float(np.mean(predicted == labels)), "seconds": float(np.median(timed)) if timed else None}


def ner(config, pretrained, encoder, data, names) -> dict:
    """Entity F1 on the test split and seconds per epoch of one seed."""
    import jax

    from scratchlm.training import finetune as ft
    from scratchlm.training import seqeval

    (train, _), (dev, dev_words), (test, test_words) = data["train"], data["dev"], data["test"]
    start = ft.init_classifier(jax.random.key(config.seed), pretrained, encoder, config)
    result = ft.fit(start, train, None, encoder=encoder, config=config,
                    dev_eval=lambda p: ft.evaluate(p, dev, encoder=encoder, config=config, tags=names,
                                                   n_words=dev_words))
    predicted = ft.predict(result.params, test, encoder=encoder, config=config)
    return {"f1": seqeval.entity_f1(*ft.word_tags(test, predicted, test_words, names)),
            "seconds": result.seconds_per_epoch}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0, help="LoRA's alpha (scale alpha / rank)")
    parser.add_argument("--epochs", type=int, default=4)  # benchmarks/finetune.py's recipe for these small sets
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4, help="full fine-tuning's peak rate")
    parser.add_argument("--lora-lr", type=float, default=5e-4, help="LoRA's peak rate (Hu et al. 2021, Table 9)")
    parser.add_argument("--lora-epochs", type=int, default=None, help="LoRA's epochs (default: --epochs)")
    parser.add_argument("--schedule", default="linear", help="both sides' FinetuneConfig.schedule")
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--ner-train", type=int, default=800, help="silver NER training sentences (0: no NER)")
    parser.add_argument("--ner-eval", type=int, default=200, help="dev and test sentences used")
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 folds, 2 epochs, no NER")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.folds, args.epochs, args.ner_train = 1, 2, 2, 0

    import jax

    from scratchlm.data.tasks import encode_task as encode
    from scratchlm.data.tasks import load_task
    from scratchlm.nn.lora import LoraConfig
    from scratchlm.training import encoders
    from scratchlm.training import finetune as ft
    from scratchlm.training.encoders import load_init

    bert_config, pretrained, tok = load_init("minilm")
    encoder = encoders.of(bert_config)
    lora = LoraConfig(r=args.rank, lora_alpha=args.alpha)
    pol_data = encode(load_task("polarity", None), tok, args.max_length)
    if args.ner_train:
        task = load_task("wikiner", None)
        splits = task["splits"]
        task["splits"] = {"train": splits["train"][: args.ner_train], "dev": splits["dev"][: args.ner_eval],
                          "test": splits["test"][: args.ner_eval]}
        ner_data, ner_names = encode(task, tok, args.max_length), task["labels"]

    def configs(task: str, num_labels: int, seed: int) -> dict:
        full = ft.FinetuneConfig(task=task, num_labels=num_labels, lr=args.lr, epochs=args.epochs,
                                 batch_size=args.batch, seed=seed, schedule=args.schedule)
        return {"full": full, "lora": dataclasses.replace(full, lr=args.lora_lr, lora=lora,
                                                          epochs=args.lora_epochs or args.epochs)}

    runs = {"polarity": [], "ner": []}
    for seed in range(args.seeds):
        runs["polarity"].append({side: polarity(c, pretrained, encoder, pol_data, args.folds)
                                 for side, c in configs("sequence", 2, seed).items()})
        if args.ner_train:
            runs["ner"].append({side: ner(c, pretrained, encoder, ner_data, ner_names)
                                for side, c in configs("token", len(ner_names), seed).items()})
        print({"seed": seed, **{k: v[-1] for k, v in runs.items() if v}}, file=sys.stderr, flush=True)

    sides = configs("sequence", 2, 0)
    shapes = {side: jax.eval_shape(lambda c=c: ft.init_classifier(jax.random.key(0), pretrained, encoder, c))
              for side, c in sides.items()}
    cost = {side: ft.training_cost(shapes[side], c, encoder=encoder) for side, c in sides.items()}

    def stat(task, side, key, f=np.mean):
        values = [r[side][key] for r in runs[task] if r[side][key] is not None]
        return float(f(values)) if values else None

    def spread(task, side, key):
        values = [r[side][key] for r in runs[task]]
        return float(statistics.stdev(values)) if len(values) > 1 else 0.0

    peer = "full fine-tuning (scratchlm)"
    figures = [figure(f"polarity k-fold accuracy, LoRA r={args.rank} vs full", stat("polarity", "lora", "accuracy"),
                      stat("polarity", "full", "accuracy"), unit="accuracy", peer_name=peer),
               figure("trainable fraction", cost["lora"]["trainable_fraction"], cost["full"]["trainable_fraction"],
                      unit="fraction", peer_name=peer, higher_is_better=False),
               figure("optimizer state", cost["lora"]["optimizer_state_bytes"], cost["full"]["optimizer_state_bytes"],
                      unit="bytes", peer_name=peer, higher_is_better=False),
               figure("polarity seconds per epoch", stat("polarity", "lora", "seconds", np.median),
                      stat("polarity", "full", "seconds", np.median), unit="s", peer_name=peer,
                      higher_is_better=False)]
    if args.ner_train:
        figures.append(figure("silver-NER entity F1", stat("ner", "lora", "f1"), stat("ner", "full", "f1"),
                              unit="F1", peer_name=peer))
    return report("lora", figures, settings=vars(args), cost=cost, runs=runs,
                  std={"polarity_accuracy": {"scratchlm": spread("polarity", "lora", "accuracy"),
                                             "peer": spread("polarity", "full", "accuracy")}})


if __name__ == "__main__":
    main()
