r"""The three file formats word vectors travel in, read into and written from
:class:`~scratchlm.embeddings.vectors.WordVectors` (re-exported here).

The formats
-----------
- **word2vec text** (the C tool's ``-binary 0``): a header line ``"V D"``, then one line per word,
  ``word x_1 ... x_D`` separated by single spaces.  Values are written with 9 significant digits,
  the fewest that round-trip every float32 exactly, so a vector read back is bit-identical.
- **word2vec binary** (``-binary 1``): the same header, then for each word its UTF-8 bytes, a space,
  ``D`` little-endian float32 values and a newline (the C tool writes the newline; gensim does not and
  strips a leading newline from the next word, so both readers accept both files).
- **GloVe text** (Stanford's ``glove`` output): the word2vec text format without the header line.

gensim's ``KeyedVectors.load_word2vec_format(path, binary=...)`` (``no_header=True`` for GloVe)
loads the files written here unchanged, and :func:`load_word2vec` / :func:`load_glove` load gensim's.
Words may not contain whitespace (the formats split on it); writing such a word is an error.

Reading follows gensim's ``load_word2vec_format``: ``limit=N`` reads the first ``N`` rows; a header
that promises more rows than the file holds is an error, one that promises fewer reads that many and
warns about the rows left unread (gensim reads them silently); a word seen twice keeps its first
vector, with a warning (gensim logs one), so the result can hold fewer words than rows read.
Nothing here imports JAX.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from scratchlm.embeddings.vectors import WordVectors
from scratchlm.errors import ScratchlmError

_WHITESPACE = re.compile(r"\s")


def _check_words(words: tuple[str, ...]) -> None:
    for i, word in enumerate(words):
        if not word or _WHITESPACE.search(word):
            raise ScratchlmError(f"word {i} ({word!r}) is empty or holds whitespace; the text formats cannot store it")


def _format_rows(wv: WordVectors) -> list[str]:
    # '%.9g' is the shortest fixed precision that round-trips every float32 exactly; one format string
    # a row is 1.5x as fast as formatting each number (0.6 -> 0.4 s for 8,853 x 100)
    row_format = "%s" + " %.9g" * wv.vectors.shape[1] + "\n"
    return [row_format % (word, *row) for word, row in zip(wv.words, wv.vectors.tolist())]


def save_word2vec(wv: WordVectors, path: str | Path, *, binary: bool = False) -> None:
    """Write the word2vec text (``binary=False``) or binary format, as the C tool does."""
    _check_words(wv.words)
    path = Path(path)
    V, D = wv.vectors.shape
    with path.open("wb") as f:
        f.write(f"{V} {D}\n".encode())
        if binary:
            rows = wv.vectors.astype("<f4")
            for word, row in zip(wv.words, rows):
                f.write(word.encode("utf-8") + b" " + row.tobytes() + b"\n")
        else:
            f.write("".join(_format_rows(wv)).encode("utf-8"))


def save_glove(wv: WordVectors, path: str | Path) -> None:
    """Write the GloVe text format (word2vec text without the header)."""
    _check_words(wv.words)
    Path(path).write_bytes("".join(_format_rows(wv)).encode("utf-8"))


def _open(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise ScratchlmError(f"vector file {path} does not exist")
    return path, path.open("rb")


def _decode(raw: bytes, path: Path, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScratchlmError(f"{path} is not valid UTF-8 (byte offset {offset + err.start}); binary file?") from None


def _read_text_rows(f, path: Path, n: int | None, line: int) -> tuple[list[tuple[int, str]], bool]:
    """Up to ``n`` (None: all) non-blank lines as ``(line number, text)``, and whether a non-blank line follows."""
    rows = []
    while n is None or len(rows) < n:
        offset, raw = f.tell(), f.readline()
        if not raw:
            return rows, False
        line += 1
        if raw.strip():
            rows.append((line, _decode(raw, path, offset)))
    return rows, any(raw.strip() for raw in f)


def _parse_text_rows(rows: list[tuple[int, str]], path: Path, dim: int | None) -> tuple[list[str], np.ndarray]:
    words, vectors = [], []
    for number, line in rows:
        parts = line.rstrip().split(" ")
        if dim is None:
            dim = len(parts) - 1
        if len(parts) != dim + 1:
            raise ScratchlmError(f"{path} line {number}: expected a word and {dim} numbers, "
                                 f"got {len(parts) - 1} numbers")
        try:
            vectors.append(np.asarray(parts[1:], dtype=np.float32))
        except ValueError:
            raise ScratchlmError(f"{path} line {number}: a value of {parts[0]!r} is not a number") from None
        words.append(parts[0])
    if not words:
        raise ScratchlmError(f"{path} holds no vector")
    return words, np.stack(vectors)


def _read_binary_rows(f, path: Path, n: int, V: int, D: int) -> tuple[list[str], np.ndarray, bool]:
    """``n`` records ``word<space><D float32>`` (the C tool's newline after each optional), read in chunks;
    and whether anything but whitespace follows them."""
    chunk, width = 1 << 20, 4 * D
    words, vectors = [], np.empty((n, D), np.float32)
    buf, pos, offset = f.read(chunk), 0, f.tell()
    for i in range(n):
        while True:
            space = buf.find(b" ", pos)
            if space >= 0 and len(buf) - (space + 1) >= width:
                break
            more = f.read(chunk)
            if not more:
                raise ScratchlmError(f"{path}: unexpected end of file at word {i} of {V} (the header promises {V})")
            offset += len(more)
            buf, pos = buf[pos:] + more, 0
        word = buf[pos:space].lstrip(b"\n")
        if b"\n" in word:  # a word never spans lines: these bytes are text rows read as floats
            raise ScratchlmError(f"{path}: record {i} holds a line break, so this is not the binary format "
                                 "(a text file? read it with binary=False)")
        words.append(_decode(word, path, offset - len(buf) + pos))
        vectors[i] = np.frombuffer(buf, dtype="<f4", count=D, offset=space + 1)
        pos = space + 1 + width
    return words, vectors, bool(buf[pos:].strip() or f.read(chunk).strip())


def _header(line: bytes, path: Path) -> tuple[int, int]:
    try:
        V, D = (int(x) for x in line.split())
    except ValueError:
        raise ScratchlmError(f"{path}: the first line should be 'V D' (vocabulary size, dimension), "
                             f"got {line[:60]!r}") from None
    return V, D


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 1:
        raise ScratchlmError(f"limit must be >= 1 (the number of rows to read), got {limit}")


def _first_of_each(words: list[str], vectors: np.ndarray, path: Path) -> WordVectors:
    """Keep the first row of each word, warning about the others (gensim's ``_add_word_to_kv``)."""
    first: dict[str, int] = {}
    for i, word in enumerate(words):
        first.setdefault(word, i)
    if len(first) < len(words):
        seen = [w for i, w in enumerate(words) if first[w] != i]
        warnings.warn(f"{path}: {len(seen)} duplicate row(s) (first: {seen[:5]}); kept the first vector of "
                      "each word, as gensim does", stacklevel=3)
        rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
        return WordVectors(tuple(first), vectors[rows])
    return WordVectors(tuple(words), vectors)


def load_word2vec(path: str | Path, *, binary: bool = False, limit: int | None = None) -> WordVectors:
    """Read the word2vec text or binary format (written by the C tool, gensim or :func:`save_word2vec`).

    ``limit=N`` reads only the first ``N`` rows (the ``N`` most frequent words), streaming the file.
    The header's count ``V`` is gensim's: fewer rows than ``V`` (and than ``limit``) is an error, rows
    after the first ``V`` are left unread with a warning; a repeated word keeps its first vector, with a
    warning.
    """
    _check_limit(limit)
    path, f = _open(path)
    with f:
        V, D = _header(f.readline(), path)
        n = V if limit is None else min(V, limit)
        if binary:
            words, vectors, more = _read_binary_rows(f, path, n, V, D)
        else:
            rows, more = _read_text_rows(f, path, n, 1)
            if len(rows) < n:
                raise ScratchlmError(f"{path}: header says {V} words, the file holds {len(rows)}")
            words, vectors = _parse_text_rows(rows, path, D)
    if more and n == V:
        warnings.warn(f"{path}: the header says {V} words but more rows follow; read the first {V}, as gensim "
                      "does", stacklevel=2)
    return _first_of_each(words, vectors, path)


def load_glove(path: str | Path, *, limit: int | None = None) -> WordVectors:
    """Read the GloVe text format (no header; the dimension is taken from the first line).

    ``limit=N`` reads only the first ``N`` rows; a repeated word keeps its first vector, with a warning.
    """
    _check_limit(limit)
    path, f = _open(path)
    with f:
        rows, _ = _read_text_rows(f, path, limit, 0)
    words, vectors = _parse_text_rows(rows, path, None)
    return _first_of_each(words, vectors, path)
