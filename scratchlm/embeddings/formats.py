r"""Word vectors as data, and the three file formats they travel in.

The API every embedding model shares
------------------------------------
:class:`WordVectors` is a frozen pair ``(words, vectors)``: ``words`` a tuple of ``V`` distinct
strings, ``vectors`` a float32 NumPy array ``[V, D]`` whose row ``i`` belongs to ``words[i]``, rows
ordered by **descending corpus frequency** (the order the C tools and gensim keep, which is what
"restrict to the N most frequent words" in :mod:`scratchlm.embeddings.evaluate` relies on).
Word2Vec and GloVe both hand their result over as a ``WordVectors``; the evaluation functions and the
writers below take one; the readers return one.  Build one from plain arrays with
``WordVectors(words=tuple(words), vectors=np.asarray(matrix, np.float32))``.

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
Nothing here imports JAX.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchlm.errors import ScratchlmError

_WHITESPACE = re.compile(r"\s")


@dataclass(frozen=True)
class WordVectors:
    """Words and their vectors, ``words`` [V] ordered by descending frequency, ``vectors`` [V, D] float32."""

    words: tuple[str, ...]
    vectors: np.ndarray

    def __post_init__(self):
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ScratchlmError(f"expected vectors [V, D], got shape {vectors.shape}")
        if len(self.words) != vectors.shape[0]:
            raise ScratchlmError(f"{len(self.words)} words but {vectors.shape[0]} vector rows")
        if len(set(self.words)) != len(self.words):
            raise ScratchlmError("words must be distinct")
        object.__setattr__(self, "words", tuple(self.words))
        object.__setattr__(self, "vectors", vectors)

    @property
    def index(self) -> dict[str, int]:
        """word -> row (built on each call; keep the result when looking up many words)."""
        return {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]


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


def _parse_text_rows(lines: list[str], path: Path, first_line: int, dim: int | None) -> WordVectors:
    words, rows = [], []
    for number, line in enumerate(lines, start=first_line):
        parts = line.rstrip().split(" ")
        if dim is None:
            dim = len(parts) - 1
        if len(parts) != dim + 1:
            raise ScratchlmError(f"{path} line {number}: expected a word and {dim} numbers, "
                                 f"got {len(parts) - 1} numbers")
        try:
            rows.append(np.asarray(parts[1:], dtype=np.float32))
        except ValueError:
            raise ScratchlmError(f"{path} line {number}: a value of {parts[0]!r} is not a number") from None
        words.append(parts[0])
    if not words:
        raise ScratchlmError(f"{path} holds no vector")
    return WordVectors(tuple(words), np.stack(rows))


def _header(line: bytes, path: Path) -> tuple[int, int]:
    try:
        V, D = (int(x) for x in line.split())
    except ValueError:
        raise ScratchlmError(f"{path}: the first line should be 'V D' (vocabulary size, dimension), "
                             f"got {line[:60]!r}") from None
    return V, D


def load_word2vec(path: str | Path, *, binary: bool = False) -> WordVectors:
    """Read the word2vec text or binary format (written by the C tool, gensim or :func:`save_word2vec`)."""
    path = Path(path)
    if not path.exists():
        raise ScratchlmError(f"vector file {path} does not exist")
    data = path.read_bytes()
    head, _, body = data.partition(b"\n")
    V, D = _header(head, path)
    if not binary:
        try:
            lines = [line for line in body.decode("utf-8").split("\n") if line.strip()]
        except UnicodeDecodeError as err:
            raise ScratchlmError(f"{path} is not valid UTF-8 (byte offset {len(head) + 1 + err.start}); "
                                 "binary file?") from None
        if len(lines) != V:
            raise ScratchlmError(f"{path}: header says {V} words, the file holds {len(lines)}")
        return _parse_text_rows(lines, path, 2, D)
    words, rows, pos, width = [], [], 0, 4 * D
    for i in range(V):
        space = body.find(b" ", pos)
        if space < 0 or len(body) - (space + 1) < width:
            raise ScratchlmError(f"{path}: unexpected end of file at word {i} of {V}")
        words.append(body[pos:space].lstrip(b"\n").decode("utf-8"))
        rows.append(np.frombuffer(body, dtype="<f4", count=D, offset=space + 1))
        pos = space + 1 + width
    return WordVectors(tuple(words), np.stack(rows).astype(np.float32))


def load_glove(path: str | Path) -> WordVectors:
    """Read the GloVe text format (no header; the dimension is taken from the first line)."""
    path = Path(path)
    if not path.exists():
        raise ScratchlmError(f"vector file {path} does not exist")
    lines = [line for line in path.read_text("utf-8").split("\n") if line.strip()]
    return _parse_text_rows(lines, path, 1, None)
