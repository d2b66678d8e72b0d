"""`scratchlm word2vec`: train skip-gram / CBOW with negative sampling, write vectors and scores.

Writes ``OUT/vectors.txt`` (word2vec text format, loadable by gensim), ``OUT/metrics.json`` (words/s,
seconds, final loss, analogy / WordSim-353 / SimLex-999 scores) and checkpoints under
``OUT/checkpoints`` (after every epoch and every ``--checkpoint-every`` seconds); ``--resume``
continues from the latest one, bit-identically to an uninterrupted run.

``--mesh data=4,model=2`` splits the tables ``v, u`` by rows over 2 devices and each step's centre
words over 4 (:mod:`scratchlm.parallel`; the vocabulary is padded with unused rows to a multiple of
``model``); checkpoints hold the unpadded tables, so a run resumes on any mesh or on one device.
With ``--coordinator/--num-processes/--process-id`` each process counts and encodes its own share
of the sentences; the counts and the encoded ids are then gathered through JAX's collectives, so
every device holds the corpus's word ids (4 bytes a token) for the step to draw centres from
(:func:`read_corpus`), and process 0 writes the outputs.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from scratchlm import jsonio
from scratchlm.cli import add_parallel_arguments

DEMO_WORDS = ("france", "paris", "germany", "berlin", "italy", "rome", "spain", "madrid", "england", "london",
              "king", "queen", "man", "woman", "boy", "girl", "one", "two", "three", "four", "red", "blue", "green")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="wiki", help="'wiki' (the cleaned Wikipedia sample), 'lee', or a file: one sentence a line, whitespace-tokenized")
    parser.add_argument("--model", choices=("skipgram", "cbow"), default="skipgram")
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--alpha", type=float, default=0.025)
    parser.add_argument("--min-alpha", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=None,
                        help="centre words per step (default on CPU: 384 skip-gram, 1024 CBOW; on an accelerator "
                             "up to 16384, halved until an epoch has at least 256 steps)")
    parser.add_argument("--steps-per-call", type=int, default=256, help="jitted steps per dispatch")
    parser.add_argument("--noise-share", type=int, default=None,
                        help="centres sharing one set of noise words (default on CPU: skip-gram 8, CBOW 32 taken "
                             "across its runs; on an accelerator 1)")
    parser.add_argument("--normalize-duplicates", action="store_true", default=None,
                        help="divide a row's summed update by sqrt(its count in the step) (default: on for batches "
                             "above 2048)")
    parser.add_argument("--restrict-vocab", type=int, default=30_000, help="evaluate over the N most frequent words")
    parser.add_argument("--checkpoint-every", type=float, default=60.0, help="seconds between checkpoints (0: only after each epoch)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads running a step's ops (default 1: the step's ops are too small to share "
                             "between threads, see scratchlm.cli.limit_intra_op_threads; 0: XLA's default, one "
                             "per CPU); compiling uses every CPU either way; ignored with a GPU/TPU or a mesh")
    parser.add_argument("--out", type=Path, default=Path("word2vec-out"))
    add_parallel_arguments(parser)  # --mesh data=4,model=2 (tables by rows over model); multi-host flags


def command_args(**overrides) -> argparse.Namespace:
    """The command's arguments as parsed from an empty command line, with ``overrides`` (for callers
    such as the demo that run the command in-process: every flag gets its default, none is forgotten)."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    unknown = set(overrides) - set(vars(args))
    if unknown:
        raise TypeError(f"not word2vec arguments: {sorted(unknown)}")
    return argparse.Namespace(**{**vars(args), **overrides})


def default_cpu_batch(model: str) -> int:
    """Centre words per step on a CPU unless ``--batch`` says otherwise: 384 skip-gram, 1,024 CBOW.

    A step's centres are updated from the same parameters, which costs skip-gram analogy accuracy as
    the batch grows (benchmarks/RESULTS.md, 2 CPU cores, 15 epochs, 3 seeds: .027-.030 at 512,
    .031-.034 at 384, against gensim's .033-.038).  Since one threefry call draws a step's random
    words, 384 costs about 2 % more time than 512 (19.5 against 19.05 s), not the 10-20 % it did.
    """
    return 1024 if model == "cbow" else 384


