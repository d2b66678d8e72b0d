"""Word2Vec beside gensim: same corpus, same settings, one run, one JSON line.

Quality and speed on the cleaned Wikipedia sample (dim 100, window 5, negative 5, min_count 5,
sample 1e-3, 15 epochs; at 5 epochs this small sample leaves every score inside seed noise):
seconds, words/s, analogy accuracy (3CosAdd, restrict 30,000), WordSim-353 and SimLex-999 Spearman,
for scratchlm and gensim (``workers=2``).  ``words/s`` counts corpus tokens (before min_count and
subsampling) times epochs over training seconds, as gensim's logs do.  scratchlm's seconds include
its compilation; ``pipeline seconds`` add vocabulary building, encoding and the transfer to the device.

Last run (2026-11-24 00:08 UTC, the 2 CPU cores; CPU default noise sets, 8 for skip-gram and 32
across runs for CBOW; one thread running scratchlm's step, ``--threads 1`` as the command): skip-gram
20.1 s against gensim's 20.0 s, ratio 1.00 (0.83 with XLA's default threads, same vectors), analogy
0.031 / 0.036, WordSim-353 0.474 / 0.428, SimLex-999 0.226 / 0.212; CBOW 7.1 s against 6.0 s, ratio
0.85, scores at or above gensim's.  scratchlm's seconds include 2.5-3.4 s of tracing and compiling
the step; ``scratchlm word2vec`` keeps the compiled step in ``~/.cache/scratchlm/xla`` for its next
run (``benchmarks/RESULTS.md``).  This benchmark times the library cold.

``--repeat-corpus N`` adds a speed run of scratchlm alone on the sample repeated N times (a corpus
large enough to keep an accelerator busy), timed after a warm-up epoch, for ``--speed-epochs``; its
vectors are scored too (``speed_run`` in the JSON line), since a batch an accelerator needs takes too
few steps on the sample itself to train it (see ``benchmarks/RESULTS.md``).

    python -m benchmarks.word2vec --model skipgram            # CPU, 2 cores
    python -m benchmarks.word2vec --model both --quick         # a smoke run
    python -m benchmarks.word2vec --model both                 # GPU, the sample
    python -m benchmarks.word2vec --model cbow --no-gensim --epochs 1 --repeat-corpus 100 \
        --speed-epochs 2                                           # GPU speed (H100: 52.9 M words/s)

Settings left out are the command's (:func:`scratchlm.embeddings.word2vec.model.run_config`) for this
device and corpus: on an accelerator the batch follows the corpus size (1,024 on the sample, 16,384 on the
sample x100, damped above 2,048), so the speed run's batch is not the sample run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from benchmarks.common import figure, report


def _scratchlm(sentences, config, seed, *, timed_epochs_only=False):
    import jax

    from scratchlm.embeddings.word2vec import model, sampling
    from scratchlm.training import word2vec

    t0 = time.perf_counter()
    vocab = sampling.build_vocab(sentences, config.min_count)
    ids, sentence = sampling.encode(sentences, vocab)
    corpus = word2vec.make_corpus(ids, sentence, vocab.counts, config.sample)
    k_init, k_train = jax.random.split(jax.random.key(seed))
    params = model.init(k_init, len(vocab), config)
    jax.block_until_ready((params, corpus.ids))
    t1 = time.perf_counter()
    params, loss = word2vec.train(params, corpus, config, key=k_train)
    jax.block_until_ready(params)
    t2 = time.perf_counter()
    return model.word_vectors(params, vocab), {"train_seconds": t2 - t1, "pipeline_seconds": t2 - t0, "loss": loss}


def _gensim(sentences, args, sg, seed):
    from gensim.models import Word2Vec

    from scratchlm.embeddings.formats import WordVectors

    model = Word2Vec(vector_size=args.dim, window=args.window, negative=args.negative, min_count=args.min_count,
                     sample=args.sample, sg=sg, hs=0, workers=args.workers, seed=seed, alpha=args.lr, min_alpha=1e-4)
    t0 = time.perf_counter()
    model.build_vocab(sentences)
    t1 = time.perf_counter()
    model.train(sentences, total_examples=len(sentences), epochs=args.epochs)
    t2 = time.perf_counter()
    timings = {"train_seconds": t2 - t1, "pipeline_seconds": t2 - t0}
    return WordVectors(tuple(model.wv.index_to_key), model.wv.vectors), timings


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs on a fifth of the sample (smoke run)")
    parser.add_argument("--model", choices=("skipgram", "cbow", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negative", type=int, default=5)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--lr", type=float, default=0.025,
                        help="starting learning rate, the same for both (gensim's alpha)")
    parser.add_argument("--batch-size", type=int, default=None, help="scratchlm centre words per step "
                        "(default: the command's for the device and corpus)")
    parser.add_argument("--steps-per-call", type=int, default=None, help="default: the command's")
    parser.add_argument("--normalize-duplicates", action="store_true", default=None,
                        help="default: the command's (on above 2,048 centres a step)")
    parser.add_argument("--noise-share", type=int, default=None,
                        help="centres sharing one noise set (default: the command's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="gensim threads")
    parser.add_argument("--restrict-vocab", type=int, default=30_000)
    parser.add_argument("--no-gensim", action="store_true")
    parser.add_argument("--repeat-corpus", type=int, default=1,
                        help="N > 1: also a scratchlm speed run on the sample repeated N times")
    parser.add_argument("--speed-epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads running scratchlm's step, as `scratchlm word2vec --threads` "
                             "(default 1; 0: XLA's default)")
    args = parser.parse_args(argv)
    from scratchlm.commands.common import limit_intra_op_threads

    # before anything starts JAX's backend; gensim's threads are its own and keep every CPU
    threads_limited = bool(args.threads) and limit_intra_op_threads(args.threads)
    if args.quick:
        args.epochs = min(args.epochs, 2)

    from scratchlm.data.corpora import load_tokenized_corpus
    from scratchlm.embeddings.evaluate import standard_scores
    from scratchlm.embeddings.word2vec.model import run_config
    from scratchlm.embeddings.word2vec.sampling import build_vocab

    sentences = load_tokenized_corpus("wiki")
    if args.quick:
        sentences = sentences[: len(sentences) // 5]
    raw_words = sum(map(len, sentences))
    models = ("skipgram", "cbow") if args.model == "both" else (args.model,)
    figures, extra = [], {}
    import jax

    accelerator = jax.devices()[0].platform != "cpu"
    counts = build_vocab(sentences, args.min_count).counts

    def make_config(name, counts, min_count, epochs):
        return run_config(accelerator=accelerator, counts=counts, model=name, dim=args.dim, window=args.window,
                          negative=args.negative, min_count=min_count, sample=args.sample, epochs=epochs,
                          lr=args.lr, batch_size=args.batch_size, steps_per_call=args.steps_per_call,
                          normalize_duplicates=args.normalize_duplicates, noise_share=args.noise_share)

    for name in models:
        config = make_config(name, counts, args.min_count, args.epochs)
        extra[f"{name}_config"] = dataclasses.asdict(config)
        wv, ours = _scratchlm(sentences, config, args.seed)
        ours.update(standard_scores(wv, restrict_vocab=args.restrict_vocab))
        ours["words_per_second"] = raw_words * args.epochs / ours["train_seconds"]
        theirs = None
        if not args.no_gensim:
            gwv, theirs = _gensim(sentences, args, sg=int(name == "skipgram"), seed=args.seed)
            theirs.update(standard_scores(gwv, restrict_vocab=args.restrict_vocab))
            theirs["words_per_second"] = raw_words * args.epochs / theirs["train_seconds"]
        peer = None if theirs is None else "gensim " + __import__("gensim").__version__ + f" (workers={args.workers})"
        get = (lambda key: None) if theirs is None else theirs.get
        figures += [
            figure(f"{name} {title}", ours[key], get(key), unit=unit, peer_name=peer,
                   **({"higher_is_better": False} if unit == "s" else {}))
            for title, key, unit in (("words/s", "words_per_second", "words/s"),
                                     ("train seconds", "train_seconds", "s"),
                                     ("pipeline seconds", "pipeline_seconds", "s"),
                                     ("analogy accuracy", "analogy_accuracy", "accuracy"),
                                     ("WordSim-353 Spearman", "wordsim353_spearman", "rho"),
                                     ("SimLex-999 Spearman", "simlex999_spearman", "rho"))
        ]
        if theirs is not None:
            quality = ("analogy_accuracy", "wordsim353_spearman", "simlex999_spearman")
            extra[f"{name}_differences"] = {k: ours[k] - theirs[k] for k in quality}
        extra[f"{name}_final_loss"] = ours["loss"]

    if args.repeat_corpus > 1:
        big = sentences * args.repeat_corpus
        # min_count scaled with the copies, so the speed run keeps the sample's vocabulary (a word seen
        # once in the sample is seen N times here) and its scores compare with the runs above.
        config = make_config(models[0], counts * args.repeat_corpus, args.min_count * args.repeat_corpus,
                             args.speed_epochs)
        _scratchlm(big, dataclasses.replace(config, epochs=1), args.seed)  # warm-up: compiles for this corpus size
        wv, speed = _scratchlm(big, config, args.seed)
        figures.append(figure(f"{models[0]} words/s, sample x{args.repeat_corpus}",
                              raw_words * args.repeat_corpus * args.speed_epochs / speed["train_seconds"], None,
                              unit="words/s", peer_name=None))
        # The speed run's vectors, scored like the others: large batches take few steps on the small
        # sample, so "quality unchanged" at the speed run's batch is read here, on the corpus it ran on.
        speed.update(standard_scores(wv, restrict_vocab=args.restrict_vocab))
        extra["speed_run"] = {"raw_words": raw_words * args.repeat_corpus, "epochs": args.speed_epochs,
                              "config": dataclasses.asdict(config), **speed}

    settings = {k: v for k, v in vars(args).items()}
    return report("word2vec", figures, settings=settings, raw_words=raw_words, threads_limited=threads_limited, **extra)


if __name__ == "__main__":
    main()
