r"""Linking an equation's symbols to the code's variables.

A docstring's equation names its quantities (:math:`v_c`, :math:`u_o^\top`, :math:`X_{ij}`,
:math:`\tilde h_t`, :math:`a^x_r`) and the code beside it names the same quantities (``v_c``,
``u_o``, ``X_ij``, ``h_tilde``, ``a_x_r``: STYLE.md asks for symbols in code = symbols in the
equation).  :func:`link_symbols` finds the symbol atoms of a TeX string, guesses the identifiers
each could be spelled as in Python, and wraps every atom whose spelling occurs in the code as

    ``{\href{#SECTION--ident}{\htmlData{sym=ident}{ATOM}}}``

so that KaTeX (with ``trust`` allowing exactly these two commands) renders a link to the first use of
the variable in the code and a ``data-sym`` attribute the page uses to highlight every use on hover.

This is string processing on a small subset of TeX, not a TeX parser: an atom is a letter or a
Greek letter, optionally under an accent (``\tilde``, ``\hat``, ``\mathbf``, ...), followed by
optional sub- and superscripts.  Text-like groups (``\mathrm{softmax}``, ``\text{...}``) and the
scripts of operators (``\sum_{k=1}^{K}``) are copied unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

GREEK = {
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
    "iota", "kappa", "lambda", "mu", "nu", "xi", "pi", "rho", "sigma", "tau", "upsilon", "phi",
    "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma",
    "Upsilon", "Phi", "Psi", "Omega", "ell",
}
# How a Greek letter is commonly spelt in Python where its own name does not fit.
GREEK_ALIASES = {
    "epsilon": ("eps", "epsilon"), "varepsilon": ("eps", "epsilon"), "lambda": ("lam", "lambda_", "lmbda"),
    "ell": ("ell", "loss"), "varphi": ("phi",), "vartheta": ("theta",),
}
# Accents whose argument is the symbol: \tilde h -> h_tilde; \mathbf{x} -> x.
ACCENTS = {"tilde": "tilde", "widetilde": "tilde", "hat": "hat", "widehat": "hat", "bar": "bar",
           "overline": "bar", "vec": "vec", "dot": "dot", "ddot": "ddot"}
FONTS = {"mathbf", "boldsymbol", "bm", "mathit", "mathcal", "mathsf", "mathbb"}
# Commands whose braced argument is text or a name, never symbols.
TEXTLIKE = {"text", "textrm", "textit", "textbf", "mathrm", "operatorname", "mathtt", "label",
            "begin", "end", "htmlData", "htmlClass", "href", "url", "tag"}

_COMMAND = re.compile(r"\\([A-Za-z]+|.)", re.DOTALL)


def _group_end(tex: str, i: int) -> int:
    """Index just past the balanced ``{...}`` group that starts at ``tex[i] == '{'``."""
    depth = 0
    for j in range(i, len(tex)):
        c = tex[j]
        if c == "\\":
            continue
        if c == "{" and (j == 0 or tex[j - 1] != "\\"):
            depth += 1
        elif c == "}" and tex[j - 1] != "\\":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(tex)


def _token_end(tex: str, i: int) -> int:
    """Index past one TeX token at ``i``: a group, a command, or a single character."""
    while i < len(tex) and tex[i] == " ":
        i += 1
    if i >= len(tex):
        return i
    if tex[i] == "{":
        return _group_end(tex, i)
    if tex[i] == "\\":
        m = _COMMAND.match(tex, i)
        return m.end() if m else i + 1
    return i + 1


def _plain(token: str) -> str:
    """The letters and digits of a script or accent argument: ``{ij}`` -> ``ij``, ``{i,j}`` -> ``ij``."""
    token = token.strip()
    if token.startswith("{") and token.endswith("}"):
        token = token[1:-1]
    token = token.strip()
    wrapped = re.fullmatch(r"\\(?:mathrm|text|textrm|operatorname)\{([A-Za-z0-9]+)\}", token)
    if wrapped:  # x_{\mathrm{max}} -> x_max
        return wrapped.group(1)
    m = _COMMAND.fullmatch(token)
    if m and (m.group(1) in GREEK or m.group(1) in ("max", "min")):  # x_{\max} -> x_max
        return m.group(1)
    return re.sub(r"[^A-Za-z0-9]", "", token) if re.fullmatch(r"[A-Za-z0-9 ,]+", token) else ""


def candidates(base: str, accent: str | None, sub: str | None, sup: str | None) -> list[str]:
    """Python spellings of one atom, most specific first (``a^x_r`` -> ``a_x_r``, ``a_r``, ``a_x``, ``a``)."""
    bases = list(GREEK_ALIASES.get(base, ())) + [base] if base in GREEK else [base]
    if accent:
        bases = [f"{b}_{accent}" for b in bases] + [f"{accent}_{b}" for b in bases] + bases
    sub_p = _plain(sub) if sub else ""
    plain_sup = sup and _plain(sup) not in ("", "2", "T", "top", "1") and not sup.strip("{} ").startswith("\\top")
    sup_p = _plain(sup) if plain_sup else ""
    if sub and not sub_p and re.fullmatch(r"\{?\s*[A-Za-z]\s*-\s*1\s*\}?", sub.strip()):
        sub_p = "prev"  # h_{t-1}: the previous state
    out: list[str] = []
    for b in bases:
        if sub_p and sup_p:
            out += [f"{b}_{sup_p}_{sub_p}", f"{b}_{sub_p}_{sup_p}"]
        if sub_p:
            out.append(f"{b}_{sub_p}")
            if sub_p == "prev":
                out.append(f"{b}_tm1")
        if sup_p:
            out.append(f"{b}_{sup_p}")
        out.append(b)
    return list(dict.fromkeys(out))


def link_symbols(tex: str, resolve: Callable[[Iterable[str]], str | None], *, section: str) -> tuple[str, set[str]]:
    """Wrap each atom of ``tex`` whose spelling ``resolve`` finds in the code; return (tex, linked names).

    ``resolve(candidates) -> identifier | None`` picks the identifier (it knows the code's names);
    ``section`` prefixes the anchor (``#section--ident``), which the source column defines.
    """
    out: list[str] = []
    linked: set[str] = set()
    i, n = 0, len(tex)
    while i < n:
        c = tex[i]
        atom_start = i
        base = accent = None
        if c == "\\":
            m = _COMMAND.match(tex, i)
            name = m.group(1)
            if name in GREEK:
                base, i = name, m.end()
            elif name in ACCENTS or name in FONTS:
                j = _token_end(tex, m.end())
                inner = _plain(tex[m.end():j])
                if inner and (len(inner) == 1 or inner in GREEK):
                    base, accent, i = inner, ACCENTS.get(name), j
                else:
                    out.append(tex[i:m.end()])
                    i = m.end()
                    continue
            elif name in TEXTLIKE:
                j = m.end()
                while j < n and tex[j] == " ":
                    j += 1
                while j < n and tex[j] in "{[":  # copy every argument group unchanged
                    j = _group_end(tex, j) if tex[j] == "{" else tex.find("]", j) + 1 or n
                out.append(tex[i:j])
                i = j
                continue
            else:
                out.append(tex[i:m.end()])
                i = m.end()
                continue
        elif c.isalpha():
            base, i = c, i + 1
        elif c in "_^":  # a script of something that is not a symbol (\sum_{k=1}^{K}, (x/x_{\max})^\alpha)
            j = _token_end(tex, i + 1)
            token = tex[i + 1:j].strip()
            inner, inner_linked = link_symbols(token[1:-1] if token.startswith("{") else token, resolve,
                                               section=section)
            linked |= inner_linked
            out.append(f"{c}{{{inner}}}")
            i = j
            continue
        else:
            out.append(c)
            i += 1
            continue
        # A symbol atom: collect its scripts.
        sub = sup = None
        while (i < n and tex[i] in "_^" and not (tex[i] == "_" and sub is not None)
               and not (tex[i] == "^" and sup is not None)):
            j = _token_end(tex, i + 1)
            if tex[i] == "_":
                sub = tex[i + 1:j]
            else:
                sup = tex[i + 1:j]
            i = j
        atom = tex[atom_start:i]
        ident = resolve(candidates(base, accent, sub, sup))
        if ident is None:
            out.append(atom)
        else:
            linked.add(ident)
            # braced, so that an argument-taking command before it (\sqrt m, \frac ab) still gets one argument
            out.append(rf"{{\href{{#{section}--{ident}}}{{\htmlData{{sym={ident}}}{{{atom}}}}}}}")
    return "".join(out), linked


def make_resolver(identifiers: set[str]) -> Callable[[Iterable[str]], str | None]:
    """A ``resolve`` for :func:`link_symbols` over the names a piece of code uses.

    Exact spelling first; then the lower-cased one (``X_{ij}`` -> ``x_ij``), as STYLE.md allows.
    Single letters only match exactly, so that :math:`K` does not claim ``k``.
    """
    lower = {name.lower(): name for name in sorted(identifiers)}

    def resolve(names: Iterable[str]) -> str | None:
        names = list(names)
        for name in names:
            if name in identifiers:
                return name
        for name in names:
            if len(name) > 1 and name.lower() in lower:
                return lower[name.lower()]
        return None

    return resolve
