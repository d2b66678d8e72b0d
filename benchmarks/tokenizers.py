"""Tokenizers: byte-level BPE training time and WordPiece / BPE encoding throughput, scratchlm beside
HuggingFace ``tokenizers`` (Rust) on the same text in the same run, the peer on one thread.

    python benchmarks/tokenizers.py                  # the cleaned Wikipedia sample, vocabulary 8,000
    python benchmarks/tokenizers.py --paragraphs 1000

Training: byte-level pre-tokenization, all 256 bytes in the alphabet, ``vocab_size`` tokens; the
merges of both are checked equal.  Encoding: every paragraph encoded one call at a time by scratchlm
(its word cache warm after the warm-up pass, as in steady use) and by HuggingFace's ``encode_batch``
with ``TOKENIZERS_PARALLELISM=false`` (one thread); tokens counted without special tokens or padding.
Tokenizers run on the CPU only; the device in the report is whatever JAX sees and does not matter here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the peer single-threaded, before it is imported
# Run as a script, this file's folder heads sys.path and its name would shadow HuggingFace's package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import figure, report, time_call  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=None,
                        help="first N cleaned Wikipedia paragraphs (default all)")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 300 paragraphs, 2,000 tokens, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.paragraphs, args.vocab_size, args.repeats = args.paragraphs or 300, min(args.vocab_size, 2000), 1

    import tempfile

    import tokenizers as hf

    from scratchlm import tokenizers
    from scratchlm.data import corpora
    from scratchlm.tokenizers.pipelines import train_bpe

    texts = corpora.wikipedia_paragraphs()[: args.paragraphs]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    peer = f"tokenizers {hf.__version__} (1 thread)"

    # --- BPE training
    ours_bpe = {}

    def train_ours():
        ours_bpe["tok"] = train_bpe(texts, args.vocab_size)

    def train_hf():
        tok = hf.Tokenizer(hf.models.BPE())
        tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = hf.trainers.BpeTrainer(vocab_size=args.vocab_size, show_progress=False,
                                         initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer)
        ours_bpe["hf"] = tok

    t_ours = time_call(train_ours, repeats=1, warmup=0)["median_seconds"]
    t_hf = time_call(train_hf, repeats=1, warmup=0)["median_seconds"]
    hf_merges = [tuple(m) for m in json.loads(ours_bpe["hf"].to_str())["model"]["merges"]]
    same_merges = ours_bpe["tok"].model.merges == hf_merges

    # --- encoding throughput
    minilm_path = corpora.minilm_path() / "tokenizer.json"
    wp_ours, wp_hf = tokenizers.load(minilm_path), hf.Tokenizer.from_file(str(minilm_path))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bpe.json"
        ours_bpe["tok"].save(path)
        bpe_ours, bpe_hf = tokenizers.load(path), hf.Tokenizer.from_file(str(path))
    figures = [figure(f"byte-level BPE training (vocab {args.vocab_size}, {megabytes:.1f} MB)", t_ours, t_hf,
                      unit="s", peer_name=peer, higher_is_better=False)]
    counts = {}
    for name, ours, theirs in (("WordPiece (MiniLM)", wp_ours, wp_hf), ("byte-level BPE", bpe_ours, bpe_hf)):
        for tok in (ours, theirs):
            tok.no_padding()
            tok.no_truncation()
        n_tokens = sum(len(e.ids) for e in theirs.encode_batch(texts, add_special_tokens=False))
        ours_time = time_call(lambda ours=ours: [ours.encode(t, add_special_tokens=False) for t in texts],
                              repeats=args.repeats)
        hf_time = time_call(lambda theirs=theirs: theirs.encode_batch(texts, add_special_tokens=False),
                            repeats=args.repeats)
        counts[name] = n_tokens
        figures.append(figure(f"{name} encode", n_tokens / ours_time["median_seconds"],
                              n_tokens / hf_time["median_seconds"], unit="tokens/s", peer_name=peer))
    return report("tokenizers", figures, paragraphs=len(texts), megabytes=round(megabytes, 2),
                  vocab_size=args.vocab_size, same_merges_as_peer=same_merges, tokens=counts,
                  targets={"bpe_training_ratio_at_most": 3.0, "encode_ratio_at_least": 0.5})


if __name__ == "__main__":
    main()
