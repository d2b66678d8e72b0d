"""Every normalizer, pre-tokenizer, decoder and post-processor HuggingFace documents, against ``tokenizers``:
its documented examples, then generated text (mixed scripts, CJK, combining marks, emoji, control
characters) through a tokenizer that makes one token per character, so every character's offset is checked."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.tokenizers import hf_json
from scratchlm.tokenizers.normalizers import unicode_normalize
from scratchlm.tokenizers.split_pre_tokenizers import Digits, Metaspace, Punctuation, Split
from tests.tokenizers.peers import texts

hf = pytest.importorskip("tokenizers")
N, P, D, PP = hf.normalizers, hf.pre_tokenizers, hf.decoders, hf.processors

NORMALIZERS = {
    "NFC": lambda: N.NFC(), "NFKC": lambda: N.NFKC(), "NFD": lambda: N.NFD(), "NFKD": lambda: N.NFKD(),
    "Strip": lambda: N.Strip(), "StripLeft": lambda: N.Strip(left=True, right=False),
    "ReplaceRegex": lambda: N.Replace(hf.Regex(" {2,}"), "\u2581"), "ReplaceString": lambda: N.Replace("a", "xyz"),
    "Prepend": lambda: N.Prepend("\u2581"), "Lowercase": lambda: N.Lowercase(), "Nmt": lambda: N.Nmt(),
    "StripAccents": lambda: N.Sequence([N.NFD(), N.StripAccents()]),
    "Sequence": lambda: N.Sequence([N.Nmt(), N.NFKC(), N.Replace(hf.Regex(" {2,}"), " "), N.Lowercase()]),
}
PRE_TOKENIZERS = {
    "Metaspace": lambda: P.Metaspace(), "MetaspaceFirst": lambda: P.Metaspace(prepend_scheme="first"),
    "MetaspaceNever": lambda: P.Metaspace(prepend_scheme="never"), "MetaspaceNoSplit": lambda: P.Metaspace(split=False),
    "Digits": lambda: P.Digits(), "DigitsEach": lambda: P.Digits(individual_digits=True),
    **{f"Punctuation-{b}": (lambda b=b: P.Punctuation(b)) for b in
       ("isolated", "removed", "merged_with_previous", "merged_with_next", "contiguous")},
    **{f"Split-{b}": (lambda b=b: P.Split(hf.Regex(r"\s+|\d"), b)) for b in
       ("isolated", "removed", "merged_with_previous", "merged_with_next", "contiguous")},
    # [a-z], not \w: Oniguruma's \w takes every number (No: '²'), Python's regex only decimal digits.
    "SplitInvert": lambda: P.Split(hf.Regex(r"[a-z]+"), "removed", invert=True),
    "SplitString": lambda: P.Split("a", "merged_with_previous"),
    "CharDelimiterSplit": lambda: P.CharDelimiterSplit("a"), "FixedLength": lambda: P.FixedLength(3),
    "UnicodeScripts": lambda: P.UnicodeScripts(),
    "Sequence": lambda: P.Sequence([P.WhitespaceSplit(), P.Metaspace()]),
    "SequenceByteLevel": lambda: P.Sequence([P.Digits(), P.ByteLevel(add_prefix_space=True)]),
}


def char_tokenizer(normalizer=None, pre_tokenizer=None):
    """One [UNK] token per character (or per pre-tokenized word), so the offsets show every alignment."""
    tok = hf.Tokenizer(hf.models.WordLevel({"[UNK]": 0, "a": 1, "\u2581": 2}, unk_token="[UNK]"))
    if normalizer is not None:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer or P.Split(hf.Regex(r"[\s\S]"), "isolated")
    return tok


def pair(theirs):
    return theirs, hf_json.from_json(json.loads(theirs.to_str()))


@pytest.fixture(scope="module", params=list(NORMALIZERS))
def normalizer_pair(request):
    return pair(char_tokenizer(normalizer=NORMALIZERS[request.param]()))


@pytest.fixture(scope="module", params=list(PRE_TOKENIZERS))
def pre_tokenizer_pair(request):
    return pair(char_tokenizer(pre_tokenizer=PRE_TOKENIZERS[request.param]()))


def _same(theirs, ours, text):
    a, b = theirs.encode(text), ours.encode(text)
    assert (b.tokens, b.offsets, b.word_ids) == (a.tokens, a.offsets, a.word_ids)


@settings(max_examples=40, deadline=None)
@given(text=texts)
def test_normalizer_like_huggingface(normalizer_pair, text):
    theirs, ours = normalizer_pair
    assert ours.normalizer.normalize_str(text) == theirs.normalizer.normalize_str(text)
    _same(theirs, ours, text)


@settings(max_examples=40, deadline=None)
@given(text=texts)
def test_pre_tokenizer_like_huggingface(pre_tokenizer_pair, text):
    theirs, ours = pre_tokenizer_pair
    _same(theirs, ours, text)


# ----------------------------------------------------------------------------- documented examples


def test_positional_alignment_examples():
    """'e' + U+0301 composes to 'é' aligned to the 'e' (the absorbed mark is in no token's span);
    'ﬁ' (U+FB01) under NFKC is 'f' 'i', both aligned to it."""
    assert unicode_normalize("e\u0301x", "NFC") == ("\u00e9x", [0, 2])
    assert unicode_normalize("\ufb01", "NFKC") == ("fi", [0, 0])
    assert unicode_normalize("abc", "NFC") == ("abc", None)


def test_metaspace_documented_example():
    """HuggingFace's metaspace.rs test 'basic' and the prepend schemes."""
    assert Metaspace().pre_tokenize_str("Hey friend!") == [("▁Hey", (0, 3)), ("▁friend!", (3, 11))]
    assert P.Metaspace().pre_tokenize_str("Hey friend!") == [("▁Hey", (0, 3)), ("▁friend!", (3, 11))]
    assert Metaspace(prepend_scheme="never").pre_tokenize_str("Hey  friend!") == [
        ("Hey", (0, 3)), ("▁", (3, 4)), ("▁friend!", (4, 12))]
    assert Metaspace(split=False).pre_tokenize_str("Hey friend!") == [("▁Hey▁friend!", (0, 11))]


def test_split_documented_examples():
    """The behaviours on HuggingFace's docstring text 'the-final--countdown' split on '-'."""
    text = "the-final--countdown"
    expected = {
        "removed": ["the", "final", "countdown"],
        "isolated": ["the", "-", "final", "-", "-", "countdown"],
        "merged_with_previous": ["the-", "final-", "-", "countdown"],
        "merged_with_next": ["the", "-final", "-", "-countdown"],
        "contiguous": ["the", "-", "final", "--", "countdown"],
    }
    for behavior, words in expected.items():
        assert [w for w, _ in Split("-", behavior).pre_tokenize_str(text)] == words
        assert [w for w, _ in P.Split("-", behavior).pre_tokenize_str(text)] == words


def test_digits_and_punctuation_examples():
    assert [w for w, _ in Digits().pre_tokenize_str("Call 123 please")] == ["Call ", "123", " please"]
    assert [w for w, _ in Digits(True).pre_tokenize_str("Call 123 please")] == ["Call ", "1", "2", "3", " please"]
    assert [w for w, _ in Punctuation().pre_tokenize_str("Hey friend!     How are you?!?")] == [
        "Hey friend", "!", "     How are you", "?", "!", "?"]


DECODERS = {
    "Metaspace": lambda: D.Metaspace(), "MetaspaceNever": lambda: D.Metaspace(prepend_scheme="never"),
    "ByteFallback": lambda: D.ByteFallback(), "Fuse": lambda: D.Fuse(), "Strip": lambda: D.Strip("▁", 1, 1),
    "Replace": lambda: D.Replace("▁", " "), "BPEDecoder": lambda: D.BPEDecoder(), "CTC": lambda: D.CTC(),
    "CTCNoCleanup": lambda: D.CTC(cleanup=False), "WordPiece": lambda: D.WordPiece(),
    "Sequence": lambda: D.Sequence([D.Replace("▁", " "), D.ByteFallback(), D.Fuse(), D.Strip(" ", 1, 0)]),
}
TOKEN_POOL = ["▁a", "▁", "b", "<0x41>", "<0xE4>", "<0xB8>", "<0xAD>", "<0xFF>", "x</w>", "</w>", "<pad>", "|", "h",
              "##ing", " .", "n't", "▁▁c", "é", "中"]


@pytest.mark.parametrize("name", list(DECODERS))
@settings(max_examples=60, deadline=None)
@given(tokens=st.lists(st.sampled_from(TOKEN_POOL), max_size=8))
def test_decoder_like_huggingface(name, tokens):
    if name == "Strip":  # HuggingFace panics on a token made only of the stripped character (strip.rs)
        tokens = [t for t in tokens if t.strip("▁")]
    tok = char_tokenizer()
    tok.decoder = DECODERS[name]()
    ours = hf_json.read("decoder", json.loads(tok.to_str())["decoder"])
    assert ours.decode(tokens) == tok.decoder.decode(tokens)


def test_decoder_documented_examples():
    read = hf_json.read
    assert read("decoder", {"type": "ByteFallback"}).decode(["<0x61>", "<0xE4>", "<0xB8>", "<0xAD>"]) == "a中"
    assert read("decoder", {"type": "ByteFallback"}).decode(["<0xE4>", "a"]) == "\ufffda"
    ctc = read("decoder", {"type": "CTC", "pad_token": "<pad>", "word_delimiter_token": "|", "cleanup": True})
    assert ctc.decode(["<pad>", "h", "h", "e", "<pad>", "l", "l", "<pad>", "l", "o", "|", "<pad>"]) == "hello "
    assert read("decoder", {"type": "BPEDecoder", "suffix": "</w>"}).decode(["hel", "lo</w>", "there</w>"]) == \
        "hello there"


@pytest.mark.parametrize("processor", [
    lambda: PP.RobertaProcessing(("</s>", 2), ("<s>", 0)),
    lambda: PP.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=False),
    lambda: PP.Sequence([PP.ByteLevel(trim_offsets=True),
                         PP.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> $B:1 </s>:1",
                                               special_tokens=[("<s>", 0), ("</s>", 2)])]),
], ids=["roberta", "roberta-untrimmed", "sequence"])
def test_post_processor_like_huggingface(processor):
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = P.ByteLevel(add_prefix_space=True)
    tok.train_from_iterator(["hello there world", "a pair of texts"], hf.trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>"], show_progress=False,
        initial_alphabet=P.ByteLevel.alphabet()))
    tok.post_processor = processor()
    theirs, ours = pair(tok)
    for args in [("hello  there",), ("hello", " world pair"), ("", "x")]:
        a, b = theirs.encode(*args), ours.encode(*args)
        assert (b.ids, b.offsets, b.type_ids, b.special_tokens_mask) == \
            (a.ids, a.offsets, a.type_ids, a.special_tokens_mask)


def test_character_class_regexes_equal_their_predicates():
    """Digits and Punctuation split with one regex each; it accepts exactly the characters of the predicate
    (Rust's char::is_numeric: Nd, Nl, No; BERT's punctuation) over the generated alphabet and then some."""
    from scratchlm.tokenizers import split_pre_tokenizers as sp
    from scratchlm.tokenizers.normalizers import is_punctuation
    from tests.tokenizers.peers import ALPHABET

    chars = set(ALPHABET) | {chr(c) for c in range(0x2150, 0x2190)} | set("²³¹¼½¾٣۴߁०௧")
    for c in chars:
        assert bool(sp._DIGIT.fullmatch(c)) == sp.is_numeric(c), c
        assert bool(sp._PUNCTUATION.fullmatch(c)) == is_punctuation(c), c
