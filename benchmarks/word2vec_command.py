"""The whole `scratchlm word2vec` command beside a whole gensim process doing the same job: one JSON line.

What a user waits for (issue 28's yardstick): each side is started as its own process and timed from
outside, interpreter start to exit.  scratchlm runs ``python -m scratchlm.cli word2vec --corpus FILE``
(imports, reading, vocabulary, init and compilation, training, writing ``vectors.txt``, scoring,
plots, ``metrics.json``); gensim runs a script that reads the same file, builds its vocabulary,
trains with the same settings (``workers=2``) and saves the vectors in word2vec text format.  The
corpus is the cleaned Wikipedia sample written once to a file, one paragraph a line, in scratchlm's
tokenization (``--repeat N`` writes it N times).

The machine is shared, so the sides alternate (scratchlm, gensim, scratchlm, gensim, ...) for
``--rounds`` rounds and each figure is a median.  scratchlm's compilation cache starts empty in a
fresh folder: its first run (``first``) compiles everything, later ones read the cached programs back
(``warm``: what a user's second run sees).  Each scratchlm run's phases (its ``metrics.json``
``timings``) are reported as medians.

    python -m benchmarks.word2vec_command                         # skip-gram and CBOW, 15 epochs, the sample
    python -m benchmarks.word2vec_command --repeat 4 --epochs 5   # the sample x4 (1.9 M words)
    python -m benchmarks.word2vec_command --quick                 # smoke run: 2 epochs, CBOW, 2 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The peer as a whole process: read the file, vocabulary, train, save.  Timed from outside.
GENSIM_JOB = """
import sys
from gensim.models import Word2Vec
corpus, out, sg, epochs, seed, workers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \\
    int(sys.argv[5]), int(sys.argv[6])
with open(corpus, encoding="utf-8") as f:
    sentences = [line.split() for line in f]
model = Word2Vec(sentences, vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, sg=sg, hs=0,
                 alpha=0.025, min_alpha=1e-4, epochs=epochs, workers=workers, seed=seed)
model.wv.save_word2vec_format(out, binary=False)
"""


def write_corpus(path: Path, repeat: int, fraction: float = 1.0) -> int:
    """The cleaned Wikipedia sample in scratchlm's tokenization, one paragraph a line, ``repeat`` times; returns
    the words written."""
    from scratchlm.data.corpora import load_tokenized_corpus

    sentences = load_tokenized_corpus("wiki")
    sentences = sentences[: max(1, int(len(sentences) * fraction))]
    text = "".join(" ".join(s) + "\n" for s in sentences)
    path.write_text(text * repeat, encoding="utf-8")
    return repeat * sum(map(len, sentences))


def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return seconds


def run_ours(corpus: Path, out: Path, model: str, epochs: int, seed: int, env: dict,
             threads: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "scratchlm.cli", "word2vec", "--corpus", str(corpus), "--model", model,
           "--epochs", str(epochs), "--seed", str(seed), "--out", str(out), "--overwrite", "--quiet"]
    cmd += [] if threads is None else ["--threads", str(threads)]
    seconds = _timed(cmd, env)
    metrics = json.loads((out / "metrics.json").read_text())
    timings = metrics.get("timings", {})
    phases = dict(timings.get("phases", {}))
    if timings.get("process_age") is not None:  # interpreter start, imports before the command, and exit
        phases["outside_command"] = seconds - timings["since_start"]
    return {"seconds": seconds, "phases": phases, "xla": timings.get("xla"),
            "scores": {k: metrics[k] for k in ("analogy_accuracy", "wordsim353_spearman", "simlex999_spearman")}}


def run_gensim(corpus: Path, out: Path, model: str, epochs: int, seed: int, workers: int, env: dict) -> dict:
    cmd = [sys.executable, "-c", GENSIM_JOB, str(corpus), str(out / "gensim.txt"), str(int(model == "skipgram")),
           str(epochs), str(seed), str(workers)]
    return {"seconds": _timed(cmd, env)}


def _median_phases(runs: list[dict]) -> dict:
    names = {k for r in runs for k in r["phases"]}
    return {k: round(statistics.median(r["phases"].get(k, 0.0) for r in runs), 3) for k in sorted(names)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("skipgram", "cbow", "both"), default="both")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=1, help="the sample written N times into the corpus file")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side (first is cold)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="gensim threads")
    parser.add_argument("--threads", type=int, default=None,
                        help="scratchlm word2vec's --threads (default: the command's own default)")
    parser.add_argument("--quick", action="store_true", help="2 epochs, a fifth of the sample, CBOW, 2 rounds")
    args = parser.parse_args(argv)
    fraction = 1.0
    if args.quick:
        args.epochs, args.rounds, fraction = min(args.epochs, 2), min(args.rounds, 2), 0.2
        args.model = "cbow" if args.model == "both" else args.model
    from benchmarks.common import figure, report

    models = ("skipgram", "cbow") if args.model == "both" else (args.model,)
    figures, extra = [], {}
    with tempfile.TemporaryDirectory(prefix="w2v-command-") as tmp:
        tmp = Path(tmp)
        corpus = tmp / "corpus.txt"
        words = write_corpus(corpus, args.repeat, fraction)
        path = os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])
        for name in models:  # each model's first run with a compile cache of its own, empty
            env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp / f"xla-{name}"), "PYTHONPATH": path}
            ours, theirs = [], []
            for _ in range(args.rounds):  # alternate the sides: the machine's load falls on both
                ours.append(run_ours(corpus, tmp / f"ours-{name}", name, args.epochs, args.seed, env, args.threads))
                theirs.append(run_gensim(corpus, tmp, name, args.epochs, args.seed, args.workers, env))
            warm = ours[1:] or ours
            ours_s = statistics.median(r["seconds"] for r in warm)
            theirs_s = statistics.median(r["seconds"] for r in theirs)
            peer = f"gensim {__import__('gensim').__version__} whole process (workers={args.workers})"
            figures += [figure(f"{name} whole command, first run (cold compile cache)", ours[0]["seconds"],
                               theirs_s, unit="s", peer_name=peer, higher_is_better=False),
                        figure(f"{name} whole command, later runs (median)", ours_s, theirs_s, unit="s",
                               peer_name=peer, higher_is_better=False)]
            extra[name] = {"speed_ratio_warm": theirs_s / ours_s, "speed_ratio_first": theirs_s / ours[0]["seconds"],
                           "scratchlm_seconds": [round(r["seconds"], 3) for r in ours],
                           "gensim_seconds": [round(r["seconds"], 3) for r in theirs],
                           "phases_first": ours[0]["phases"], "phases_warm_median": _median_phases(warm),
                           "xla_first": ours[0]["xla"], "xla_warm": warm[-1]["xla"], "scores": ours[-1]["scores"]}
    return report("word2vec_command", figures, settings=vars(args), corpus_words=words,
                  note="both sides as subprocesses, alternating, medians over rounds", **extra)


if __name__ == "__main__":
    main()
