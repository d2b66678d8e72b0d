"""`scratchlm tokenize`: train a BPE / WordPiece / Unigram tokenizer on a corpus, or encode standard input.

    scratchlm tokenize train --model bpe --byte-level --vocab-size 8000 --corpus wiki --out bpe.json
    scratchlm tokenize train --model unigram --vocab-size 8000 --corpus wiki --out unigram.json
    scratchlm tokenize train --model wordpiece --vocab-size 8000 --corpus FILE --out wp.json \\
        --special "[PAD]" "[UNK]" "[CLS]" "[SEP]" "[MASK]"
    echo "Hello world" | scratchlm tokenize encode --tokenizer wp.json

Training uses HuggingFace's trainer defaults (``min_frequency`` 0, no alphabet limit, no special
tokens unless ``--special`` names them; Unigram: NFKC and SentencePiece's ``▁`` spaces, with the unknown
token ``<unk>`` at id 0 unless ``--special`` places it).  ``--corpus`` is a UTF-8 file with one text a line, or
``wiki`` / ``lee`` for the shipped corpora.  The output is a HuggingFace ``tokenizer.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    train = sub.add_parser("train", help="train a tokenizer and write tokenizer.json")
    train.add_argument("--model", choices=["bpe", "wordpiece", "unigram"], required=True,
                       help="the sub-word algorithm: BPE or WordPiece merges, or the Unigram language model")
    train.add_argument("--byte-level", action="store_true", help="BPE over UTF-8 bytes (GPT-2); lossless decoding")
    train.add_argument("--vocab-size", type=int, required=True, help="tokens in the vocabulary, specials included")
    train.add_argument("--corpus", required=True, help="UTF-8 file, one text a line; or 'wiki' / 'lee'")
    train.add_argument("--out", type=Path, required=True, help="tokenizer.json to write")
    train.add_argument("--special", nargs="*", default=[], metavar="TOKEN",
                       help="special tokens, ids 0, 1, ... in order")
    train.add_argument("--min-frequency", type=int, default=0,
                       help="smallest pair count that may still merge (HF's min_frequency)")
    train.add_argument("--cased", action="store_true", help="WordPiece: keep case and accents (default lower-cases)")
    train.add_argument("--score", choices=["frequency", "likelihood"], default="frequency",
                       help="WordPiece merge rule: HuggingFace's pair frequency, or the WordPiece likelihood gain")
    encode = sub.add_parser("encode", help="encode standard input, one line at a time, printing ids")
    encode.add_argument("--tokenizer", type=Path, required=True, help="a tokenizer.json (HuggingFace or scratchlm)")
    encode.add_argument("--no-special", action="store_true", help="leave out [CLS]/[SEP] and the like")
    encode.add_argument("--tokens", action="store_true", help="print tokens instead of ids")


def run(args: argparse.Namespace) -> int:
    from scratchlm import checks
    from scratchlm.errors import ScratchlmError

    if args.action == "train":
        if args.byte_level and args.model != "bpe":
            raise ScratchlmError("--byte-level applies to --model bpe only")
        if args.model != "wordpiece" and (args.cased or args.score != "frequency"):
            raise ScratchlmError(f"--{'cased' if args.cased else 'score'} applies to --model wordpiece only")
        if args.model == "unigram" and args.min_frequency:
            raise ScratchlmError("--min-frequency applies to the merge models (bpe, wordpiece), not unigram")
        if any(not token.strip() for token in args.special) or len(set(args.special)) != len(args.special):
            raise ScratchlmError(f"--special takes distinct, non-blank tokens, got {args.special}")
        checks.at_least("vocab_size", args.vocab_size, 1)
        checks.at_least("min_frequency", args.min_frequency, 0)
        checks.source(args.corpus, "--corpus")
        checks.output_file(args.out)
        texts = _load(args.corpus)
        started = time.perf_counter()
        tok = train(args.model, texts, args.vocab_size, byte_level=args.byte_level, special_tokens=args.special,
                    min_frequency=args.min_frequency, lowercase=not args.cased, score=args.score)
        args.out.parent.mkdir(parents=True, exist_ok=True)  # checked above: a folder it can create
        tok.save(args.out)
        print(f"trained {args.model}{' (byte-level)' if args.byte_level else ''}: {tok.get_vocab_size()} tokens "
              f"from {len(texts)} texts in {time.perf_counter() - started:.1f} s -> {args.out}", file=sys.stderr)
        return 0
    from scratchlm import tokenizers

    tok = tokenizers.load(checks.input_file(args.tokenizer, "--tokenizer"))
    for line in _stdin_lines():
        enc = tok.encode(line.rstrip("\n"), add_special_tokens=not args.no_special)
        print(" ".join(enc.tokens) if args.tokens else " ".join(map(str, enc.ids)))
    return 0


def train(model: str, texts, vocab_size: int, *, byte_level: bool = False, special_tokens=(), min_frequency: int = 0,
          lowercase: bool = True, score: str = "frequency"):
    from scratchlm.tokenizers import pipelines

    if model == "unigram":
        return pipelines.train_unigram(texts, vocab_size, special_tokens=special_tokens)
    if model == "bpe":
        return pipelines.train_bpe(texts, vocab_size, byte_level=byte_level, special_tokens=special_tokens,
                                   min_frequency=min_frequency)
    return pipelines.train_bert_wordpiece(texts, vocab_size, special_tokens=special_tokens,
                                          min_frequency=min_frequency, lowercase=lowercase, score=score)


def _stdin_lines():
    """Standard input's lines, decoded as strict UTF-8: undecodable bytes are an error naming the line and
    byte, not characters silently dropped (a surrogate-escaped byte would be)."""
    from scratchlm.errors import ScratchlmError

    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:  # a text stream (tests, notebooks)
        yield from sys.stdin
        return
    for number, raw in enumerate(stream, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ScratchlmError(f"standard input line {number} is not valid UTF-8: byte 0x{raw[err.start]:02x} at "
                                 f"byte offset {err.start}") from None


def _load(spec: str) -> list[str]:
    from scratchlm.data import corpora

    return corpora.load_corpus(spec)


def demo_step(ctx) -> dict:
    """Tokenize the cleaned Wikipedia sample with MiniLM's WordPiece (its tokenizer.json), a byte-level BPE
    and a WordPiece trained here (8,000 tokens; 2,000 on a 1,000-paragraph slice with ``--quick``)."""
    from scratchlm import tokenizers
    from scratchlm.data import corpora
    from scratchlm.tokenizers.pipelines import BERT_SPECIAL_TOKENS

    texts = corpora.wikipedia_paragraphs()
    vocab_size = 8000
    if ctx.quick:
        texts, vocab_size = texts[:1000], 2000
    words = sum(len(t.split()) for t in texts)
    contenders = {}
    t0 = time.perf_counter()
    contenders["bpe"] = train("bpe", texts, vocab_size, byte_level=True)
    bpe_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    contenders["wordpiece"] = train("wordpiece", texts, vocab_size, special_tokens=BERT_SPECIAL_TOKENS)
    wordpiece_seconds = time.perf_counter() - t0
    minilm = tokenizers.load(corpora.minilm_path() / "tokenizer.json")
    minilm.no_padding(), minilm.no_truncation()
    contenders = {"minilm-wordpiece": minilm, **contenders}
    figures = {"paragraphs": len(texts), "words": words, "bpe_train_seconds": round(bpe_seconds, 2),
               "wordpiece_train_seconds": round(wordpiece_seconds, 2)}
    parts = []
    for name, tok in contenders.items():
        if name != "minilm-wordpiece":
            tok.save(ctx.out / f"{name}.json")
        t0 = time.perf_counter()
        n = sum(len(tok.encode(t, add_special_tokens=False).ids) for t in texts)
        seconds = time.perf_counter() - t0
        figures[name] = {"vocab": tok.get_vocab_size(), "tokens": n, "tokens_per_word": round(n / words, 3),
                         "tokens_per_second": round(n / seconds)}
        parts.append(f"{name} {n / words:.2f} tok/word {n / seconds / 1e3:.0f}k tok/s")
    result = (f"{len(texts)} paragraphs, {words} words: " + "; ".join(parts)
              + f"; BPE trained in {bpe_seconds:.1f} s, WordPiece in {wordpiece_seconds:.1f} s")
    return {"result": result, **figures}
