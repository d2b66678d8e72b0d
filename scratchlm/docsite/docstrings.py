r"""A docstring as HTML: paragraphs, ``.. math::`` blocks, inline math, Args lines, and its papers.

The subset of reStructuredText that STYLE.md's convention uses: ``.. math::`` (content on the
directive line and/or an indented block; blank lines separate equations), ``:math:`...```, ``$...$``
and ``$$...$$``, ````literal````, ``:func:``/``:class:`` roles, ``*em*``/``**strong**``, ``-`` lists,
literal blocks after ``::``, and Google-style fields (``Args:``, ``Returns:``...).  Equations are not
rendered here: each becomes a placeholder and is handed to :class:`MathBag`, so that one KaTeX
process renders the whole site at once.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from scratchlm.docsite.tex import link_symbols


@dataclass(frozen=True)
class Paper:
    cite: str  # how it is cited: "Mikolov et al. 2013b"
    title: str
    venue: str
    url: str | None = None


# The papers scratchlm's docstrings cite, keyed by (first author's surname, year[letter]).
_PAPERS = [
    ("mikolov", "2013a", Paper("Mikolov et al. 2013a", "Efficient Estimation of Word Representations in Vector Space",
                               "ICLR workshop 2013", "https://arxiv.org/abs/1301.3781")),
    ("mikolov", "2013b", Paper("Mikolov et al. 2013b", "Distributed Representations of Words and Phrases and their "
                               "Compositionality", "NeurIPS 2013", "https://arxiv.org/abs/1310.4546")),
    ("pennington", "2014", Paper("Pennington et al. 2014", "GloVe: Global Vectors for Word Representation",
                                 "EMNLP 2014", "https://aclanthology.org/D14-1162")),
    ("cho", "2014", Paper("Cho et al. 2014", "Learning Phrase Representations using RNN Encoder-Decoder for "
                          "Statistical Machine Translation", "EMNLP 2014", "https://arxiv.org/abs/1406.1078")),
    ("chung", "2014", Paper("Chung et al. 2014", "Empirical Evaluation of Gated Recurrent Neural Networks on "
                            "Sequence Modeling", "NeurIPS 2014 workshop", "https://arxiv.org/abs/1412.3555")),
    ("hochreiter", "1997", Paper("Hochreiter & Schmidhuber 1997", "Long Short-Term Memory",
                                 "Neural Computation 9(8), 1997")),
    ("gers", "2000", Paper("Gers et al. 2000", "Learning to Forget: Continual Prediction with LSTM",
                           "Neural Computation 12(10), 2000")),
    ("vaswani", "2017", Paper("Vaswani et al. 2017", "Attention Is All You Need", "NeurIPS 2017",
                              "https://arxiv.org/abs/1706.03762")),
    ("devlin", "2019", Paper("Devlin et al. 2019", "BERT: Pre-training of Deep Bidirectional Transformers for "
                             "Language Understanding", "NAACL 2019", "https://arxiv.org/abs/1810.04805")),
    ("sennrich", "2016", Paper("Sennrich et al. 2016", "Neural Machine Translation of Rare Words with Subword Units",
                               "ACL 2016", "https://arxiv.org/abs/1508.07909")),
    ("schuster", "2012", Paper("Schuster & Nakajima 2012", "Japanese and Korean Voice Search", "ICASSP 2012")),
    ("wu", "2016", Paper("Wu et al. 2016", "Google's Neural Machine Translation System: Bridging the Gap between "
                         "Human and Machine Translation", "arXiv 2016", "https://arxiv.org/abs/1609.08144")),
    ("radford", "2019", Paper("Radford et al. 2019", "Language Models are Unsupervised Multitask Learners",
                              "OpenAI report 2019")),
    ("hendrycks", "2016", Paper("Hendrycks & Gimpel 2016", "Gaussian Error Linear Units (GELUs)", "arXiv 2016",
                                "https://arxiv.org/abs/1606.08415")),
    ("ba", "2016", Paper("Ba et al. 2016", "Layer Normalization", "arXiv 2016", "https://arxiv.org/abs/1607.06450")),
    ("srivastava", "2014", Paper("Srivastava et al. 2014", "Dropout: A Simple Way to Prevent Neural Networks from "
                                 "Overfitting", "JMLR 15, 2014")),
    ("kingma", "2015", Paper("Kingma & Ba 2015", "Adam: A Method for Stochastic Optimization", "ICLR 2015",
                             "https://arxiv.org/abs/1412.6980")),
    ("loshchilov", "2019", Paper("Loshchilov & Hutter 2019", "Decoupled Weight Decay Regularization", "ICLR 2019",
                                 "https://arxiv.org/abs/1711.05101")),
    ("wang", "2020", Paper("Wang et al. 2020", "MiniLM: Deep Self-Attention Distillation for Task-Agnostic "
                           "Compression of Pre-Trained Transformers", "NeurIPS 2020", "https://arxiv.org/abs/2002.10957")),
    ("reimers", "2019", Paper("Reimers & Gurevych 2019", "Sentence-BERT: Sentence Embeddings using Siamese "
                              "BERT-Networks", "EMNLP 2019", "https://arxiv.org/abs/1908.10084")),
    ("bengio", "2003", Paper("Bengio et al. 2003", "A Neural Probabilistic Language Model", "JMLR 3, 2003")),
    ("rumelhart", "1986", Paper("Rumelhart et al. 1986", "Learning Representations by Back-Propagating Errors",
                                "Nature 323, 1986")),
    ("levy", "2015", Paper("Levy et al. 2015", "Improving Distributional Similarity with Lessons Learned from Word "
                           "Embeddings", "TACL 2015", "https://aclanthology.org/Q15-1016")),
    ("graves", "2013", Paper("Graves et al. 2013", "Speech Recognition with Deep Recurrent Neural Networks",
                             "ICASSP 2013", "https://arxiv.org/abs/1303.5778")),
    ("schuster", "1997", Paper("Schuster & Paliwal 1997", "Bidirectional Recurrent Neural Networks",
                               "IEEE Transactions on Signal Processing 45(11), 1997")),
    ("pascanu", "2013", Paper("Pascanu et al. 2013", "On the Difficulty of Training Recurrent Neural Networks",
                              "ICML 2013", "https://arxiv.org/abs/1211.5063")),
    ("finkelstein", "2002", Paper("Finkelstein et al. 2002", "Placing Search in Context: The Concept Revisited",
                                  "ACM TOIS 2002")),
    ("hill", "2015", Paper("Hill et al. 2015", "SimLex-999: Evaluating Semantic Models with (Genuine) Similarity "
                           "Estimation", "Computational Linguistics 2015", "https://arxiv.org/abs/1408.3456")),
]
BIBLIOGRAPHY: dict[tuple[str, str], Paper] = {(surname, year): paper for surname, year, paper in _PAPERS}

# "Mikolov et al. 2013", "Cho et al. (2014)", "Ba et al., 2016", "Loshchilov & Hutter 2019", "Mikolov 2013b"
CITATION = re.compile(
    r"\b(?P<author>[A-Z][A-Za-z\-']+)(?P<rest>\s+et\s+al\.?|\s+(?:and|&(?:amp;)?)\s+[A-Z][A-Za-z\-']+)?,?\s+\(?"
    r"(?P<year>(?:19|20)\d\d)(?P<letter>[a-z])?\b\)?")


def find_papers(text: str) -> list[Paper]:
    """The papers a text cites, in order, once each; unknown ``X et al. YYYY`` citations too (no title)."""
    found: dict[str, Paper] = {}
    for m in CITATION.finditer(text):
        surname, year, letter = m["author"].lower(), m["year"], m["letter"] or ""
        if (surname, year + letter) in BIBLIOGRAPHY:
            papers = [BIBLIOGRAPHY[surname, year + letter]]
        else:
            papers = [p for (s, y), p in BIBLIOGRAPHY.items() if s == surname and y[:4] == year]
        if not papers and m["rest"]:
            papers = [Paper(f"{m['author']}{m['rest']} {year}{letter}".replace("&amp;", "&"), "", "")]
        for p in papers:
            found.setdefault(p.cite, p)
    return list(found.values())


@dataclass
class MathBag:
    """The site's equations, collected while pages are written and rendered in one batch later."""

    items: list[tuple[str, bool, str, str]] = field(default_factory=list)  # (tex, display, raw tex, where)

    def add(self, tex: str, display: bool, raw: str, where: str) -> str:
        self.items.append((tex, display, raw, where))
        return f"\x00MATH{len(self.items) - 1}\x00"


