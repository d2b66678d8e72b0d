"""How time and memory grow with the data: scratchlm beside its peer at 1x, 4x and 16x the text.

Every measurement is a whole process, started fresh for each size and side, as a user runs it: the
wall time from start to exit and the process's peak resident memory (``ru_maxrss`` from ``os.wait4``,
which counts the child alone).  Jobs:

- ``word2vec``: ``scratchlm word2vec`` (skip-gram, 1 epoch, the command's defaults otherwise) against a
  gensim script that reads the same file, builds the vocabulary, trains (``workers=2``) and writes the
  vectors in word2vec format; the corpus is the cleaned Wikipedia sample repeated 1, 4, 16 times.
- ``glove-count``: scratchlm's co-occurrence counting alone (``count_cooccurrences``, window 15) with
  ``max_memory_mb`` set; no peer (Stanford's ``cooccur`` is not on PyPI).  The check is the bound its
  docstring states: peak ≤ what reading the corpus alone takes + ``max_memory_mb`` + 64 bytes per
  non-zero (``within_bound`` in the JSON line).
- ``glove``: ``scratchlm glove`` (3 epochs) on the repeated sample; no peer for the same reason.
- ``bpe``: byte-level BPE training (vocab 30,000) with ``scratchlm tokenize train`` against HuggingFace
  ``tokenizers``' trainer on one thread (``RAYON_NUM_THREADS=1``), on a generated Zipf-distributed text
  whose number of distinct words grows with its size (about 300 k types at 16x, 12 MB), since repeating
  the sample would add no new words for the merges to count.

The growth exponent of each side is the slope of log(seconds) against log(size) between the smallest
and the largest size (1 = linear).  The JSON line carries every point; ``--plot FILE`` draws time and
memory against size, log-log, one colour per job, solid scratchlm, dashed the peer.

    python -m benchmarks.growth                  # 1x, 4x, 16x (minutes on 2 cores)
    python -m benchmarks.growth --quick          # 1x and 2x, the sample's first quarter
    python -m benchmarks.growth --jobs bpe --plot growth.png
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import figure, report

JOBS = ("word2vec", "glove-count", "glove", "bpe")

_GENSIM = """
import sys
from gensim.models import Word2Vec
path, out = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as f:
    sentences = [line.split() for line in f]
model = Word2Vec(sentences, vector_size=100, window=5, negative=5, min_count=5, sample=1e-3, sg=1,
                 epochs=1, workers=2, seed=1)
model.wv.save_word2vec_format(out)
"""

_COUNT = """
import sys
from scratchlm.embeddings.glove.cooccurrence import count_cooccurrences
path, mb = sys.argv[1], float(sys.argv[2])
with open(path, encoding="utf-8") as f:
    sentences = [line.split() for line in f]
c = count_cooccurrences(sentences, window=15, min_count=5, max_memory_mb=mb)
print(len(c.x))
"""

_READ_ONLY = """
import sys
import scratchlm.embeddings.glove.cooccurrence
with open(sys.argv[1], encoding="utf-8") as f:
    sentences = [line.split() for line in f]
"""

_HF_BPE = """
import sys
from tokenizers import ByteLevelBPETokenizer
path, out, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3])
tok = ByteLevelBPETokenizer()
tok.train([path], vocab_size=vocab, min_frequency=2, show_progress=False)
tok.save(out)
"""


def run_process(argv: list[str], env: dict | None = None) -> dict:
    """Wall seconds and peak resident MiB of one whole process (its own ``ru_maxrss``)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {proc.returncode}:\n{err[-2000:]}")
    return {"seconds": seconds, "peak_mib": usage.ru_maxrss / 1024, "stdout": out}


def sample_text(fraction: float) -> str:
    from scratchlm.data import corpora

    lines = [" ".join(s) for s in corpora.load_tokenized_corpus("wiki")]
    return "\n".join(lines[: max(1, int(len(lines) * fraction))]) + "\n"


