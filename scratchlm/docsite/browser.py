"""Check the built site in a real browser: headless Chromium, driven over the DevTools protocol.

The protocol runs over a pipe (``--remote-debugging-pipe``: JSON messages separated by NUL bytes,
Chromium reading fd 3 and writing fd 4), so nothing beyond the standard library and Debian's
``chromium`` is needed, and no port is opened.  For every page, in a 1,400 px window: each equation
is drawn (MathML that the browser lays out as math, or a KaTeX node), no error node and no raw TeX
(``$$``, ``.. math::``, ``:math:``, ``a^h_n``, ``\frac``) is left in the prose, a symbol of an equation
follows its link when clicked, every code line of up to 100 characters fits in the code column,
no display equation is wider or taller than its box (site.js scales a wide one down) and no
docstring column overflows; with KaTeX, its fonts loaded from the site itself; and every link and
stylesheet points at a file and an id that exist.  External links (the papers) are counted, not
fetched: the site must read offline.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from scratchlm.errors import ScratchlmError

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                  "--disable-default-apps", "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe"]

WINDOW_WIDTH = 1400  # px: the layout the site is checked at
CODE_COLUMN_CHARS = 100  # a code line this long fits in the code column at WINDOW_WIDTH

_PAGE_FACTS = r"""(async () => {
  await document.fonts.ready;
  await new Promise((resolve) => setTimeout(resolve, 0));  // site.js fits the wide equations on fonts.ready
  const MATH = 'math:not(.katex math)';
  const prose = Array.from(document.querySelectorAll('.doc, main.index')).map((d) => {
    const c = d.cloneNode(true);
    c.querySelectorAll('code, pre, .katex, .katex-error, math, .math-error').forEach((x) => x.remove());
    return c.textContent;
  }).join('\n');
  const raw = ['$$', '.. math::', ':math:`', '\\begin{', '\\frac'].filter((p) => prose.includes(p));
  if (/(^|[^\w$])\$[^$\s][^$]*\$/.test(prose)) raw.push('$...$');
  const tex = prose.match(/[A-Za-z)\]}]\^[A-Za-z0-9{\\]|[A-Za-z)\]}]_\{|\\[A-Za-z]{2,}/);
  if (tex) raw.push(prose.slice(Math.max(0, tex.index - 20), tex.index + 20).trim());
  const faces = Array.from(document.fonts).filter((f) => f.family.replace(/["']/g, '').startsWith('KaTeX_'));
  const maths = Array.from(document.querySelectorAll(MATH));
  const undrawn = maths.filter((m) => !getComputedStyle(m).display.includes('math') ||
                                      m.getBoundingClientRect().width === 0).map((m) => m.outerHTML.slice(0, 120));
  const limit = __CHARS__;
  const longLines = [];
  let widest = 0;
  document.querySelectorAll('section.row > .code').forEach((code) => {
    const box = code.getBoundingClientRect();
    const right = box.left + code.clientLeft + code.clientWidth + 0.5;
    code.querySelectorAll('pre.src .line').forEach((line) => {
      const text = Array.from(line.childNodes).filter((n) => !(n.classList && n.classList.contains('ln')))
        .map((n) => n.textContent).join('');
      if (text.length > limit) return;
      widest = Math.max(widest, text.length);
      const range = document.createRange();
      range.selectNodeContents(line);
      if (range.getBoundingClientRect().right > right) {
        longLines.push(text.length + ' chars: ' + text.trim().slice(0, 60));
      }
    });
  });
  const wide = Array.from(document.querySelectorAll('.math-display')).filter(
    (b) => b.scrollWidth > b.clientWidth + 1 || b.scrollHeight > b.clientHeight + 1)
    .map((b) => `${b.scrollWidth}x${b.scrollHeight} in ${b.clientWidth}x${b.clientHeight}: ` +
                (b.closest('section') || b).id);
  const overflowing = Array.from(document.querySelectorAll('section.row > .doc, main.index'))
    .filter((d) => d.scrollWidth > d.clientWidth + 1).map((d) => (d.closest('section') || d).id || d.className);
  let linkFollowed = null;
  const symbol = document.querySelector(MATH + ' [href]');
  if (symbol) {
    const before = location.hash;
    symbol.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}));
    linkFollowed = decodeURIComponent(location.hash) === symbol.getAttribute('href');
    history.replaceState(null, '', before || location.pathname);
  }
  return {
    // one equation: a KaTeX node, a <math>, or a .math-wrap of the <math> parts of one display
    equations: document.querySelectorAll('.katex:not(.math-wrap .katex), .math-wrap').length +
               maths.filter((m) => !m.closest('.math-wrap')).length,
    errors: Array.from(document.querySelectorAll('.katex-error, .math-error')).map((e) => e.title || e.textContent),
    raw, undrawn, longLines, widest, wide, overflowing, linkFollowed,
    katex: document.querySelectorAll('.katex').length,
    fontsLoaded: faces.filter((f) => f.status === 'loaded').map((f) => f.family),
    fontsFailed: faces.filter((f) => f.status === 'error').map((f) => f.family),
    links: Array.from(document.querySelectorAll('a[href], math [href]'))
      .map((a) => a.href || new URL(a.getAttribute('href'), location.href).href),
    resources: Array.from(document.querySelectorAll('link[href], script[src], img[src]')).map((e) => e.href || e.src),
    ids: Array.from(document.querySelectorAll('[id]')).map((e) => e.id),
  };
})()""".replace("__CHARS__", str(CODE_COLUMN_CHARS))


@dataclass
class CheckResult:
    pages: int
    equations: int
    links: int  # internal links followed (file and id checked)
    external_links: int  # counted, not fetched
    problems: list[str] = field(default_factory=list)
    screenshot: Path | None = None
    widest_line: int = 0  # characters of the longest code line (of up to CODE_COLUMN_CHARS) measured


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class DevTools:
    """A headless Chromium and one page, spoken to over ``--remote-debugging-pipe``."""

    def __init__(self, executable: str, *, width: int = 1440, height: int = 1000, timeout: float = 60.0):
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="scratchlm-chromium-")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # in the child: our pipe ends become its fds 3 and 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            close_fds=False, preexec_fn=wire_fds)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise ScratchlmError("Chromium did not answer in time over the DevTools pipe")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")[-1500:] if self.proc.poll() is not None else ""
                raise ScratchlmError(f"Chromium closed the DevTools pipe. {err}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, *, session: bool = False, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ScratchlmError(f"DevTools {method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for k, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(k)
            self.events.append(self._read_message(deadline))

    def open(self, url: str) -> None:
        self.events.clear()
        result = self.call("Page.navigate", session=True, url=url)
        if "errorText" in result:
            raise ScratchlmError(f"Chromium could not open {url}: {result['errorText']}")
        if result.get("loaderId"):  # absent for a same-document navigation (a new #fragment): no load event
            self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", session=True, expression=expression, awaitPromise=True,
                           returnByValue=True)
        if "exceptionDetails" in result:
            raise ScratchlmError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except ScratchlmError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.stderr:
            self.proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> DevTools:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _local_path(url: str) -> tuple[Path, str]:
    parsed = urllib.parse.urlparse(url)
    return Path(urllib.parse.unquote(parsed.path)), urllib.parse.unquote(parsed.fragment)


def check_site(site: str | Path, *, screenshot: Path | None = None, screenshot_page: str | None = None,
               chromium: str | None = None) -> CheckResult:
    """Open every page of ``site`` in headless Chromium and report what a reader would find broken.

    ``screenshot_page`` (a file name in the site; default: the GRU module's page if there is one,
    else the index) is photographed to ``screenshot``.
    """
    site = Path(site).resolve()
    executable = chromium or find_chromium()
    if executable is None:
        raise ScratchlmError("headless Chromium was not found; install it with `apt-get install -y chromium`")
    pages = sorted(site.glob("*.html"))
    if not pages:
        raise ScratchlmError(f"{site} holds no HTML pages: build it first with `scratchlm docs --out {site}`")
    problems: list[str] = []
    facts: dict[Path, dict] = {}
    with DevTools(executable, width=WINDOW_WIDTH) as browser:
        for page in pages:
            browser.open(page.as_uri())
            facts[page] = f = browser.evaluate(_PAGE_FACTS)
            name = page.name
            problems += [f"{name}: equation did not render: {e}" for e in f["errors"]]
            problems += [f"{name}: raw TeX left in the prose: {r!r}" for r in f["raw"]]
            problems += [f"{name}: MathML not drawn as math: {m}" for m in f["undrawn"]]
            problems += [f"{name}: code line overflows the code column at {WINDOW_WIDTH} px: {x}"
                         for x in f["longLines"]]
            problems += [f"{name}: display equation cut or scrolling (scroll size in box size): {x}" for x in f["wide"]]
            problems += [f"{name}: docstring column overflows sideways: {x}" for x in f["overflowing"]]
            if f["linkFollowed"] is False:
                problems.append(f"{name}: clicking an equation's symbol did not follow its link")
            if f["katex"] and not f["fontsLoaded"]:
                problems.append(f"{name}: {f['katex']} equations but no KaTeX font loaded")
            problems += [f"{name}: KaTeX font failed to load: {x}" for x in sorted(set(f["fontsFailed"]))]
        if screenshot is not None:
            default = next((p for p in pages if p.name.endswith(".gru.html")), site / "index.html")
            name, _, fragment = (screenshot_page or "").partition("#")
            target = (site / name if name else default).as_uri() + (f"#{fragment}" if fragment else "")
            browser.open(target)
            browser.evaluate("document.fonts.ready.then(() => true)")
            browser.screenshot(Path(screenshot))
    ids = {page: set(f["ids"]) for page, f in facts.items()}
    internal = external = 0
    for page, f in facts.items():
        for url in f["links"] + f["resources"]:
            scheme = urllib.parse.urlparse(url).scheme
            if scheme in ("http", "https"):
                external += 1
                continue
            if scheme != "file":
                problems.append(f"{page.name}: link with unexpected scheme: {url}")
                continue
            internal += 1
            path, fragment = _local_path(url)
            if not path.is_file():
                shown = path.relative_to(site) if path.is_relative_to(site) else path
                problems.append(f"{page.name}: broken link to {shown}")
            elif fragment and path.suffix == ".html" and fragment not in ids.get(path, set()):
                problems.append(f"{page.name}: broken link to #{fragment} in {path.name}")
    equations = sum(f["equations"] for f in facts.values())
    widest = max((f["widest"] for f in facts.values()), default=0)
    return CheckResult(len(pages), equations, internal, external, problems, Path(screenshot) if screenshot else None,
                       widest)
