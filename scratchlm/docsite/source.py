"""Reading the package's source: its modules, each cut into sections (one per function), highlighted.

Everything here works on the text with :mod:`ast` and :mod:`tokenize`, never by importing the
modules: the site is built over whatever modules exist, including one a colleague is halfway
through, and building it must not start JAX.
"""

from __future__ import annotations

import ast
import html
import importlib.util
import io
import keyword
import tokenize
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BUILTINS = {"print", "len", "range", "zip", "enumerate", "isinstance", "min", "max", "sum", "int",
            "float", "str", "list", "dict", "tuple", "set", "bool", "abs", "sorted", "any", "all",
            "map", "super", "getattr", "setattr", "hasattr", "round", "type", "object", "open",
            "iter", "next", "reversed", "repr", "frozenset", "property", "staticmethod", "classmethod"}


@dataclass
class Section:
    """A stretch of a module's source shown beside one docstring (or beside nothing, for glue code)."""

    anchor: str  # HTML id: the qualified name ("cell", "GRUConfig.__post_init__") or "L<line>"
    kind: str  # "module" | "function" | "class" | "method" | "code"
    name: str  # what the heading shows
    signature: str  # "def cell(a_x, h, ...)" for functions; "" for code
    doc: str | None  # the cleaned docstring
    lines: list[int]  # 1-based source lines shown in the code column (docstring lines removed)
    params: list[str] = field(default_factory=list)  # argument names, linked in the Args line


@dataclass
class Module:
    name: str  # "scratchlm.nn.gru"
    path: Path
    source: str
    sections: list[Section]
    error: str | None = None  # a SyntaxError while a colleague is mid-edit: shown, not fatal

    @property
    def page(self) -> str:
        return self.name + ".html"

    @property
    def summary(self) -> str:
        doc = self.sections[0].doc if self.sections and self.sections[0].kind == "module" else None
        return doc.strip().split("\n\n")[0].replace("\n", " ") if doc else ""


def package_root(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LookupError(f"{package!r} is not an importable package")
    return Path(list(spec.submodule_search_locations)[0])


def discover(package: str = "scratchlm") -> list[Module]:
    """Every module of ``package`` (walked on disk, sorted by dotted name), parsed into sections."""
    root = package_root(package)
    modules = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        if any(part.startswith((".", "_")) and part != "__init__" for part in rel.parts) or "__pycache__" in rel.parts:
            continue
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        source = path.read_text(encoding="utf-8")
        if not source.strip():
            continue
        modules.append(parse_module(".".join(parts), path, source))
    return sorted(modules, key=lambda m: m.name)


def _docstring_lines(node: ast.AST) -> set[int]:
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        return set(range(body[0].lineno, body[0].end_lineno + 1))
    return set()


def _signature(node: ast.AST, source_lines: list[str]) -> str:
    if isinstance(node, ast.ClassDef):
        return f"class {node.name}"
    args = node.args
    names = [a.arg for a in args.posonlyargs + args.args]
    if args.vararg:
        names.append("*" + args.vararg.arg)
    elif args.kwonlyargs:
        names.append("*")
    names += [a.arg for a in args.kwonlyargs]
    if args.kwarg:
        names.append("**" + args.kwarg.arg)
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    return f"{prefix} {node.name}({', '.join(names)})"


def _params(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ClassDef):
        return [t.target.id for t in node.body if isinstance(t, ast.AnnAssign) and isinstance(t.target, ast.Name)]
    a = node.args
    return [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [v for v in (a.vararg, a.kwarg) if v]]


def _start(node: ast.AST, lines: list[str]) -> int:
    """First line of a definition, with its decorators and the comment lines right above it."""
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    while start > 1 and lines[start - 2].lstrip().startswith("#"):
        start -= 1
    return start


def parse_module(name: str, path: Path, source: str) -> Module:
    lines = source.splitlines()
    try:
        with warnings.catch_warnings():  # an invalid escape in someone's docstring is theirs to fix, not ours to print
            warnings.simplefilter("ignore")
            tree = ast.parse(source)
    except SyntaxError as err:
        code = Section("L1", "code", "", "", None, list(range(1, len(lines) + 1)))
        return Module(name, path, source, [code], error=f"{type(err).__name__}: {err}")
    sections: list[Section] = [Section("module", "module", name, "", ast.get_docstring(tree), [])]
    hidden = _docstring_lines(tree)
    defs: list[tuple[int, int, ast.AST, str | None]] = []  # (start, end, node, class name)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defs.append((_start(node, lines), node.end_lineno, node, None))
        elif isinstance(node, ast.ClassDef):
            methods = [m for m in node.body if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))]
            head_end = (_start(methods[0], lines) - 1) if methods else node.end_lineno
            defs.append((_start(node, lines), head_end, node, None))
            for i, m in enumerate(methods):
                end = (_start(methods[i + 1], lines) - 1) if i + 1 < len(methods) else node.end_lineno
                defs.append((_start(m, lines), end, m, node.name))
    cursor = 1

    def glue(upto: int) -> None:
        shown = [n for n in range(cursor, upto) if n not in hidden]
        while shown and not lines[shown[-1] - 1].strip():
            shown.pop()
        while shown and not lines[shown[0] - 1].strip():
            shown.pop(0)
        if shown:
            sections.append(Section(f"L{shown[0]}", "code", "", "", None, shown))

    for start, end, node, owner in defs:
        glue(start)
        qualname = f"{owner}.{node.name}" if owner else node.name
        kind = "class" if isinstance(node, ast.ClassDef) else ("method" if owner else "function")
        doc_lines = _docstring_lines(node)
        shown = [n for n in range(start, end + 1) if n not in doc_lines]
        while shown and not lines[shown[-1] - 1].strip():
            shown.pop()
        sections.append(Section(qualname, kind, qualname, _signature(node, lines), ast.get_docstring(node),
                                shown, params=_params(node)))
        cursor = end + 1
    glue(len(lines) + 1)
    return Module(name, path, source, sections)


