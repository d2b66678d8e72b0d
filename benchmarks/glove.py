"""GloVe on the cleaned Wikipedia sample: counting time and memory, seconds per epoch, vector quality.

    python benchmarks/glove.py                         # the issue's settings, 50 epochs (CPU: minutes)
    python benchmarks/glove.py --synthetic-nnz 1e8     # speed only: 100M random non-zeros (GPU)

The peer, Stanford's GloVe C tool (vocab_count, cooccur, shuffle, glove), is not on PyPI and cannot
be built here; its figures are those stated in issue 5, measured by the lead on these machines with
the same settings and 2 threads: analogy accuracy 0.016, WordSim-353 0.27, SimLex-999 0.07, and
2.1 s per epoch over 3.4 million non-zeros (~0.62 µs per non-zero).  Our tokenization gives a
different number of non-zeros, so speed is compared per non-zero as well as per epoch.

What the issue's C-tool run counted (2026-11-23, late session).  Its 3.4 M non-zeros were never
reproduced on the shipped sample: lower-cased words with windows stopping at a paragraph give
2.90 M; case-sensitive words 3.05 M; whitespace split 2.74 M (lower-cased 2.65 M); punctuation kept
as tokens 2.77 M; windows running across paragraphs within an article 3.24 M, and across the whole
sample 3.24 M.  But a transcription of ``glove.c``'s training loop (its ``glove_thread``,
initialisation and gradsq = 1; gcc -O3, 2 threads, Hogwild per-entry AdaGrad, the records shuffled
once; kept outside this repository, for measurement only), run on each count with the issue's
settings and scored by ``standard_scores``, reproduces the issue's figures only on the article
count.  So ``--corpus wiki`` gives GloVe one article a line (as ``cooccur`` is fed a document a
line), and the comparison below is like for like, 8,853 words, 3,235,596 non-zeros:

    ===========================================  =========================  =====  ========  ======
    trainer (same co-occurrence counts)          analogy, seeds 0/1/2/3     mean   WordSim   SimLex
    ===========================================  =========================  =====  ========  ======
    glove.c loop, per entry, 2 threads           .0168/.0168/.0150/.0174    .0165  .257      .082
    scratchlm, B = 16,384, minibatch (default)   .0177/.0156/.0150/.0150    .0158  .277      .088
    scratchlm, B = 16,384, accumulate=entry      .0177/.0165/.0153/.0153    .0162  .278      .087
    scratchlm, B = 65,536, minibatch             .0144/.0153/.0138          .0145  .273      .098
    scratchlm, B = 65,536, accumulate=entry      .0156/.0171                .0164  .269      .098
    ===========================================  =========================  =====  ========  ======
    (on the paragraph count, 2.90 M: glove.c loop .0162/.0177, .232/.246, .043/.056; scratchlm
    B = 65,536 .0153/.0127, .229/.225, .072/.039)

WordSim and SimLex are means over the same seeds.  The seed-to-seed spread of analogy accuracy is
about .001 (3-4 questions of the 3,394 answered), so the default's −.0007 against the C loop's mean
is within one standard error (.0008); WordSim-353 (+.020) and SimLex-999 (+.006) are above it.
The default run (seed 0) gives .0177 / .307 / .093 against the issue's .016 / .27 / .07.

Speed, interleaved on the idle 2 cores, the same counts, seconds per epoch over three rounds: the
glove.c loop 2.0-2.75 (2 threads), scratchlm B = 16,384 1.63-1.84 (1.27-1.56x the C loop's rate
in each round), B = 65,536 1.26-1.60; ``accumulate="entry"`` 2.1-2.7, no faster than the C loop,
which is why it stays an option; ``update="rows"`` at B = 16,384 4.5-5.5 (``auto`` picks dense).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

try:
    from benchmarks.common import figure, report
except ModuleNotFoundError:  # run as a script: python benchmarks/glove.py
    from common import figure, report

C_TOOL = "Stanford GloVe C tool, 2 threads (figures stated in issue 5; not installable here)"
C_SECONDS_PER_EPOCH, C_NONZEROS = 2.1, 3.4e6
C_SCORES = {"analogy_accuracy": 0.016, "wordsim353_spearman": 0.27, "simlex999_spearman": 0.07}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default="wiki")
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--window", type=int, default=15)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--x-max", type=float, default=10.0)
    p.add_argument("--alpha", type=float, default=0.75)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=16384)
    p.add_argument("--update", choices=("auto", "dense", "rows"), default="auto")
    p.add_argument("--accumulate", choices=("entry", "minibatch"), default="minibatch",
                   help="AdaGrad accumulator: each entry's squared gradient (as glove.c) or the minibatch sum's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synthetic-nnz", type=float, default=0, help="skip the corpus: time this many random non-zeros")
    p.add_argument("--synthetic-vocab", type=int, default=400_000, help="vocabulary of the synthetic problem")
    p.add_argument("--quick", action="store_true", help="a smoke run: 3 epochs of 50-d vectors")
    return p


def _synthetic(nnz: int, V: int, seed: int):
    """Zipf-like word ids (rank r drawn with probability ~ 1/r, as word frequencies) and log-normal X_ij."""
    rng = np.random.default_rng(seed)

    def ranks():
        return np.minimum(np.exp(rng.uniform(0, np.log(V), nnz)).astype(np.int64) - 1, V - 1)

    return ranks().astype(np.int32), ranks().astype(np.int32), rng.lognormal(0.0, 1.5, nnz)


def main(argv=None) -> dict:
    args = _parser().parse_args(argv)
    if args.quick:
        args.epochs, args.dim = 3, 50
    import jax

    from scratchlm.embeddings.glove import kernels
    from scratchlm.embeddings.glove.config import GloveConfig
    from scratchlm.training import glove

    config = GloveConfig(dim=args.dim, x_max=args.x_max, alpha=args.alpha, epochs=args.epochs,
                               batch_size=args.batch_size, update=args.update, accumulate=args.accumulate)
    extra: dict = {"settings": vars(args)}
    if args.synthetic_nnz:
        nnz, V = int(args.synthetic_nnz), args.synthetic_vocab
        i, j, x = _synthetic(nnz, V, args.seed)
        extra["problem"] = f"synthetic: {nnz} random non-zeros over {V} words"
    else:
        from scratchlm.data.corpora import load_tokenized_corpus
        from scratchlm.embeddings.glove.cooccurrence import count_cooccurrences

        sentences = load_tokenized_corpus(args.corpus, wiki_unit="article")  # as `scratchlm glove`

        def count():
            return count_cooccurrences(sentences, window=args.window, min_count=args.min_count)

        t0 = time.perf_counter()
        cooc = count()
        extra["cooccurrence_seconds"] = time.perf_counter() - t0
        tracemalloc.start()  # a second, traced count: tracing slows Python's small allocations
        count()
        extra["cooccurrence_peak_traced_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        i, j, x, V = cooc.i, cooc.j, cooc.x, cooc.vocab_size
        extra["problem"] = f"{args.corpus}: {cooc.nnz} non-zeros over {V} words, {sum(map(len, sentences))} tokens"
    extra["nonzeros"], extra["vocab_size"] = int(x.size), int(V)

    result = glove.train(i, j, x, V, config=config, key=jax.random.key(args.seed), progress=False)
    extra.update(update=result.update, compile_seconds=result.compile_seconds, final_cost=result.costs[-1])
    ns_per_nnz = result.seconds_per_epoch / x.size * 1e9
    figures = [
        figure("seconds per epoch", result.seconds_per_epoch, C_SECONDS_PER_EPOCH if not args.synthetic_nnz else None,
               unit="s", peer_name=C_TOOL + f", over {C_NONZEROS:,.0f} non-zeros", higher_is_better=False),
        figure("time per non-zero per epoch", ns_per_nnz, C_SECONDS_PER_EPOCH / C_NONZEROS * 1e9, unit="ns",
               peer_name=C_TOOL, higher_is_better=False),
    ]
    if not args.synthetic_nnz:
        from scratchlm.embeddings.evaluate import standard_scores
        from scratchlm.embeddings.formats import WordVectors

        wv = WordVectors(cooc.words, np.asarray(kernels.vectors(result.params)))
        scores = standard_scores(wv, restrict_vocab=30_000)
        extra["scores"] = scores
        figures += [figure(name, scores[name], C_SCORES[name], unit="", peer_name=C_TOOL) for name in C_SCORES]
    return report("glove", figures, **extra)


if __name__ == "__main__":
    main()
