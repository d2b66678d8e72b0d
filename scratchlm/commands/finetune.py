"""`scratchlm finetune`: fine-tune a pretrained encoder on a sequence or token classification task.

    scratchlm finetune --task polarity --init minilm --epochs 3 --lr 5e-5 --batch-size 16 --folds 5 \\
        --seed 0 --out runs/pol
    scratchlm finetune --task wikiner --init minilm --epochs 3 --lr 5e-5 --batch-size 16 --seed 0 --out runs/ner
    scratchlm finetune --task my.jsonl --init runs/bert-small/model --freeze all-but-top-2 --out runs/mine

``--task``: ``polarity`` (the 200 Pang–Lee sentences, k-fold cross-validation), ``wikiner`` (the
silver NER set, train/dev/test), or a file: JSON lines ``{"text", "label"[, "text_pair"]}`` (a
sequence task) or CoNLL columns ``token ... tag`` (a token task); a file is split 80/10/10
deterministically unless ``--folds K`` asks for cross-validation.  ``--init``: ``minilm``, a
folder with ``config.json`` + ``model.safetensors`` in HuggingFace's names (what ``scratchlm
pretrain`` writes in ``OUT/model``; its run folder ``OUT`` stands for it) and, ideally, its
``tokenizer.json``, or a HuggingFace Hub id (:func:`scratchlm.models.hub.resolve`).  A GPT-2 folder
(``model_type`` ``gpt2``: ``scratchlm pretrain --arch gpt``'s, with its ``tokenizer.json``) fine-tunes on
sequence tasks from its last real token (:class:`scratchlm.training.encoders.GPTEncoder`): ``best/`` is then
``GPT2ForSequenceClassification``'s folder, and LoRA targets ``c_attn`` unless ``--lora-targets`` names others.

``--out`` is the run folder (:mod:`scratchlm.training.run`) and receives ``run.json``, ``best/`` (the
best dev checkpoint as a folder transformers loads as it is: ``config.json`` naming the head
(``BertFor{Sequence,Token}Classification``) and the task's labels (``id2label``), ``model.safetensors``
and the tokenizer's files; ``pipeline("text-classification", model=OUT/best)``), ``metrics.json`` (top-level
``accuracy`` and ``f1``, or ``entity_f1``, plus per-fold and per-epoch detail), ``report.txt`` (the
classification reports), ``curves.png`` and, for token tasks, ``confusion.png`` (with the ``plot``
extra).  Running the same command again after a kill resumes: finished folds are read back and an
interrupted one continues from its last checkpoint; a finished run is left as it is; other settings
are refused (``--overwrite`` replaces the run).

With ``--folds`` a fold is the unit of resumption unless checkpoints are asked for: without
``--checkpoint-every`` or ``--keep-checkpoints`` a fold keeps its best dev params in memory and writes
nothing but its log before it ends, then ``fold_K/result.json`` (its predictions and scores) and, when it
is the best fold so far, ``best/``; a fold cut short by a kill starts again from its beginning with the
same key and batches, so the run still ends on an uninterrupted run's bytes.  A polarity fold takes
seconds, and its end-of-fold checkpoint (the parameters and AdamW's two moments: three times MiniLM's
86 MB) and ``best.msgpack`` at each better epoch cost more than a fold's restart would save.  ``--checkpoint-every S``
(given) checkpoints inside folds every S seconds and at each fold's end, as every other run does;
``--keep-checkpoints`` keeps each fold's last two.

``--lora-rank R`` trains low-rank adapters (Hu et al. 2021; :mod:`scratchlm.nn.lora`) on the
``--lora-targets`` layers (default ``query,value``, PEFT's) and the classifier instead of every weight;
``--out`` then also receives ``adapter/``, a PEFT adapter folder (``adapter_config.json``,
``adapter_model.safetensors``) that ``peft.PeftModel.from_pretrained`` loads onto transformers'
``BertFor*Classification`` of the ``--init`` model, while ``best/`` holds the merged model, and
``metrics.json`` reports ``trainable_fraction`` and the optimizer state's bytes beside full fine-tuning's.

``--mesh data=8`` trains data parallel, ``--mesh data=4,model=2`` with the parameters and AdamW
moments sharded 2 ways (FSDP); a resumed run may use another mesh.  ``--coordinator HOST:PORT
--num-processes N --process-id I``: one process per host (:mod:`scratchlm.distributed`).

(About 470 lines: this docstring, the flags of two recipes (full fine-tuning and LoRA) and their checks, the
run's output files for k folds or a train/dev/test split, and the demo's step.  What reads a task or a
model, trains, predicts and scores lives in ``scratchlm/data/tasks.py`` and ``scratchlm/training/``.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import threading
import time
from pathlib import Path

from scratchlm import jsonio
from scratchlm.commands.common import (
    add_parallel_arguments,
    add_run_arguments,
    check_run_folder,
    complete_run,
    given,
    init_source,
    resolve_init,
    result_settings,
    setup_parallel,
    start_run,
)
from scratchlm.commands.flags import config_flag, seed
from scratchlm.errors import ScratchlmError

# Defaults live once, in training/finetune.py's FinetuneConfig (Devlin et al. 2019, appendix A.3, with
# reasons there).  A flag left out is None here and takes that default when the command runs: reading the
# dataclass while the parser is built would import JAX before ``cli.use_compile_cache`` sets the
# environment JAX reads at import.  The run's settings (metrics.json) record the resolved values.
HOLDOUT_PARTS = 10  # without --folds, a sequence task's stratified tenths: one the test set, one the dev set
_CV_CHECKPOINTS = ("; with --folds, a fold writes checkpoints (and its best dev params, best.msgpack) only when "
                   "--checkpoint-every or --keep-checkpoints is given: otherwise a finished fold's result.json is "
                   "the checkpoint, and a fold cut short starts again from its beginning, exactly")
_FLAGS = {name: name for name in ("lr", "epochs", "batch_size", "freeze", "head", "dropout", "weight_decay",
                                  "warmup_fraction", "schedule", "clip_norm", "patience", "seed", "unpad")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    module = "scratchlm.training.finetune:"
    ft = module + "FinetuneConfig."
    parser.add_argument("--task", required=True, help="polarity, wikiner, or a .jsonl / CoNLL file")
    parser.add_argument("--init", default="minilm", help="'minilm', a folder with config.json + model.safetensors, "
                        "or a HuggingFace Hub id")
    config_flag(parser, "--epochs", type=int, help="passes over the training split", source=module + "FULL.epochs",
                otherwise=("with --lora-rank", module + "LORA.epochs"))
    config_flag(parser, "--lr", type=float, help="AdamW's peak learning rate", source=module + "FULL.lr",
                otherwise=("with --lora-rank", module + "LORA.lr"))
    config_flag(parser, "--batch-size", type=int, help="examples per step", source=ft + "batch_size")
    config_flag(parser, "--freeze", help="none | embeddings | encoder | all-but-top-N", source=ft + "freeze")
    parser.add_argument("--folds", type=int, default=None, help="k-fold cross-validation (default 5 for polarity)")
    config_flag(parser, "--seed", type=seed, help="split, initialisation, dropout and order", source=ft + "seed")
    config_flag(parser, "--head", choices=("softmax", "sigmoid"), help="sigmoid: binary tasks", source=ft + "head")
    parser.add_argument("--dropout", type=float, help="drop rate (default: the checkpoint's, 0.1 for MiniLM)")
    config_flag(parser, "--weight-decay", type=float, help="AdamW's decoupled weight decay", source=ft + "weight_decay")
    config_flag(parser, "--warmup-fraction", type=float, help="share of the steps spent warming up, in [0, 1] (HF's "
                "warmup_ratio)", source=ft + "warmup_fraction")
    config_flag(parser, "--schedule", choices=("linear", "constant", "constant_with_warmup", "cosine"),
                help="learning rate over the steps (HF's lr_scheduler_type): linear is BERT's warm-up then decay "
                "to 0; constant has no warm-up", source=ft + "schedule")
    config_flag(parser, "--clip-norm", type=float, help="global gradient-norm clip; 0: none", source=ft + "clip_norm")
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs (default: never stop)")
    parser.add_argument("--class-weights", default=None, help="comma-separated w_j (sequence tasks; default: all 1)")
    parser.add_argument("--max-length", type=int, default=128, help="sub-tokens per example, specials included")
    config_flag(parser, "--unpad", action=argparse.BooleanOptionalAction, help="BERT's training steps on the "
                "real tokens only, attention on the padded grid (the same function; --no-unpad: the padded "
                "batches, whose dropout masks differ); one device only: with --mesh the batches stay padded",
                source=ft + "unpad")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N examples of each split "
                        "(default: all)")
    lo = "scratchlm.nn.lora:LoraConfig."
    group = parser.add_argument_group("LoRA, low-rank adapters (Hu et al. 2021)")
    group.add_argument("--lora-rank", type=int, default=None, help="train rank-R adapters and the head only "
                       "(default: full fine-tuning)")
    config_flag(group, "--lora-alpha", type=float, help="the update is scaled by alpha / R", source=lo + "lora_alpha")
    config_flag(group, "--lora-targets", help="comma-separated layer names or dotted suffixes, e.g. "
                "query,key,value,dense (PEFT's target_modules; c_attn for a GPT-2 --init)",
                source=lo + "target_modules")
    config_flag(group, "--lora-dropout", type=float, help="dropout on the adapters' input", source=lo + "lora_dropout")
    add_run_arguments(parser, checkpoint_note=_CV_CHECKPOINTS)
    add_parallel_arguments(parser)  # --mesh data=8 | data=4,model=2 (FSDP); --coordinator/--num-processes/--process-id


# ----------------------------------------------------------------------------- run


def finetune_config(args: argparse.Namespace, kind: str, num_labels: int):
    """The flags as a :class:`~scratchlm.training.finetune.FinetuneConfig` (a flag left out: its default).

    The flags left out are then set to the config's values, so the run's recorded settings name what ran.
    """
    from scratchlm.training.finetune import FinetuneConfig

    config = FinetuneConfig(task=kind, num_labels=num_labels, **_given(args), lora=lora_config(args))
    for field, flag in _FLAGS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, getattr(config, field))
    return config


def _given(args: argparse.Namespace) -> dict:
    """The FinetuneConfig fields the flags set (those left out keep the config's defaults)."""
    given = {field: getattr(args, flag) for field, flag in _FLAGS.items() if getattr(args, flag) is not None}
    if "clip_norm" in given:
        given["clip_norm"] = given["clip_norm"] or None  # --clip-norm 0: no clipping
    if args.class_weights:
        try:
            given["class_weights"] = tuple(float(w) for w in args.class_weights.split(","))
        except ValueError:
            raise ScratchlmError(f"--class-weights: comma-separated numbers expected, "
                                 f"got {args.class_weights!r}") from None
        from scratchlm.training.finetune import check_class_weights

        check_class_weights(given["class_weights"])  # before the task is read (the count needs its labels)
    return given



_LORA_FLAGS = {"lora_alpha": "lora_alpha", "lora_targets": "target_modules", "lora_dropout": "lora_dropout"}


def lora_config(args: argparse.Namespace):
    """The ``--lora-*`` flags as a :class:`~scratchlm.nn.lora.LoraConfig`, or None without ``--lora-rank``.

    Without it the four flags leave the namespace, so a full fine-tune records the settings it always
    has; with it the flags left out are set to the config's values, so the run records what ran."""
    from scratchlm.nn.lora import LoraConfig

    if not hasattr(args, "lora_rank"):  # a second call: the flags have left the namespace
        return None
    if args.lora_rank is None:
        given = [f"--{flag.replace('_', '-')}" for flag in _LORA_FLAGS if getattr(args, flag, None) is not None]
        if given:
            raise ScratchlmError(f"{', '.join(given)} need --lora-rank (the adapters' rank)")
        for flag in ("lora_rank", *_LORA_FLAGS):
            delattr(args, flag)
        return None
    if not hasattr(args, "_lora_default_targets"):  # the first call: the model's default targets, once it is known
        args._lora_default_targets = args.lora_targets is None
    fields = {field: getattr(args, flag) for flag, field in _LORA_FLAGS.items() if getattr(args, flag) is not None}
    if "target_modules" in fields:
        fields["target_modules"] = tuple(t.strip() for t in fields["target_modules"].split(",") if t.strip())
    config = LoraConfig(r=args.lora_rank, **fields)
    for flag, field in _LORA_FLAGS.items():
        value = getattr(config, field)
        setattr(args, flag, ",".join(value) if flag == "lora_targets" else value)
    return config


def check_flags(args: argparse.Namespace) -> None:
    """The flags and the paths, before any work: FinetuneConfig's ranges (on a stand-in binary sequence task:
    the task's kind and labels are known once its file is read, and checked again then), then the rest."""
    from scratchlm import checks
    from scratchlm.training.finetune import FinetuneConfig

    check_run_folder(args)  # another kind of folder is refused before --init or --task is read
    given = {k: v for k, v in _given(args).items() if k not in ("head", "class_weights")}
    FinetuneConfig(task="sequence", num_labels=2, **given, lora=lora_config(args))

    checks.at_least("max_length", args.max_length, 3)  # [CLS] a token [SEP]
    if args.folds is not None:
        checks.at_least("folds", args.folds, 2)
    if args.limit is not None:
        checks.at_least("limit", args.limit, 1)
    checks.source(args.task, "--task", ("polarity", "wikiner"))
    init_source(args.init)


def run(args: argparse.Namespace) -> int:
    from scratchlm.training.phases import PhaseClock

    clock = PhaseClock()  # where the command's seconds go: metrics.json "timings"
    with clock.listening():
        return _run(args, clock)


def _run(args: argparse.Namespace, clock) -> int:
    import jax
    import numpy as np

    from scratchlm.data import tasks
    from scratchlm.data.batching import subset
    from scratchlm.models.hub import model_folder
    from scratchlm.training import encoders, plots, probe, seqeval
    from scratchlm.training import finetune as ft
    from scratchlm.training.cv import kfold
    from scratchlm.training.epoch_timing import epoch_timing
    from scratchlm.training.metrics import sequence_metrics
    from scratchlm.training.run import data_digest

    check_flags(args)
    mesh = setup_parallel(args)  # before any other JAX call
    if mesh is not None:  # a mesh shards the padded batches' rows, which an unpadded batch has given up
        if args.unpad:
            raise ScratchlmError("--unpad runs on one device: a --mesh shards the padded batches' rows (leave "
                                 "--unpad out)")
        args.unpad = False  # recorded as it runs: one device's default (unpadded) trains other dropout masks
    started = time.perf_counter()
    clock.seconds["imports"] = started - clock.started
    with clock.phase("task"):
        task = tasks.load_task(args.task, args.limit)
    names = task["labels"]
    config = finetune_config(args, task["kind"], len(names))  # every flag checked before the model is loaded
    folds = args.folds if args.folds is not None else (5 if args.task == "polarity" else None)
    if task["kind"] == "token" and folds:
        raise ScratchlmError("--folds is for sequence tasks; token tasks use their train/dev/test splits")
    n = len(task.get("examples", ()))
    if task["kind"] == "sequence" and n < (folds or HOLDOUT_PARTS):
        raise ScratchlmError(f"the task has {n} examples: too few for " + (
            f"{folds}-fold cross-validation (--folds)" if folds else
            f"its test and dev tenths (at least {HOLDOUT_PARTS} are needed; or cross-validate with --folds)"))
    init_kind = init_source(args.init)
    init_path = resolve_init(args.init)  # fetched once (a Hub id); load_init reads the folder
    arch = encoders.init_arch(model_folder(init_path), args.init)
    encoders.check_task(arch, config.task)
    if config.lora is not None:  # the model's orientation, and its default targets when --lora-targets is left out
        config = dataclasses.replace(config, lora=encoders.ARCHS[arch].lora_config(
            config.lora, default_targets=args._lora_default_targets))
        args.lora_targets = ",".join(config.lora.target_modules)
    builtin = args.task in ("polarity", "wikiner")
    settings = {**result_settings(args, drop=("task", "init")), "task": args.task if builtin else "file",
                "init": init_kind, "folds": folds}

    def position(folder: Path) -> int:  # finished folds, or epochs evaluated up to the last checkpoint
        if folds:
            return len(list(folder.glob("fold_*/result.json")))
        log = folder / "metrics.jsonl"
        lines = log.read_text().splitlines() if log.exists() else []
        return sum(1 for line in lines if '"split": "eval"' in line)

    digest = data_digest(json.dumps(task, sort_keys=True, default=str), model_folder(init_path))
    if complete_run(args, command="finetune", settings=settings, data=digest, unit="fold" if folds else "epoch"):
        return 0  # said before the model is read
    # the model and its tokenizer read, and every id checked against the model, before the run folder is opened
    with clock.phase("load_model"):
        model_config, pretrained, tok = encoders.load_init(init_path)
    encoder = encoders.of(model_config)
    if args.max_length > encoder.max_positions:
        raise ScratchlmError(f"--max-length {args.max_length} exceeds the model's {encoder.max_positions} positions")
    with clock.phase("tokenize"):
        data = tasks.encode_task(task, tok, args.max_length, encoder.vocab_size, encoder.special_ids(tok))
    run = start_run(args, command="finetune", settings=settings, data=digest, total_steps=folds or config.epochs,
                    unit="fold" if folds else "epoch", position=position)
    out: Path = run.out
    if run.state == "complete":
        return 0
    # pyplot's import (0.4-0.8 s) on a second thread while the model trains, so that drawing at the end starts at once
    warm = threading.Thread(target=plots.warm_up, name="finetune-plots", daemon=True)
    warm.start()
    key = jax.random.key(args.seed)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not k.startswith("_")}

    def save_best(params, labels):  # a transformers folder: the task's head and label names, the tokenizer's files
        encoder.save_pretrained(out / "best", params, tokenizer=tok, labels=labels, task=config.task)

    def save_model(params, labels):  # with LoRA: the PEFT adapter folder, and best/ the merged model
        if config.lora is not None:
            from scratchlm.models import peft_format

            base = ("sentence-transformers/all-MiniLM-L6-v2" if init_kind == "minilm" else
                    args.init if init_kind == "hub" else str(model_folder(init_path)))
            peft_format.save_adapter(out / "adapter", params, config.lora, task=config.task,
                                     base_model_name_or_path=base,
                                     modules_to_save=encoder.modules_to_save(pretrained, config.task),
                                     layout=encoder.peft_layout)
        save_best(ft.merged(params, config), labels)

    if config.task == "sequence" and folds:
        # checkpoints inside a fold only when asked for (the module's docstring): otherwise a fold is the unit
        fold_checkpoints = run.config.keep_checkpoints or given(args, "checkpoint_every")

        def dev_score(record):  # the fold's best dev score; a score of 0.0 still beats a fold without one
            return -1.0 if record.get("best_dev") is None else record["best_dev"]

        best = {"dev": -1.0}
        for f in range(folds):
            done_file = out / f"fold_{f}" / "result.json"
            if done_file.exists():
                best["dev"] = max(best["dev"], dev_score(json.loads(done_file.read_text())))

        def done(f):
            path = out / f"fold_{f}" / "result.json"
            return json.loads(path.read_text()) if path.exists() else None

        def on_fold(f, record, params):
            fold_dir = out / f"fold_{f}"
            if dev_score(record) > best["dev"]:  # as read back on resuming, so best/ is the same fold's either way
                best["dev"] = dev_score(record)
                with clock.phase("save_best"):
                    save_model(params, names)
            clock.mark(f"fold {f}")
            jsonio.write(fold_dir / "result.json", record, indent=None)
            if not fold_checkpoints and run.lead:  # the fold's result is the run's checkpoint: run.json records it
                run.checkpointed(fold_dir / "result.json")
            if not run.config.keep_checkpoints:  # the fold is finished: its model is in result.json and best/
                shutil.rmtree(fold_dir / "checkpoints", ignore_errors=True)
            print(f"fold {f + 1}/{folds}: test accuracy {record['test']['accuracy']:.3f}", flush=True)

        def fold_dir(f):
            (out / f"fold_{f}").mkdir(exist_ok=True)
            return out / f"fold_{f}"

        with clock.phase("folds"), run.training():
            cv = ft.cross_validate(pretrained, data, encoder=encoder, config=config, folds=folds, key=key,
                                   fold_dir=fold_dir, done=done, on_fold=on_fold, progress=None, mesh=mesh,
                                   checkpoint_seconds=run.config.checkpoint_every, checkpoint_folds=fold_checkpoints)
        y = data["labels"]
        every = np.arange(len(y))
        tested = [np.asarray(r["test_index"]) for r in cv["folds"]]
        with clock.phase("baselines"):
            baselines = probe.sequence_baselines(pretrained, data, config=encoder.config, num_classes=len(names),
                                                 folds=[(np.setdiff1d(every, t), t) for t in tested])
        metrics = {"accuracy": cv["accuracy"], "f1": cv["f1"], "precision": cv["precision"], "recall": cv["recall"],
                   **baselines, "folds": folds,
                   **epoch_timing(cv["folds"]),
                   "per_fold": [{k: r[k] for k in ("fold", "test", "history", "best_step", "best_dev",
                                                    "seconds_per_epoch", "epoch_seconds", "epoch_compiled",
                                                    "stopped_early") if k in r} for r in cv["folds"]]}
        report = seqeval.tag_report([[names[t] for t in y]], [[names[p] for p in cv["predictions"]]])
        report = f"{folds}-fold cross-validation, every example predicted once ({len(y)} examples)\n\n{report}"
        curve_files = [out / f"fold_{f}" / "metrics.jsonl" for f in range(folds)]
        confusion = None
    else:
        if config.task == "sequence":
            index = np.arange(len(data["labels"]))
            parts = kfold(len(index), HOLDOUT_PARTS, args.seed, stratify_by=data["labels"])
            test_index, dev_index = parts[0][1], parts[1][1]
            train_index = np.setdiff1d(index, np.concatenate([test_index, dev_index]))
            splits = {"train": (subset(data, train_index), None), "dev": (subset(data, dev_index), None),
                      "test": (subset(data, test_index), None)}
        else:
            splits = data
        params = ft.init_classifier(key, pretrained, encoder, config)
        with clock.phase("train"), run.training():
            result = ft.fit(params, splits["train"][0], None, encoder=encoder, config=config,
                            dev_eval=lambda p: ft.evaluate(p, splits["dev"][0], encoder=encoder,
                                                           config=config, tags=names, n_words=splits["dev"][1]),
                            checkpoint_dir=run.checkpoints, metrics_path=out / "metrics.jsonl", progress=None,
                            mesh=mesh, checkpoint_seconds=run.config.checkpoint_every)
        save_model(result.params, names)
        test, n_words = splits["test"]
        predicted = ft.predict(result.params, test, encoder=encoder, config=config)
        common = {"history": result.history, "best_step": result.best_step, "stopped_early": result.stopped_early,
                  **epoch_timing([{"epoch_seconds": result.epoch_seconds, "epoch_compiled": result.epoch_compiled}]),
                  "epoch_seconds": result.epoch_seconds, "epoch_compiled": result.epoch_compiled}
        if config.task == "token":
            with clock.phase("baselines"):
                baselines = probe.token_baselines(pretrained, splits["train"][0], test, n_words, names,
                                                  config=encoder.config)
            y_true, y_pred = ft.word_tags(test, predicted, n_words, names)
            scores = seqeval.entity_scores(y_true, y_pred)["micro"]
            metrics = {"entity_f1": scores["f1"], "entity_precision": scores["precision"],
                       "entity_recall": scores["recall"], **baselines, **common}
            report = ("entity level (exact span and type, as seqeval):\n"
                      + seqeval.classification_report(y_true, y_pred)
                      + "\nper tag (token level):\n" + seqeval.tag_report(y_true, y_pred))
            confusion = (y_true, y_pred)
        else:
            with clock.phase("baselines"):
                baselines = probe.sequence_baselines(pretrained, data, config=encoder.config, num_classes=len(names),
                                                     folds=[(train_index, test_index)])
            metrics = {**sequence_metrics(predicted, test["labels"], config.num_labels), **baselines, **common}
            report = seqeval.tag_report([[names[t] for t in test["labels"]]], [[names[p] for p in predicted]])
            confusion = None
        curve_files = [out / "metrics.jsonl"]
    metrics = {**metrics, **ft.lora_cost(key, pretrained, encoder, config), "task": args.task, "labels": list(names),
               "settings": settings,
               "wall_seconds": time.perf_counter() - started}
    with clock.phase("plot"):
        warm.join()
        title, labels = ("fine-tuning: one curve per fold", [f"fold {f}" for f in range(folds)]) if folds else (
            "fine-tuning", None)
        note = plots.plot_curves(out / "curves.png", curve_files, title=title, loss="cross-entropy",
                                 metric=config.metric, labels=labels)
        if confusion is not None:
            plots.plot_confusion(out / "confusion.png", *confusion, names)
    if note == plots.NO_MATPLOTLIB:
        print(f"note: {note}", flush=True)
    metrics["timings"] = clock.report()
    jsonio.write(out / "metrics.json", metrics)
    (out / "report.txt").write_text(report)
    run.finish()
    print(report)
    headline = "entity_f1" if config.task == "token" else "accuracy"
    print(f"{headline} {metrics[headline]:.4f}; wrote {out}/metrics.json, report.txt, best/", flush=True)
    print(probe.baseline_line(metrics, config.task), flush=True)
    return 0


