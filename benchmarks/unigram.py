"""Unigram (SentencePiece) tokenizers: training time, tokens per line and encoding throughput, scratchlm
beside HuggingFace ``tokenizers`` (Rust, one thread) and the ``sentencepiece`` package on the same text.

    python benchmarks/unigram.py                       # the cleaned Wikipedia sample, vocabulary 8,000
    python benchmarks/unigram.py --paragraphs 300 --vocab-size 1000 --repeats 1    # quick

All three train with NFKC and ``▁`` spaces (HuggingFace: ``NFKC`` + ``Metaspace`` with
``UnigramTrainer``'s defaults; sentencepiece: ``model_type=unigram``, ``normalization_rule_name=nfkc``,
no sentence splitting limit), ``<unk>`` the one special token.  Tokens per line are counted on the
training paragraphs without special tokens; the targets are the issue's: training within 3x
HuggingFace's time, tokens per line within 3 %, encoding at least half HuggingFace's throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the peer single-threaded, before it is imported
RAYON = os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HuggingFace's trainer too
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from benchmarks.common import figure, report, time_call  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=None, help="first N cleaned Wikipedia paragraphs")
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import tokenizers as hf

    from scratchlm import tokenizers
    from scratchlm.data import corpora
    from scratchlm.tokenizers.pipelines import train_unigram

    texts = corpora.wikipedia_paragraphs()[: args.paragraphs]
    peer = f"tokenizers {hf.__version__} (1 thread)"
    trained = {}

    def train_ours():
        trained["ours"] = train_unigram(texts, args.vocab_size)

    def train_hf():
        tok = hf.Tokenizer(hf.models.Unigram())
        tok.normalizer, tok.pre_tokenizer = hf.normalizers.NFKC(), hf.pre_tokenizers.Metaspace()
        tok.decoder = hf.decoders.Metaspace()
        tok.train_from_iterator(texts, hf.trainers.UnigramTrainer(
            vocab_size=args.vocab_size, special_tokens=["<unk>"], unk_token="<unk>", show_progress=False))
        trained["hf"] = tok

    t_ours = time_call(train_ours, repeats=1, warmup=0)["median_seconds"]
    t_hf = time_call(train_hf, repeats=1, warmup=0)["median_seconds"]
    ours, theirs = trained["ours"], trained["hf"]
    figures = [figure(f"Unigram training (vocab {args.vocab_size}, {len(texts)} paragraphs)", t_ours, t_hf,
                      unit="s", peer_name=peer, higher_is_better=False)]

    n_ours = sum(len(ours.encode(t, add_special_tokens=False).ids) for t in texts)
    n_hf = sum(len(e.ids) for e in theirs.encode_batch(texts, add_special_tokens=False))
    figures.append(figure("tokens per line", n_ours / len(texts), n_hf / len(texts), unit="tokens",
                          peer_name=peer, higher_is_better=False))
    extra = {}
    try:
        import sentencepiece as spm
    except ImportError:
        spm = None
    if spm is not None:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = Path(tmp) / "corpus.txt"
            corpus.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
            spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(Path(tmp) / "sp"),
                                           vocab_size=args.vocab_size, model_type="unigram",
                                           normalization_rule_name="nfkc", max_sentence_length=1 << 20,
                                           bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2, num_threads=1)
            sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "sp.model"))
            n_sp = sum(len(sp.encode(t)) for t in texts)
        extra["sentencepiece_tokens_per_line"] = round(n_sp / len(texts), 3)

    # Our file in HuggingFace: the same ids.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unigram.json"
        ours.save(path)
        again = hf.Tokenizer.from_file(str(path))
        same_ids = all(again.encode(t).ids == ours.encode(t).ids for t in texts[:200])
        ours = tokenizers.load(path)
    hf_vocab = {p for p, _ in json.loads(theirs.to_str())["model"]["vocab"]}
    shared = len(hf_vocab & set(ours.model.vocab)) / len(hf_vocab)

    ours_time = time_call(lambda: [ours.encode(t, add_special_tokens=False) for t in texts], repeats=args.repeats)
    hf_time = time_call(lambda: theirs.encode_batch(texts, add_special_tokens=False), repeats=args.repeats)
    figures.append(figure("Unigram encode", n_ours / ours_time["median_seconds"], n_hf / hf_time["median_seconds"],
                          unit="tokens/s", peer_name=peer))
    return report("unigram", figures, paragraphs=len(texts), vocab_size=args.vocab_size,
                  hf_ids_of_our_file_equal=same_ids, vocabulary_shared_with_peer=round(shared, 4),
                  tokens_per_line_ratio=round(n_ours / n_hf, 4), rayon_threads=RAYON, **extra,
                  targets={"training_ratio_at_most": 3.0, "tokens_per_line_within": 0.03,
                           "encode_ratio_at_least": 0.5})


if __name__ == "__main__":
    main()
