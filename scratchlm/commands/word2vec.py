"""`scratchlm word2vec`: train skip-gram / CBOW with negative sampling, write vectors and scores.

Writes into the run folder ``--out`` (:mod:`scratchlm.training.run`): ``run.json``, ``vectors.txt``
(word2vec text format, loadable by gensim), ``metrics.json`` (words/s, seconds, final loss, analogy /
WordSim-353 / SimLex-999 scores), ``curves.png`` and checkpoints under ``checkpoints/`` (every
``--checkpoint-every`` seconds and at the end; dropped at the end unless ``--keep-checkpoints``).
Running the same command again after a kill resumes from the latest one, bit-identically to an
uninterrupted run; a finished run is left as it is.

``--mesh data=4,model=2`` splits the tables ``v, u`` by rows over 2 devices and each step's centre
words over 4 (:mod:`scratchlm.embeddings.word2vec.sharded`; the vocabulary is padded with unused rows to
a multiple of ``model``); checkpoints hold the unpadded tables, so a run resumes on any mesh or on one
device.  With ``--coordinator/--num-processes/--process-id`` each process counts and encodes its own
share of the sentences; the counts and the encoded ids are then gathered through JAX's collectives,
so every device holds the corpus's word ids (4 bytes a token) for the step to draw centres from
(:func:`scratchlm.training.word2vec.read_corpus`), and process 0 writes the outputs.

The command only wires pieces: flags -> :class:`~scratchlm.embeddings.word2vec.config.Word2VecConfig`
-> :func:`scratchlm.training.word2vec.train_with_checkpoints` -> vectors and metrics.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from scratchlm import checks, jsonio
from scratchlm.commands.common import (
    add_parallel_arguments,
    add_run_arguments,
    check_run_folder,
    complete_run,
    limit_intra_op_threads,
    setup_parallel,
    start_run,
)
from scratchlm.commands.flags import seed
from scratchlm.embeddings.word2vec.config import Word2VecConfig
from scratchlm.errors import ScratchlmError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", default="wiki", help="'wiki' (the cleaned Wikipedia sample), 'lee', or a file: "
                        "one sentence a line, whitespace-tokenized")
    W = Word2VecConfig
    parser.add_argument("--model", choices=("skipgram", "cbow"), default=W.model, help="the architecture (gensim's sg)")
    parser.add_argument("--dim", type=int, default=W.dim, help="vector size, in components (gensim's vector_size)")
    parser.add_argument("--window", type=int, default=W.window,
                        help="largest context on each side, in words (reduced at random per centre)")
    parser.add_argument("--negative", type=int, default=W.negative, help="noise words K per positive pair")
    parser.add_argument("--min-count", type=int, default=W.min_count, help="rarer words are dropped, in occurrences")
    parser.add_argument("--sample", type=float, default=W.sample, help="subsampling threshold t (0: keep every word)")
    parser.add_argument("--epochs", type=int, default=W.epochs, help="passes over the corpus")
    parser.add_argument("--lr", type=float, default=W.lr,
                        help="SGD's starting learning rate, decaying linearly to --min-lr (gensim's alpha, "
                             "the C tool's -alpha)")
    parser.add_argument("--min-lr", type=float, default=W.min_lr,
                        help="the learning rate at the end of the last epoch (gensim's min_alpha)")
    parser.add_argument("--seed", type=seed, default=0, help="initialisation, subsampling and noise draws")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="centre words per step (default on CPU: 384 skip-gram, 1024 CBOW; on an accelerator "
                             "up to 16384, halved until an epoch has at least 256 steps)")
    parser.add_argument("--steps-per-call", type=int, default=None,
                        help=f"jitted steps per dispatch (default {W.steps_per_call}; CBOW on a CPU: the fewest "
                             f"dispatches of at most {W.steps_per_call} steps that cover an epoch)")
    parser.add_argument("--noise-share", type=int, default=None,
                        help="centres sharing one set of noise words (default on CPU: skip-gram 8, CBOW 32 taken "
                             "across its runs; on an accelerator 1)")
    parser.add_argument("--normalize-duplicates", action="store_true", default=None,
                        help="divide a row's summed update by sqrt(its count in the step) (default: on for batches "
                             "above 2048)")
    parser.add_argument("--restrict-vocab", type=int, default=30_000, help="evaluate over the N most frequent words")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads running a step's ops (default 1: the step's ops are too small to share "
                             "between threads, see scratchlm.commands.common.limit_intra_op_threads; 0: XLA's "
                             "default, one per CPU); compiling uses every CPU either way; ignored with a GPU/TPU or a "
                             "mesh")
    add_run_arguments(parser)
    add_parallel_arguments(parser)  # --mesh data=4,model=2 (tables by rows over model); multi-host flags


def command_args(**overrides) -> argparse.Namespace:
    """The command's arguments as parsed from an empty command line, with ``overrides`` (for callers
    such as the demo that run the command in-process: every flag gets its default, none is forgotten).  A key
    that is no argument of the command is a :class:`~scratchlm.errors.ScratchlmError` naming it."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--out", str(overrides.get("out", "."))])
    unknown = set(overrides) - set(vars(args))
    if unknown:
        raise ScratchlmError(f"not arguments of scratchlm word2vec: {', '.join(sorted(unknown))} (its arguments: "
                             f"{', '.join(sorted(vars(args)))})")
    return argparse.Namespace(**{**vars(args), **overrides})