def default_noise_share(model: str, batch: int, accelerator: bool) -> int:
    """Centres sharing one set of noise words unless ``--noise-share`` says otherwise.

    On a CPU (benchmarks/RESULTS.md, 2 seeds each, scores within seed noise): sets of 8 skip-gram
    centres, 1.3x a step; sets of 32 CBOW centres taken across runs (a divisor of the batch), 1.7x the
    whole run.  Not measured on an accelerator, which keeps per-centre draws.
    """
    if accelerator:
        return 1
    return math.gcd(32, batch) if model == "cbow" else 8


def _config(args, counts=None):
    """The run's config; ``counts`` (the vocabulary's word counts) size an accelerator's default batch."""
    import jax

    from scratchlm.embeddings.word2vec import Word2VecConfig, accelerator_batch

    accelerator = jax.devices()[0].platform != "cpu"
    if args.batch:
        batch = args.batch
    elif accelerator:
        batch = 16_384 if counts is None else accelerator_batch(counts, args.sample)
    else:
        batch = default_cpu_batch(args.model)
    # Large batches hit a frequent word's rows many times a step: damp them.  At 1,024 and below the
    # plain sum scores as gensim (H100, the sample, 15 epochs: WordSim .459 plain vs .392 damped).
    normalize = args.normalize_duplicates if args.normalize_duplicates is not None else batch > 2048
    share = args.noise_share if args.noise_share is not None else default_noise_share(args.model, batch, accelerator)
    return Word2VecConfig(model=args.model, dim=args.dim, window=args.window, negative=args.negative,
                          min_count=args.min_count, sample=args.sample, epochs=args.epochs, alpha=args.alpha,
                          min_alpha=args.min_alpha, batch_size=batch, steps_per_call=args.steps_per_call,
                          normalize_duplicates=normalize, noise_share=share)


def read_corpus(sentences, min_count: int):
    """``(vocab, ids, sentence, raw_words)`` of the corpus; with several processes, each reads its share.

    Process ``p`` of ``P`` counts and encodes only its contiguous share of the sentences
    (:func:`scratchlm.parallel.process_shard`); the counts are summed across processes before the
    vocabulary is cut, and the encoded shares are gathered back in process order with their sentence
    numbers offset, so every process ends with exactly the arrays one process reading the whole
    corpus would build (the training step draws its centres from the whole corpus).
    """
    import jax
    import numpy as np

    from scratchlm import parallel
    from scratchlm.embeddings import sampling
    from scratchlm.errors import CorpusError

    if jax.process_count() == 1:
        vocab = sampling.build_vocab(sentences, min_count)
        ids, sentence = sampling.encode(sentences, vocab)
        return vocab, ids, sentence, sum(len(s) for s in sentences)
    local = parallel.process_shard(sentences)
    vocab = sampling.vocab_from_counts(parallel.allgather_counts(sampling.word_counts(local)), min_count)
    ids, sentence = sampling.encode(local, vocab, allow_empty=True)
    shares = parallel.allgather_arrays({"ids": ids, "sentence": sentence,
                                        "sizes": np.array([len(local), sum(len(s) for s in local)], np.int64)})
    offsets = np.cumsum([0] + [int(share["sizes"][0]) for share in shares[:-1]])
    ids = np.concatenate([share["ids"] for share in shares]).astype(np.int32)
    sentence = np.concatenate([share["sentence"] + offset for share, offset in zip(shares, offsets)]).astype(np.int32)
    if ids.size == 0:
        raise CorpusError("no in-vocabulary word in the corpus")
    return vocab, ids, sentence, int(sum(int(share["sizes"][1]) for share in shares))


