"""`scratchlm docs`: docstrings parsed, symbols linked, equations rendered to MathML, and the site in Chromium.

The site builds with Python alone (latex2mathml); no test needs Node.js or a ``node_modules``.  The
browser tests need Debian's ``chromium`` and skip, naming the install command, without it.  The
KaTeX option is tested only where ``SCRATCHLM_KATEX_DIR`` points at an installed npm katex and
Node.js is on PATH (the builder never looks for either by itself).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from scratchlm.docsite import docstrings, mathml, source, tex
from scratchlm.errors import ScratchlmError

# --- symbols in equations -> identifiers in code (no renderer needed) ---------------------------------

def _link(t: str, names: set[str]) -> tuple[str, set[str]]:
    return tex.link_symbols(t, tex.make_resolver(names), section="f")


def test_style_md_example_links_exactly_the_named_vectors():
    out, linked = _link(r"\ell = -\log\sigma(u_o^\top v_c) - \sum_{k=1}^{K} \log\sigma(-u_k^\top v_c)",
                        {"v_c", "u_o", "u_neg", "pos"})
    assert linked == {"v_c", "u_o"}
    # the superscript stays inside the linked atom, the operator's scripts stay untouched
    assert r"{\href{#f--u_o}{\htmlData{sym=u_o}{u_o^\top}}}" in out
    assert r"\sum_{k=1}^{K}" in out
    assert out.count(r"\htmlData{sym=v_c}") == 2


@pytest.mark.parametrize("equation, names, expected", [
    (r"w_i^\top \tilde w_j + b_i - \log X_{ij}", {"w_i", "w_tilde_j", "b_i", "x_ij"},
     {"w_i", "w_tilde_j", "b_i", "x_ij"}),
    (r"[a^x_r;\ a^x_z] = W x_t", {"a_x_r", "a_x_z", "x"}, {"a_x_r", "a_x_z", "x"}),
    (r"h_t = z_t \odot h_{t-1}", {"h", "z"}, {"h", "z"}),
    (r"h_t = z_t \odot h_{t-1}", {"h_t", "h_prev", "z"}, {"h_t", "h_prev", "z"}),
    (r"y = \gamma \odot \hat{x} + \beta", {"gamma", "beta", "x_hat"}, {"gamma", "beta", "x_hat"}),
    # text groups are never symbols; the scripts of non-symbols (")_j", "\sum_k") are searched
    (r"\mathrm{softmax}(x)_j = \frac{e^{x_j}}{\sum_k e^{x_k}}", {"x", "softmax", "j", "k"}, {"x", "j", "k"}),
    (r"f(x) = (x / x_{\max})^\alpha", {"x", "x_max", "alpha"}, {"x", "x_max", "alpha"}),
    (r"\epsilon + \lambda", {"eps", "lam"}, {"eps", "lam"}),
    (r"K \cdot D", {"k", "d"}, set()),  # a single capital letter does not claim a lower-case name
])
def test_symbol_spellings(equation, names, expected):
    _, linked = _link(equation, names)
    assert linked == expected


def test_unbraced_arguments_stay_one_argument():
    out, linked = _link(r"\sqrt m + \frac ab", {"m", "a", "b"})
    assert linked == {"m", "a", "b"} and out.startswith(r"\sqrt {\href{#f--m}")


def test_text_groups_and_environments_are_copied_unchanged():
    t = r"\begin{aligned} r_t &= \sigma(x) \\ \text{for all } t \end{aligned}"
    out, linked = _link(t, {"r_t", "t", "x", "for", "all"})
    assert r"\begin{aligned}" in out and r"\end{aligned}" in out and r"\text{for all }" in out
    assert linked == {"r_t", "t", "x"}


# --- docstrings -> HTML --------------------------------------------------------------------------

def _ctx(params=(), names=frozenset()):
    return docstrings.DocContext(section="f", where="m:f", resolve=tex.make_resolver(set(names)),
                                 params=list(params), link_ref=lambda t: "#" + t if t == "helper" else None,
                                 math=docstrings.MathBag())


def test_docstring_math_fields_citations_and_literal_blocks():
    doc = textwrap.dedent(r"""
        Skip-gram loss (Mikolov et al. 2013b, eq. 4), see :func:`helper`; the bias ``b`` and $x^2$.

        .. math::  \ell = -\log\sigma(u_o^\top v_c)

        .. math::
            r_t &= \sigma(a) \\
            z_t &= \sigma(b)

            h = 1

        Example::

            loss = f(v_c, u_o)

        Args: v_c [D] centre vector; u_o [D] context vector.
        """).strip()
    ctx = _ctx(params=["v_c", "u_o"], names={"v_c", "u_o"})
    out = docstrings.render(doc, ctx)
    items = ctx.math.items
    assert [display for _, display, _, _ in items] == [False, True, True, True]  # $x^2$, then 3 displays
    assert items[2][2].startswith(r"\begin{aligned}") and r"\\" in items[2][2]
    assert items[3][2] == "h = 1"  # a blank line inside the directive starts a new equation
    assert out.count('<div class="math-display">') == 3
    assert "<cite>Mikolov et al. 2013b</cite>" in out
    assert '<a class="ref" href="#helper"><code>helper()</code></a>' in out
    assert "<pre>loss = f(v_c, u_o)</pre>" in out and "Example:" in out and "Example::" not in out
    assert 'href="#f--v_c"' in out and 'href="#f--u_o"' in out and ctx.linked == {"v_c", "u_o"}
    assert ".. math::" not in out and "$" not in out


def test_find_papers_known_and_unknown():
    papers = docstrings.find_papers("as in Pennington et al. (2014) and Loshchilov & Hutter 2019; "
                                    "also Smith et al. 2020")
    assert [p.cite for p in papers] == ["Pennington et al. 2014", "Loshchilov & Hutter 2019", "Smith et al. 2020"]
    assert papers[0].title.startswith("GloVe") and papers[2].title == ""
    assert docstrings.find_papers("Python 3.11, released 2022") == []


# --- source -> sections --------------------------------------------------------------------------

TOY_SOURCE = '''\
r"""A toy module (Mikolov et al. 2013b).