def highlight(source: str) -> list[list[tuple[str, str]]]:
    """Per source line, its (css class, text) pieces: class ``""`` for plain text, ``"n"`` for names.

    Uses :mod:`tokenize`, so strings, comments and keywords are exactly Python's; a token spanning
    lines (a triple-quoted string) is cut at each newline.
    """
    lines = source.splitlines(keepends=False)
    pieces: list[list[tuple[int, int, str]]] = [[] for _ in lines]
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        tokens = []
    prev_name = ""
    for tok in tokens:
        cls = _css(tok, prev_name)
        if tok.type == tokenize.NAME:
            prev_name = tok.string
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            prev_name = ""
        if not cls:
            continue
        (r0, c0), (r1, c1) = tok.start, tok.end
        for r in range(r0, r1 + 1):
            if r - 1 >= len(lines):
                break
            a = c0 if r == r0 else 0
            b = c1 if r == r1 else len(lines[r - 1])
            if b > a:
                pieces[r - 1].append((a, b, cls))
    out = []
    for text, spans in zip(lines, pieces):
        row, pos = [], 0
        for a, b, cls in sorted(spans):
            if a < pos:
                continue
            if a > pos:
                row.append(("", text[pos:a]))
            row.append((cls, text[a:b]))
            pos = b
        if pos < len(text):
            row.append(("", text[pos:]))
        out.append(row)
    return out


def _css(tok: tokenize.TokenInfo, prev_name: str) -> str:
    if tok.type == tokenize.NAME:
        if keyword.iskeyword(tok.string) or keyword.issoftkeyword(tok.string) and tok.string in ("match", "case"):
            return "k"
        if prev_name in ("def", "class"):
            return "nf"
        if tok.string in BUILTINS or tok.string in ("self", "cls", "True", "False", "None"):
            return "nb"
        return "n"
    if tok.type == tokenize.STRING or tok.type in {getattr(tokenize, "FSTRING_START", -1),
                                                   getattr(tokenize, "FSTRING_MIDDLE", -1),
                                                   getattr(tokenize, "FSTRING_END", -1)}:
        return "s"
    if tok.type == tokenize.COMMENT:
        return "c"
    if tok.type == tokenize.NUMBER:
        return "m"
    if tok.type == tokenize.OP and tok.string == "@":
        return "o"
    return ""


def render_line(pieces: list[tuple[str, str]], take_ids: Callable[[str], list[str]], symbols: set[str]) -> str:
    """One highlighted line as HTML; names in ``symbols`` carry ``data-sym`` for the hover highlight.

    ``take_ids(name)`` returns the ids this occurrence of ``name`` should carry (the targets of the
    equation's links: the first use only, so the caller forgets an id once it is handed out).
    """
    out = []
    for cls, text in pieces:
        esc = html.escape(text)  # quotes too: no attribute-like text survives in the page
        if cls == "n" and text in symbols:
            ids = take_ids(text)
            extra = "".join(f'<span id="{html.escape(i)}"></span>' for i in ids[1:])
            id_attr = f' id="{html.escape(ids[0])}"' if ids else ""
            out.append(f'{extra}<span class="n sym" data-sym="{html.escape(text)}"{id_attr}>{esc}</span>')
        elif cls:
            out.append(f'<span class="{cls}">{esc}</span>')
        else:
            out.append(esc)
    return "".join(out)
