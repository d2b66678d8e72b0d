"""`scratchlm glove`: count co-occurrences and train GloVe, then write and score the vectors.

Defaults are the Stanford tool's ``demo.sh`` for a small corpus (dim 100, window 15, min_count 5,
x_max 10, 50 epochs), not the paper's x_max = 100, which leaves a corpus this small barely trained
(most X_ij fall far below 100, so f(X_ij) is tiny).  ``--corpus wiki`` gives one article a line:
``cooccur`` resets its window only at a newline and is fed a document a line (its demo, text8, is
one line), so the window runs across paragraphs, as it did in the C-tool run that issue 5 quotes
(``benchmarks/glove.py`` has the evidence); Word2Vec keeps the sample's paragraphs.  Writes
``DIR/vectors.txt`` (word2vec text, loadable by gensim), ``DIR/vectors.glove.txt`` (GloVe text) and
``DIR/metrics.json``.

``--mesh data=4,model=2`` splits ``W, b, W̃, b̃`` and their AdaGrad accumulators by rows over 2
devices and each minibatch of non-zeros over 4 (:mod:`scratchlm.distributed`; the vocabulary is padded
with unused rows to a multiple of ``model``); a checkpoint resumes on any mesh or on one device.
A step moves the rows its minibatch touches, at most ``min(batch, V)``: with the default
``--batch-size`` 16,384 and a vocabulary of a few thousand words that is every row, every step, so
on a mesh a batch well below the vocabulary keeps the traffic sparse.
With ``--coordinator/--num-processes/--process-id`` each process counts the co-occurrences of its
own share of the sentences and the partial counts are gathered and merged (:func:`read_cooccurrences`;
every process then holds the whole matrix, and the minibatches are cut from it identically), and
process 0 writes the outputs and the checkpoints (gathered from all processes after every epoch; to resume, every host
must see the checkpoint directory: a shared filesystem).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from scratchlm import jsonio
from scratchlm.commands.common import add_parallel_arguments, setup_parallel


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="wiki", help="'wiki' (cleaned Wikipedia sample, one article a line), 'lee', "
                        "or a text file (one document a line: the window never crosses a newline)")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=15, help="context words on each side (glove's cooccur -window-size)")
    parser.add_argument("--left-only", action="store_true", help="count only context to the left (cooccur -symmetric 0)")
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--max-size", type=int, default=None, help="keep at most this many words")
    parser.add_argument("--x-max", type=float, default=10.0, help="f's cutoff: 10 as glove's demo.sh (the paper: 100)")
    parser.add_argument("--alpha", type=float, default=0.75, help="f's exponent (paper: 3/4)")
    parser.add_argument("--learning-rate", type=float, default=0.05, help="AdaGrad's eta (paper and glove.c: 0.05)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=16384, help="non-zeros per AdaGrad minibatch")
    parser.add_argument("--output", choices=("sum", "word"), default="sum", help="sum: W + W~ (glove.c -model 2); word: W only")
    parser.add_argument("--max-memory-mb", type=float, default=512.0, help="ceiling for the counting buffers")
    parser.add_argument("--restrict", type=int, default=30000, help="evaluate over the N most frequent words")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-cooccurrence", action="store_true", help="also write DIR/cooccurrence.npz")
    parser.add_argument("--checkpoint-dir", type=Path, default=None, help="checkpoint every epoch; resume from here")
    parser.add_argument("--out", type=Path, default=Path("glove-out"))
    add_parallel_arguments(parser)  # --mesh data=4,model=2 (tables by rows over model); multi-host flags


def read_cooccurrences(sentences, *, window: int, symmetric: bool, min_count: int, max_size: int | None,
                       max_memory_mb: float):
    """The corpus's :class:`~scratchlm.embeddings.cooccurrence.Cooccurrence`; with several processes,
    each counts its own share.

    Process ``p`` of ``P`` reads only its contiguous share of the sentences
    (:func:`scratchlm.distributed.process_shard`): the word counts are summed across processes before the
    vocabulary is cut, each process counts the pairs of its share (windows never cross a sentence,
    so no pair spans two shares), and the sorted partial counts are gathered and merged, so every
    process holds the whole matrix (its minibatches are cut from it identically on every process).
    The merged :math:`X_{ij}` equal one process's up to the order of float64 additions.
    """
    import jax

    from scratchlm import distributed
    from scratchlm.embeddings import cooccurrence as co

    if jax.process_count() == 1:
        return co.count_cooccurrences(sentences, window=window, symmetric=symmetric, min_count=min_count,
                                      max_size=max_size, max_memory_mb=max_memory_mb)
    local = distributed.process_shard(sentences)
    words, counts = co.vocabulary_from_counts(distributed.allgather_counts(co.word_counts(local)),
                                              min_count=min_count, max_size=max_size)
    keys, x = co.count_pairs(local, words, window=window, symmetric=symmetric, max_memory_mb=max_memory_mb)
    parts = distributed.allgather_arrays({"keys": keys, "x": x})
    keys, x = co.merge_pairs([(part["keys"], part["x"]) for part in parts])
    return co.cooccurrence_from_pairs(words, counts, keys, x, window=window, symmetric=symmetric,
                                      min_count=min_count)


def train_and_write(sentences, *, out: Path, dim: int = 100, window: int = 15, symmetric: bool = True,
                    min_count: int = 5, max_size: int | None = None, x_max: float = 10.0, alpha: float = 0.75,
                    learning_rate: float = 0.05, epochs: int = 50, batch_size: int = 16384, output: str = "sum",
                    max_memory_mb: float = 512.0, restrict: int = 30000, seed: int = 0,
                    save_cooccurrence: bool = False, checkpoint_dir: Path | None = None,
                    progress: bool | None = None, mesh=None) -> dict:
    """Count, train, write the two vector files and metrics.json under ``out``; return the metrics.

    ``mesh`` (:func:`scratchlm.commands.common.setup_parallel`): train on it; only process 0 writes files."""
    import jax
    import numpy as np

    from scratchlm.embeddings import glove
    from scratchlm.embeddings.evaluate import standard_scores
    from scratchlm.embeddings.formats import WordVectors, save_glove, save_word2vec
    from scratchlm.errors import ScratchlmError

    lead = jax.process_index() == 0
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cooc = read_cooccurrences(sentences, window=window, symmetric=symmetric, min_count=min_count,
                              max_size=max_size, max_memory_mb=max_memory_mb)
    cooc_seconds = time.perf_counter() - t0
    if save_cooccurrence and lead:
        cooc.save(out / "cooccurrence.npz")
    config = glove.GloveConfig(dim=dim, x_max=x_max, alpha=alpha, learning_rate=learning_rate, epochs=epochs,
                               batch_size=batch_size, output=output)
    result = glove.train(cooc.i, cooc.j, cooc.x, cooc.vocab_size, config=config, key=jax.random.key(seed),
                         checkpoint_dir=checkpoint_dir, metrics_path=out / "train_metrics.jsonl" if lead else None,
                         progress=progress if lead else False, mesh=mesh)
    wv = WordVectors(cooc.words, np.asarray(glove.vectors(result.params, output=output)))
    if lead:
        save_word2vec(wv, out / "vectors.txt")
        save_glove(wv, out / "vectors.glove.txt")
    metrics = {
        "cooccurrence_seconds": cooc_seconds, "nonzeros": cooc.nnz, "vocab_size": cooc.vocab_size,
        "seconds_per_epoch": result.seconds_per_epoch, "compile_seconds": result.compile_seconds,
        "epochs_run": len(result.costs), "final_cost": result.costs[-1] if result.costs else None,
        "cost_definition": "J / nnz (glove.c prints half of this)", "update": result.update,
        "device": str(jax.devices()[0]), "mesh": None if mesh is None else dict(mesh.shape),
        "processes": jax.process_count(),
        "settings": {"dim": dim, "window": window, "symmetric": symmetric, "min_count": min_count,
                     "max_size": max_size, "x_max": x_max, "alpha": alpha, "learning_rate": learning_rate,
                     "epochs": epochs, "batch_size": batch_size, "output": output, "seed": seed},
    }
    try:
        metrics.update(standard_scores(wv, restrict_vocab=restrict))
    except ScratchlmError as err:  # a tiny corpus may hold no evaluation pair at all
        metrics["evaluation_error"] = str(err)
    if lead:
        (out / "metrics.json").write_text(jsonio.dumps(metrics, indent=2) + "\n")
    return metrics


def run(args: argparse.Namespace) -> int:
    import jax

    from scratchlm.data.corpora import load_tokenized_corpus

    mesh = setup_parallel(args)  # before any other JAX call
    metrics = train_and_write(
        load_tokenized_corpus(args.corpus, wiki_unit="article"), out=args.out, dim=args.dim, window=args.window,
        symmetric=not args.left_only, min_count=args.min_count, max_size=args.max_size, x_max=args.x_max,
        alpha=args.alpha, learning_rate=args.learning_rate, epochs=args.epochs, batch_size=args.batch_size,
        output=args.output, max_memory_mb=args.max_memory_mb, restrict=args.restrict, seed=args.seed,
        save_cooccurrence=args.save_cooccurrence, checkpoint_dir=args.checkpoint_dir, mesh=mesh)
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
        settings = dict(dim=50, window=10, epochs=5, batch_size=16384)
        sentences = load_tokenized_corpus("wiki")[:800]
    else:
        settings = dict(dim=100, window=15, epochs=25)
        sentences = load_tokenized_corpus("wiki", wiki_unit="article")
    metrics = train_and_write(sentences, out=ctx.out, seed=ctx.seed, progress=None, **settings)
    return {"result": _summary(metrics), **{k: v for k, v in metrics.items() if k != "settings"}}
