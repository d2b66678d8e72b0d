"""The Tokenizer API items HuggingFace has (scratchlm/tokenizers/tokenizer.py, encoding.py): add_tokens after
construction, normalized added tokens, truncation stride with overflowing windows, get_vocab without
added tokens, batches mixing texts and pairs, and the Encoding position helpers -- each against ``tokenizers``."""

import json

import pytest

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.tokenizers import hf_json
from scratchlm.tokenizers.tokenizer import AddedToken

hf = pytest.importorskip("tokenizers")


@pytest.fixture
def pair():
    path = corpora.minilm_path() / "tokenizer.json"
    ours, theirs = tokenizers.load(path), hf.Tokenizer.from_file(str(path))
    for tok in (ours, theirs):
        tok.no_padding(), tok.no_truncation()
    return ours, theirs


def _same(a, b):
    assert (b.ids, b.tokens, b.offsets, b.type_ids, b.word_ids) == (a.ids, a.tokens, a.offsets, a.type_ids, a.word_ids)


def test_add_tokens_after_construction(pair):
    """'Mixed' is normalized (lowercased) before matching, so it matches 'MIXED' and 'mixed'; 'hello' is in
    the vocabulary and keeps its id; the new ones take the ids after the vocabulary."""
    ours, theirs = pair
    new = ["Mixed", "hello", "brandnewtoken"]
    assert ours.add_tokens(new) == theirs.add_tokens(new) == 3
    assert ours.add_tokens([AddedToken("<special>", -1, special=True)]) == \
        theirs.add_tokens([hf.AddedToken("<special>", special=True, normalized=False)]) == 1
    assert ours.get_vocab() == theirs.get_vocab()
    assert ours.get_vocab(with_added_tokens=False) == theirs.get_vocab(with_added_tokens=False)
    assert ours.get_vocab_size(with_added_tokens=False) == theirs.get_vocab_size(with_added_tokens=False)
    for text in ["a MIXED text, mixed up", "say hello to brandnewtoken<special>!", "Mixedness"]:
        _same(theirs.encode(text), ours.encode(text))
    assert ours.add_tokens(["Mixed"]) == theirs.add_tokens(["Mixed"]) == 0  # already there


def test_normalized_added_token_from_file(tmp_path):
    """A file's added token with normalized=True is matched in the lowercased text."""
    spec = json.loads((corpora.minilm_path() / "tokenizer.json").read_text(encoding="utf-8"))
    spec["added_tokens"].append({"id": 30522, "content": "MiXeD", "single_word": False, "lstrip": False,
                                 "rstrip": False, "normalized": True, "special": False})
    spec["padding"] = spec["truncation"] = None
    theirs = hf.Tokenizer.from_str(json.dumps(spec))
    ours = hf_json.from_json(spec)
    _same(theirs.encode("mixed and MIXED"), ours.encode("mixed and MIXED"))
    assert ours.encode("mixed").ids[1] == theirs.encode("mixed").ids[1] == 30522


@pytest.mark.parametrize("max_length, stride, direction", [(8, 0, "right"), (8, 3, "right"), (6, 2, "left"),
                                                           (5, 2, "right")])
def test_truncation_stride_gives_overflowing_windows(pair, max_length, stride, direction):
    ours, theirs = pair
    ours.enable_truncation(max_length, stride=stride, direction=direction)
    theirs.enable_truncation(max_length, stride=stride, direction=direction)
    text = "The quick brown fox jumps over the lazy dog near the river bank today"
    a, b = theirs.encode(text), ours.encode(text)
    _same(a, b)
    assert len(b.overflowing) == len(a.overflowing) > 0
    for x, y in zip(a.overflowing, b.overflowing):
        _same(x, y)


def test_stride_not_below_the_effective_length_is_an_error(pair):
    """max_length 5 less BERT's 2 special tokens leaves 3 < stride 4: HuggingFace refuses it too."""
    ours, theirs = pair
    with pytest.raises(Exception, match="stride set to 4"):
        theirs.enable_truncation(5, stride=4)
    with pytest.raises(tokenizers.ScratchlmError, match="stride 4 .* effective max_length 3"):
        ours.enable_truncation(5, stride=4)


def test_added_token_string_is_the_text_matched(pair):
    """With lstrip the token holds the spaces it took; the offsets cover them."""
    ours, theirs = pair
    ours.add_tokens([AddedToken("<mask2>", -1, special=True, lstrip=True, rstrip=True)])
    theirs.add_tokens([hf.AddedToken("<mask2>", special=True, lstrip=True, rstrip=True, normalized=False)])
    _same(theirs.encode("fill  <mask2>  here"), ours.encode("fill  <mask2>  here"))


