"""Checks of a user's settings and paths, made once before any work: each failure is one
:class:`~scratchlm.errors.ScratchlmError` that names the flag or file and what to do.

A bottom utility (plain Python, no JAX), like :mod:`scratchlm.io`: the config dataclasses check their
ranges with the number checks in ``__post_init__`` (a field ``batch_size`` is reported as the flag
``--batch-size``: the flags and the fields share their names), and every command checks its input files
and its output folder with the path checks before it reads a corpus or builds a model.
"""

from __future__ import annotations

import codecs
import math
import os
import tempfile
from pathlib import Path

from scratchlm.errors import ScratchlmError


def flag(name: str) -> str:
    """The command-line spelling of a config field: ``batch_size`` -> ``--batch-size``."""
    return name if name.startswith("-") else "--" + name.replace("_", "-")


def _number(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ScratchlmError(f"{flag(name)} must be a number, got {value!r}")
    return value


def positive(name: str, value, *, allow_none: bool = False) -> None:
    """``value > 0`` and finite (a learning rate, a clipping norm, a scale); None passes if ``allow_none``."""
    if value is None and allow_none:
        return
    if not 0 < _number(name, value) < math.inf:
        raise ScratchlmError(f"{flag(name)} must be a positive finite number, got {value!r}")


def at_least(name: str, value, low: int | float) -> None:
    """``value >= low`` and finite (sizes: ``low`` 1; counts that may be zero: ``low`` 0)."""
    if not low <= _number(name, value) < math.inf:
        raise ScratchlmError(f"{flag(name)} must be at least {low}, got {value!r}")


def fraction(name: str, value, *, low_open: bool = False, high_open: bool = False) -> None:
    """``value`` in [0, 1], with either end open as asked."""
    v = _number(name, value)
    if not ((0 < v) if low_open else (0 <= v)) or not ((v < 1) if high_open else (v <= 1)):
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ScratchlmError(f"{flag(name)} must be a fraction in {interval}, got {value!r}")


def input_file(path: str | Path, name: str, *, text: bool = True) -> Path:
    """``path`` exists, is a file, can be read and (``text``) is UTF-8 throughout; returns it as a Path.

    The bytes are decoded in blocks, so a large corpus is checked without being held twice in memory.
    """
    path = Path(path)
    where = f"{flag(name)} {path}"
    if not path.exists():
        raise ScratchlmError(f"{where}: no such file")
    if path.is_dir():
        raise ScratchlmError(f"{where} is a folder; give a file")
    if not path.is_file():
        raise ScratchlmError(f"{where} is not a regular file")
    try:
        with open(path, "rb") as f:
            if not text:
                f.read(1)
                return path
            decoder, offset, lines = codecs.getincrementaldecoder("utf-8")(), 0, 0
            while block := f.read(1 << 20):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as err:
                    # the decoder may hold up to 3 bytes of the previous block: err.start can be negative
                    start = max(err.start, 0)
                    line = lines + block.count(b"\n", 0, start) + 1
                    raise ScratchlmError(f"{where} is not valid UTF-8: byte 0x{block[start]:02x} at byte offset "
                                         f"{offset + start} (line {line}); re-encode it, e.g. "
                                         "iconv -f WINDOWS-1252 -t UTF-8") from None
                offset, lines = offset + len(block), lines + block.count(b"\n")
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise ScratchlmError(f"{where} is not valid UTF-8: it ends inside a multi-byte character") from None
    except PermissionError:
        raise ScratchlmError(f"{where}: permission denied (cannot read it)") from None
    except IsADirectoryError:
        raise ScratchlmError(f"{where} is a folder; give a file") from None
    return path


def input_folder(path: str | Path, name: str) -> Path:
    """``path`` is an existing folder whose entries can be listed."""
    path = Path(path)
    if not path.exists():
        raise ScratchlmError(f"{flag(name)} {path}: no such folder")
    if not path.is_dir():
        raise ScratchlmError(f"{flag(name)} {path} is a file; give a folder")
    if not os.access(path, os.R_OK | os.X_OK):
        raise ScratchlmError(f"{flag(name)} {path}: permission denied (cannot read the folder)")
    return path


def _try_write(folder: Path, where: str) -> None:
    """Create and remove a temporary file in ``folder``: the one reliable test that writing works there
    (``os.access`` misses read-only mounts, ACLs and root's exemptions)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".scratchlm-write-test-", dir=folder)
    except OSError as err:
        raise ScratchlmError(f"{where}: cannot write in {folder} ({err.strerror or err}); choose another place"
                             ) from None
    os.close(fd)
    os.unlink(name)


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path.cwd()


def output_folder(path: str | Path, name: str = "--out") -> Path:
    """``path`` is a folder scratchlm can write into, or a folder it can create (nothing is created here).

    Checked by writing a temporary file in it, or in the nearest existing folder above it.
    """
    path = Path(path)
    where = f"{flag(name)} {path}"
    existing = _nearest_existing(path)
    if not existing.is_dir():
        raise ScratchlmError(f"{where}: {existing} is a file, not a folder; choose another {flag(name)}")
    _try_write(existing, where)
    return path


def not_foreign(path: str | Path, marks: set[str], why: str, name: str = "--out") -> None:
    """``path`` is new, empty, or holds one of the entries ``marks`` (a folder this command made): a command
    never writes its files among someone else's.  ``why`` says what the folder is not."""
    path = Path(path)
    entries = {p.name for p in path.iterdir()} if path.is_dir() else set()
    if entries and not entries & marks:
        raise ScratchlmError(f"{flag(name)} {path} is not empty and {why}; give a new or empty folder")


def output_file(path: str | Path, name: str = "--out") -> Path:
    """``path`` names a file scratchlm can write (not a folder), in a folder it can write into or create."""
    path = Path(path)
    if path.is_dir():
        raise ScratchlmError(f"{flag(name)} {path} is a folder; give a file name")
    output_folder(path.parent if str(path.parent) else Path("."), name)
    return path


def source(spec: str, name: str, named: tuple[str, ...] = ("wiki", "lee")) -> None:
    """A ``--corpus``-like flag: one of the ``named`` shipped data sets, or a readable UTF-8 file."""
    if spec not in named:
        input_file(spec, name)
