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


_POW10 = 10 ** np.arange(13, dtype=np.uint64)  # 10^0 .. 10^12
_SPACE, _MINUS, _DOT, _ZERO = (ord(c) for c in " -.0")


def _nine_digits(M: np.ndarray, E: np.ndarray, X: np.ndarray) -> np.ndarray:
    r""":math:`n = \operatorname{round}(M \cdot 2^E \cdot 10^{8 - X})`, ties to even, in exact uint64 integers:
    ``M`` < 2^24 and :math:`10^{8-X} \le 10^{12}` keep :math:`M \cdot 10^{8-X}` below 2^64."""
    num = M * _POW10[np.clip(8 - X, 0, 12)]
    s = -E  # the binary point's position in num; at most 38 for |x| >= 1e-4
    right = np.maximum(s, 1).astype(np.uint64)
    q = num >> right
    r = num - (q << right)
    half = np.uint64(1) << (right - np.uint64(1))
    up = (r > half) | ((r == half) & ((q & np.uint64(1)) == 1))
    return np.where(s > 0, q + up, num << np.maximum(-s, 0).astype(np.uint64))


def _fixed_layout(X: np.ndarray) -> np.ndarray:
    """[k, 14]: character p of a number printed in fixed notation with decimal exponent X, as an index into
    ``[digit 0 .. digit 8, ".", "0"]`` (``d.ddd``, ``ddd.dd`` for X >= 0; ``0.00ddd`` for X < 0)."""
    p, X = np.arange(14)[None, :], X[:, None]
    z = np.maximum(-X - 1, 0)  # zeros after "0."
    at = np.where(X >= 0, np.where(p < X + 1, p, np.where(p == X + 1, 9, p - 1)),
                  np.where(p == 0, 10, np.where(p == 1, 9, np.where(p < 2 + z, 10, p - 2 - z))))
    return np.clip(at, 0, 10)  # past the number's end: anything, it is not written


_LAYOUT = _fixed_layout(np.arange(-4, 9))  # one row per exponent X = -4 .. 8


def _format_g9(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Each float32 as ``" %.9g"`` (Python's, so C's ``printf``) in ASCII: ``([n, 16] bytes, [n, 16] which are
    used)``.

    Python formats a float in ~0.3 us; here NumPy does it for every value at once.  A value
    :math:`x = M \cdot 2^E` (``M`` < 2^24, float32's significand) with 1e-4 <= |x| < 1e8 prints in fixed notation
    with its 9 significant digits :math:`n` (:func:`_nine_digits`, correctly rounded as ``printf``), decimal
    exponent ``X`` (10^8 <= n < 10^9) and trailing zeros dropped; the rest (zero, exponent notation, nan,
    inf: hardly any trained weight) goes through Python's ``"%.9g"``.  Equality with ``"%.9g" %`` is tested
    on values of every exponent and on each power of two.
    """
    x = values.astype(np.float64)  # exact
    a = np.abs(x)
    fast = (a >= 1e-4) & (a < 1e8)  # False for nan
    a = np.where(fast, a, 1.0)
    m, e = np.frexp(a)
    M, E = (m * 2.0**24).astype(np.uint64), e.astype(np.int64) - 24  # x = M 2^E exactly
    X = np.floor(np.log10(a)).astype(np.int64)  # the decimal exponent, or one off next to a power of ten
    n = _nine_digits(M, E, X)
    for _ in range(2):
        shift = (n >= _POW10[9]).astype(np.int64) - (n < _POW10[8])
        if not shift.any():
            break
        X = X + shift
        n = _nine_digits(M, E, X)
    fast &= (n >= _POW10[8]) & (n < _POW10[9]) & (X >= -4) & (X <= 8)
    digits = (n[:, None] // _POW10[8::-1] % np.uint64(10)).astype(np.uint8)  # [n, 9], most significant first
    kept = 9 - np.argmax(digits[:, ::-1] != 0, axis=1)  # significant digits left once trailing zeros go
    X = np.clip(X, -4, 8)
    table = np.concatenate([digits + _ZERO, np.full((len(n), 2), (_DOT, _ZERO), np.uint8)], axis=1)
    chars = np.take_along_axis(table, _LAYOUT[X + 4], axis=1)  # [n, 14]
    length = np.where(X >= 0, np.where(kept <= X + 1, X + 1, kept + 1), 2 + np.maximum(-X - 1, 0) + kept)
    field = np.empty((len(n), 16), np.uint8)
    field[:, 0], field[:, 1], field[:, 2:] = _SPACE, _MINUS, chars
    used = np.concatenate([np.ones((len(n), 1), bool), (x < 0)[:, None], np.arange(14) < length[:, None]], axis=1)
    for i in np.flatnonzero(~fast):
        text = ("%.9g" % x[i]).encode()  # noqa: UP031 (printf's format, as the C tool writes)
        field[i, 1 : 1 + len(text)] = np.frombuffer(text, np.uint8)
        used[i, 1:] = np.arange(15) < len(text)
    return field, used


def _text_rows(wv: WordVectors) -> bytes:
    r"""The rows ``word x_1 ... x_D``, ``"%s" + " %.9g" * D + "\n"`` each: '%.9g' is the shortest fixed precision
    that round-trips every float32 exactly.  Formatted by NumPy (:func:`_format_g9`), 2,048 rows at a time."""
    V, D = wv.vectors.shape
    rows = []
    for start in range(0, V, 2048):
        block = wv.vectors[start : start + 2048]
        field, used = _format_g9(block.reshape(-1))
        blob = field.reshape(len(block), D * 16)[used.reshape(len(block), D * 16)].tobytes()
        ends = np.cumsum(used.reshape(len(block), -1).sum(axis=1)).tolist()
        rows += [word.encode("utf-8") + blob[i:j] + b"\n"
                 for word, i, j in zip(wv.words[start : start + 2048], [0, *ends[:-1]], ends)]
    return b"".join(rows)


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
            f.write(_text_rows(wv))


def save_glove(wv: WordVectors, path: str | Path) -> None:
    """Write the GloVe text format (word2vec text without the header)."""
    _check_words(wv.words)
    Path(path).write_bytes(_text_rows(wv))


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
        words.append(_decode(buf[pos:space].lstrip(b"\n"), path, offset - len(buf) + pos))
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
