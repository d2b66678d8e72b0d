"""KaTeX from npm, an option: render every equation at build time with Node, and bundle its CSS and fonts.

The site's default renderer is :mod:`scratchlm.docsite.mathml` (Python, no Node).  KaTeX is used
only when pointed at an installed copy (``scratchlm docs --katex DIR`` or ``SCRATCHLM_KATEX_DIR``):
nothing here searches the working directory or its parents for a ``node_modules``, since Node would
then run whatever JavaScript it found there.  ``docs/package.json`` pins the version
(``npm install --prefix docs --no-package-lock`` installs it into ``docs/node_modules/katex``).
As with MathML, equations are rendered when the site is built, so a malformed one is reported
then, naming the function.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from scratchlm.errors import ScratchlmError

INSTALL_HINT = ("install it from the repository root with `npm install --prefix docs --no-package-lock` "
                "(docs/package.json pins katex; Node.js comes from `apt-get install nodejs npm`) and pass "
                "--katex docs/node_modules/katex; without --katex the site is MathML and needs neither")

# Reads [{"tex", "display"}, ...] as JSON on stdin; writes [{"html"} | {"error"}, ...] on stdout.
# trust admits exactly the two commands the symbol links use (scratchlm/docsite/tex.py).
_RENDER_JS = r"""
const katex = require(process.argv[1]);
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const trust = (ctx) => ctx.command === "\\htmlData" ||
    (ctx.command === "\\href" && typeof ctx.url === "string" && ctx.url.startsWith("#"));
  const out = JSON.parse(input).map(({tex, display}) => {
    try {
      return {html: katex.renderToString(tex, {displayMode: display, throwOnError: true, trust, strict: "ignore"})};
    } catch (err) {
      return {error: String(err.message || err)};
    }
  });
  process.stdout.write(JSON.stringify({version: katex.version, out}));
});
"""


def find_katex(explicit: str | os.PathLike) -> Path:
    """The installed npm ``katex`` package at ``explicit`` (the folder holding ``package.json`` and ``dist/``)."""
    path = Path(explicit)
    if (path / "package.json").is_file() and (path / "dist" / "katex.min.css").is_file():
        return path
    raise ScratchlmError(f"{path} is not an installed KaTeX (npm package: package.json and dist/katex.min.css); "
                         f"{INSTALL_HINT}")


def find_node() -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        raise ScratchlmError(f"Node.js is needed to render the equations and was not found on PATH; {INSTALL_HINT}")
    return node


def render_all(items: list[tuple[str, bool]], katex_dir: Path) -> tuple[str, list[dict]]:
    """Render ``[(tex, display), ...]`` in one Node process; returns (KaTeX version, results)."""
    if not items:
        return "", []
    payload = json.dumps([{"tex": tex, "display": display} for tex, display in items])
    proc = subprocess.run([find_node(), "-e", _RENDER_JS, str(katex_dir / "dist" / "katex.js")],
                          input=payload, capture_output=True, text=True, encoding="utf-8", timeout=300)
    if proc.returncode != 0:
        raise ScratchlmError(f"KaTeX via Node failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout)
    return result["version"], result["out"]


def copy_assets(katex_dir: Path, out: Path, *, replace: bool) -> None:
    """KaTeX's stylesheet and fonts into ``out/katex/`` (the CSS finds ``fonts/`` beside itself).

    ``replace``: the folder is one an earlier build wrote, so its old ``katex/`` may be removed first.
    """
    dest = out / "katex"
    if replace and dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(katex_dir / "dist" / "katex.min.css", dest / "katex.min.css")
    shutil.copytree(katex_dir / "dist" / "fonts", dest / "fonts", dirs_exist_ok=True)
    for name in ("LICENSE", "LICENSE.txt"):
        if (katex_dir / name).is_file():
            shutil.copy2(katex_dir / name, dest / "LICENSE.txt")
