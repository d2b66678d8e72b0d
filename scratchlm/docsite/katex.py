"""KaTeX from npm: render every equation at build time with Node, and bundle its CSS and fonts.

Why server-side: the pages then hold finished HTML (they read offline, with JavaScript off, and
open instantly), and a malformed equation is reported when the site is built, naming the function,
instead of showing up as red text in someone's browser.  The KaTeX package is the npm one
(``docs/package.json`` pins it; ``npm install --prefix docs --no-package-lock`` installs it into
``docs/node_modules``); nothing is downloaded at run time and no third-party code lives in the repo.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from scratchlm.errors import ScratchlmError

INSTALL_HINT = ("install it from the repository root with `npm install --prefix docs --no-package-lock` "
                "(docs/package.json pins katex; Node.js comes from `apt-get install nodejs npm`), "
                "or point SCRATCHLM_KATEX_DIR at an installed katex package")

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


def _is_katex(path: Path) -> bool:
    return (path / "package.json").is_file() and (path / "dist" / "katex.min.css").is_file()


def find_katex(explicit: str | os.PathLike | None = None) -> Path:
    """The npm ``katex`` package folder (the one holding ``package.json`` and ``dist/``) whose JavaScript the
    build runs: the one pointed at (``explicit``, else ``$SCRATCHLM_KATEX_DIR``), else the one installed
    beside the package (``docs/node_modules/katex`` of the checkout scratchlm was installed from).

    Never a folder found from the working directory: the build runs this code with Node, so it is only
    ever code the user installed with scratchlm or named.
    """
    import scratchlm

    pointed = explicit or os.environ.get("SCRATCHLM_KATEX_DIR")
    if pointed:
        path = Path(pointed)
        if not _is_katex(path):
            how = "--katex" if explicit else "SCRATCHLM_KATEX_DIR"
            raise ScratchlmError(f"{how} {path} is not an installed katex package (package.json and "
                                 f"dist/katex.min.css expected); {INSTALL_HINT}")
        return path
    installed = Path(scratchlm.__file__).resolve().parents[1] / "docs" / "node_modules" / "katex"
    if _is_katex(installed):
        return installed
    raise ScratchlmError(f"KaTeX (the npm package) is not installed beside scratchlm ({installed}); {INSTALL_HINT}")


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