# ----------------------------------------------------------------------------- demo


def demo_step(ctx) -> dict:
    """Fine-tune MiniLM on the polarity sentences by 2-fold cross-validation (each sentence predicted
    once by a model that never saw it).  With 100 training sentences per fold the recipe needs
    steps more than tokens: batch 8 at T <= 32 and lr 1e-4 reached 0.64 (seed 0), while lr 5e-5
    for 6 epochs stayed at 0.51 and 12 steps of batch 16 at the majority rate; ``--quick`` runs
    2 epochs instead of 4 (figures measured with BERT's linear decay; the steps now run FinetuneConfig's
    default schedule, warm-up then constant, still >= 0.6 at seed 0 in tests/training/test_finetune.py).  The full
    demo then trains LoRA (r = 8 on query and value, Hu et al. 2021) on the same folds and batches in its
    own run folder (``OUT/full/finetune-lora``) at LoRA's default rate (``training.finetune.LORA``: adapters
    start at B = 0 and take a larger rate) for twice the epochs, as LoRA's defaults double full fine-tuning's,
    and shows the two side by side: accuracy, trainable fraction, AdamW state bytes, seconds per epoch."""
    epochs = 2 if ctx.quick else 4
    common = ["--task", "polarity", "--init", "minilm", "--folds", "2", "--batch-size", "8", "--max-length", "32",
              "--seed", str(ctx.seed)]
    m = _demo_run(ctx, ctx.out, [*common, "--epochs", str(epochs), "--lr", "1e-4"])
    result = {"result": f"MiniLM on polarity, {m['folds']}-fold CV: accuracy {m['accuracy']:.3f} "
                        f"(majority rate {m['majority_rate']:.3f}, linear probe {m['linear_probe_accuracy']:.3f}), "
                        f"F1 {m['f1']:.3f}",
              "accuracy": m["accuracy"], "f1": m["f1"], "majority_rate": m["majority_rate"],
              "linear_probe_accuracy": m["linear_probe_accuracy"]}
    if ctx.quick:  # LoRA's run costs as much as the full fine-tune's: the full demo only
        return result
    lo = _demo_run(ctx, ctx.out.parent / "finetune-lora", [*common, "--epochs", str(2 * epochs), "--lora-rank", "8"])
    full_bytes = lo["full_finetune_optimizer_state_bytes"]
    lora_mib = lo["optimizer_state_bytes"] / 2**20
    result["result"] += (f"; full fine-tuning: trainable 100%, AdamW state {full_bytes / 2**20:.0f} MiB, "
                         f"{m['seconds_per_epoch']:.1f} s/epoch | LoRA r=8: accuracy {lo['accuracy']:.3f}, trainable "
                         f"{100 * lo['trainable_fraction']:.2f}%, AdamW state {lora_mib:.2f} MiB, "
                         f"{lo['seconds_per_epoch']:.1f} s/epoch")
    result["seconds_per_epoch"] = m["seconds_per_epoch"]
    result["optimizer_state_bytes"] = full_bytes
    result["lora"] = {k: lo[k] for k in ("accuracy", "f1", "trainable_fraction", "trainable_params",
                                         "optimizer_state_bytes", "seconds_per_epoch")}
    return result



def _demo_run(ctx, out: Path, argv: list[str]) -> dict:
    """One ``scratchlm finetune`` run of the demo in run folder ``out``; its metrics.json."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([*argv, "--out", str(out)])
    for name, value in vars(ctx.args()).items():  # the demo's own run flags
        setattr(args, name, value)
    args.out = out
    out.mkdir(parents=True, exist_ok=True)
    run(args)
    return json.loads((out / "metrics.json").read_text())
