"""`scratchlm glove`: count co-occurrences and train GloVe, then write and score the vectors.

Defaults are the Stanford tool's ``demo.sh`` for a small corpus (dim 100, window 15, min_count 5,
x_max 10, 50 epochs), not the paper's x_max = 100, which leaves a corpus this small barely trained
(most X_ij fall far below 100, so f(X_ij) is tiny).  ``--corpus wiki`` gives one article a line:
``cooccur`` resets its window only at a newline and is fed a document a line (its demo, text8, is
one line), so the window runs across paragraphs, as it did in the C-tool run that issue 5 quotes
(``benchmarks/glove.py`` has the evidence); Word2Vec keeps the sample's paragraphs.  Writes into the
run folder ``--out`` (:mod:`scratchlm.training.run`): ``run.json``, ``vectors.txt`` (word2vec text,
loadable by gensim), ``vectors.glove.txt`` (GloVe text), ``metrics.json``, ``train_metrics.jsonl``,
``curves.png``, ``projection.png`` and, while it runs, ``checkpoints/``.

``--mesh data=4,model=2`` splits ``W, b, W̃, b̃`` and their AdaGrad accumulators by rows over 2
devices and each minibatch of non-zeros over 4 (:mod:`scratchlm.embeddings.glove.sharded`; the vocabulary is padded
with unused rows to a multiple of ``model``); a checkpoint resumes on any mesh or on one device.
A step moves the rows its minibatch touches, at most ``min(batch, V)``: with the default
``--batch-size`` 16,384 and a vocabulary of a few thousand words that is every row, every step, so
on a mesh a batch well below the vocabulary keeps the traffic sparse.
With ``--coordinator/--num-processes/--process-id`` each process counts the co-occurrences of its
own share of the sentences and the partial counts are gathered and merged
(:func:`scratchlm.embeddings.glove.cooccurrence.read_cooccurrences`;
every process then holds the whole matrix, and the minibatches are cut from it identically), and
process 0 writes the outputs and the checkpoints (gathered from all processes after every epoch; to
resume, every host must see the run folder: a shared filesystem).

A thin command: flags -> :class:`~scratchlm.embeddings.glove.config.GloveConfig` and
:class:`~scratchlm.embeddings.glove.cooccurrence.CooccurrenceConfig` (every default read from them)
-> :func:`scratchlm.training.glove.train_on_corpus` -> the vector files and metrics written here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from scratchlm import checks, jsonio
from scratchlm.commands.common import (
    add_parallel_arguments,
    add_run_arguments,
    check_run_folder,
    setup_parallel,
    start_run,
)
from scratchlm.commands.flags import seed
from scratchlm.embeddings.glove.config import GloveConfig
from scratchlm.embeddings.glove.cooccurrence import CooccurrenceConfig

RESTRICT = 30000  # score over the 30,000 most frequent words (embeddings.evaluate.standard_scores does too)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    G, C = GloveConfig, CooccurrenceConfig
    parser.add_argument("--corpus", default="wiki", help="'wiki' (cleaned Wikipedia sample, one article a line), "
                        "'lee', or a text file (one document a line: the window never crosses a newline)")
    parser.add_argument("--dim", type=int, default=G.dim, help="vector size, in components (glove.c -vector-size)")
    parser.add_argument("--window", type=int, default=C.window,
                        help="context words on each side (glove's cooccur -window-size)")
    parser.add_argument("--left-only", action="store_true", default=not C.symmetric,
                        help="count only context to the left (cooccur -symmetric 0)")
    parser.add_argument("--min-count", type=int, default=C.min_count,
                        help="rarer words are dropped, in occurrences (vocab_count -min-count)")
    parser.add_argument("--vocab-size", type=int, default=C.max_size,
                        help="keep at most this many words (vocab_count -max-vocab; CooccurrenceConfig.max_size; "
                             "default: all)")
    parser.add_argument("--x-max", type=float, default=G.x_max,
                        help="f's cutoff: 10 as glove's demo.sh (the paper: 100)")
    parser.add_argument("--alpha", type=float, default=G.alpha,
                        help="the weighting function f's exponent, the paper's alpha (3/4); not a learning rate")
    parser.add_argument("--lr", type=float, default=G.lr,
                        help="AdaGrad's initial learning rate (the paper's and glove.c's -eta: 0.05)")
    parser.add_argument("--epochs", type=int, default=G.epochs, help="passes over the non-zeros (glove.c -iter)")
    parser.add_argument("--batch-size", type=int, default=G.batch_size, help="non-zeros per AdaGrad minibatch")
    parser.add_argument("--output", choices=("sum", "word"), default=G.output,
                        help="sum: W + W~ (glove.c -model 2); word: W only")
    parser.add_argument("--max-memory-mb", type=float, default=C.max_memory_mb,
                        help="ceiling for the counting buffers, in MB")
    parser.add_argument("--restrict", type=int, default=RESTRICT, help="evaluate over the N most frequent words")
    parser.add_argument("--seed", type=seed, default=0, help="initialisation and minibatch order")
    parser.add_argument("--save-cooccurrence", action="store_true", help="also write DIR/cooccurrence.npz")
    add_run_arguments(parser)
    add_parallel_arguments(parser)  # --mesh data=4,model=2 (tables by rows over model); multi-host flags


def train_and_write(sentences, run_args: argparse.Namespace, *, config: GloveConfig | None = None,
                    counting: CooccurrenceConfig | None = None, restrict: int = RESTRICT, seed: int = 0,
                    save_cooccurrence: bool = False, progress: bool | None = None, mesh=None) -> dict:
    """Open the run folder of ``run_args`` (:func:`scratchlm.commands.common.start_run`), then
    :func:`scratchlm.training.glove.train_on_corpus`, the two vector files, metrics.json and the plots.
    A run found complete returns the metrics on disk.

    ``mesh`` (:func:`scratchlm.commands.common.setup_parallel`): train on it; only process 0 writes files."""
    import jax

    from scratchlm.embeddings.evaluate import standard_scores
    from scratchlm.embeddings.formats import save_glove, save_word2vec
    from scratchlm.errors import ScratchlmError
    from scratchlm.training import plots
    from scratchlm.training.glove import train_on_corpus
    from scratchlm.training.run import data_digest

    config, counting = config or GloveConfig(), counting or CooccurrenceConfig()
    settings = {"glove": dataclasses.asdict(config), "counting": dataclasses.asdict(counting), "seed": seed,
                "restrict": restrict, "save_cooccurrence": save_cooccurrence}
    settings["counting"].pop("max_memory_mb")  # a memory ceiling, not a setting of the result
    run = start_run(run_args, command="glove", settings=settings, data=data_digest([" ".join(s) for s in sentences]),
                    total_steps=config.epochs, unit="epoch")
    out = run.out
    if run.state == "complete":
        return json.loads((out / "metrics.json").read_text())
    lead = jax.process_index() == 0
    with run.training():
        trained = train_on_corpus(sentences, config=config, counting=counting, key=jax.random.key(seed),
                                  checkpoint_dir=run.checkpoints,
                                  metrics_path=out / "train_metrics.jsonl" if lead else None,
                                  progress=progress if lead else False, mesh=mesh,
                                  checkpoint_seconds=run.config.checkpoint_every)
    cooc, result, wv = trained.cooccurrence, trained.result, trained.vectors
    if lead:
        if save_cooccurrence:
            cooc.save(out / "cooccurrence.npz")
        save_word2vec(wv, out / "vectors.txt")
        save_glove(wv, out / "vectors.glove.txt")
    metrics = {
        "cooccurrence_seconds": trained.cooccurrence_seconds, "nonzeros": cooc.nnz, "vocab_size": cooc.vocab_size,
        "seconds_per_epoch": result.seconds_per_epoch, "compile_seconds": result.compile_seconds,
        "epochs_run": len(result.costs), "final_cost": result.costs[-1] if result.costs else None,
        "cost_definition": "J / nnz (glove.c prints half of this)", "update": result.update,
        "device": str(jax.devices()[0]), "mesh": None if mesh is None else dict(mesh.shape),
        "processes": jax.process_count(),
        "settings": {"dim": config.dim, "window": counting.window, "symmetric": counting.symmetric,
                     "min_count": counting.min_count, "max_size": counting.max_size, "x_max": config.x_max,
                     "alpha": config.alpha, "lr": config.lr, "epochs": config.epochs,
                     "batch_size": config.batch_size, "output": config.output, "seed": seed},
    }
    try:
        metrics.update(standard_scores(wv, restrict_vocab=restrict))
    except ScratchlmError as err:  # a tiny corpus may hold no evaluation pair at all
        metrics["evaluation_error"] = str(err)
    if lead:
        plots.plot_curves(out / "curves.png", [out / "train_metrics.jsonl"], title="GloVe: weighted least-squares cost",
                          loss="J / nnz", metric=None, step_unit="epoch")
        metrics["projection"] = plots.plot_word_groups(out / "projection.png", wv,
                                                       title="GloVe: 2-D PCA of chosen words")
        jsonio.write(out / "metrics.json", metrics)
        run.finish()
    return metrics


def run(args: argparse.Namespace) -> int:
    import jax

    from scratchlm.data.corpora import load_tokenized_corpus

    if args.vocab_size is not None:  # the config's field is max_size (the vocabulary module's name for it)
        checks.at_least("vocab_size", args.vocab_size, 1)
    config = GloveConfig(dim=args.dim, x_max=args.x_max, alpha=args.alpha, lr=args.lr,
                         epochs=args.epochs, batch_size=args.batch_size, output=args.output)
    counting = CooccurrenceConfig(window=args.window, symmetric=not args.left_only, min_count=args.min_count,
                                  max_size=args.vocab_size, max_memory_mb=args.max_memory_mb)
    check_run_folder(args)
    checks.source(args.corpus, "--corpus")
    checks.at_least("restrict", args.restrict, 1)
    mesh = setup_parallel(args)  # before any other JAX call
    metrics = train_and_write(
        load_tokenized_corpus(args.corpus, wiki_unit="article"), args, config=config, counting=counting,
        restrict=args.restrict, seed=args.seed, save_cooccurrence=args.save_cooccurrence, mesh=mesh)
    print(_summary(metrics))
    if jax.process_index() == 0:
        print(f"wrote {args.out}/vectors.txt, vectors.glove.txt, metrics.json")
    return 0


def _summary(m: dict) -> str:
    head = (f"{m['nonzeros'] / 1e6:.2f}M non-zeros counted in {m['cooccurrence_seconds']:.1f} s; "
            f"{m['epochs_run']} epochs at {m['seconds_per_epoch']:.2f} s/epoch, cost {m['final_cost']:.4f}; ")
    if "evaluation_error" in m:
        return head + f"not evaluated ({m['evaluation_error']})"
    return head + (f"analogy {m['analogy_accuracy']:.3f}, WordSim-353 {m['wordsim353_spearman']:.3f}, "
                   f"SimLex-999 {m['simlex999_spearman']:.3f}")


def demo_step(ctx) -> dict:
    """GloVe on the cleaned Wikipedia sample: ~60-90 s on 2 CPU cores (25 epochs), seconds with ``quick``."""
    from scratchlm.data.corpora import load_tokenized_corpus

    if ctx.quick:  # a slice of the paragraphs: a smoke run of every stage
        config, counting = GloveConfig(dim=50, epochs=5, batch_size=16384), CooccurrenceConfig(window=10)
        sentences = load_tokenized_corpus("wiki")[:800]
    else:
        config, counting = GloveConfig(dim=100, epochs=25), CooccurrenceConfig(window=15)
        sentences = load_tokenized_corpus("wiki", wiki_unit="article")
    metrics = train_and_write(sentences, ctx.args(), config=config, counting=counting, seed=ctx.seed, progress=None)
    return {"result": _summary(metrics), **{k: v for k, v in metrics.items() if k != "settings"}}
