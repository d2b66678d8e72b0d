"""formats.py: round trips through scratchlm's own readers and through gensim, both directions."""

import numpy as np
import pytest

from scratchlm.embeddings.formats import WordVectors, load_glove, load_word2vec, save_glove, save_word2vec
from scratchlm.errors import ScratchlmError

gensim_kv = pytest.importorskip("gensim.models.keyedvectors")


@pytest.fixture(scope="module")
def wv():
    rng = np.random.default_rng(0)
    words = ("the", "of", "naïve", "東京", "x'y", "Paris", "paris") + tuple(f"w{i}" for i in range(40))
    vectors = rng.standard_normal((len(words), 7)).astype(np.float32) * np.float32(3e-3)
    vectors[0, 0] = np.float32(1e-38)  # near the float32 subnormal edge: printed digits must still round-trip
    vectors[1, :] = 0.0
    return WordVectors(words, vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_round_trip_bit_exact(wv, tmp_path, binary):
    path = tmp_path / "v.bin"
    save_word2vec(wv, path, binary=binary)
    back = load_word2vec(path, binary=binary)
    assert back.words == wv.words
    np.testing.assert_array_equal(back.vectors, wv.vectors)  # '%.9g' / raw float32: exact


def test_glove_round_trip_bit_exact(wv, tmp_path):
    save_glove(wv, tmp_path / "g.txt")
    back = load_glove(tmp_path / "g.txt")
    assert back.words == wv.words
    np.testing.assert_array_equal(back.vectors, wv.vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_gensim_loads_ours_unchanged(wv, tmp_path, binary):
    path = tmp_path / "ours"
    save_word2vec(wv, path, binary=binary)
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path), binary=binary)
    assert tuple(kv.index_to_key) == wv.words
    np.testing.assert_array_equal(kv.vectors, wv.vectors)


def test_gensim_loads_our_glove(wv, tmp_path):
    save_glove(wv, tmp_path / "g.txt")
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(tmp_path / "g.txt"), binary=False, no_header=True)
    assert tuple(kv.index_to_key) == wv.words
    np.testing.assert_array_equal(kv.vectors, wv.vectors)


@pytest.mark.parametrize("binary", [False, True])
def test_we_load_gensims(wv, tmp_path, binary):
    kv = gensim_kv.KeyedVectors(vector_size=wv.dim)
    kv.add_vectors(list(wv.words), wv.vectors)
    path = tmp_path / "theirs"
    kv.save_word2vec_format(str(path), binary=binary)
    back = load_word2vec(path, binary=binary)
    assert back.words == wv.words
    # gensim's text writer prints str(np.float32), the shortest repr that round-trips: exact too
    np.testing.assert_array_equal(back.vectors, wv.vectors)


def test_bad_inputs(tmp_path):
    with pytest.raises(ScratchlmError, match="whitespace"):
        save_word2vec(WordVectors(("a b",), np.zeros((1, 2))), tmp_path / "x")
    with pytest.raises(ScratchlmError, match="distinct"):
        WordVectors(("a", "a"), np.zeros((2, 2)))
    with pytest.raises(ScratchlmError, match="2 words but 3"):
        WordVectors(("a", "b"), np.zeros((3, 2)))
    (tmp_path / "h").write_text("two 3\n")
    with pytest.raises(ScratchlmError, match="first line"):
        load_word2vec(tmp_path / "h")
    (tmp_path / "short").write_text("2 3\na 1 2 3\nb 1 2\n")
    with pytest.raises(ScratchlmError, match="line 3"):
        load_word2vec(tmp_path / "short")
    (tmp_path / "trunc").write_bytes(b"2 3\na " + np.zeros(3, "<f4").tobytes() + b"\nb " + b"\0" * 5)
    with pytest.raises(ScratchlmError, match="end of file"):
        load_word2vec(tmp_path / "trunc", binary=True)
    with pytest.raises(ScratchlmError, match="does not exist"):
        load_glove(tmp_path / "missing")


def printf_rows(wv: WordVectors) -> bytes:
    """The text rows as the C tool's ``fprintf(fo, "%lf ", ...)`` successor writes them, one Python format a value:
    the plain definition the NumPy formatter must equal byte for byte."""
    return "".join(("%s" + " %.9g" * wv.dim + "\n") % (w, *row) for w, row in zip(wv.words, wv.vectors.tolist())
                   ).encode("utf-8")


def hard_float32s() -> np.ndarray:
    """Values where '%.9g' is easiest to get wrong: every float32 bit pattern class (random words: all
    exponents, subnormals, nan, inf), each power of two and its neighbours (the exact ties of decimal rounding
    live there), the float32s around each power of ten (the exponent estimate is off by one there, and
    9.99999999... rounds up to the next power), the bounds of fixed notation, signed zeros."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    normal = (rng.standard_normal(200_000) * 10.0 ** rng.uniform(-6, 10, 200_000)).astype(np.float32)
    two = np.float32(2.0) ** np.arange(-30, 40, dtype=np.float32)
    ten = np.array([10.0**j for j in range(-6, 11)], np.float32)
    near = np.concatenate([two, ten, np.float32([1e-4, 1e8, 9.9999999e-5, 99999999.0, 0.5, 1.5, 2.5, 1234567.5])])
    near = np.concatenate([near, np.nextafter(near, np.float32(np.inf)), np.nextafter(near, np.float32(0))])
    special = np.float32([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, 3.4028235e38])
    return np.concatenate([bits, normal, near, -near, special])


def test_numpy_formatting_is_printfs_for_every_kind_of_float32():
    from scratchlm.embeddings.formats import _format_g9

    values = hard_float32s()
    field, used = _format_g9(values)
    got = [bytes(f[u]) for f, u in zip(field, used)]
    want = [(" %.9g" % v).encode() for v in values.tolist()]  # noqa: UP031 (printf's format is the definition)
    bad = [(float(v), g, w) for v, g, w in zip(values.tolist(), got, want) if g != w]
    assert not bad, bad[:10]


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (1, 1), (2049, 5)])
def test_text_files_are_the_printf_rows_at_any_shape(tmp_path, shape):
    rng = np.random.default_rng(1)
    words = tuple(f"w{i}" for i in range(shape[0]))
    wv = WordVectors(words, (rng.standard_normal(shape) * 0.3).astype(np.float32))
    save_word2vec(wv, tmp_path / "v.txt")
    save_glove(wv, tmp_path / "g.txt")
    assert (tmp_path / "v.txt").read_bytes() == f"{shape[0]} {shape[1]}\n".encode() + printf_rows(wv)
    assert (tmp_path / "g.txt").read_bytes() == printf_rows(wv)


def test_text_rows_of_the_fixture_are_printfs(wv, tmp_path):
    save_word2vec(wv, tmp_path / "v.txt")
    assert (tmp_path / "v.txt").read_bytes() == f"{len(wv)} {wv.dim}\n".encode() + printf_rows(wv)
