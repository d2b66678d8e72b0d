"""Build the site: one page per module (docstrings with rendered equations beside the source) and an index.

``build_site(out)`` walks the package on disk (:mod:`scratchlm.docsite.source`), renders each
docstring with its equations' symbols linked to the code (:mod:`~scratchlm.docsite.docstrings`,
:mod:`~scratchlm.docsite.tex`), renders every equation in one batch, to MathML in Python
(:mod:`~scratchlm.docsite.mathml`, the default) or with npm's KaTeX when pointed at an installed
copy (:mod:`~scratchlm.docsite.katex`), and writes plain static HTML that reads offline.
"""

from __future__ import annotations

import datetime
import html
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from scratchlm.docsite import docstrings, katex, mathml
from scratchlm.docsite.source import Module, discover, highlight, render_line
from scratchlm.docsite.tex import make_resolver
from scratchlm.docsite.topics import TOPICS, topics_of

STATIC = Path(__file__).parent / "static"
MARKER = ".scratchlm-docs"


@dataclass
class BuildReport:
    out: Path
    pages: list[Path]
    equations: int
    renderer: str  # "MathML (latex2mathml 3.81.1)" or "KaTeX 0.19.1"
    errors: list[str] = field(default_factory=list)  # "module:function: the renderer's message"
    warnings: list[str] = field(default_factory=list)  # modules that did not parse


@dataclass
class _Page:
    module: Module
    body: str  # HTML with math placeholders
    equations_by_section: dict[str, int]
    summary: str  # the module docstring's first sentence, as HTML with math placeholders


def build_site(out: str | Path, *, package: str = "scratchlm", katex_dir: str | Path | None = None) -> BuildReport:
    """Write the site under ``out`` (created; stale pages from an earlier build are removed).

    Equations become MathML (:mod:`scratchlm.docsite.mathml`), unless ``katex_dir`` names an
    installed npm ``katex`` package: then Node renders them with it.  Nothing is searched for.
    """
    out = Path(out)
    katex_path = katex.find_katex(katex_dir) if katex_dir is not None else None
    use_katex = katex_path is not None
    if use_katex:
        katex.find_node()  # fail before the work, with the install hint

        def render_all(items):  # a display's \qquad-separated parts wrap, as with MathML
            parts = [mathml.split_lines(tex) if display else [tex] for tex, display in items]
            version, flat = katex.render_all([(p, d) for ps, (_, d) in zip(parts, items) for p in ps], katex_path)
            results, k = [], 0
            for ps in parts:
                got, k = flat[k:k + len(ps)], k + len(ps)
                bad = [r for r in got if "error" in r]
                results.append(bad[0] if bad else got[0] if len(got) == 1 else
                               {"html": '<span class="math-wrap">' + "".join(r["html"] for r in got) + "</span>"})
            return version, results
    else:
        render_all = mathml.render_all
    modules = discover(package)
    anchors = {m.name: {s.anchor for s in m.sections} for m in modules}
    bag = docstrings.MathBag()
    pages = [_module_page(m, anchors, bag, katex_css=use_katex) for m in modules]

    version, results = render_all([(tex, display) for tex, display, _, _ in bag.items])
    renderer = f"KaTeX {version}" if use_katex else f"MathML (latex2mathml {version})"
    # An equation whose symbol links broke it is rendered again as written (the links are a garnish).
    retry = [k for k, r in enumerate(results) if "error" in r and bag.items[k][0] != bag.items[k][2]]
    if retry:
        _, again = render_all([(bag.items[k][2], bag.items[k][1]) for k in retry])
        for k, r in zip(retry, again):
            results[k] = r
    errors = []
    rendered = []
    error_class = "katex-error" if use_katex else "math-error"
    for (_, _, raw, where), r in zip(bag.items, results):
        if "html" in r:
            rendered.append(r["html"])
        else:
            errors.append(f"{where}: {r['error']}")
            # An error node that shows the source, so that a reader sees it and a checker finds it.
            rendered.append(f'<span class="{error_class}" title="{html.escape(r["error"])}">{html.escape(raw)}</span>')

    ours = (out / MARKER).is_file()  # only a folder an earlier build wrote is cleaned, never any other
    if ours:
        for old in out.glob("*.html"):
            old.unlink()
        if katex_path is None and (out / "katex").is_dir():
            shutil.rmtree(out / "katex")  # an earlier KaTeX build's assets
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by `scratchlm docs`; its pages are replaced by the next build\n")
    if use_katex:
        katex.copy_assets(katex_path, out, replace=ours)
    for name in ("site.css", "site.js"):
        shutil.copy2(STATIC / name, out / name)

    def fill(text: str) -> str:
        parts = text.split("\x00")
        return "".join(rendered[int(p[4:])] if k % 2 else p for k, p in enumerate(parts))

    written = []
    for page in pages:
        path = out / page.module.page
        path.write_text(fill(page.body), encoding="utf-8")
        written.append(path)
    index = out / "index.html"
    index.write_text(fill(_index_page(pages, renderer, len(errors), katex_css=use_katex)), encoding="utf-8")
    written.insert(0, index)
    warnings = [f"{p.module.name}: {p.module.error}" for p in pages if p.module.error]
    return BuildReport(out, written, len(bag.items), renderer, errors, warnings)


