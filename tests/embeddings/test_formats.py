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
    # a text file read as binary: its rows' digits would become floats; a record spanning a line break says so
    words = tuple(f"w{i}" for i in range(50))
    save_word2vec(WordVectors(words, np.ones((50, 4), np.float32) / 3), tmp_path / "text", binary=False)
    with pytest.raises(ScratchlmError, match="not the binary format"):
        load_word2vec(tmp_path / "text", binary=True)
