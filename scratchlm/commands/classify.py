"""`scratchlm classify`: the embedding-bag sigmoid classifier (design document 001 §5.2) on polarity, or
design document 002 §5.2's two-layer LSTM (``--encoder lstm``; ``gru``: GRUs in its place).

Trains on the 200 Pang–Lee movie-review sentences shipped with gensim (or a file of
``__label__pos|neg text`` lines), scoring it by k-fold cross-validation against the majority rate.
``--init`` picks where the embedding table starts: ``random``; ``minilm``, the input token
embeddings of the shipped all-MiniLM-L6-v2 encoder (each word's vector is the mean of its WordPiece
pieces' vectors, so the words stay scratchlm's word tokens); or a word2vec text file, e.g. the
``vectors.txt`` that ``scratchlm word2vec`` or ``scratchlm glove`` writes.  ``--freeze`` keeps the
table fixed and trains only the output layer.  Several ``--lr`` values are chosen among by nested
cross-validation.  ``--encoder lstm|gru`` trains the recurrent model instead (minibatches of
``--batch-size`` for ``--epochs``, Adam at one constant ``--lr``), scored on the same folds and reported
beside the bag of embeddings (its defaults, the same folds) and the majority rate.  ``--out`` is the run
folder (:mod:`scratchlm.training.run`): ``run.json``, one JSON-lines log per fold, ``summary.json`` and
``curves.png``.  A fold is the unit of work (it trains in about a second): each finished fold's record is
its checkpoint (``foldK.result.json``, kept until the run ends), and an interrupted run, run again, reads
the finished folds back and trains the others.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from scratchlm import checks, jsonio
from scratchlm.commands.common import add_run_arguments, check_run_folder, complete_run, start_run
from scratchlm.commands.flags import config_flag, seed
from scratchlm.errors import ScratchlmError

# A finished outer fold's record, beside its log (fold0.jsonl -> fold0.result.json): the checkpoint of a run whose
# unit of work is a fold (a fold trains in about a second); dropped at the end unless --keep-checkpoints.
FOLD_DONE = ".result.json"

# The grid nested CV chooses from (the demo, benchmarks/classifier.py): half-decade steps around the
# 0.01 that the random-init model was first tuned with.
LEARNING_RATES = (0.01, 0.03, 0.1)


# Defaults live once, in training/embedding_bag.py's CVConfig; a flag left out is None here and takes
# that default when the command runs (reading the dataclass while the parser is built would import JAX
# before ``cli.use_compile_cache`` sets the environment JAX reads at import).
_FLAGS = {"folds": "folds", "embed_dim": "dim", "steps": "steps", "weight_decay": "weight_decay",
          "dropout": "dropout", "seed": "seed"}
# ... and in training/recurrent.py's RecurrentCVConfig for --encoder lstm|gru.
_RECURRENT_FLAGS = {"folds": "folds", "embed_dim": "dim", "hidden_size": "hidden", "epochs": "epochs",
                    "batch_size": "batch_size", "seed": "seed"}
_BAG_ONLY = ("steps", "weight_decay", "dropout")
ENCODERS = ("bag", "gru", "lstm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cv = "scratchlm.training.embedding_bag:CVConfig."
    rnn = "scratchlm.training.recurrent:RecurrentCVConfig."
    parser.add_argument("--encoder", default="bag", choices=ENCODERS,
                        help="bag: embedding bag (design document 001); lstm: embedding, LSTM(128), LSTM(128), one "
                             "sigmoid unit (design document 002 §5.2); gru: the same with GRUs")
    parser.add_argument("--data", default="polarity",
                        help="'polarity' (gensim's sentences) or a file of '__label__pos|neg text' lines")
    parser.add_argument("--init", default="random",
                        help="embedding table: 'random', 'minilm' (the shipped MiniLM's token embeddings) "
                             "or a word2vec text file")
    parser.add_argument("--freeze", action="store_true", help="keep the embedding table fixed (train only w, b)")
    config_flag(parser, "--folds", type=int, help="outer cross-validation folds", source=cv + "folds")
    config_flag(parser, "--dim", type=int, help="embedding width with --init random (pretrained: the vectors' width); "
                "--encoder lstm|gru: RecurrentCVConfig.embed_dim (64) by default", source=cv + "embed_dim")
    config_flag(parser, "--steps", type=int, help="full-batch AdamW steps per fold", source=cv + "steps")
    config_flag(parser, "--lr", type=float, nargs="+", source=cv + "learning_rates",
                help="AdamW's learning rate; several: each outer fold picks one by inner 3-fold CV on its "
                     "training part")
    config_flag(parser, "--weight-decay", type=float, help="AdamW's decoupled weight decay", source=cv + "weight_decay")
    config_flag(parser, "--dropout", type=float, help="drop rate on the token embeddings while training",
                source=cv + "dropout")
    config_flag(parser, "--seed", type=seed, help="folds, initialisation and dropout", source=cv + "seed")
    config_flag(parser, "--hidden", type=int, help="--encoder lstm|gru: units of each recurrent layer",
                source=rnn + "hidden_size")
    config_flag(parser, "--epochs", type=int, help="--encoder lstm|gru: passes over each fold's training part",
                source=rnn + "epochs")
    config_flag(parser, "--batch-size", type=int, help="--encoder lstm|gru: sentences a step",
                source=rnn + "batch_size")
    add_run_arguments(parser)


def _load(spec: str) -> tuple[list[str], list[int]]:
    from scratchlm.data import corpora, tasks

    pairs = corpora.polarity_sentences() if spec == "polarity" else tasks.read_fasttext_labels(spec)
    return [t for t, _ in pairs], [y for _, y in pairs]


def evaluate(args_like) -> dict:
    from scratchlm.training.embedding_bag import CVConfig, cross_validate, load_vectors

    if getattr(args_like, "encoder", "bag") != "bag":
        return _evaluate_recurrent(args_like)
    _refuse(args_like, [f for f in _RECURRENT_FLAGS.values() if f not in _FLAGS.values()], "--encoder lstm|gru")
    if getattr(args_like, "init", "random") != "random" and getattr(args_like, "dim", None) is not None:
        # it was ignored, and recorded as the embedding's width
        raise ScratchlmError(f"--dim sizes a random embedding; --init {args_like.init} brings its vectors' width")
    given = {field: getattr(args_like, flag) for field, flag in _FLAGS.items()
             if getattr(args_like, flag, None) is not None}
    if getattr(args_like, "lr", None) is not None:
        given["learning_rates"] = tuple(args_like.lr)
    from scratchlm.training.plots import plot_curves
    from scratchlm.training.run import data_digest

    check_run_folder(args_like)
    config = CVConfig(**given, freeze_embedding=bool(args_like.freeze))
    checks.source(args_like.data, "--data", ("polarity",))
    checks.source(args_like.init, "--init", ("random", "minilm"))
    texts, labels = _load(args_like.data)
    init = args_like.init
    vectors_file = [Path(init)] if init not in ("random", "minilm") and Path(init).is_file() else []
    settings = {"cv": dataclasses.asdict(config), "init": init if not vectors_file else "file"}
    digest = data_digest(texts, [str(y) for y in labels], *vectors_file)
    if complete_run(args_like, command="classify", settings=settings, data=digest, unit="fold"):
        return json.loads((Path(args_like.out) / "summary.json").read_text())  # before the vectors are read
    vectors = load_vectors(init, texts)  # a damaged vectors file is refused before the run folder is opened
    run = start_run(args_like, command="classify", settings=settings, data=digest, total_steps=config.folds,
                    unit="fold", position=lambda folder: len(list(folder.glob(f"fold*{FOLD_DONE}"))))
    out = run.out
    for log in out.glob("fold*.jsonl"):  # an unfinished fold starts over (its log is written again)
        if not (out / f"{log.stem}{FOLD_DONE}").exists():
            log.unlink()

    def done(k: int) -> dict | None:
        path = out / f"fold{k}{FOLD_DONE}"
        return json.loads(path.read_text()) if path.exists() else None

    def on_fold(k: int, record: dict) -> None:
        jsonio.write(out / f"fold{k}{FOLD_DONE}", record)
        run.checkpointed(out / f"fold{k}{FOLD_DONE}")  # run.json: the folds done

    result = cross_validate(texts, labels, config, vectors=vectors, metrics_dir=out, done=done, on_fold=on_fold)
    result["init"] = Path(init).name if vectors is not None and init != "minilm" else init
    result["frozen"] = bool(args_like.freeze)
    jsonio.write(out / "summary.json", result)
    logs = sorted(out.glob("fold*.jsonl"))
    plot_curves(out / "curves.png", logs, title="embedding-bag classifier: one curve per outer fold",
                loss="binary cross-entropy (nats)", metric=None, labels=[p.stem for p in logs])
    if not run.config.keep_checkpoints:  # the finished folds are in summary.json
        for path in out.glob(f"fold*{FOLD_DONE}"):
            path.unlink()
    run.finish()
    return result


def _refuse(args_like, flags, encoders: str) -> None:
    given = [f"--{f.replace('_', '-')}" for f in flags if getattr(args_like, f, None) is not None]
    if given:
        raise ScratchlmError(f"{', '.join(given)} only apply to {encoders}")


def _evaluate_recurrent(args_like) -> dict:
    """``--encoder lstm|gru``: the recurrent model's cross-validation, beside the bag's on the same folds."""
    from scratchlm.training.embedding_bag import CVConfig, cross_validate
    from scratchlm.training.plots import plot_curves
    from scratchlm.training.recurrent import RecurrentCVConfig
    from scratchlm.training.recurrent import cross_validate as cross_validate_recurrent
    from scratchlm.training.run import data_digest

    _refuse(args_like, _BAG_ONLY, "--encoder bag")
    if args_like.init != "random" or args_like.freeze:
        raise ScratchlmError("--init and --freeze only apply to --encoder bag (the recurrent models start random)")
    given = {field: getattr(args_like, flag) for field, flag in _RECURRENT_FLAGS.items()
             if getattr(args_like, flag, None) is not None}
    if getattr(args_like, "lr", None) is not None:
        if len(args_like.lr) != 1:
            raise ScratchlmError(f"--encoder {args_like.encoder} trains at one --lr, got {len(args_like.lr)}")
        given["lr"] = args_like.lr[0]
    config = RecurrentCVConfig(cell=args_like.encoder, **given)
    checks.source(args_like.data, "--data", ("polarity",))
    checks.output_folder(args_like.out)
    texts, labels = _load(args_like.data)
    run = start_run(args_like, command="classify", settings={"encoder": args_like.encoder,
                                                               "cv": dataclasses.asdict(config)},
                    data=data_digest(texts, [str(y) for y in labels]), total_steps=config.folds, unit="fold")
    out = run.out
    if run.state == "complete":
        return json.loads((out / "summary.json").read_text())
    for stale in out.glob("fold*.jsonl"):  # an interrupted run starts over: no checkpoints to resume from
        stale.unlink()
    result = cross_validate_recurrent(texts, labels, config, metrics_dir=out)
    bag = cross_validate(texts, labels, CVConfig(folds=config.folds, seed=config.seed))
    result.update(encoder=args_like.encoder, bag_accuracy=bag["accuracy"], bag_macro_f1=bag["macro_f1"])
    jsonio.write(out / "summary.json", result)
    logs = sorted(out.glob("fold*.jsonl"))
    plot_curves(out / "curves.png", logs, title=f"{args_like.encoder} classifier: one curve per fold",
                loss="binary cross-entropy (nats)", metric=None, labels=[p.stem for p in logs])
    run.finish()
    return result


def _line(r: dict) -> str:
    if r.get("encoder", "bag") != "bag":
        return (f"polarity accuracy {r['accuracy']:.2f} ({r['encoder']}: design document 002's model; "
                f"{r['evaluation'].replace(' cross-validation', ' CV')}; bag of embeddings {r['bag_accuracy']:.2f}; "
                f"majority {r['majority']:.2f})")
    init = f"{r['init']} init{', frozen' if r['frozen'] else ''}"
    evaluation = r["evaluation"].replace(" cross-validation", " CV")
    return f"polarity accuracy {r['accuracy']:.2f} ({init}; {evaluation}; majority {r['majority']:.2f})"


def run(args: argparse.Namespace) -> int:
    r = evaluate(args)
    for f in r["folds"]:
        print(f"fold {f['fold']}: accuracy {f['accuracy']:.3f}  macro-F1 {f['macro_f1']:.3f}  "
              f"({f['n_test']} held out; lr {f['learning_rate']:g})")
    print(_line(r) + f"; macro-F1 {r['macro_f1']:.2f}")
    return 0


def demo_step(ctx) -> dict:
    """MiniLM-initialised, frozen table (nested CV over three learning rates; one fixed rate with --quick),
    then the random-init table for contrast, and (not with --quick: ~25 s on 2 cores) design document 002's
    LSTM on the same folds."""
    common = dict(data="polarity", seed=ctx.seed)  # CVConfig's defaults otherwise: 5 folds, 100 steps, 16-d
    lr = [0.1] if ctx.quick else list(LEARNING_RATES)
    best = evaluate(argparse.Namespace(init="minilm", freeze=True, lr=lr, **common,
                                       **{**vars(ctx.args()), "out": ctx.out / "minilm"}))
    base = evaluate(argparse.Namespace(init="random", freeze=False, lr=lr, **common,
                                       **{**vars(ctx.args()), "out": ctx.out / "random"}))
    step = {"result": _line(best) + f"; random init {base['accuracy']:.2f}",
            **{k: best[k] for k in ("accuracy", "macro_f1", "majority", "folds")},
            "random_init_accuracy": base["accuracy"]}
    if not ctx.quick:
        lstm = evaluate(argparse.Namespace(encoder="lstm", init="random", freeze=False, lr=None, **common,
                                           **{**vars(ctx.args()), "out": ctx.out / "lstm"}))
        step["result"] += f"; document 002's LSTM {lstm['accuracy']:.2f}"
        step["lstm_accuracy"] = lstm["accuracy"]
    return step
