r"""The site's default equation renderer: TeX to MathML in Python with ``latex2mathml``; no Node, no fonts to ship.

Chromium, Firefox and Safari draw MathML themselves (MathML Core), so a page holds each equation as a
``<math>`` element and needs no script or stylesheet from a third party; the site builds from a pip
install.  As with KaTeX, every equation is converted when the site is built, so a malformed one is
reported then, naming the function (:func:`render_all` returns an ``error`` for it).

``latex2mathml`` covers the TeX the docstrings use, with a few rewrites before it reads an equation
(:data:`REWRITES`) and a few repairs of what it writes (:func:`_tidy`):

- ``\begin{aligned}`` becomes ``\begin{split}`` (the same right/left columns) and ``\begin{gathered}``
  becomes ``\displaylines{...}`` (one centred column); latex2mathml knows neither of amsmath's two.
- ``\arg\max``/``\arg\min`` become ``\argmax``/``\argmin`` and a lone ``\arg`` an ``\operatorname``.
- ``\htmlData{sym=ID}{...}`` (KaTeX's, from :func:`scratchlm.docsite.tex.link_symbols`) is dropped
  and the ``\href{#SECTION--ID}`` around it becomes an ``<mrow href=... data-sym=ID class="sym">``:
  the page's script follows the link on a click and highlights the symbol's uses on hover.
- What latex2mathml writes is re-serialised with proper escaping (its text nodes may hold a raw
  ``<`` or ``&``); ``\&``, ``\_`` in text lose their backslash; ``\mathrel{-}=`` (an ``<mo>``
  holding an ``<mrow>``, then ``=``) becomes one relation ``<mo>−=</mo>``; ``\mathrm{erf}``'s
  one-letter ``<mi>``\ s are joined into one;
  a table's ``columnalign`` and zero ``columnspacing`` (not in MathML Core) become CSS on its cells;
  ``mathvariant`` bold/script/fraktur/double-struck (MathML Core draws only "normal") becomes
  Unicode's mathematical letters, and a monospace ``<mtext>`` gets a monospace font; a function
  name (``\log``) gets TeX's thin space from an ordinary neighbour (:func:`_space_functions`);
  ``\arg\max_d`` is an ``<munder>`` (its limit under it in a display, beside it inline).

An equation is refused (an error, as KaTeX would raise) when latex2mathml raises, when a command it
does not know survives into the output (``<mi>\foo</mi>``), when an ``&`` is left outside an
alignment, or when an element lacks an argument (``\frac{x`` gives an ``<mfrac>`` with one child).

MathML Core does not break lines, so a display equation is cut at its top-level ``\qquad``,
``,\quad`` and ``;\quad`` (:func:`split_lines`) into ``<math>`` parts that wrap like words in a
narrow column; the page's script scales down a part still wider than the column.
"""

from __future__ import annotations

import html
import re
from importlib import metadata
from xml.etree.ElementTree import Element

from scratchlm.errors import ScratchlmError

INSTALL_HINT = "install it with `pip install latex2mathml` (a dependency of scratchlm)"

# (pattern, replacement) applied in order to the TeX before latex2mathml reads it.
REWRITES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"\\begin\{aligned\}"), r"\\begin{split}"),
    (re.compile(r"\\end\{aligned\}"), r"\\end{split}"),
    (re.compile(r"\\begin\{gathered\}"), r"\\displaylines{"),
    (re.compile(r"\\end\{gathered\}"), "}"),
    (re.compile(r"\\arg\s*\\(max|min)(?![A-Za-z])"), r"\\arg\1"),
    (re.compile(r"\\arg(?![A-Za-z])"), r"\\operatorname{arg}"),
    (re.compile(r"\\htmlData\{[^{}]*\}"), ""),  # its argument stays as a group
]
# Children an element needs: fewer means a command lost an argument.
ARITY = {"mfrac": 2, "msub": 2, "msup": 2, "msubsup": 3, "mover": 2, "munder": 2, "munderover": 3, "mroot": 2}
TEXT_ESCAPES = re.compile(r"\\([&_%$#{}])")
# MathML Core draws only mathvariant="normal"; the other alphabets are Unicode's mathematical
# letters: (code point of "A", of "a", the letters that live elsewhere in Unicode).
ALPHABETS = {
    "bold": (0x1D400, 0x1D41A, {}),
    "script": (0x1D49C, 0x1D4B6, {"B": "ℬ", "E": "ℰ", "F": "ℱ", "H": "ℋ", "I": "ℐ", "L": "ℒ", "M": "ℳ",
                                  "R": "ℛ", "e": "ℯ", "g": "ℊ", "o": "ℴ"}),
    "fraktur": (0x1D504, 0x1D51E, {"C": "ℭ", "H": "ℌ", "I": "ℑ", "R": "ℜ", "Z": "ℨ"}),
    "double-struck": (0x1D538, 0x1D552, {"C": "ℂ", "H": "ℍ", "N": "ℕ", "P": "ℙ", "Q": "ℚ", "R": "ℝ", "Z": "ℤ"}),
}


