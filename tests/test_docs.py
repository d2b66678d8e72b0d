"""`scratchlm docs`: docstrings parsed, symbols linked, equations rendered by KaTeX, and the site in Chromium.

The build tests need Node.js and the npm ``katex`` package (``npm install --prefix docs --no-package-lock``);
the browser test needs Debian's ``chromium``.  Each skips, naming the install command, without them.
"""

from __future__ import annotations

import html
import re
import textwrap
from pathlib import Path

import pytest

from scratchlm.docsite import docstrings, source, tex
from scratchlm.errors import ScratchlmError


def _katex_or_skip():
    from scratchlm.docsite import katex

    try:
        return katex.find_katex(), katex.find_node()
    except ScratchlmError as err:
        pytest.skip(str(err))


# --- symbols in equations -> identifiers in code (no KaTeX needed) ---------------------------------

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


# --- the built site ------------------------------------------------------------------------------

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


@pytest.fixture
def toy_package(tmp_path, monkeypatch):
    pkg = tmp_path / "toylm"
    (pkg / "embeddings").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""Toy."""\n')
    (pkg / "embeddings" / "__init__.py").write_text("")
    (pkg / "embeddings" / "word2vec.py").write_text(TOY_SOURCE)
    (pkg / "broken.py").write_text('def bad(x):\n    r"""Oops.\n\n    .. math::  \\frac{x\n    """\n    return x\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    return "toylm"


def test_build_toy_package(toy_package, tmp_path):
    katex_dir, _ = _katex_or_skip()
    from scratchlm.docsite import build_site

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "notes.html").write_text("mine")  # a folder the build did not write is not cleaned
    report = build_site(tmp_path / "site", package=toy_package)
    site = report.out
    assert {p.name for p in report.pages} == {"index.html", "toylm.html", "toylm.broken.html",
                                              "toylm.embeddings.word2vec.html"}
    assert (site / "notes.html").read_text() == "mine"
    assert (site / "katex" / "katex.min.css").is_file() and list((site / "katex" / "fonts").glob("*.woff2"))
    # the one malformed equation is reported by module:function and shown as KaTeX's error node
    assert len(report.errors) == 1 and report.errors[0].startswith("toylm.broken:bad:")
    assert 'class="katex-error"' in (site / "toylm.broken.html").read_text()
    page = (site / "toylm.embeddings.word2vec.html").read_text()
    assert page.count('class="katex"') == 4  # module, function, class and method: one equation each
    assert ".. math::" not in page and "$$" not in page and "\x00" not in page
    # the equation's v_c links to the first v_c in the function's code; the Args line's too
    assert 'href="#negative_sampling_loss--v_c"' in page and 'data-sym="v_c"' in page
    assert 'id="negative_sampling_loss--v_c"' in page and 'id="Table.lookup--x_ij"' in page
    assert "Distributed Representations of Words and Phrases" in page
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
    _katex_or_skip()
    from scratchlm.docsite import build_site

    return build_site(tmp_path_factory.mktemp("docs") / "site")


def test_every_equation_of_scratchlm_renders(scratchlm_site):
    assert scratchlm_site.errors == []
    assert scratchlm_site.equations > 0
    assert _static_link_problems(scratchlm_site.out) == []


def test_missing_katex_names_the_install_command(tmp_path, monkeypatch):
    from scratchlm.docsite import katex

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCRATCHLM_KATEX_DIR", str(tmp_path / "nowhere"))
    import scratchlm

    monkeypatch.setattr(scratchlm, "__file__", str(tmp_path / "pkg" / "scratchlm" / "__init__.py"))
    with pytest.raises(ScratchlmError, match=re.escape("npm install --prefix docs --no-package-lock")):
        katex.find_katex()


def test_katex_is_never_taken_from_the_working_directory(tmp_path, monkeypatch):
    """A katex package under the working directory (or its parents) is JavaScript the build would run with
    Node: only the one pointed at or installed beside scratchlm is used."""
    from scratchlm.docsite import katex

    planted = tmp_path / "docs" / "node_modules" / "katex"
    (planted / "dist").mkdir(parents=True)
    (planted / "package.json").write_text("{}")
    (planted / "dist" / "katex.min.css").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SCRATCHLM_KATEX_DIR", raising=False)
    import scratchlm

    monkeypatch.setattr(scratchlm, "__file__", str(tmp_path / "elsewhere" / "scratchlm" / "__init__.py"))
    with pytest.raises(ScratchlmError, match="not installed beside scratchlm"):
        katex.find_katex()
    assert katex.find_katex(planted) == planted  # named explicitly: used


@pytest.mark.browser
def test_site_in_headless_chromium(scratchlm_site, tmp_path):
    from scratchlm.docsite.browser import check_site, find_chromium

    if find_chromium() is None:
        pytest.skip("headless Chromium not installed (apt-get install -y chromium)")
    shot = tmp_path / "gru.png"
    result = check_site(scratchlm_site.out, screenshot=shot)
    assert result.problems == []
    assert result.pages == len(scratchlm_site.pages)
    # every equation of the build is one KaTeX node in the browser (the index holds the summaries')
    assert result.equations == scratchlm_site.equations
    assert result.links > 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