@dataclass
class DocContext:
    """What rendering one docstring needs to know about the code beside it."""

    section: str  # the anchor prefix of the symbols' targets
    where: str  # "scratchlm.nn.gru:cell", for error messages
    resolve: Callable[[Iterable[str]], str | None]  # identifier for an equation symbol, or None
    params: list[str]  # linked where they lead an Args item
    link_ref: Callable[[str], str | None]  # href for a :func:`name` reference, or None
    math: MathBag
    linked: set[str] = field(default_factory=set)  # symbols linked so far (the code marks them)


FIELD = re.compile(r"^(Args|Arguments|Parameters|Params|Returns|Return|Yields|Raises|Shapes?|Example|Examples|"
                   r"Note|Notes|Attributes|See also|References?)\s*:(?!\S)\s*(.*)$")
MATH_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+math::\s*(.*)$")
DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w-]+)::\s*(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _equation(lines: list[str]) -> str:
    r"""Join an equation's lines; rows with ``\\`` become ``aligned`` (with ``&``) or ``gathered``."""
    tex = "\n".join(line.strip() for line in lines).strip()
    if "\\\\" in tex and "\\begin{" not in tex:
        env = "aligned" if "&" in tex else "gathered"
        tex = f"\\begin{{{env}}}{tex}\\end{{{env}}}"
    return tex


def render(doc: str, ctx: DocContext) -> str:
    """The docstring as HTML, with equations left as :class:`MathBag` placeholders."""
    lines = doc.expandtabs().split("\n")
    out: list[str] = []
    i = 0
    literal_next = False
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        base = _indent(line)
        m = MATH_DIRECTIVE.match(line)
        if m:
            content = [m[2]] if m[2].strip() else []
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                content.append(lines[i])
                i += 1
            equations, cur = [], []
            for c in content + [""]:
                if c.strip():
                    if not c.lstrip().startswith(":"):  # directive options (:label:, :nowrap:)
                        cur.append(c)
                elif cur:
                    equations.append(_equation(cur))
                    cur = []
            for tex in equations:
                out.append(f'<div class="math-display">{_math(tex, True, ctx)}</div>')
            continue
        m = DIRECTIVE.match(line)
        if m:
            body = [m[3]] if m[3].strip() else []
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base):
                body.append(lines[i].strip())
                i += 1
            label = m[2].replace("-", " ").capitalize()
            out.append(f'<div class="admonition"><b>{html.escape(label)}.</b> {_inline(" ".join(body), ctx)}</div>')
            continue
        if literal_next:
            block = []
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) >= base):
                block.append(lines[i])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            width = min(_indent(b) for b in block if b.strip())
            out.append("<pre>" + html.escape("\n".join(b[width:] for b in block)) + "</pre>")
            literal_next = False
            continue
        # A paragraph: lines up to a blank line or a directive.
        para = []
        while i < len(lines) and lines[i].strip() and not DIRECTIVE.match(lines[i]):
            para.append(lines[i])
            i += 1
        if para[-1].rstrip().endswith("::"):
            literal_next = True
            para[-1] = para[-1].rstrip()[:-1]
            if para[-1].rstrip() == ":" or not para[-1].strip(":").strip():
                para[-1] = ""
        out.append(_paragraph(para, ctx))
    return "\n".join(o for o in out if o)


