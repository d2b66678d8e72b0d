"""Digests of every command's outputs, run small on CPU with a fixed seed: the refactoring guard.

A refactor keeps behaviour: with the same seed on CPU, each command writes byte-identical vectors,
safetensors, checkpoints and metrics before and after.  This script runs each command on small
settings (the Lee corpus, the polarity sentences, tiny models) into a fresh folder, hashes every file
it wrote and prints one ``path  sha256`` line per file.  Timing figures (seconds, words/s, tokens/s,
MFU, dates) are removed from JSON before hashing; everything else counts.

    python -m benchmarks.digest > before.txt     # on the old commit
    python -m benchmarks.digest > after.txt      # on the new one
    diff before.txt after.txt                    # empty: same behaviour

``--only NAME[,NAME]`` runs a subset (tokenize, classify, classify-rnn, word2vec, glove, gru-lm, pretrain, pretrain-gpt,
finetune).
Takes about three minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path

# Keys whose values are wall-clock measurements (or dates, versions): not behaviour.
TIMING_KEY = re.compile(
    r"(second|_s$|^s$|per_s|/s|time|timings|elapsed|mfu|date|duration|throughput|speed|version|wall|compile)",
    re.IGNORECASE,
)


def _strip_timing(value):
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if not TIMING_KEY.search(str(k))}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value


def file_digest(path: Path, root: Path) -> str:
    """sha256 of a file; JSON and JSON-lines files are hashed without their timing keys, and with the
    run folder's own path (which differs from run to run) written as ``<root>``."""
    data = path.read_bytes()
    if path.suffix in (".json", ".jsonl"):
        try:
            text = data.decode("utf-8").replace(str(root), "<root>")
            if path.suffix == ".json":
                values = [json.loads(text)]
            else:
                values = [json.loads(line) for line in text.splitlines() if line.strip()]
            data = json.dumps([_strip_timing(v) for v in values], sort_keys=True).encode()
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
    elif path.suffix in (".log", ".png", ".tmp") or path.name.endswith(".txt.log"):
        return "(not hashed: log or picture)"
    return hashlib.sha256(data).hexdigest()


def _cli(argv: list[str], stdin: str | None = None) -> str:
    """Run ``scratchlm ARGV`` in this process; return what it printed; raise on a non-zero exit."""
    from scratchlm import cli

    out = io.StringIO()
    old_stdin = sys.stdin
    try:
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        with contextlib.redirect_stdout(out):
            code = cli.main(argv)
    finally:
        sys.stdin = old_stdin
    if code != 0:
        raise SystemExit(f"scratchlm {' '.join(argv)} exited {code}")
    return out.getvalue()