def _config(args, counts=None):
    """The run's config (:func:`scratchlm.embeddings.word2vec.model.run_config`); ``counts`` (the vocabulary's
    word counts) size an accelerator's default batch and CBOW's dispatches on a CPU."""
    import jax

    from scratchlm.embeddings.word2vec.model import run_config

    return run_config(accelerator=jax.devices()[0].platform != "cpu", counts=counts, model=args.model, dim=args.dim,
                      window=args.window, negative=args.negative, min_count=args.min_count, sample=args.sample,
                      epochs=args.epochs, lr=args.lr, min_lr=args.min_lr, batch_size=args.batch_size,
                      steps_per_call=args.steps_per_call, normalize_duplicates=args.normalize_duplicates,
                      noise_share=args.noise_share)


def train_and_write(args, sentences=None, clock=None) -> dict:
    """The whole command: corpus -> vocabulary -> run folder -> training (with checkpoints) -> vectors.txt,
    metrics.json, curves.png.  A run found complete returns the metrics on disk.  ``clock`` (a
    :class:`~scratchlm.training.phases.PhaseClock` started by the caller, or one started here) times the
    phases into ``metrics["timings"]``."""
    from scratchlm.training.phases import PhaseClock

    clock = PhaseClock() if clock is None else clock
    with clock.listening():
        return _train_and_write(args, sentences, clock)