def _paragraph(para: list[str], ctx: DocContext) -> str:
    para = [p for p in para if p.strip()] or [""]
    if not para[0].strip():
        return ""
    field_m = FIELD.match(para[0].strip())
    if field_m:
        label, rest = field_m[1], field_m[2]
        items: list[str] = []
        if rest:
            items.append(rest)
        head_indent = _indent(para[0])
        for p in para[1:]:
            # A new item is a more-indented line that opens with "name:" or "name (type):"; else a continuation.
            if _indent(p) > head_indent and re.match(r"^\s*\*{0,2}[\w.\[\]]+\s*(\([^)]*\))?\s*:", p) or not items:
                items.append(p.strip())
            else:
                items[-1] += " " + p.strip()
        linkable = label in ("Args", "Arguments", "Parameters", "Params", "Attributes", "Returns", "Shapes", "Shape")
        body = "<br>".join(_inline(item, ctx, link_params=linkable) for item in items)
        return f'<p class="field"><span class="field-name">{html.escape(label)}:</span> {body}</p>'
    if re.match(r"^\s*[-*]\s+", para[0]):
        items = []
        for p in para:
            if re.match(r"^\s*[-*]\s+", p):
                items.append(re.sub(r"^\s*[-*]\s+", "", p))
            else:
                items[-1] += " " + p.strip()
        return "<ul>" + "".join(f"<li>{_inline(it, ctx)}</li>" for it in items) + "</ul>"
    return "<p>" + _inline(" ".join(p.strip() for p in para), ctx) + "</p>"


