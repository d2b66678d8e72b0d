"""`scratchlm demo`: the whole pipeline on the shipped real data, one step after another.

Each step is the ``demo_step(ctx)`` of a sub-command's module; it trains on the real default data
within its share of the time budget (10 minutes in all on 2 CPU cores, 2 minutes with ``--quick``)
and returns a dict with a one-line ``result`` plus the figures that go into ``summary.json``.  Each
step trains through the same run contract as its command (:mod:`scratchlm.training.run`), in its own
run folder ``OUT/quick/STEP`` or ``OUT/full/STEP``: the two versions never share a folder, a second
demo finds its steps complete (or resumes the one a kill interrupted), and ``--overwrite`` trains
them again.
"""

from __future__ import annotations

import argparse
import importlib
import time
from dataclasses import dataclass
from pathlib import Path

from scratchlm import checks, jsonio
from scratchlm.commands.common import configure_logging
from scratchlm.commands.flags import seed
from scratchlm.errors import ScratchlmError
from scratchlm.training.run import RunConfig

# (step name, module holding its demo_step), in pipeline order.
STEPS: list[tuple[str, str]] = [
    ("tokenizers", "scratchlm.commands.tokenize"),
    ("classifier", "scratchlm.commands.classify"),
    ("word2vec", "scratchlm.commands.word2vec"),
    ("glove", "scratchlm.commands.glove"),
    ("gru-lm", "scratchlm.commands.gru_lm"),
    ("pretrain", "scratchlm.commands.pretrain"),
    ("gpt", "scratchlm.commands.generate"),
    ("finetune", "scratchlm.commands.finetune"),
]


@dataclass(frozen=True)
class DemoContext:
    quick: bool  # the 2-minute version: smaller corpora slices and fewer steps
    out: Path  # this step's run folder: DEMO_OUT / ("quick" | "full") / step_name
    seed: int
    run: RunConfig | None = None  # how the step's run folder is treated (overwrite, checkpoints)

    def args(self) -> argparse.Namespace:
        """The run-folder flags (:func:`scratchlm.commands.common.add_run_arguments`) a step passes to its
        command's functions."""
        run = self.run or RunConfig(out=self.out)
        return argparse.Namespace(out=self.out, overwrite=run.overwrite, checkpoint_every=run.checkpoint_every,
                                  keep_checkpoints=run.keep_checkpoints, quiet=False, verbose=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the 2-minute version")
    parser.add_argument("--out", type=Path, default=Path("scratchlm-demo"),
                        help="artefact folder: each step's run folder is OUT/quick/STEP or OUT/full/STEP "
                             "(default: %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="train the steps again, replacing their runs")
    parser.add_argument("--seed", type=seed, default=0, help="every step's seed")
    parser.add_argument(
        "--steps",
        default=",".join(name for name, _ in STEPS),
        help="comma-separated subset of: " + ", ".join(name for name, _ in STEPS),
    )


def run(args: argparse.Namespace) -> int:
    wanted = [s.strip() for s in args.steps.split(",") if s.strip()]
    known = dict(STEPS)
    unknown = [s for s in wanted if s not in known]
    if unknown or not wanted:
        raise ScratchlmError(f"--steps: unknown step(s) {unknown}; choose from {list(known)}" if unknown else
                             f"--steps names no step; choose from {list(known)}")
    checks.output_folder(args.out)
    checks.not_foreign(args.out, {"quick", "full"}, "is not a demo folder (no quick/ or full/)")
    configure_logging(args)
    root = args.out / ("quick" if args.quick else "full")
    root.mkdir(parents=True, exist_ok=True)
    summary: list[dict] = []
    started = time.perf_counter()
    for name in wanted:
        out = root / name
        ctx = DemoContext(quick=args.quick, out=out, seed=args.seed,
                          run=RunConfig(out=out, overwrite=args.overwrite))
        out.mkdir(parents=True, exist_ok=True)  # empty: a new run folder (the tokenizers step writes files only)
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        result = importlib.import_module(known[name]).demo_step(ctx)
        seconds = time.perf_counter() - t0  # the step's wall time: data, compiling, training, evaluation
        print(f"{name}: {result['result']}  ({seconds:.1f} s)", flush=True)
        summary.append({"step": name, "wall_seconds": round(seconds, 2), **result})
    total = time.perf_counter() - started
    print("\n" + table(summary) + f"\n\ntotal {total:.1f} s wall time; artefacts in {root}/")
    jsonio.write(root / "summary.json", summary)
    return 0


def table(rows: list[dict], width: int = 100) -> str:
    """The summary: step, wall seconds, result, in ``width`` columns (a long result wraps under its column)."""
    import textwrap

    name_w = max(len("step"), *(len(r["step"]) for r in rows))
    head = f"{'step':<{name_w}}  {'wall s':>7}  "
    text_w = width - len(head)
    lines = [head + "result", "-" * width]
    for r in rows:
        wrapped = textwrap.wrap(str(r["result"]), text_w) or [""]
        lines.append(f"{r['step']:<{name_w}}  {r['wall_seconds']:>7.1f}  {wrapped[0]}")
        lines += [" " * len(head) + more for more in wrapped[1:]]
    return "\n".join(lines)