def train_and_write(args, sentences=None) -> dict:
    """The whole command: corpus -> vocabulary -> training (with checkpoints) -> vectors.txt, metrics.json."""
    import dataclasses

    import jax
    import jax.numpy as jnp
    from tqdm import tqdm

    from scratchlm import parallel
    from scratchlm.data.corpora import load_tokenized_corpus
    from scratchlm.embeddings import word2vec
    from scratchlm.embeddings.evaluate import standard_scores
    from scratchlm.embeddings.formats import save_word2vec
    from scratchlm.errors import ScratchlmError
    from scratchlm.training import checkpoint as ckpt
    from scratchlm.training.loop import TrainState

    started = time.perf_counter()
    mesh = parallel.setup(args)  # before any other JAX call
    lead = jax.process_index() == 0
    config = _config(args)  # the settings checked before the corpus is read; the batch is sized below
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    sentences = load_tokenized_corpus(args.corpus) if sentences is None else sentences
    vocab, ids, sentence, raw_words = read_corpus(sentences, config.min_count)
    config = _config(args, vocab.counts)  # an accelerator's batch follows the corpus size
    corpus = word2vec.make_corpus(ids, sentence, vocab.counts, config.sample)
    k_init, k_train = jax.random.split(jax.random.key(args.seed))
    params = word2vec.init(k_init, len(vocab), config)

    settings = {"config": dataclasses.asdict(config), "corpus": str(args.corpus), "seed": args.seed,
                "vocab_size": len(vocab), "tokens": int(len(ids))}
    ckpt_dir = out / "checkpoints"
    start_epoch = start_step = calls = 0
    latest = ckpt.latest_checkpoint(ckpt_dir) if args.resume else None
    if latest is not None:
        extra = ckpt.read_extra(latest)
        if extra.get("settings") != json.loads(json.dumps(settings)):
            raise ScratchlmError(f"{latest} was written with other settings ({extra.get('settings')}); "
                                 f"use the same arguments or another --out")
        target = TrainState(params=params, opt_state={}, step=jnp.zeros((), jnp.int32), key=k_train)
        params = ckpt.restore_checkpoint(latest, target).params
        start_epoch, start_step, calls = extra["epoch"], extra["step"], int(extra["calls"])
        print(f"resuming from {latest} (epoch {start_epoch}, step {start_step})", flush=True)
    V = len(vocab)
    if mesh is not None:  # rows V.. are never looked up (ids < V): padding, so that `model` divides the tables
        pad = -V % mesh.shape["model"]
        params = {k: jnp.pad(t, ((0, pad), (0, 0))) for k, t in params.items()}

    def unpadded(params):
        return params if mesh is None else {k: t[:V] for k, t in parallel.gather_to_host(params).items()}

    total = config.epochs * len(ids)
    bar = tqdm(total=total, unit="w", unit_scale=True, disable=args.no_progress, desc=f"word2vec {config.model}")
    bar.update(int(len(ids) * start_epoch))
    state = {"last_save": time.perf_counter(), "calls": calls, "done": int(len(ids) * start_epoch)}

    def on_progress(params, progress):
        state["calls"] += 1
        words = min(progress.words_done, total)
        bar.update(words - state["done"])
        state["done"] = words
        bar.set_postfix(loss=f"{progress.loss:.3f}", epoch=progress.epoch + 1)
        epoch_end = progress.step >= progress.steps_in_epoch
        # several processes gather the tables together: only at epoch ends, which every process reaches
        timed = args.checkpoint_every > 0 and jax.process_count() == 1
        if epoch_end or (timed and time.perf_counter() - state["last_save"] >= args.checkpoint_every):
            epoch, step = (progress.epoch + 1, 0) if epoch_end else (progress.epoch, progress.step)
            host = unpadded(params)
            if lead:  # written while the next steps run (an epoch of the sample takes about as long as a write)
                saver.save(ckpt_dir, TrainState(params=host, opt_state={}, step=jnp.int32(state["calls"]), key=k_train),
                           extra={"settings": settings, "epoch": epoch, "step": step, "calls": state["calls"]})
            state["last_save"] = time.perf_counter()

    t0 = time.perf_counter()
    with ckpt.BackgroundSaver() as saver:  # leaving it waits for the last write, also on an error
        params, loss = word2vec.train(params, corpus, config, key=k_train, start_epoch=start_epoch,
                                      start_step=start_step, callback=on_progress, mesh=mesh)
        jax.block_until_ready(params)
    train_seconds = time.perf_counter() - t0
    bar.close()
    wv = word2vec.word_vectors(unpadded(params), vocab)
    if lead:
        save_word2vec(wv, out / "vectors.txt")
    scores = standard_scores(wv, restrict_vocab=args.restrict_vocab)
    trained_words = raw_words * (config.epochs - start_epoch)
    metrics = {"model": config.model, "device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
               "raw_words": raw_words, "vocab_size": len(vocab), "epochs": config.epochs,
               "train_seconds": train_seconds, "words_per_second": trained_words / train_seconds,
               "final_loss": loss, **scores, "settings": settings["config"],
               "seconds": time.perf_counter() - started,
               "mesh": None if mesh is None else dict(mesh.shape), "processes": jax.process_count()}
    if lead:
        (out / "metrics.json").write_text(jsonio.dumps(metrics, indent=2) + "\n")
    return metrics