def _letters(text: str, variant: str) -> str:
    upper, lower, special = ALPHABETS[variant]
    return "".join(special.get(c) or (chr(upper + ord(c) - 65) if "A" <= c <= "Z" else
                                      chr(lower + ord(c) - 97) if "a" <= c <= "z" else c) for c in text)


def version() -> str:
    try:
        return metadata.version("latex2mathml")
    except metadata.PackageNotFoundError:
        return "?"


def _converter():
    try:
        from latex2mathml.converter import convert_to_element
    except ImportError as err:
        raise ScratchlmError(f"the docs site renders its equations with latex2mathml; {INSTALL_HINT}") from err
    return convert_to_element


_SPLIT_TOKENS = re.compile(r"\\begin\{|\\end\{|\\left(?![A-Za-z])|\\right(?![A-Za-z])|\\q?quad(?![A-Za-z])|\\.|[{}]")


def split_lines(tex: str) -> list[str]:
    r"""A display equation cut at its top-level ``\qquad``\ s, and at its ``,\quad`` and ``;\quad``.

    Top level: outside groups, environments, ``\left``/``\right`` and ``\{``/``\}``.

    The docstrings separate the equations of one display with ``\qquad``; drawn as separate
    ``<math>`` elements in a wrapping row, they go onto the next line when the column is narrow
    (MathML Core does not break lines).
    """
    pieces, depth, start = [], 0, 0
    for m in _SPLIT_TOKENS.finditer(tex):
        token = m.group(0)
        if token in ("{", "\\left", "\\{"):
            depth += 1
        elif token in ("}", "\\right", "\\}"):
            depth -= 1
        elif token == "\\begin{":
            depth += 2  # its "{" (closed after the name) and the environment's
        elif depth == 0 and (token == "\\qquad" or token == "\\quad" and tex[:m.start()].rstrip().endswith((",", ";"))):
            pieces.append(tex[start:m.start()])
            start = m.end()
    pieces.append(tex[start:])
    pieces = [p.strip() for p in pieces]
    return [p for p in pieces if p] or [tex]


def render(tex: str, display: bool) -> str:
    r"""One equation as MathML; raises ``ValueError`` naming what is wrong with it.

    A display equation with top-level separators is several ``<math>`` elements in one
    ``<span class="math-wrap">`` (see :func:`split_lines`).
    """
    if display:
        pieces = split_lines(tex)
        if len(pieces) > 1:
            return '<span class="math-wrap">' + "".join(_render_one(p, True) for p in pieces) + "</span>"
    return _render_one(tex, display)


def _render_one(tex: str, display: bool) -> str:
    convert_to_element = _converter()
    for pattern, replacement in REWRITES:
        tex = pattern.sub(replacement, tex)
    try:
        root = convert_to_element(tex, display="block" if display else "inline")
    except Exception as err:  # latex2mathml's own errors carry no common base class worth naming
        message = str(err) or type(err).__name__
        raise ValueError(f"latex2mathml: {type(err).__name__}: {message}" if str(err) else message) from None
    root.attrib.pop("xmlns", None)  # HTML puts <math> in MathML's namespace by itself
    _tidy(root)
    return _serialize(root)


def render_all(items: list[tuple[str, bool]]) -> tuple[str, list[dict]]:
    """Render ``[(tex, display), ...]``; returns (latex2mathml's version, ``[{"html"} | {"error"}, ...]``)."""
    _converter()  # fail before the work, with the install hint
    out = []
    for tex, display in items:
        try:
            out.append({"html": render(tex, display)})
        except ValueError as err:
            out.append({"error": str(err)})
    return version(), out


def _text(node: Element) -> str:
    return html.unescape(node.text or "")