INLINE = re.compile(r"""
   :(?P<rname>[a-z]+):`(?P<rtext>[^`]+)`
 | ``(?P<lit>.+?)``
 | \$\$(?P<dd>.+?)\$\$
 | (?<![\w$\\])\$(?P<d>[^$\s](?:[^$]*?[^$\s\\])?)\$(?![\w$])
 | \*\*(?P<strong>[^*]+)\*\*
 | (?<![\w*])\*(?P<em>[^*\s](?:[^*]*?[^*\s])?)\*(?![\w*])
 | `(?P<tick>[^`]+)`_?
""", re.X)


def render_inline(text: str, ctx: DocContext) -> str:
    """One line of docstring prose as HTML (inline math as placeholders), for summaries."""
    return _inline(text, ctx)


def _inline(text: str, ctx: DocContext, *, link_params: bool = False) -> str:
    out, pos = [], 0
    for m in INLINE.finditer(text):
        out.append(_text(text[pos:m.start()], ctx, link_params))
        pos = m.end()
        if m["rname"] is not None:
            name, target = m["rname"], m["rtext"]
            if name in ("math",):
                out.append(_math(target, False, ctx))
            else:
                shown = target.lstrip("~").split(".")[-1] if target.startswith("~") else target
                href = ctx.link_ref(target.lstrip("~"))
                code = f"<code>{html.escape(shown)}{'()' if name in ('func', 'meth') else ''}</code>"
                out.append(f'<a class="ref" href="{html.escape(href)}">{code}</a>' if href else code)
        elif m["lit"] is not None:
            out.append(_code(m["lit"], ctx, link_params))
        elif m["dd"] is not None:
            out.append(_math(m["dd"], True, ctx))
        elif m["d"] is not None:
            out.append(_math(m["d"], False, ctx))
        elif m["strong"] is not None:
            out.append(f"<strong>{_text(m['strong'], ctx, link_params)}</strong>")
        elif m["em"] is not None:
            out.append(f"<em>{_text(m['em'], ctx, link_params)}</em>")
        else:
            out.append(_code(m["tick"], ctx, link_params))
    out.append(_text(text[pos:], ctx, link_params))
    return "".join(out)


def _code(text: str, ctx: DocContext, link_params: bool) -> str:
    if link_params and text in ctx.params:
        return _param_link(text, ctx)
    return f"<code>{html.escape(text)}</code>"


def _param_link(name: str, ctx: DocContext) -> str:
    ctx.linked.add(name)
    return (f'<a class="sym" data-sym="{html.escape(name)}" href="#{html.escape(ctx.section)}--{html.escape(name)}">'
            f"<code>{html.escape(name)}</code></a>")


def _text(text: str, ctx: DocContext, link_params: bool) -> str:
    """Plain prose: escaped, citations marked, and (in Args-like fields) parameter names linked."""
    if not text:
        return ""
    if link_params and ctx.params:
        names = "|".join(re.escape(p) for p in sorted(ctx.params, key=len, reverse=True))
        parts = re.split(rf"(?<![\w.])({names})(?![\w(])", text)
        return "".join(_param_link(p, ctx) if k % 2 else _cite(html.escape(p)) for k, p in enumerate(parts))
    return _cite(html.escape(text))


def _cite(escaped: str) -> str:
    return CITATION.sub(lambda m: f'<cite>{m[0]}</cite>', escaped)


def _math(tex: str, display: bool, ctx: DocContext) -> str:
    linked_tex, linked = link_symbols(tex, ctx.resolve, section=ctx.section)
    ctx.linked |= linked
    return ctx.math.add(linked_tex, display, tex, ctx.where)