def zipf_text(n_tokens: int, *, types: int, seed: int = 0) -> str:
    """``n_tokens`` words drawn from a Zipf law (s = 1.1) over ``types`` generated words, 20 a line."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(3, 13, size=types)
    words = ["".join(rng.choice(letters, size=k)) for k in lengths]
    p = 1.0 / np.arange(1, types + 1) ** 1.1
    ids = rng.choice(types, size=n_tokens, p=p / p.sum())
    return "\n".join(" ".join(words[i] for i in ids[k:k + 20]) for k in range(0, n_tokens, 20)) + "\n"


def exponent(sizes: list[float], seconds: list[float]) -> float | None:
    if len(sizes) < 2 or seconds[0] <= 0:
        return None
    return math.log(seconds[-1] / seconds[0]) / math.log(sizes[-1] / sizes[0])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", default=",".join(JOBS), help=f"comma-separated, of {', '.join(JOBS)}")
    parser.add_argument("--sizes", default="1,4,16", help="multiples of the base text (default: 1,4,16)")
    parser.add_argument("--quick", action="store_true", help="sizes 1,2 over a quarter of the sample")
    parser.add_argument("--max-memory-mb", type=float, default=64.0, help="glove-count's counting ceiling")
    parser.add_argument("--plot", default=None, help="write the log-log figure here (PNG)")
    args = parser.parse_args(argv)
    jobs = [j for j in args.jobs.split(",") if j]
    for j in jobs:
        if j not in JOBS:
            parser.error(f"--jobs: unknown job {j!r} (choose from {', '.join(JOBS)})")
    sizes = [1, 2] if args.quick else [int(s) for s in args.sizes.split(",")]
    fraction = 0.25 if args.quick else 1.0
    py = sys.executable
    env_1 = {**os.environ, "RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    work = Path(tempfile.mkdtemp(prefix="scratchlm-growth-"))
    points: dict[str, dict[str, list]] = {}
    figures = []
    try:
        base = sample_text(fraction)
        base_tokens = len(base.split())
        for n in sizes:
            corpus = work / f"sample-{n}.txt"
            corpus.write_text(base * n, encoding="utf-8")
            for job in jobs:
                sides = {}
                out = work / f"{job}-{n}"
                if job == "word2vec":
                    sides["scratchlm"] = run_process([py, "-m", "scratchlm.cli", "word2vec", "--corpus", str(corpus),
                                                      "--epochs", "1", "--out", str(out), "--quiet"])
                    sides["gensim"] = run_process([py, "-c", _GENSIM, str(corpus), str(work / f"gensim-{n}.txt")])
                elif job == "glove-count":
                    r = run_process([py, "-c", _COUNT, str(corpus), str(args.max_memory_mb)])
                    nnz = int(r["stdout"].split()[-1])
                    r["nnz"] = nnz
                    read_mib = run_process([py, "-c", _READ_ONLY, str(corpus)])["peak_mib"]
                    r["bound_mib"] = read_mib + args.max_memory_mb + 64 * nnz / 2**20
                    r["within_bound"] = r["peak_mib"] <= r["bound_mib"]
                    sides["scratchlm"] = r
                elif job == "glove":
                    sides["scratchlm"] = run_process([py, "-m", "scratchlm.cli", "glove", "--corpus", str(corpus),
                                                      "--epochs", "3", "--out", str(out), "--quiet"])
                elif job == "bpe":
                    text = work / f"zipf-{n}.txt"
                    text.write_text(zipf_text(int(base_tokens * n / 4 if args.quick else 125_000 * n),
                                              types=300_000), encoding="utf-8")
                    vocab = "3000" if args.quick else "30000"
                    sides["scratchlm"] = run_process([py, "-m", "scratchlm.cli", "tokenize", "train", "--model", "bpe",
                                                      "--byte-level", "--vocab-size", vocab, "--corpus", str(text),
                                                      "--out", str(work / f"bpe-{n}.json")])
                    sides["HF tokenizers (1 thread)"] = run_process([py, "-c", _HF_BPE, str(text),
                                                                     str(work / f"hf-{n}.json"), vocab], env=env_1)
                    sides["scratchlm"]["megabytes"] = text.stat().st_size / 1e6
                for side, r in sides.items():
                    r.pop("stdout", None)
                    points.setdefault(job, {}).setdefault(side, []).append({"size": n, **r})
                shutil.rmtree(out, ignore_errors=True)
            corpus.unlink()
        for job, by_side in points.items():
            names = list(by_side)
            ours = by_side["scratchlm"]
            peer_name = names[1] if len(names) > 1 else None
            peer = by_side[peer_name] if peer_name else None
            for k, p in enumerate(ours):
                figures.append(figure(f"{job} seconds at {p['size']}x", p["seconds"],
                                      peer[k]["seconds"] if peer else None, unit="s", peer_name=peer_name,
                                      higher_is_better=False))
            growth = {side: exponent([p["size"] for p in ps], [p["seconds"] for p in ps])
                      for side, ps in by_side.items()}
            figures.append(figure(f"{job} growth exponent (seconds)", growth["scratchlm"],
                                  growth.get(peer_name), unit="log-log slope", peer_name=peer_name,
                                  higher_is_better=False))
        if args.plot:
            plot(points, Path(args.plot))
        return report("growth", figures, sizes=sizes, points=points, quick=args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def plot(points: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = dict(zip(JOBS, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True))
    for job, by_side in points.items():
        for side, ps in by_side.items():
            style = "-" if side == "scratchlm" else "--"
            xs = [p["size"] for p in ps]
            ax_t.plot(xs, [p["seconds"] for p in ps], style, marker="o", color=colours[job], label=f"{job}: {side}")
            ax_m.plot(xs, [p["peak_mib"] for p in ps], style, marker="o", color=colours[job], label=f"{job}: {side}")
    for ax, label in ((ax_t, "wall time (s)"), (ax_m, "peak resident memory (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("text size (multiple of the base text)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_title("time against data size (log-log; slope 1 = linear)")
    ax_m.set_title("peak memory against data size")
    ax_m.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
