"""WordPiece (scratchlm/tokenizers/models/wordpiece.py) in BERT's pipeline (pipelines.py), against HuggingFace.

The peer is ``tokenizers.Tokenizer.from_file`` on all-MiniLM-L6-v2's ``tokenizer.json`` (and
``transformers.BertTokenizerFast`` on its ``vocab.txt``): ids, attention masks and type ids must be
identical on every line of the cleaned Wikipedia sample and the polarity sentences, and on
generated text.  Exact equality: tokenization involves no arithmetic, so no tolerance applies.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.tokenizers import pipelines
from scratchlm.tokenizers.models import WordPiece
from tests.tokenizers.peers import texts

hf_tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def minilm():
    path = corpora.minilm_path() / "tokenizer.json"
    return tokenizers.load(path), hf_tokenizers.Tokenizer.from_file(str(path))


def _same(ours, theirs, *, offsets=True):
    assert ours.ids == theirs.ids
    assert ours.attention_mask == theirs.attention_mask
    assert ours.type_ids == theirs.type_ids
    if offsets:
        assert ours.tokens == theirs.tokens
        assert ours.offsets == theirs.offsets
        assert ours.word_ids == theirs.word_ids
        assert ours.special_tokens_mask == theirs.special_tokens_mask


def test_greedy_longest_match_worked_example():
    """Vocabulary {un, ##aff, ##able, ##a, [UNK]}: "unaffable" -> un + ##aff + ##able (longest first,
    not un + ##a + ...); "unx" has no match for "x" -> the whole word is [UNK]."""
    model = WordPiece({"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "##a": 4})
    assert model.tokenize("unaffable") == [(1, "un", 0, 2), (2, "##aff", 2, 5), (3, "##able", 5, 9)]
    assert model.tokenize("unx") == [(0, "[UNK]", 0, 3)]
    assert WordPiece({"[UNK]": 0, "a": 1}, max_input_chars_per_word=3).tokenize("aaaa") == [(0, "[UNK]", 0, 4)]


def test_minilm_file_on_every_wikipedia_paragraph(minilm):
    """With the file's own padding and truncation (128), as HuggingFace applies them."""
    ours, theirs = minilm
    paragraphs = corpora.wikipedia_paragraphs()
    for text, enc in zip(paragraphs, theirs.encode_batch(paragraphs)):
        _same(ours.encode(text), enc)


def test_minilm_untruncated_pairs_on_polarity_sentences(minilm):
    ours, theirs = minilm
    sentences = [text for text, _ in corpora.polarity_sentences()]
    pairs = sentences[1:] + sentences[:1]
    for tok in (ours, theirs):
        tok.no_padding(), tok.no_truncation()
    try:
        for a, b in zip(sentences, pairs):
            _same(ours.encode(a), theirs.encode(a))
            _same(ours.encode(a, b), theirs.encode(a, b))
    finally:
        for tok in (ours, theirs):
            tok.enable_truncation(128), tok.enable_padding(length=128)


@settings(max_examples=150)
@given(text=texts, pair=st.one_of(st.none(), texts))
def test_minilm_on_generated_text(minilm, text, pair):
    """Mixed scripts, CJK, accents as combining marks, emoji, control characters, words over 100 characters."""
    ours, theirs = minilm
    _same(ours.encode(text, pair), theirs.encode(text, pair))


def test_vocab_txt_matches_bert_tokenizer_fast():
    transformers = pytest.importorskip("transformers")
    path = corpora.minilm_path() / "vocab.txt"
    hf = transformers.BertTokenizerFast(vocab=str(path))
    ours = pipelines.bert_wordpiece_from_vocab(path)
    texts_ = [text for text, _ in corpora.polarity_sentences()] + corpora.wikipedia_paragraphs()[:300]
    pairs = texts_[::-1]
    batch = hf(texts_, pairs)
    columns = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
    for a, b, ids, types, mask in zip(texts_, pairs, *columns):
        enc = ours.encode(a, b)
        assert (enc.ids, enc.type_ids, enc.attention_mask) == (ids, types, mask)


def test_special_tokens_in_text_and_ids(minilm):
    ours, theirs = minilm
    text = "the [MASK] sat on [SEP] the mat[CLS]"
    _same(ours.encode(text), theirs.encode(text))
    assert (ours.cls_token_id, ours.sep_token_id, ours.pad_token_id, ours.mask_token_id, ours.unk_token_id) == (
        theirs.token_to_id("[CLS]"), theirs.token_to_id("[SEP]"), theirs.token_to_id("[PAD]"),
        theirs.token_to_id("[MASK]"), theirs.token_to_id("[UNK]"))
    ids = ours.encode("Hello, world's end").ids
    assert ours.decode(ids) == theirs.decode(ids)
    assert ours.decode(ids, skip_special_tokens=False) == theirs.decode(ids, skip_special_tokens=False)


def test_training_learns_huggingface_vocabulary():
    """HuggingFace's WordPieceTrainer is its BPE trainer with ``##``; on 1,000 paragraphs, 2,500 tokens, both
    learn the same vocabulary.  (HuggingFace numbers the ``##`` characters in hash-map order, so where two
    merges tie at the very end its vocabulary can change from run to run; this slice has no such tie.)"""
    paragraphs = corpora.wikipedia_paragraphs()[:1000]
    special = list(pipelines.BERT_SPECIAL_TOKENS)
    ours = pipelines.train_bert_wordpiece(paragraphs, 2500, special_tokens=special)
    hf = hf_tokenizers.Tokenizer(hf_tokenizers.models.WordPiece(unk_token="[UNK]"))
    hf.normalizer = hf_tokenizers.normalizers.BertNormalizer()
    hf.pre_tokenizer = hf_tokenizers.pre_tokenizers.BertPreTokenizer()
    hf.train_from_iterator(paragraphs, hf_tokenizers.trainers.WordPieceTrainer(vocab_size=2500, special_tokens=special,
                                                                               show_progress=False))
    assert set(ours.get_vocab()) == set(hf.get_vocab())
    assert [ours.token_to_id(t) for t in special] == [hf.token_to_id(t) for t in special]


def test_trained_wordpiece_round_trips_through_huggingface(tmp_path):
    paragraphs = corpora.wikipedia_paragraphs()[:300]
    ours = pipelines.train_bert_wordpiece(paragraphs, 800, special_tokens=pipelines.BERT_SPECIAL_TOKENS)
    ours.save(tmp_path / "wp.json")
    hf = hf_tokenizers.Tokenizer.from_file(str(tmp_path / "wp.json"))
    for text in corpora.wikipedia_paragraphs()[300:400]:
        _same(ours.encode(text, "a second sentence"), hf.encode(text, "a second sentence"))



def test_unknown_score_is_a_clear_error():
    with pytest.raises(tokenizers.ScratchlmError, match="score must be one of frequency, likelihood"):
        pipelines.train_bert_wordpiece(["a b"], 10, score="entropy")