def test_encode_batch_mixes_texts_and_pairs(pair):
    ours, theirs = pair
    batch = ["a single text", ("first of a pair", "second of a pair"), "another"]
    for a, b in zip(theirs.encode_batch(batch), ours.encode_batch(batch)):
        _same(a, b)


def test_encoding_position_helpers(pair):
    ours, theirs = pair
    for args in [("Hello world, unbelievable tokenization!",), ("Hello world", "unbelievable pairs here")]:
        a, b = theirs.encode(*args), ours.encode(*args)
        assert b.n_sequences == a.n_sequences
        for k in range(len(a.ids) + 1):
            assert b.token_to_chars(k) == a.token_to_chars(k)
            assert b.token_to_word(k) == a.token_to_word(k)
            assert b.token_to_sequence(k) == a.token_to_sequence(k)
        for seq in range(a.n_sequences):
            for w in range(8):
                assert b.word_to_tokens(w, seq) == a.word_to_tokens(w, seq)
                assert b.word_to_chars(w, seq) == a.word_to_chars(w, seq)
            for c in range(30):
                assert b.char_to_token(c, seq) == a.char_to_token(c, seq)
                assert b.char_to_word(c, seq) == a.char_to_word(c, seq)


def test_lone_surrogate_is_an_error(pair):
    """HuggingFace cannot take 'a\\ud800b' (its strings are UTF-8); neither do we, rather than drop it."""
    ours, theirs = pair
    with pytest.raises(TypeError):
        theirs.encode("a\ud800b")
    with pytest.raises(tokenizers.ScratchlmError, match="lone surrogate"):
        ours.encode("a\ud800b")


@pytest.mark.parametrize("single, pair_template, message", [
    ("[X] $A", "$A $B", "missing special token"), ("$A", "$A", "must use both sequences")])
def test_template_refused_as_huggingface_refuses_it(single, pair_template, message):
    with pytest.raises(ValueError):
        hf.processors.TemplateProcessing(single=single, pair=pair_template, special_tokens=[])

    def pieces(template):
        return [{"Sequence": {"id": p[1], "type_id": 0}} if p.startswith("$") else
                {"SpecialToken": {"id": p, "type_id": 0}} for p in template.split()]

    spec = {"type": "TemplateProcessing", "single": pieces(single), "pair": pieces(pair_template),
            "special_tokens": {}}
    with pytest.raises(tokenizers.ScratchlmError, match=message):
        hf_json.read("post_processor", spec)


@pytest.mark.parametrize("text", ["Hello world", " hi", "héllo  x"])
def test_byte_level_pre_tokenize_str_adds_the_prefix_space(text):
    from scratchlm.tokenizers.pre_tokenizers import ByteLevel

    assert ByteLevel(add_prefix_space=True).pre_tokenize_str(text) == \
        hf.pre_tokenizers.ByteLevel(add_prefix_space=True).pre_tokenize_str(text)


@pytest.mark.parametrize("max_length", [1, 2, 3])
def test_truncation_below_the_special_tokens(pair, max_length):
    """HuggingFace skips truncation when max_length cannot even hold the special tokens (1 < 2 for one
    text; 2 < 3 for a pair), and truncates both texts to nothing when it holds exactly them."""
    ours, theirs = pair
    ours.enable_truncation(max_length)
    theirs.enable_truncation(max_length)
    for args in [("hello world there",), ("hello", "world there")]:
        _same(theirs.encode(*args), ours.encode(*args))


@pytest.mark.parametrize("strategy, max_length, stride", [("only_second", 16, 2), ("longest_first", 16, 2),
                                                          ("only_second", 14, 3), ("longest_first", 11, 1)])
def test_pair_truncation_stride_windows_like_huggingface(pair, strategy, max_length, stride):
    """Question answering's use: the context cut into overlapping windows, each with the whole question."""
    ours, theirs = pair
    ours.enable_truncation(max_length, stride=stride, strategy=strategy)
    theirs.enable_truncation(max_length, stride=stride, strategy=strategy)
    question, context = "what is the capital of france", "paris is the capital and largest city of france by far"
    a, b = theirs.encode(question, context), ours.encode(question, context)
    _same(a, b)
    assert len(b.overflowing) == len(a.overflowing) > 0
    for x, y in zip(a.overflowing, b.overflowing):
        _same(x, y)


def test_setting_the_normalizer_refreshes_normalized_added_tokens(pair):
    ours, theirs = pair
    ours.add_tokens(["Mixed"])
    theirs.add_tokens(["Mixed"])
    ours.normalizer, theirs.normalizer = None, None
    for text in ["Mixed and mixed", "MIXED"]:
        _same(theirs.encode(text), ours.encode(text))
