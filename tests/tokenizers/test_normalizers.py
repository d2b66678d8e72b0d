"""BERT normalization and pre-tokenization (normalizers.py, pre_tokenizers.py): worked examples, the
offsets property, and the one pinned difference from HuggingFace (Unicode table versions)."""

import unicodedata

import pytest
from hypothesis import given, settings

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.tokenizers.normalizers import NFD, BertNormalizer, Sequence, StripAccents
from scratchlm.tokenizers.pre_tokenizers import BertPreTokenizer
from tests.tokenizers.peers import texts

hf_tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def minilm():
    tok = tokenizers.load(corpora.minilm_path() / "tokenizer.json")
    tok.no_padding(), tok.no_truncation()
    return tok


def test_bert_normalizer_worked_example():
    """Control character (U+0007) removed, tab to space, 'É' -> 'e' (NFD gives E + U+0301, the mark is
    dropped, then lower-cased), each ideograph spaced; the alignment points each output character at its source."""
    text = "É\x07a\t中b"
    normalized, alignment = BertNormalizer().normalize(text)
    assert normalized == "ea  中 b"
    assert alignment == [0, 2, 3, 4, 4, 4, 5]


def test_alignment_is_none_when_characters_map_one_to_one():
    assert BertNormalizer().normalize("Hello World") == ("hello world", None)


def test_canonical_ordering_across_characters():
    """NFD sorts combining marks by class: U+0301 (class 230) after U+0323 (class 220), even when they
    come from different characters; HuggingFace reads the alignment positionally (each character of a
    decomposition's first place takes the next original character), so the swapped marks keep positions 1, 2.
    'Ä' + U+0337 (class 1): A (the first of Ä's decomposition) takes 0, U+0337 takes the next original
    character (1), and U+0308, inserted by the decomposition, the one before (1)."""
    normalized, alignment = NFD().normalize("a\u0301\u0323")
    assert normalized == unicodedata.normalize("NFD", "a\u0301\u0323") == "a\u0323\u0301"
    assert alignment == [0, 1, 2]
    assert NFD().normalize("\u00c4\u0337") == ("A\u0337\u0308", [0, 1, 1])
    assert Sequence((NFD(), StripAccents())).normalize_str("Crème brûlée") == "Creme brulee"


def test_pre_tokenizer_isolates_punctuation():
    words = [w for w, _ in BertPreTokenizer().pre_tokenize_str("hello,world! a-b")]
    assert words == ["hello", ",", "world", "!", "a", "-", "b"]


@settings(max_examples=150)
@given(text=texts)
def test_offsets_cover_exactly_the_text_of_each_token(minilm, text):
    """For every token that is not special or [UNK]: normalizing the original span gives the token
    (without its ## prefix) -- offsets survive accent stripping, removed characters and CJK spacing."""
    enc = minilm.encode(text)
    normalizer = minilm.normalizer
    for token, (s, e), special in zip(enc.tokens, enc.offsets, enc.special_tokens_mask):
        if special or token == "[UNK]":
            continue
        assert normalizer.normalize_str(text[s:e]).strip() == token.removeprefix("##")


@pytest.mark.parametrize("char", ["\u0890", "\u1734"])
def test_pinned_unicode_version_difference(char):
    """U+0890 became a format character (Cf) and U+1734 a spacing mark (Mc) in Unicode 14; HuggingFace's
    Rust tables predate that, so it keeps U+0890 and drops U+1734 (an Mn there) -- the reverse of what
    Python's Unicode database says, which we follow.  The generated-text comparisons avoid such characters."""
    ours = BertNormalizer().normalize_str(f"a{char}b")
    theirs = hf_tokenizers.normalizers.BertNormalizer().normalize_str(f"a{char}b")
    assert ours != theirs
    assert ours == ("ab" if unicodedata.category(char) == "Cf" else f"a{char}b")