.. math::  s = u_o^\\top v_c
"""

import math

SCALE = 2.0  # why: a constant


def negative_sampling_loss(v_c, u_o, u_neg):
    r"""Skip-gram negative-sampling loss for one centre word (Mikolov et al. 2013b, eq. 4).

    .. math::  \\ell = -\\log\\sigma(u_o^\\top v_c) - \\sum_{k=1}^{K} \\log\\sigma(-u_k^\\top v_c)

    Args: v_c [D] centre vector; u_o [D] context vector; u_neg [K, D] noise vectors.
    """
    positive = math.log(1 + math.exp(-sum(a * b for a, b in zip(u_o, v_c))))
    return positive + SCALE * len(u_neg)


class Table:
    """A table of :math:`x_{ij}`."""

    size: int

    def lookup(self, x_ij):
        """Return :math:`x_{ij}`."""
        return x_ij
'''


def test_sections_split_definitions_and_hide_docstrings(tmp_path):
    m = source.parse_module("toy", tmp_path / "toy.py", TOY_SOURCE)
    kinds = [(s.kind, s.anchor) for s in m.sections]
    assert kinds == [("module", "module"), ("code", "L6"), ("function", "negative_sampling_loss"),
                     ("class", "Table"), ("method", "Table.lookup")]
    f = m.sections[2]
    shown = [TOY_SOURCE.splitlines()[n - 1] for n in f.lines]
    assert shown[0].startswith("def negative_sampling_loss") and not any('"""' in s or "math::" in s for s in shown)
    assert f.params == ["v_c", "u_o", "u_neg"] and "Mikolov" in f.doc
    assert m.summary.startswith("A toy module")
    broken = source.parse_module("broken", tmp_path / "b.py", "def f(:\n    pass\n")
    assert broken.error and broken.sections[0].lines == [1, 2]