def run(args: argparse.Namespace) -> int:
    from scratchlm.cli import limit_intra_op_threads

    if args.threads and args.mesh is None and args.coordinator is None and args.num_processes is None:
        limit_intra_op_threads(args.threads)  # before anything starts JAX's backend
    import jax

    metrics = train_and_write(args)
    written = f"vectors in {args.out / 'vectors.txt'}" if jax.process_index() == 0 else "process 0 writes the vectors"
    print(f"{metrics['words_per_second']:,.0f} words/s, loss {metrics['final_loss']:.3f}, analogy "
          f"{metrics['analogy_accuracy']:.3f}, WordSim-353 {metrics['wordsim353_spearman']:.3f}, "
          f"SimLex-999 {metrics['simlex999_spearman']:.3f}; {written}")
    return 0


def _pca_plot(wv, path: Path) -> str:
    import numpy as np

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 'no plot: matplotlib is not installed (pip install "scratchlm[plot]")'
    index = wv.index
    words = [w for w in DEMO_WORDS if w in index]
    if len(words) < 3:
        return "no plot: too few of the chosen words are in the vocabulary"
    x = wv.vectors[[index[w] for w in words]].astype(np.float64)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    xy = x @ vt[:2].T  # [n, 2]: the two principal directions
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.scatter(xy[:, 0], xy[:, 1], s=12)
    for (px, py), w in zip(xy, words):
        ax.annotate(w, (px, py), fontsize=9, xytext=(3, 3), textcoords="offset points")
    ax.set_title("word2vec skip-gram on the Wikipedia sample: 2-D PCA of selected words")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"plot: {path}"


def demo_step(ctx) -> dict:
    """Skip-gram on the cleaned Wikipedia sample (15 epochs, the benchmark's setting: about a minute on 2 idle
    cores; one epoch over 500 paragraphs with --quick, seconds after compilation)."""
    from scratchlm.data.corpora import load_tokenized_corpus
    from scratchlm.embeddings.formats import load_word2vec

    sentences = load_tokenized_corpus("wiki")
    if ctx.quick:
        sentences = sentences[:500]
    args = command_args(corpus="wiki", model="skipgram", epochs=1 if ctx.quick else 15, seed=ctx.seed,
                        checkpoint_every=0.0, no_progress=not sys.stderr.isatty(), out=ctx.out)
    m = train_and_write(args, sentences)
    note = _pca_plot(load_word2vec(ctx.out / "vectors.txt"), ctx.out / "pca.png")
    result = (f"skip-gram {m['epochs']} ep: {m['words_per_second']:,.0f} words/s, analogy {m['analogy_accuracy']:.3f}, "
              f"WordSim {m['wordsim353_spearman']:.3f}, SimLex {m['simlex999_spearman']:.3f}; {note}")
    return {"result": result, **{k: m[k] for k in ("words_per_second", "analogy_accuracy", "wordsim353_spearman",
                                                    "simlex999_spearman", "final_loss", "train_seconds")}}
