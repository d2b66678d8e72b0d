"""`scratchlm docs --out site/`: the static site with each module's code beside its equations.

Equations are rendered at build time to MathML, in Python (browsers draw it natively), so the site
builds from a pip install without Node.js and needs no network to read.  ``--katex DIR`` (or
``$SCRATCHLM_KATEX_DIR``) renders them with an installed npm KaTeX instead; nothing is searched for.
``--check`` then opens every page in headless Chromium and checks that each equation rendered, that
no link is broken, that the layout holds at 1,400 px, and saves a screenshot.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from scratchlm.errors import ScratchlmError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("site"), help="output folder (default: site/)")
    parser.add_argument("--katex", type=Path, default=None,
                        help="render the equations with this installed npm katex package (needs Node.js; "
                             "default: $SCRATCHLM_KATEX_DIR if set, else MathML in Python)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if any equation fails to render")
    parser.add_argument("--check", action="store_true",
                        help="open every page in headless Chromium: equations drawn, no broken link, "
                             "100-character code lines and every equation fit at 1,400 px")
    parser.add_argument("--screenshot", type=Path, default=None,
                        help="with --check: save a PNG of this page "
                             "(default: OUT/screenshot.png of the GRU page or the index)")


def run(args: argparse.Namespace) -> int:
    from scratchlm import checks
    from scratchlm.docsite import build_site

    checks.output_folder(args.out)
    from scratchlm.docsite.build import MARKER

    # its pages would land among someone's files, and a later build could not tell which are whose
    checks.not_foreign(args.out, {MARKER}, "holds no site scratchlm built")
    if args.screenshot is not None and not args.check:
        raise ScratchlmError("--screenshot goes with --check (the browser takes it)")
    if args.screenshot is not None:
        checks.output_file(args.screenshot, "--screenshot")
    katex_dir = args.katex or os.environ.get("SCRATCHLM_KATEX_DIR") or None
    report = build_site(args.out, katex_dir=katex_dir)
    print(f"wrote {len(report.pages)} pages with {report.equations} equations ({report.renderer}) "
          f"to {report.out}/; open {report.out / 'index.html'}")
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for error in report.errors:
        print(f"equation did not render: {error}", file=sys.stderr)
    status = 1 if args.strict and report.errors else 0
    if args.check:
        from scratchlm.docsite.browser import check_site

        shot = args.screenshot or args.out / "screenshot.png"
        result = check_site(args.out, screenshot=shot)
        print(f"checked {result.pages} pages in Chromium: {result.equations} equations rendered, "
              f"{result.links} internal links followed; screenshot {shot}")
        for problem in result.problems:
            print(f"problem: {problem}", file=sys.stderr)
        status = status or (1 if result.problems else 0)
    return status
