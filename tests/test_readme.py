"""The README keeps its promises: exactly two quickstart commands, and every `file:function` named in
the equation table exists in that file (a renamed function must not leave a dead reference)."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def _defined_names(path: Path) -> set[str]:
    """Top-level functions and classes, and methods as ``Class.method``."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{m.name}" for m in node.body
                      if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


def test_quickstart_has_exactly_two_commands():
    blocks = re.findall(r"```bash\n(.*?)```", _section("Quickstart"), flags=re.S)
    assert len(blocks) == 2 and all(len(b.strip().splitlines()) == 1 for b in blocks)
    assert blocks[0].strip().endswith("scratchlm demo") and "pytest" in blocks[1]
    assert blocks[1].strip() in (ROOT / ".ci" / "run").read_text()  # CI runs the README's own test command


def test_every_function_in_the_equation_table_exists():
    refs = re.findall(r"`(scratchlm/[\w/]+\.py):([\w.]+)`", _section("Equations and where they live"))
    assert len(refs) >= 40
    missing = [f"{path}:{name}" for path, name in refs if name not in _defined_names(ROOT / path)]
    assert not missing, missing
