"""Source files hold no control characters: a docstring's ``\\bar`` or ``\\frac`` typed without ``r``
becomes a backspace or form feed that renders as garbage on the docs site and in ``help()``."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = sorted(p for d in ("scratchlm", "tests", "benchmarks") for p in (ROOT / d).rglob("*.py"))
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters(path):
    text = path.read_text(encoding="utf-8")
    bad = [(n, repr(m.group())) for n, line in enumerate(text.split("\n"), 1) for m in CONTROL.finditer(line)]
    assert not bad, f"{path.relative_to(ROOT)}: control characters at (line, char) {bad[:5]}"