def _tidy(node: Element) -> None:
    """Check and repair latex2mathml's tree in place (see the module docstring)."""
    for child in list(node):
        _tidy(child)
    text = _text(node)
    if node.tag in ("mi", "mo", "mn") and text.startswith("\\") and len(text) > 1:
        raise ValueError(f"unknown command {text}")
    if node.tag == "mi" and text == "&":
        raise ValueError("'&' outside an alignment (aligned, cases, ...)")
    if node.tag in ARITY and len(node) < ARITY[node.tag]:
        raise ValueError(f"<{node.tag}> with {len(node)} of its {ARITY[node.tag]} arguments (a missing group?)")
    if node.tag == "mtext" and node.text:
        node.text = TEXT_ESCAPES.sub(r"\1", node.text)
    variant = node.attrib.get("mathvariant")
    if node.tag == "mi" and variant in ALPHABETS and not len(node):
        node.text = _letters(_text(node), variant)
        del node.attrib["mathvariant"]
    elif node.tag == "mtext" and variant == "monospace":
        del node.attrib["mathvariant"]
        node.set("style", "font-family: monospace;")
    if node.tag == "mo" and len(node):  # \mathrel{-}: an operator holding a row of operators
        if all(c.tag == "mo" and not len(c) for c in node.iter() if c is not node and c.tag != "mrow"):
            node.text = "".join(_text(c) for c in node.iter() if c.tag == "mo" and c is not node)
            for c in list(node):
                node.remove(c)
            node.attrib.clear()
            node.set("lspace", "0.2778em")  # a relation's spaces
            node.set("rspace", "0.2778em")
            node.set("_rel", "")
        else:
            node.tag, node.text = "mrow", None
            node.attrib.clear()
    children = list(node)
    for k, child in enumerate(children):  # \mathrel{-}= is one relation, "−="
        if "_rel" in child.attrib:
            del child.attrib["_rel"]
            if k + 1 < len(children) and children[k + 1].tag == "mo" and not len(children[k + 1]):
                child.text = _text(child) + _text(children[k + 1])
                node.remove(children[k + 1])
    if node.tag in ("msub", "msubsup") and len(node) and node[0].get("movablelimits") == "true":
        node.tag = "munder" if node.tag == "msub" else "munderover"  # \arg\max_d: under it in a display
    if node.tag == "mtable":  # MathML Core has no columnalign/columnspacing: say it in CSS
        pad = "padding-left: 0; padding-right: 0; " if node.get("columnspacing", "").startswith("0") else ""
        for row in node:
            for cell in row:
                align = cell.get("columnalign")
                style = pad + (f"text-align: {align};" if align in ("left", "right", "center") else "")
                if style.strip():
                    cell.set("style", style.strip())
    href = node.get("href", "")
    if href.startswith("#") and "--" in href:
        node.set("data-sym", href.rsplit("--", 1)[1])
        node.set("class", "sym")
    _space_functions(node)
    # \mathrm{erf}: one <mi mathvariant="normal"> per letter; joined, the word is set as one.
    children = list(node)
    k = 0
    while k < len(children):
        run = k
        while (run < len(children) and children[run].tag == "mi" and children[run].get("mathvariant") == "normal"
               and len(_text(children[run])) == 1 and not len(children[run])):
            run += 1
        if run - k > 1:
            children[k].text = "".join(_text(c) for c in children[k:run])
            for c in children[k + 1:run]:
                node.remove(c)
            k = run
        else:
            k += 1


def _is_function(node: Element) -> bool:
    r"""``\log``, ``\exp``, ``\tanh``...: latex2mathml's ``<mi>`` of several letters (and that under scripts)."""
    if node.tag in ("msub", "msup", "msubsup", "munder", "mover", "munderover") and len(node):
        return _is_function(node[0])
    return node.tag == "mi" and "mathvariant" not in node.attrib and len(_text(node)) > 1 and _text(node).isalpha()


def _space_functions(node: Element) -> None:
    r"""TeX's thin space between a function name and an ordinary neighbour (``y \log \sigma``), which
    MathML Core leaves out; none next to an operator, an opening fence or punctuation (``\cos(x)``),
    one after a closing fence (``(1 - y) \log``)."""
    if node.tag not in ("math", "mrow", "mstyle", "mtd", "msqrt"):  # rows, not a script's positional arguments
        return
    children = list(node)
    for k in range(len(children) - 1, -1, -1):
        if not _is_function(children[k]):
            continue
        for j, where in ((k + 1, k + 1), (k - 1, k)):
            if not 0 <= j < len(children) or children[j].tag == "mspace" or _is_function(children[j]):
                continue
            closing = j < k and _text(children[j]) in (")", "]", "}", "|", "\u2016")  # (1 - y) \log: spaced
            if children[j].tag != "mo" or closing:
                node.insert(where, Element("mspace", {"width": "0.167em"}))


def _serialize(node: Element) -> str:
    attrs = "".join(f' {name}="{html.escape(value)}"' for name, value in node.attrib.items())
    inner = html.escape(_text(node), quote=False) + "".join(_serialize(c) for c in node)
    tail = html.escape(html.unescape(node.tail or ""), quote=False)
    return f"<{node.tag}{attrs}>{inner}</{node.tag}>{tail}"