def runs(root: Path) -> dict[str, list[list[str]]]:
    """Each command's small runs (argv lists), writing under ``root``."""
    r = str(root)
    return {
        "tokenize": [
            ["tokenize", "train", "--model", "bpe", "--byte-level", "--vocab-size", "400", "--corpus", "lee",
             "--out", f"{r}/tokenize/bpe.json", "--special", "<|endoftext|>"],
            ["tokenize", "train", "--model", "wordpiece", "--vocab-size", "400", "--corpus", "lee",
             "--out", f"{r}/tokenize/wordpiece.json", "--special", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        ],
        "classify": [
            ["classify", "--folds", "2", "--dim", "16", "--steps", "30", "--lr", "0.05", "--seed", "1",
             "--out", f"{r}/classify"],
        ],
        "classify-rnn": [
            ["classify", "--encoder", "lstm", "--folds", "2", "--dim", "16", "--hidden", "16", "--epochs", "2",
             "--lr", "0.01", "--seed", "1", "--out", f"{r}/classify-lstm"],
            ["classify", "--encoder", "gru", "--folds", "2", "--dim", "16", "--hidden", "16", "--epochs", "2",
             "--lr", "0.01", "--seed", "1", "--out", f"{r}/classify-gru"],
        ],
        "word2vec": [
            ["word2vec", "--corpus", "lee", "--model", "skipgram", "--dim", "16", "--epochs", "1", "--seed", "1",
             "--quiet", "--keep-checkpoints", "--out", f"{r}/w2v-sg"],
            ["word2vec", "--corpus", "lee", "--model", "cbow", "--dim", "16", "--epochs", "1", "--seed", "1",
             "--quiet", "--keep-checkpoints", "--out", f"{r}/w2v-cbow"],
        ],
        "glove": [
            ["glove", "--corpus", "lee", "--dim", "16", "--epochs", "2", "--seed", "1", "--save-cooccurrence",
             "--keep-checkpoints", "--out", f"{r}/glove"],
        ],
        "gru-lm": [
            ["gru-lm", "train", "--corpus", "lee", "--layers", "1", "--hidden", "32", "--embed", "32",
             "--seq-len", "16", "--batch-size", "4", "--steps", "12", "--eval-every", "6", "--seed", "1",
             "--keep-checkpoints", "--out", f"{r}/gru-lm"],
            ["gru-lm", "generate", "--checkpoint", f"{r}/gru-lm", "--prompt", "the government", "--seed", "1",
             "--max-new-tokens", "8", "--samples", "2"],
            ["gru-lm", "classify", "--checkpoint", f"{r}/gru-lm", "--steps", "6", "--batch-size", "16", "--seed", "1"],
        ],
        "pretrain": [
            ["pretrain", "--corpus", "lee", "--vocab-size", "300", "--layers", "1", "--hidden", "32", "--heads",
             "2", "--seq-len", "32", "--batch-size", "4", "--steps", "4", "--eval-every", "2", "--limit", "60",
             "--seed", "1", "--keep-checkpoints", "--out", f"{r}/pretrain"],
        ],
        "pretrain-gpt": [
            ["pretrain", "--arch", "gpt", "--corpus", "lee", "--vocab-size", "300", "--layers", "1", "--hidden", "32",
             "--heads", "2", "--seq-len", "32", "--batch-size", "4", "--steps", "4", "--eval-every", "2", "--limit",
             "60", "--seed", "1", "--keep-checkpoints", "--out", f"{r}/pretrain-gpt"],
            ["generate", "--model", f"{r}/pretrain-gpt/model", "--prompt", "the government", "--max-new-tokens", "8",
             "--seed", "1"],
        ],
        "finetune": [
            ["finetune", "--task", "polarity", "--init", f"{r}/pretrain", "--epochs", "1", "--folds", "2",
             "--limit", "40", "--max-length", "32", "--batch-size", "8", "--seed", "1", "--out", f"{r}/finetune"],
            ["finetune", "--task", "wikiner", "--init", f"{r}/pretrain", "--epochs", "1", "--limit", "24",
             "--max-length", "32", "--batch-size", "8", "--seed", "1", "--keep-checkpoints",
             "--out", f"{r}/finetune-ner"],
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="comma-separated commands to run")
    parser.add_argument("--keep", type=Path, default=None, help="write the runs here and keep them")
    args = parser.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    os.environ.setdefault("SCRATCHLM_CACHE_DIR", "")
    root = args.keep or Path(tempfile.mkdtemp(prefix="scratchlm-digest-"))
    plan = runs(root)
    (root / "tokenize").mkdir(parents=True, exist_ok=True)  # tokenize writes files, not a run folder
    wanted = args.only.split(",") if args.only else list(plan)
    if "finetune" in wanted and "pretrain" not in wanted and not (root / "pretrain").exists():
        wanted.insert(wanted.index("finetune"), "pretrain")
    lines = []
    for name in wanted:
        for argv_ in plan[name]:
            printed = _cli(argv_)
            if argv_[:2] in (["gru-lm", "generate"], ["gru-lm", "classify"]) or argv_[0] == "generate":
                # these write nothing: what they print is their output (timings stripped)
                lines.append(f"{name}:{argv_[0] if argv_[0] == 'generate' else argv_[1]}:stdout  "
                             + hashlib.sha256(re.sub(r"[\d.]+ ?(s|ms|tokens/s)\b", "", printed).encode()).hexdigest())
        if name == "tokenize":
            text = "The quick brown fox.\nGovernment officials said on Tuesday.\n"
            for tok in ("bpe", "wordpiece"):
                printed = _cli(["tokenize", "encode", "--tokenizer", f"{root}/tokenize/{tok}.json"], stdin=text)
                lines.append(f"tokenize:encode-{tok}:stdout  " + hashlib.sha256(printed.encode()).hexdigest())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        lines.append(f"{path.relative_to(root)}  {file_digest(path, root)}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