def _train_and_write(args, sentences, clock) -> dict:
    import dataclasses
    import json
    from concurrent.futures import ThreadPoolExecutor

    import jax
    from tqdm import tqdm

    from scratchlm.data import corpora
    from scratchlm.data.corpora import load_tokenized_corpus
    from scratchlm.embeddings.evaluate import standard_scores
    from scratchlm.embeddings.formats import save_word2vec
    from scratchlm.embeddings.word2vec import model
    from scratchlm.training import checkpoint, plots
    from scratchlm.training import word2vec as recipe
    from scratchlm.training.run import data_digest

    started = time.perf_counter()
    clock.seconds["imports"] = started - clock.started  # from the command's first line: JAX, its backend, ours
    check_run_folder(args)
    if sentences is None:
        checks.source(args.corpus, "--corpus")
    checks.at_least("restrict_vocab", args.restrict_vocab, 1)
    mesh = setup_parallel(args)  # before any other JAX call
    lead = jax.process_index() == 0
    config = _config(args)  # the settings checked before the corpus is read; the batch is sized below
    out: Path = args.out
    with clock.phase("read"):
        sentences = load_tokenized_corpus(args.corpus) if sentences is None else sentences
        digest = data_digest([" ".join(s) for s in sentences])

    def run_settings(config) -> dict:
        return {"config": dataclasses.asdict(config), "seed": args.seed, "restrict_vocab": args.restrict_vocab}

    known = run_settings(config)  # before the vocabulary: an accelerator's default batch (and CBOW's dispatch
    # size) follows the corpus size
    if args.batch_size is None and jax.devices()[0].platform != "cpu":
        for derived in ("batch_size", "normalize_duplicates", "noise_share"):
            known["config"].pop(derived)
    if args.steps_per_call is None:  # derived from the vocabulary's counts (CBOW on a CPU)
        known["config"].pop("steps_per_call")
    if complete_run(args, command="word2vec", settings=known, data=digest, unit="epoch"):
        return json.loads((out / "metrics.json").read_text())
    with clock.phase("vocabulary"):
        vocab, ids, sentence, raw_words = recipe.read_corpus(sentences, config.min_count)
    config = _config(args, vocab.counts)

    def epochs_done(folder: Path) -> float:
        latest = checkpoint.latest_checkpoint(folder / "checkpoints")
        if latest is None:
            return 0
        return checkpoint.read_extra(latest)["epoch"]  # epochs finished (and some steps of the next)

    run = start_run(args, command="word2vec", data=digest, settings=run_settings(config), total_steps=config.epochs,
                    unit="epoch", position=epochs_done)
    if run.state == "complete":
        return json.loads((out / "metrics.json").read_text())
    with clock.phase("init"):  # the tables and the corpus on the device (their programs compiled)
        corpus = recipe.make_corpus(ids, sentence, vocab.counts, config.sample)
        params, k_train = recipe.seeded_init(args.seed, len(vocab), config)
        jax.block_until_ready((params, corpus.ids, corpus.noise_ends))
    settings = {"config": dataclasses.asdict(config), "corpus": str(args.corpus), "seed": args.seed,
                "vocab_size": len(vocab), "tokens": int(len(ids))}

    total = config.epochs * len(ids)
    # a bar on a terminal, as every command's loop (scratchlm.training.loop); log lines otherwise; --quiet: neither
    quiet = bool(getattr(args, "quiet", False))
    bar = tqdm(total=total, unit="w", unit_scale=True, disable=quiet or not sys.stderr.isatty(),
               desc=f"word2vec {config.model}")
    done = {"words": 0, "logged": 0.0, "t": time.perf_counter()}
    curve: list[dict] = []

    def on_progress(params, progress):
        prepare_side()
        words = min(progress.words_done, total)
        bar.update(words - done["words"])
        done["words"] = words
        bar.set_postfix(loss=f"{progress.loss:.3f}", epoch=progress.epoch + 1)
        curve.append({"step": words / 1e6, "split": "train", "loss": progress.loss})
        now = time.perf_counter()
        if bar.disable and (words - done["logged"] >= total / 10 or now - done["t"] >= 30 or words == total):
            recipe.logger.info("word2vec %s: %.0f %% of %d epochs, loss %.4f", config.model, 100 * words / total,
                               config.epochs, progress.loss)
            done.update(logged=words, t=now)

    # A second thread does the work of the phases after training that needs no trained vector while the
    # step runs on one CPU thread (pyplot's import, the evaluation sets), then draws the plots while
    # this thread writes and scores the vectors: 1-1.5 s of a command on 2 cores.  It starts after the
    # first dispatch, once the steps' programs are traced: started before, its imports held the GIL
    # while this thread traced them, and the first steps began 0.1-0.3 s later (CBOW, 2 cores).
    side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="word2vec-side")

    def prepare_side():
        if done.get("side"):
            return
        done["side"] = True
        if lead:
            side.submit(plots.warm_up)
        side.submit(lambda: (corpora.analogy_questions(), *map(corpora.word_pairs, ("wordsim353", "simlex999"))))

    t0 = time.perf_counter()
    with clock.phase("train"), run.training():
        params, loss, start_epoch = recipe.train_with_checkpoints(
            params, corpus, config, key=k_train, checkpoint_dir=run.checkpoints, settings=settings,
            resume=run.resume, checkpoint_every=run.config.checkpoint_every, mesh=mesh, callback=on_progress,
            log=recipe.logger.info)
    train_seconds = time.perf_counter() - t0
    prepare_side()  # a run resumed at its end has no dispatch
    bar.close()
    wv = model.word_vectors(params, vocab)

    def draw() -> str:
        plots.plot_curves(out / "curves.png", [curve], title=f"word2vec {config.model}: training loss",
                          loss="negative-sampling loss per pair", metric=None,
                          step_unit="corpus words processed (millions)")
        return plots.plot_word_groups(out / "projection.png", wv,
                                      title=f"word2vec {config.model}: 2-D PCA of chosen words")

    drawn = side.submit(draw) if lead else None
    side.shutdown(wait=False)  # the queued work still runs; nothing more is queued
    # The scores need no file: a third thread computes them (NumPy's products release the GIL) while this
    # one formats and writes the vectors (Python's formatting holds it).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="word2vec-score") as scorer:
        scoring = scorer.submit(standard_scores, wv, restrict_vocab=args.restrict_vocab)
        with clock.phase("write"):
            if lead:
                save_word2vec(wv, out / "vectors.txt")
        with clock.phase("score"):  # what is left of the scoring once the vectors are written
            try:
                scores = scoring.result()
            except ScratchlmError as err:  # gensim's data not installed, or no pair in a tiny vocabulary:
                scores = {"evaluation_error": str(err)}  # the vectors stand, unscored (as GloVe's command does)
    trained_words = raw_words * (config.epochs - start_epoch)
    metrics = {"model": config.model, "device": f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind}",
               "raw_words": raw_words, "vocab_size": len(vocab), "epochs": config.epochs,
               "train_seconds": train_seconds, "words_per_second": trained_words / train_seconds,
               "final_loss": loss, **scores, "settings": settings["config"],
               "seconds": time.perf_counter() - started,
               "mesh": None if mesh is None else dict(mesh.shape), "processes": jax.process_count()}
    if lead:
        with clock.phase("plot"):  # the wait for the second thread's drawing
            metrics["projection"] = drawn.result()
        metrics["timings"] = clock.report()
        jsonio.write(out / "metrics.json", metrics)
        run.finish()
    return metrics