def _frame(title: str, crumbs: str, body: str, *, katex_css: bool = False) -> str:
    katex_link = '<link rel="stylesheet" href="katex/katex.min.css">\n' if katex_css else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
{katex_link}<link rel="stylesheet" href="site.css">
<script src="site.js" defer></script>
</head>
<body>
<header class="top"><a class="home" href="index.html">scratchlm</a>{crumbs}</header>
{body}
</body>
</html>
"""


def _link_ref(module: Module, anchors: dict[str, set[str]]):
    own = anchors[module.name]

    def link(target: str) -> str | None:
        if target in own:
            return "#" + target
        for cut in range(target.count("."), 0, -1):
            mod, rest = target.rsplit(".", cut)[0], ".".join(target.split(".")[-cut:])
            if mod in anchors and rest in anchors[mod]:
                return f"{mod}.html#{rest}"
        if target in anchors:
            return f"{target}.html"
        return None

    return link


def _papers_html(text: str) -> str:
    papers = docstrings.find_papers(text)
    if not papers:
        return ""
    items = []
    for p in papers:
        title = f" — <span class=\"title\">{html.escape(p.title)}</span>" if p.title else ""
        venue = f", {html.escape(p.venue)}" if p.venue else ""
        link = f' <a class="ext" href="{html.escape(p.url)}">{html.escape(p.url.split("//")[1])}</a>' if p.url else ""
        items.append(f"<li><cite>{html.escape(p.cite)}</cite>{title}{venue}{link}</li>")
    return f'<div class="papers"><span class="label">Paper</span><ul>{"".join(items)}</ul></div>'


def _module_page(module: Module, anchors: dict[str, set[str]], bag: docstrings.MathBag, *,
                 katex_css: bool = False) -> _Page:
    hl = highlight(module.source)
    link_ref = _link_ref(module, anchors)
    page_names = {t for row in hl for cls, t in row if cls == "n"}
    counts: dict[str, int] = {}
    module_linked: set[str] = set()
    rows = []
    pending_module: dict[str, str] = {}
    rendered_docs: dict[str, tuple[str, set[str]]] = {}
    for s in module.sections:
        names = page_names if s.kind == "module" else {t for n in s.lines for cls, t in hl[n - 1] if cls == "n"}
        if not s.doc:
            rendered_docs[s.anchor] = ("", set())
            continue
        before = len(bag.items)
        ctx = docstrings.DocContext(section=s.anchor, where=f"{module.name}:{s.name}", resolve=make_resolver(names),
                                    params=[p for p in s.params if p in names], link_ref=link_ref, math=bag)
        body = docstrings.render(s.doc, ctx)
        counts[s.anchor] = len(bag.items) - before
        rendered_docs[s.anchor] = (body, ctx.linked)
        if s.kind == "module":
            module_linked = ctx.linked
            pending_module = {name: f"module--{name}" for name in ctx.linked}

    topic_tags = "".join(f'<a class="tag" href="index.html#topic-{_slug(t.name)}">{html.escape(t.name)}</a>'
                         for t in topics_of(module.name))
    rel = (module.path.name if module.name.count(".") == 0
           else "/".join(module.name.split(".")[:-1] + [module.path.name]))
    for s in module.sections:
        body, linked = rendered_docs[s.anchor]
        if s.kind == "module":
            error = (f'<p class="parse-error">This module did not parse ({html.escape(module.error)}); '
                     f"its source is shown as it is.</p>") if module.error else ""
            toc = "".join(
                f'<li><a href="#{html.escape(x.anchor)}"><code>{html.escape(x.name)}</code></a>'
                f'{" <span class=eq title=equations>∑</span>" if counts.get(x.anchor) else ""}</li>'
                for x in module.sections
                if x.kind in ("function", "class", "method") and not x.name.split(".")[-1].startswith("_"))
            tags = topic_tags and f'<div class="tags">{topic_tags}</div>'
            rows.append(f"""<section class="row module-doc" id="module">
