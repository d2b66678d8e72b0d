"""`scratchlm demo`: the whole pipeline on the shipped real data, one step after another.

Each step is the ``demo_step(ctx)`` of a sub-command's module; it trains on the real default data
within its share of the time budget (10 minutes in all on 2 CPU cores, 2 minutes with ``--quick``)
and returns a dict with a one-line ``result`` plus the figures that go into ``summary.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from scratchlm import checks
from scratchlm.errors import ScratchlmError

# (step name, module holding its demo_step), in pipeline order.
STEPS: list[tuple[str, str]] = [
    ("tokenizers", "scratchlm.commands.tokenize"),
    ("classifier", "scratchlm.commands.classify"),
    ("word2vec", "scratchlm.commands.word2vec"),
    ("glove", "scratchlm.commands.glove"),
    ("gru-lm", "scratchlm.commands.gru_lm"),
    ("pretrain", "scratchlm.commands.pretrain"),
    ("finetune", "scratchlm.commands.finetune"),
]


@dataclass(frozen=True)
class DemoContext:
    quick: bool  # the 2-minute version: smaller corpora slices and fewer steps
    out: Path  # each step writes its artefacts under out / step_name
    seed: int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the 2-minute version")
    parser.add_argument("--out", type=Path, default=Path("scratchlm-demo"), help="artefact folder")
    parser.add_argument("--seed", type=int, default=0, help="every step's seed")
    parser.add_argument(
        "--steps",
        default=",".join(name for name, _ in STEPS),
        help="comma-separated subset of: " + ", ".join(name for name, _ in STEPS),
    )


def run(args: argparse.Namespace) -> int:
    wanted = [s.strip() for s in args.steps.split(",") if s.strip()]
    known = dict(STEPS)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ScratchlmError(f"scratchlm demo: unknown step(s) {unknown}; choose from {list(known)}")
    checks.output_folder(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    summary: list[dict] = []
    started = time.perf_counter()
    for name in wanted:
        ctx = DemoContext(quick=args.quick, out=args.out / name, seed=args.seed)
        ctx.out.mkdir(parents=True, exist_ok=True)
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        result = importlib.import_module(known[name]).demo_step(ctx)
        seconds = time.perf_counter() - t0
        print(f"{name}: {result['result']}  ({seconds:.1f} s)", flush=True)
        summary.append({"step": name, "seconds": round(seconds, 2), **result})
    total = time.perf_counter() - started
    print("\n" + _table(summary) + f"\n\ntotal {total:.1f} s; artefacts in {args.out}/")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return 0


def _table(rows: list[dict]) -> str:
    width = max(len(r["step"]) for r in rows)
    lines = [f"{'step':<{width}}  {'seconds':>8}  result", "-" * (width + 60)]
    lines += [f"{r['step']:<{width}}  {r['seconds']:>8.1f}  {r['result']}" for r in rows]
    return "\n".join(lines)
