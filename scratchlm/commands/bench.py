"""`scratchlm bench`: every benchmark beside its peer, on whatever device JAX sees, in one table.

Each suite is a script ``benchmarks/<suite>.py`` of the repository (not installed with the package)
beside the installed ``scratchlm`` (an editable install of a checkout), or in the folder that
``--benchmarks DIR`` names; never a ``benchmarks/`` found from the working directory, whose scripts
would run as the user. Each suite prints one JSON line with its ``figures`` (see
``benchmarks/common.py``). Each runs in its own Python process, so that one benchmark's JAX
settings, memory or crash cannot touch the next. ``--no-peers`` is passed to the scripts that accept
it; ``--quick`` too, and a suite without a quick setting is refused when named in ``--suite`` (exit 2,
before anything runs) or skipped, saying so, when ``--quick`` runs every suite. A suite whose script
is not written yet is reported as "not available".

The table gives plain numbers with their units (``663,700 words/s``, never ``6.637e+05``) and says
which side is ahead in words: ``1.8x faster`` (scratchlm's figure is 1.8 times the peer's, or its time
1/1.8 of the peer's), ``0.7x (slower)``; ``better`` / ``worse`` for figures that are not speeds.
``--json FILE`` writes one JSON line per suite: its script's line, with the run's device and date.

    scratchlm bench                                   # every suite, peers included
    scratchlm bench --suite gru,word2vec --quick --json bench.jsonl --plot ratios.png
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

from scratchlm.errors import ScratchlmError

SUITES = ("tokenizers", "word2vec", "glove", "gru", "lstm", "encoder", "finetune", "gpt")
NOT_SUITES = {"common", "__init__", "digest"}  # digest.py hashes the commands' outputs: not a benchmark


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default=None,
                        help=f"comma-separated suites (default: {','.join(SUITES)} and any other benchmarks/*.py)")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                        help="time the peer implementations in the same run (default: yes)")
    parser.add_argument("--quick", action="store_true",
                        help="each suite's small settings, for a smoke run (a suite without any: refused or skipped)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="write one JSON line per suite to this file (its script's line, device and date)")
    parser.add_argument("--plot", type=Path, default=None, metavar="PNG", help="draw the ratios as a bar chart")
    parser.add_argument("--benchmarks", type=Path, default=None, metavar="DIR",
                        help="the benchmarks/ folder to run (default: the one beside the installed scratchlm "
                             "package, i.e. of the checkout it was installed from)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed to one suite")


def find_benchmarks(explicit: Path | None = None) -> Path:
    """The ``benchmarks/`` folder to run: ``explicit``, or the one beside the installed ``scratchlm`` package.

    Never one found from the working directory: ``scratchlm bench`` run inside someone else's folder
    must not execute the ``benchmarks/*.py`` it happens to hold.
    """
    import scratchlm

    if explicit is not None:
        if not explicit.is_dir():
            raise ScratchlmError(f"--benchmarks {explicit}: " + ("a file, not a folder" if explicit.exists() else
                                                                  "no such folder"))
        if not (explicit / "common.py").is_file():
            raise ScratchlmError(f"--benchmarks {explicit}: not a benchmarks/ folder (no common.py, which every "
                                 "suite imports)")
        return explicit.resolve()
    installed = Path(scratchlm.__file__).resolve().parents[1] / "benchmarks"
    if (installed / "common.py").is_file():
        return installed
    raise ScratchlmError(f"no benchmarks/ folder beside the installed scratchlm ({installed}): the suites ship with "
                         "the repository, not the wheel; install scratchlm from a checkout (pip install -e .) or "
                         "pass --benchmarks DIR")


def available_suites(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.py") if p.stem not in NOT_SUITES and not p.stem.startswith("_"))


def supported_flags(script: Path) -> set[str]:
    """The standard flags a script's argument parser declares (read from its source, not by running it)."""
    text = script.read_text(encoding="utf-8")
    return {flag for flag in ("--quick", "--no-peers") if re.search(rf"""["']{flag}["']""", text)}


def run_suite(folder: Path, suite: str, *, quick: bool, peers: bool, timeout: float) -> dict:
    """Run one benchmark script; returns ``{"suite", "status", "seconds", "flags", "result" | "error"}``."""
    script = folder / f"{suite}.py"
    if not script.is_file():
        return {"suite": suite, "status": "not available", "seconds": 0.0, "flags": []}
    flags = supported_flags(script)
    argv = [f for f, wanted in (("--quick", quick), ("--no-peers", not peers)) if wanted and f in flags]
    ignored = [f for f, wanted in (("--quick", quick), ("--no-peers", not peers)) if wanted and f not in flags]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder.parent), *filter(None, [env.get("PYTHONPATH")])])
    started = time.perf_counter()
    try:
        # stderr streams through (progress bars, warnings); stdout carries the one JSON line.
        proc = subprocess.run([sys.executable, str(script), *argv], cwd=folder.parent, env=env, stdout=subprocess.PIPE,
                              stderr=None, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"suite": suite, "status": "failed", "seconds": round(time.perf_counter() - started, 2),
                "flags": argv, "error": f"timed out after {timeout:g} s"}
    seconds = round(time.perf_counter() - started, 2)
    entry = {"suite": suite, "seconds": seconds, "flags": argv, "flags_not_supported": ignored}
    result = _last_json(proc.stdout)
    if proc.returncode != 0 or result is None:
        tail = proc.stdout.strip().splitlines()[-3:]
        why = f"exit status {proc.returncode}" if proc.returncode != 0 else "printed no JSON line with figures"
        return {**entry, "status": "failed", "error": why + (": " + " | ".join(tail) if tail else "")}
    return {**entry, "status": "ok", "result": result}


def _last_json(stdout: str) -> dict | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and isinstance(value.get("figures"), list):
                return value
    return None


def rows_of(entries: list[dict]) -> list[dict]:
    """One row per figure (and one per suite that did not run), for the table, the JSON and the plot."""
    rows = []
    for e in entries:
        if e["status"] != "ok":
            rows.append({"suite": e["suite"], "figure": e["status"], "unit": "", "scratchlm": None, "peer": None,
                         "peer_name": None, "ratio": None, "higher_is_better": None, "device": "",
                         "note": e.get("error", "")})
            continue
        device = e["result"].get("device", "")
        if not e["result"]["figures"]:  # a suite of scores alone (the classifier's accuracies): they are in --json
            rows.append({"suite": e["suite"], "figure": "no side-by-side figure (its results: --json)", "unit": "",
                         "scratchlm": None, "peer": None, "peer_name": None, "ratio": None, "higher_is_better": None,
                         "device": device, "note": device})
        for f in e["result"]["figures"]:
            row = {"suite": e["suite"], "figure": f.get("figure", "?"), "unit": f.get("unit", ""),
                   "scratchlm": f.get("scratchlm"), "peer": f.get("peer"), "peer_name": f.get("peer_name"),
                   "ratio": f.get("ratio"), "higher_is_better": f.get("higher_is_better"), "device": device}
            rows.append({**row, "times_ahead": times_ahead(row), "verdict": verdict(row)})
    return rows


def plain(x, unit: str = "", *, digits: int = 4) -> str:
    """``x`` as a reader writes it: ``digits`` significant digits, thousands separated, never an exponent
    (663,743.2 -> ``663,700``; 0.000123456 -> ``0.0001235``), then its unit; ``—`` for none."""
    if x is None or isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "—" if x is None or isinstance(x, float) else str(x)
    if x == 0:
        text = "0"
    else:
        decimals = digits - 1 - math.floor(math.log10(abs(x)))
        rounded = round(x, decimals)
        text = f"{int(rounded):,}" if decimals <= 0 else f"{rounded:,.{decimals}f}".rstrip("0").rstrip(".")
    return f"{text} {unit}" if unit else text


_TIME_UNITS = {"s", "ms", "us", "µs", "ns", "seconds", "min", "h"}


def times_ahead(row: dict) -> float | None:
    """How many times scratchlm's figure is the peer's, turned so that above 1 means scratchlm is ahead:
    the ratio itself where higher is better, its inverse where lower is (a time)."""
    q, higher = row.get("ratio"), row.get("higher_is_better")
    if not isinstance(q, (int, float)) or not q > 0 or higher is None or not math.isfinite(q):
        return None
    return q if higher else 1 / q


def verdict(row: dict) -> str:
    """``1.8x faster``, ``0.7x (slower)``, ``1.0x (same)`` (``better``/``worse`` for a figure that is not a
    speed or a time); empty without a peer."""
    t = times_ahead(row)
    if t is None:
        return ""
    unit = (row.get("unit") or "").strip()
    speed = "/s" in unit or unit in _TIME_UNITS or unit.split("/")[0] in _TIME_UNITS
    ahead, behind = ("faster", "slower") if speed else ("better", "worse")
    shown = plain(t, digits=2)
    if "." not in shown and t < 100:
        shown += ".0"  # 2 -> 2.0x: reads as a ratio
    if shown == "1.0":
        return "1.0x (same)"
    return f"{shown}x {ahead}" if t > 1 else f"{shown}x ({behind})"


def table(rows: list[dict]) -> str:
    head = ["suite", "figure", "scratchlm", "peer", "scratchlm vs peer", "device"]
    body = []
    for r in rows:
        if r["scratchlm"] is None and r["higher_is_better"] is None:  # a suite that did not run
            body.append([r["suite"], r["figure"], "", "", "", r.get("note", "")[:80]])
            continue
        unit = r["unit"] or ""
        peer = plain(r["peer"], unit if r["peer"] is not None else "")
        peer += f" ({r['peer_name']})" if r["peer_name"] and r["peer"] is not None else ""
        body.append([r["suite"], r["figure"], plain(r["scratchlm"], unit), peer, r.get("verdict", ""), r["device"]])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

    def fmt(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(b) for b in body]
    return "\n".join(lines) + ("\n(scratchlm vs peer: 1.8x faster = scratchlm does 1.8 times the peer's work a "
                               "second, or takes 1/1.8 of its time; below 1x, slower; better/worse for scores)")


def plot(rows: list[dict], path: Path, *, title: str) -> None:
    """Horizontal bars of scratchlm / peer per figure on a log axis; green where scratchlm is ahead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [r for r in rows if isinstance(r["ratio"], (int, float)) and r["ratio"] > 0]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.42 * max(len(bars), 1)), dpi=110)
    if bars:
        labels = [f"{r['suite']}: {r['figure']}" for r in bars]
        ratios = [r["ratio"] for r in bars]
        ahead = [(q >= 1) == (r["higher_is_better"] is not False) for q, r in zip(ratios, bars)]
        y = range(len(bars))
        ax.barh(y, [math.log10(q) for q in ratios], left=0, color=["#3a8a4a" if a else "#c0503a" for a in ahead])
        ax.set_yticks(list(y), labels)
        ax.invert_yaxis()
        ax.axvline(0, color="black", linewidth=0.8)
        lim = max(0.3, max(abs(math.log10(q)) for q in ratios) * 1.25)
        ax.set_xlim(-lim, lim)
        candidates = (1e-3, 1e-2, 0.1, 0.25, 0.5, 1, 2, 4, 10, 100, 1000)
        ticks = [math.log10(t) for t in candidates if abs(math.log10(t)) <= lim]
        ax.set_xticks(ticks, [f"{10 ** t:.3g}×" for t in ticks])
        for k, (q, r) in enumerate(zip(ratios, bars)):
            ax.text(math.log10(q), k, f" {r.get('verdict') or verdict(r)} ", va="center",
                    ha="left" if q >= 1 else "right", fontsize=8)
        ax.set_xlabel("scratchlm / peer, log scale (green: scratchlm ahead, red: behind)", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no figure with a peer to compare", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _device(folder: Path, entries: list[dict]) -> str:
    devices = sorted({e["result"].get("device", "") for e in entries if e["status"] == "ok"} - {""})
    if devices:
        return "; ".join(devices)
    # No suite ran: ask JAX in a child process (never here: on a GPU the parent would hold its memory).
    proc = subprocess.run([sys.executable, "-c", "from benchmarks.common import device_description as d; print(d())"],
                          cwd=folder.parent, capture_output=True, text=True, timeout=300)
    return proc.stdout.strip() or "unknown"


def run(args: argparse.Namespace) -> int:
    from scratchlm import checks

    checks.positive("timeout", args.timeout)
    for name in ("json", "plot"):
        if getattr(args, name) is not None:
            checks.output_file(getattr(args, name), f"--{name}")
    folder = find_benchmarks(args.benchmarks)
    present = available_suites(folder)
    if args.suite:
        suites = [s.strip() for s in args.suite.split(",") if s.strip()]
        unknown = [s for s in suites if s not in SUITES and s not in present]
        if unknown or not suites:  # a suite of SUITES not written yet is still reported, as "not available"
            raise ScratchlmError(f"--suite: unknown suite(s) {unknown}; choose from "
                                 f"{', '.join(sorted(set(SUITES) | set(present)))}")
    else:
        suites = list(SUITES) + [s for s in present if s not in SUITES]
    no_quick = [s for s in suites if args.quick and (folder / f"{s}.py").is_file()
                and "--quick" not in supported_flags(folder / f"{s}.py")]
    if no_quick and args.suite:
        raise ScratchlmError(f"--quick: {', '.join(no_quick)} {'has' if len(no_quick) == 1 else 'have'} no quick "
                             "setting (its script declares no --quick); run it without --quick, or leave it out of "
                             "--suite")
    entries = []
    for suite in suites:
        if suite in no_quick:
            entries.append({"suite": suite, "status": "skipped", "seconds": 0.0, "flags": [],
                            "error": "no quick setting: run it without --quick"})
            print(f"{suite}: skipped (no quick setting)", file=sys.stderr, flush=True)
            continue
        print(f"== {suite} ==", file=sys.stderr, flush=True)
        entry = run_suite(folder, suite, quick=args.quick, peers=args.peers, timeout=args.timeout)
        print(f"{suite}: {entry['status']} ({entry['seconds']:.1f} s)"
              + (f": {entry['error']}" if entry.get("error") else ""), file=sys.stderr, flush=True)
        entries.append(entry)
    try:
        jax_version = importlib.metadata.version("jax")
    except importlib.metadata.PackageNotFoundError:
        jax_version = "not installed"
    device = _device(folder, entries)
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    rows = rows_of(entries)
    print(table(rows))
    print(f"\ndevice: {device}; jax {jax_version}; python {platform.python_version()}; {date}"
          + ("; --quick" if args.quick else "") + ("" if args.peers else "; peers not run"))
    if args.json:
        from scratchlm import jsonio
        from scratchlm.io import atomic_write_text

        run_facts = {"date": date, "jax": jax_version, "device": device, "python": platform.python_version(),
                     "quick": args.quick, "peers": args.peers}
        lines = [jsonio.dumps({**e, **run_facts, "rows": [r for r in rows if r["suite"] == e["suite"]]}, default=str)
                 for e in entries]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.json, "".join(line + "\n" for line in lines))
        print(f"results written to {args.json}, one JSON line per suite")
    if args.plot:
        plot(rows, args.plot, title=f"scratchlm vs peers — {device} — jax {jax_version} — {date[:10]}")
        print(f"ratios plotted to {args.plot}")
    return 1 if any(e["status"] == "failed" for e in entries) else 0