def run(args: argparse.Namespace) -> int:
    from scratchlm.training.phases import PhaseClock

    clock = PhaseClock()
    checks.at_least("threads", args.threads, 0)
    if args.threads and args.mesh is None and args.coordinator is None and args.num_processes is None:
        limit_intra_op_threads(args.threads)  # before anything starts JAX's backend
    import jax

    metrics = train_and_write(args, clock=clock)
    written = f"vectors in {args.out / 'vectors.txt'}" if jax.process_index() == 0 else "process 0 writes the vectors"
    scores = (f"not evaluated ({metrics['evaluation_error']})" if "evaluation_error" in metrics else
              f"analogy {metrics['analogy_accuracy']:.3f}, WordSim-353 {metrics['wordsim353_spearman']:.3f}, "
              f"SimLex-999 {metrics['simlex999_spearman']:.3f}")
    print(f"{metrics['words_per_second']:,.0f} words/s, loss {metrics['final_loss']:.3f}, {scores}; {written}")
    return 0


def demo_step(ctx) -> dict:
    """Skip-gram on the cleaned Wikipedia sample (15 epochs, the benchmark's setting: about a minute on 2 idle
    cores; one epoch over 500 paragraphs with --quick, seconds after compilation)."""
    from scratchlm.data.corpora import load_tokenized_corpus

    sentences = load_tokenized_corpus("wiki")
    if ctx.quick:
        sentences = sentences[:500]
    args = command_args(corpus="wiki", model="skipgram", epochs=1 if ctx.quick else 15, seed=ctx.seed,
                        **vars(ctx.args()))
    m = train_and_write(args, sentences)
    note = m.get("projection", "")
    result = (f"skip-gram {m['epochs']} ep: {m['words_per_second']:,.0f} words/s, analogy {m['analogy_accuracy']:.3f}, "
              f"WordSim {m['wordsim353_spearman']:.3f}, SimLex {m['simlex999_spearman']:.3f}; {note}")
    return {"result": result, **{k: m[k] for k in ("words_per_second", "analogy_accuracy", "wordsim353_spearman",
                                                    "simlex999_spearman", "final_loss", "train_seconds")}}
