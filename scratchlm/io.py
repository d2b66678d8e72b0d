"""Reading text files strictly: UTF-8 or a clear error naming the file, the byte and its offset.

A bottom utility (plain Python, no JAX): the tokenizers read ``vocab.txt`` and ``tokenizer.json``
with it, the data layer reads corpora and task files with it.  It also holds the one atomic writer
every output file goes through (:func:`atomic_write_bytes`).
"""

from __future__ import annotations

import os
from pathlib import Path

from scratchlm.errors import CorpusError


def read_text(path: str | Path) -> str:
    """Read a UTF-8 file strictly; a bad byte is reported with the file and its byte offset."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus file {path} does not exist")
    if path.is_dir():
        raise CorpusError(f"{path} is a folder, not a text file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CorpusError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise CorpusError(
            f"{path} is not valid UTF-8: byte 0x{data[err.start]:02x} at byte offset {err.start} "
            f"(line {line}); re-encode it, e.g. iconv -f WINDOWS-1252 -t UTF-8"
        ) from None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same directory, fsync, rename.

    The temporary file is opened with ``open`` (mode 0666 less the umask), not ``mkstemp`` (0600), so
    the result has the permissions the user's other files get.  A kill mid-write leaves a stray
    ``NAME.tmpPID`` (removed when the run folder is opened again, :mod:`scratchlm.training.run`) and
    the previous version of ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())  # the bytes are on disk before the name points at them
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # and the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))
