"""Reading text files strictly: UTF-8 or a clear error naming the file, the byte and its offset.

A bottom utility (plain Python, no JAX): the tokenizers read ``vocab.txt`` and ``tokenizer.json``
with it, the data layer reads corpora and task files with it.
"""

from __future__ import annotations

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