def test_highlight_keeps_every_character():
    rows = source.highlight(TOY_SOURCE)
    assert ["".join(t for _, t in row) for row in rows] == TOY_SOURCE.splitlines()
    assert ("k", "def") in rows[10] and ("nf", "negative_sampling_loss") in rows[10]


# --- TeX -> MathML -----------------------------------------------------------------------------

def test_mathml_aligned_becomes_a_table_with_right_and_left_columns():
    out = mathml.render(r"\begin{aligned} r_t &= \sigma(a) \\ z_t &= \sigma(b) \end{aligned}", True)
    assert out.startswith('<math display="block">') and out.count("<mtr>") == 2
    assert out.count("text-align: right") == 2 and out.count("text-align: left") == 2
    gathered = mathml.render(r"\begin{gathered}[a; b] = c \\ d = e\end{gathered}", True)  # "[" is not an option
    assert gathered.count("<mtr>") == 2 and "[" in gathered


@pytest.mark.parametrize("equation, expected", [
    (r"\hat\theta = \arg\min_\theta L", "arg\u2009min"),
    (r"\arg\max_d x_d", '<munder><mo movablelimits="true">arg\u2009max</mo><mi>d</mi></munder>'),
    (r"\mathcal L(\theta)", "\u2112"),  # MathML Core draws no mathvariant="script": Unicode's letter
    (r"\text{cosine (Loshchilov \& Hutter)}", "Loshchilov\xa0&amp;\xa0Hutter"),
    (r"\texttt{a<b}", "a&lt;b</mtext>"),  # latex2mathml's raw "<" is escaped
    (r"c(x, a) \mathrel{-}= n_w", '<mo lspace="0.2778em" rspace="0.2778em">\u2212=</mo><msub>'),
    (r"\mathrm{erf}(x)", '<mi mathvariant="normal">erf</mi>'),
    # TeX's thin space around a function name, none before a parenthesis or inside a script
    (r"y\log\sigma(z)", '<mi>y</mi><mspace width="0.167em"></mspace><mi>log</mi><mspace width="0.167em"></mspace>'),
    (r"\cos(x) + \log_2 n", '<mi>cos</mi><mo stretchy="false">(</mo>'),
    (r"\log_2 n", "<msub><mi>log</mi><mn>2</mn></msub>"),
    (r"(1 - y)\log x", '<mo stretchy="false">)</mo><mspace width="0.167em"></mspace><mi>log</mi>'),
])
def test_mathml_rewrites_and_repairs(equation, expected):
    assert expected in mathml.render(equation, False)