<div class="doc"><h1>{html.escape(module.name)}</h1>{tags}{error}{body}{_papers_html(s.doc or "")}</div>
<div class="code toc"><div class="path">{html.escape(rel)}</div><ul>{toc}</ul></div>
</section>""")
            continue
        wanted = {name: f"{s.anchor}--{name}" for name in linked}

        def take_ids(name: str, wanted=wanted) -> list[str]:
            # The first use of a symbol in this section, and the first on the page for the module's.
            return [i for i in (wanted.pop(name, None), pending_module.pop(name, None)) if i]

        symbols = linked | module_linked
        code_lines = []
        previous = None
        for n in s.lines:
            if previous is not None and n != previous + 1:
                code_lines.append('<span class="line gap"><span class="ln">⋮</span></span>')
            text = render_line(hl[n - 1], take_ids, symbols)
            code_lines.append(f'<span class="line"><span class="ln">{n}</span>{text}</span>')
            previous = n
        code = f'<pre class="src"><code>{"".join(code_lines)}</code></pre>'
        if s.kind == "code":
            rows.append(f'<section class="row glue" id="{html.escape(s.anchor)}"><div class="doc"></div>'
                        f'<div class="code">{code}</div></section>')
            continue
        heading = (f'<h2 class="{s.kind}"><a class="self" href="#{html.escape(s.anchor)}">'
                   f'{html.escape(s.name)}</a></h2>'
                   f'<div class="sig"><code>{html.escape(s.signature)}</code></div>')
        rows.append(f"""<section class="row {s.kind}" id="{html.escape(s.anchor)}">
<div class="doc">{heading}{body}{_papers_html(s.doc or "")}</div>
<div class="code">{code}</div>
</section>""")
    crumbs = f' <span class="sep">/</span> <span class="here">{html.escape(module.name)}</span>'
    page = _frame(f"{module.name} — scratchlm", crumbs, '<main class="module">\n' + "\n".join(rows) + "\n</main>",
                  katex_css=katex_css)
    summary_ctx = docstrings.DocContext(section="module", where=f"{module.name} (summary)",
                                        resolve=lambda names: None, params=[], link_ref=lambda t: None, math=bag)
    summary = docstrings.render_inline(_first_sentence(module.summary), summary_ctx) if module.summary else ""
    return _Page(module, page, counts, summary)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _index_page(pages: list[_Page], renderer: str, n_errors: int, *, katex_css: bool = False) -> str:
    def module_item(p: _Page) -> str:
        m = p.module
        funcs = [s for s in m.sections if p.equations_by_section.get(s.anchor) and s.kind != "module"]
        eqs = " ".join(f'<a href="{html.escape(m.page)}#{html.escape(s.anchor)}"><code>{html.escape(s.name)}</code></a>'
                      for s in funcs)
        return (f'<li><a class="mod" href="{html.escape(m.page)}"><code>{html.escape(m.name)}</code></a>'
                f'{" — " + p.summary if p.summary else ""}'
                f'{f"<div class=eqs><span class=label>equations:</span> {eqs}</div>" if eqs else ""}</li>')

    blocks = []
    claimed = set()
    for t in TOPICS:
        members = [p for p in pages if t.matches(p.module.name)]
        claimed |= {p.module.name for p in members}
        body = (f"<ul>{''.join(module_item(p) for p in members)}</ul>" if members
                else '<p class="missing">No module for this topic yet.</p>')
        blocks.append(f"""<section class="topic" id="topic-{_slug(t.name)}">
<h2>{html.escape(t.name)}</h2>
<p class="meta">{html.escape(t.blurb)}. <span class="label">Design document:</span> {html.escape(t.design_doc)}.
<span class="label">Papers:</span> {html.escape(t.papers)}.</p>
{body}
</section>""")
    rest = [p for p in pages if p.module.name not in claimed]
    if rest:
        blocks.append(f"""<section class="topic" id="topic-foundations">
<h2>Foundations</h2>
<p class="meta">The layers, the training loop, the data and the command line the topics share.</p>
<ul>{''.join(module_item(p) for p in rest)}</ul>
</section>""")
    toc = "".join(f'<a href="#topic-{_slug(t.name)}">{html.escape(t.name)}</a>' for t in TOPICS)
    n_equations = sum(sum(p.equations_by_section.values()) for p in pages)
    footer = (f"{len(pages)} modules, {n_equations} equations rendered as {html.escape(renderer)} "
              f"when the site was built ({datetime.date.today().isoformat()})"
              + (f"; {n_errors} did not render" if n_errors else "") + ".")
    body = f"""<main class="index">
<h1>scratchlm: the code beside its equations</h1>
<p class="lede">Every module's source, with each function's docstring beside it: the equation it implements,
rendered; the paper it comes from; and the equation's symbols linked to the variables that hold them (hover a
symbol to see it in the code, click to jump there).</p>
<nav class="topics">{toc}</nav>
{''.join(blocks)}
<footer>{footer}</footer>
</main>"""
    return _frame("scratchlm — the code beside its equations", "", body, katex_css=katex_css)


def _first_sentence(text: str) -> str:
    m = re.search(r"(?<!\bal)(?<!e\.g)(?<!i\.e)(?<!\bcf)\.\s", text)
    return text[: m.start() + 1] if m and m.start() < 300 else text