@pytest.mark.parametrize("equation, message", [
    (r"\frac{x", "mfrac"),
    (r"x^", "MissingSuperScriptOrSubscript"),
    (r"\left( x", "ExtraLeftOrMissingRight"),
    (r"\foo x", r"unknown command \foo"),
    (r"a & b", "'&' outside an alignment"),
])
def test_malformed_equations_are_refused(equation, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mathml.render(equation, True)


def test_linked_symbols_become_mathml_links():
    linked, _ = _link(r"\ell = -\log\sigma(u_o^\top v_c)", {"v_c", "u_o"})
    out = mathml.render(linked, True)
    assert '<mrow href="#f--u_o" data-sym="u_o" class="sym">' in out
    assert '<mrow href="#f--v_c" data-sym="v_c" class="sym">' in out and "htmlData" not in out


def test_display_equations_split_at_top_level_qquad():
    assert mathml.split_lines(r"a = 1, \qquad b = \{x \qquad y\} \qquad \begin{cases} p \qquad q \end{cases}") == [
        "a = 1,", r"b = \{x \qquad y\}", r"\begin{cases} p \qquad q \end{cases}"]
    assert mathml.split_lines(r"a = 1; \quad b \quad c, \quad \text{x:}\quad d") == [
        "a = 1;", r"b \quad c,", r"\text{x:}\quad d"]  # a \quad after "," or ";" separates too
    out = mathml.render(r"a = 1, \qquad b = \left(2 \qquad 3\right)", True)
    assert out.startswith('<span class="math-wrap">') and out.count("<math ") == 2
    assert mathml.render(r"a \qquad b", False).count("<math ") == 1  # inline math is never split


# --- the built site ------------------------------------------------------------------------------

# TeX that shows as raw text when it escaped rendering: a^h_n, x_{ij}, \frac.
RAW_TEX = re.compile(r"[A-Za-z)\]}]\^[A-Za-z0-9{\\]|[A-Za-z)\]}]_\{|\\[A-Za-z]{2,}|\$\$|:math:`|\.\. math::")


def _prose(page_html: str) -> str:
    """The docstring text of a page as a reader sees it, without equations, code and markup."""
    docs = re.findall(r'<div class="doc">(.*?)</div>\n?<div class="code', page_html, flags=re.S)
    text = "\n".join(docs) or page_html
    for pattern in (r"<math.*?</math>", r"<code>.*?</code>", r"<pre>.*?</pre>", r"<[^>]+>"):
        text = re.sub(pattern, " ", text, flags=re.S)
    return html.unescape(text)


def _static_link_problems(site: Path) -> list[str]:
    """Every relative link of every page points at a file, and at an id that exists there.

    Attributes are read with a regex, not a parser: the generator writes them all double-quoted.
    """
    ids, hrefs = {}, {}
    for page in site.glob("*.html"):
        text = page.read_text(encoding="utf-8")
        ids[page.name] = {html.unescape(v) for v in re.findall(r'\sid="([^"]*)"', text)}
        hrefs[page.name] = [html.unescape(v) for v in re.findall(r'\s(?:href|src)="([^"]*)"', text)]
    problems = []
    for name, links in hrefs.items():
        for href in links:
            if href.startswith(("http://", "https://")):
                continue
            file, _, fragment = href.partition("#")
            file = file or name
            if not (site / file).is_file():
                problems.append(f"{name}: {href}")
            elif fragment and file.endswith(".html") and fragment not in ids[file]:
                problems.append(f"{name}: {href}")
    return problems


LONG_LINE = "    total = value + " + "1" * 80  # 100 characters of code
assert len(LONG_LINE) == 100


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    pkg = tmp_path / "toylm"
    (pkg / "embeddings").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Toy."""\n')
    (pkg / "embeddings" / "__init__.py").write_text("")
    (pkg / "embeddings" / "word2vec.py").write_text(TOY_SOURCE)
    (pkg / "long.py").write_text(f'def long(value):\n    """The parts :math:`a^h_n` of a sum."""\n{LONG_LINE}\n'
                                 "    return total\n")
    (pkg / "broken.py").write_text('def bad(x):\n    r"""Oops.\n\n    .. math::  \\frac{x\n    """\n    return x\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    return "toylm"


@pytest.fixture
def no_node(tmp_path, monkeypatch):
    """A working directory holding a docs/node_modules/katex that must not be used, and no Node.js.

    Records every path with ``node_modules`` in it that the builder asks the file system about.
    """
    katex_dir = tmp_path / "clone" / "docs" / "node_modules" / "katex"
    (katex_dir / "dist").mkdir(parents=True)
    (katex_dir / "package.json").write_text('{"name": "katex", "version": "0.0.0-trap"}')
    (katex_dir / "dist" / "katex.min.css").write_text("/* a trap */")
    monkeypatch.chdir(tmp_path / "clone")
    monkeypatch.delenv("SCRATCHLM_KATEX_DIR", raising=False)
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if "node" in name else real_which(name, *a, **k))

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"the docs build started a process: {args}")

    monkeypatch.setattr(subprocess, "run", no_subprocess)
    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    asked: list[str] = []
    for name in ("is_file", "is_dir", "exists", "stat"):
        real = getattr(Path, name)

        def spy(self, *args, _real=real, **kwargs):
            if "node_modules" in str(self):
                asked.append(str(self))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(Path, name, spy)
    return asked


def test_build_toy_package(toy_package, tmp_path, no_node):
    from scratchlm.docsite import build_site

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "notes.html").write_text("mine")  # a folder the build did not write is not cleaned
    report = build_site(tmp_path / "site", package=toy_package)
    assert no_node == []  # no node_modules looked for, none used, no Node started
    assert report.renderer.startswith("MathML (latex2mathml ")
    site = report.out
    assert {p.name for p in report.pages} == {"index.html", "toylm.html", "toylm.broken.html", "toylm.long.html",
                                              "toylm.embeddings.word2vec.html"}
    assert (site / "notes.html").read_text() == "mine"
    assert not (site / "katex").exists() and "katex" not in (site / "index.html").read_text()
    # the one malformed equation is reported by module:function and shown as an error node
    assert len(report.errors) == 1 and report.errors[0].startswith("toylm.broken:bad:")
    assert 'class="math-error"' in (site / "toylm.broken.html").read_text()
    page = (site / "toylm.embeddings.word2vec.html").read_text()
    assert page.count("<math ") == 4  # module, function, class and method: one equation each
    assert ".. math::" not in page and "$$" not in page and "\x00" not in page
    # the equation's v_c links to the first v_c in the function's code; the Args line's too
    assert '<mrow href="#negative_sampling_loss--v_c" data-sym="v_c" class="sym">' in page
    assert 'href="#negative_sampling_loss--v_c"' in page and 'data-sym="v_c"' in page
    assert 'id="negative_sampling_loss--v_c"' in page and 'id="Table.lookup--x_ij"' in page
    assert "Distributed Representations of Words and Phrases" in page
    # inline TeX in prose is an equation, not text
    long_page = (site / "toylm.long.html").read_text()
    assert "<msubsup><mi>a</mi><mi>n</mi><mi>h</mi></msubsup>" in long_page
    assert not RAW_TEX.search(_prose(long_page))
    index = (site / "index.html").read_text()
    word2vec = index[index.index('id="topic-word2vec"'):index.index('id="topic-glove"')]
    assert 'href="toylm.embeddings.word2vec.html"' in word2vec and "negative_sampling_loss" in word2vec
    (site / "notes.html").unlink()
    assert _static_link_problems(site) == []
    (tmp_path / "toylm" / "broken.py").unlink()  # a module removed since the last build: its stale page goes
    build_site(site, package=toy_package)
    assert not (site / "toylm.broken.html").exists() and (site / "index.html").is_file()


@pytest.fixture(scope="module")
def scratchlm_site(tmp_path_factory):
    from scratchlm.docsite import build_site

    return build_site(tmp_path_factory.mktemp("docs") / "site")


def test_every_equation_of_scratchlm_renders(scratchlm_site):
    assert scratchlm_site.errors == []
    assert scratchlm_site.equations > 300
    pages = {p.name: p.read_text(encoding="utf-8") for p in scratchlm_site.pages}
    # each equation is one <math>, or one .math-wrap of the <math> parts of a display
    wraps = [w for t in pages.values() for w in re.findall(r'<span class="math-wrap">(.*?)</span>', t)]
    total = sum(t.count("<math ") for t in pages.values())
    assert total - sum(w.count("<math ") for w in wraps) + len(wraps) == scratchlm_site.equations
    assert all(w.count("<math ") >= 2 for w in wraps)
    # (the docsite's own source, shown on its pages, spells these out escaped: &lt;span class=&quot;...)
    assert not any('<span class="math-error"' in t or '<span class="katex' in t or 'href="katex/' in t
                   for t in pages.values())
    assert not any("htmlData" in m for t in pages.values() for m in re.findall(r"<math .*?</math>", t))
    assert _static_link_problems(scratchlm_site.out) == []


def test_no_raw_tex_in_the_prose_of_scratchlm(scratchlm_site):
    raw = {p.name: m.group(0) for p in scratchlm_site.pages
           if (m := RAW_TEX.search(_prose(p.read_text(encoding="utf-8"))))}
    assert raw == {}


def test_katex_only_where_pointed_at(tmp_path, monkeypatch):
    from scratchlm.cli import main
    from scratchlm.docsite import build_site

    with pytest.raises(ScratchlmError, match=re.escape("npm install --prefix docs --no-package-lock")):
        build_site(tmp_path / "site", katex_dir=tmp_path / "nowhere")
    monkeypatch.setenv("SCRATCHLM_KATEX_DIR", str(tmp_path / "nowhere"))
    assert main(["docs", "--out", str(tmp_path / "site")]) == 2  # a user's mistake: exit 2, no traceback


@pytest.mark.skipif(not (os.environ.get("SCRATCHLM_KATEX_DIR") and shutil.which("node")),
                    reason="the KaTeX option: set SCRATCHLM_KATEX_DIR to an installed npm katex, with Node.js")
def test_build_with_katex_when_pointed_at(toy_package, tmp_path):
    from scratchlm.docsite import build_site

    report = build_site(tmp_path / "site", package=toy_package, katex_dir=os.environ["SCRATCHLM_KATEX_DIR"])
    assert report.renderer.startswith("KaTeX ")
    assert len(report.errors) == 1 and report.errors[0].startswith("toylm.broken:bad:")
    page = (report.out / "toylm.embeddings.word2vec.html").read_text()
    assert page.count('class="katex"') == 4 and 'data-sym="v_c"' in page
    assert (report.out / "katex" / "katex.min.css").is_file()


def _chromium_or_skip():
    from scratchlm.docsite.browser import find_chromium

    if find_chromium() is None:
        pytest.skip("headless Chromium not installed (apt-get install -y chromium)")


@pytest.mark.browser
def test_browser_check_finds_what_a_reader_would(toy_package, tmp_path):
    """The check is not vacuous: a narrow code column and raw TeX in the prose are reported."""
    _chromium_or_skip()
    from scratchlm.docsite import build_site
    from scratchlm.docsite.browser import check_site

    (tmp_path / "toylm" / "broken.py").unlink()  # its error node would be reported; not what this test is about
    site = build_site(tmp_path / "site", package=toy_package).out
    result = check_site(site)
    assert result.problems == [] and result.widest_line == 100
    with (site / "site.css").open("a") as css:
        css.write("\nsection.row > .code { width: 600px !important; }\n")
    page = site / "toylm.long.html"
    page.write_text(page.read_text().replace("of a sum.", "of a sum, a^h_n."))
    problems = check_site(site).problems
    assert any("toylm.long.html: code line overflows the code column at 1400 px: 100 chars" in p for p in problems)
    assert any("toylm.long.html: raw TeX left in the prose" in p and "a^h_n" in p for p in problems)


@pytest.mark.browser
def test_site_in_headless_chromium(scratchlm_site, tmp_path):
    """Every page from a build without Node: equations drawn, links whole, 100-character lines and equations fit."""
    _chromium_or_skip()
    from scratchlm.docsite.browser import check_site

    shot = tmp_path / "gru.png"
    result = check_site(scratchlm_site.out, screenshot=shot)
    assert result.problems == []
    assert result.pages == len(scratchlm_site.pages)
    assert result.equations == scratchlm_site.equations  # every equation of the build drawn as math
    assert result.widest_line == 100  # the package has 100-character lines, and each one fit
    assert result.links > 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
