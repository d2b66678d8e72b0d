"""The Unigram trainer (scratchlm/tokenizers/unigram_trainer.py): each step against its equation (seed
scores, forward-backward posteriors by brute force, the digamma M-step), then the whole trainer against
HuggingFace's ``UnigramTrainer`` on the same words: the same vocabulary, tokens per line within 3 %, and
a file HuggingFace encodes with our ids."""

import itertools
import json
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers import unigram_trainer as ut
from scratchlm.tokenizers.models import Unigram
from scratchlm.tokenizers.pipelines import train_unigram

hf = pytest.importorskip("tokenizers")


def test_seed_pieces_huggingface_example():
    """HuggingFace's test_unigram_chars: characters by count then character (descending), then the
    right-maximal repeats 'is ' (2 occurrences x 3 characters) and 's ' (2 x 2); log-probabilities
    normalise scores summing to 16 + 6 + 4 = 26, so log(2/26) = -2.5649..."""
    table = ut.seed_pieces([("This is a", 1), ("こんにちは友達", 1)])
    assert [s for s, _ in table] == ["s", "i", " ", "達", "友", "ん", "は", "に", "ち", "こ", "h", "a", "T", "is ",
                                     "s "]
    assert table[0][1] == pytest.approx(math.log(2 / 26), abs=1e-12)
    assert table[-2][1] == pytest.approx(math.log(6 / 26), abs=1e-12)


def test_seed_substrings_are_the_right_maximal_repeats():
    """'ab' occurs twice, both times followed by 'c': not right-maximal, so only 'abc' (followed by x / y) is a seed."""
    seeds = [s for s, _ in ut.seed_pieces([("abcx", 1), ("abcy", 1)]) if len(s) > 1]
    assert seeds == ["abc", "bc"]


def test_digamma_is_the_derivative_of_log_gamma():
    """Central difference of math.lgamma with h = 1e-5: truncation error ~h^2 psi'''/6 < 1e-9 for x >= 0.5,
    rounding ~2e-16 |lgamma(x)| / h < 3e-9 for x <= 40; the series itself is accurate to ~1e-12 at x >= 7."""
    h = 1e-5
    for x in [0.5, 1.0, 2.5, 7.0, 13.25, 40.0]:
        numeric = (math.lgamma(x + h) - math.lgamma(x - h)) / (2 * h)
        assert ut.digamma(x) == pytest.approx(numeric, abs=1e-8)


PIECES = [("<UNK>", math.nan), ("a", -1.0), ("b", -1.5), ("ab", -1.2), ("ba", -2.0), ("aba", -2.5), ("c", -3.0)]


def _segmentations(word, model):
    """Every segmentation of ``word`` over the lattice, with its log-probability (brute force)."""
    nodes = model.lattice(word)
    out = []

    def walk(pos, path, score):
        if pos == len(word):
            out.append((path, score))
        for s, e, i, sc in nodes:
            if s == pos:
                walk(e, path + [i], score + sc)

    walk(0, [], 0.0)
    return out


@settings(max_examples=60, deadline=None)
@given(word=st.text(st.sampled_from("abcd"), min_size=1, max_size=7), n=st.integers(1, 5))
def test_expected_counts_are_posterior_counts_by_brute_force(word, n):
    """E-step: c(x) = n * sum over segmentations of P(seg | word) * (occurrences of x in seg).  Both sides
    sum at most a few hundred terms of size <= n*7, so they agree to ~1e-12 relative."""
    model = Unigram(PIECES, unk_id=0)
    segs = _segmentations(word, model)
    z = math.log(sum(math.exp(s) for _, s in segs))
    expected = [0.0] * len(PIECES)
    for path, score in segs:
        for i in path:
            expected[i] += n * math.exp(score - z)
    assert ut.expected_counts(model, [(word, n)]) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_m_step_drops_rare_pieces_and_uses_digamma():
    pieces = [("<UNK>", math.nan), ("a", -1.0), ("b", -1.0), ("c", -1.0)]
    out = ut.m_step(pieces, [0.0, 3.0, 0.4, 5.0])
    assert [p for p, _ in out] == ["<UNK>", "a", "c"]
    assert out[1][1] == pytest.approx(ut.digamma(3.0) - ut.digamma(8.0), abs=1e-15)


def test_prune_keeps_single_characters_and_the_costliest_pieces():
    """Pruning with a target of 1.1 * 3 = 3 pieces out of 6: the characters are always kept."""
    words = [("abab", 5), ("ab", 3), ("ba", 1), ("aab", 2)]
    pieces = [("<UNK>", math.nan), ("a", -1.0), ("b", -1.2), ("ab", -1.1), ("ba", -3.0), ("aab", -4.0)]
    kept = ut.prune(Unigram(pieces, unk_id=0), pieces, words, vocab_size=3, shrinking_factor=0.5)
    assert [p for p, _ in kept][:3] == ["<UNK>", "a", "b"]


def _hf_words(texts):
    """The words HuggingFace's pipeline feeds its trainer (NFKC + Metaspace), counted."""
    tok = hf.Tokenizer(hf.models.Unigram())
    tok.normalizer, tok.pre_tokenizer = hf.normalizers.NFKC(), hf.pre_tokenizers.Metaspace()
    words = Counter()
    for text in texts:
        words.update(w for w, _ in tok.pre_tokenizer.pre_tokenize_str(tok.normalizer.normalize_str(text)))
    return tok, words


@pytest.fixture(scope="module")
def trained():
    texts = corpora.lee_corpus()[:120]
    tok, _ = _hf_words(texts)
    tok.decoder = hf.decoders.Metaspace()
    tok.train_from_iterator(texts, hf.trainers.UnigramTrainer(vocab_size=500, special_tokens=["<unk>"],
                                                              unk_token="<unk>", show_progress=False))
    return texts, tok, train_unigram(texts, 500)


def test_vocabulary_equals_huggingface_unigram_trainer(trained):
    """Same words, same settings: the same 500 pieces; scores equal to float rounding (their EM sums in
    another order: ~1e-12 after a dozen iterations of sums of a few thousand terms), except the characters
    the EM dropped, which both put at the lowest score plus 0.0001 per character before them, in an order
    that is HuggingFace's hash-set order (so they agree within 0.0001 times their number)."""
    _, theirs, ours = trained
    hf_pieces = dict(json.loads(theirs.to_str())["model"]["vocab"])
    assert set(hf_pieces) == set(ours.model.vocab)
    lowest = ours.model.min_score
    n_low = sum(1 for _, s in ours.model.pieces if s < lowest + 0.01)
    for piece, score in ours.model.pieces:
        tolerance = 1e-4 * n_low if score < lowest + 0.01 else 1e-9
        assert score == pytest.approx(hf_pieces[piece], abs=tolerance)


def test_tokens_per_line_within_three_percent_of_huggingface(trained):
    texts, theirs, ours = trained
    held_out = corpora.lee_corpus()[120:200]
    n_theirs = sum(len(theirs.encode(t).ids) for t in held_out)
    n_ours = sum(len(ours.encode(t).ids) for t in held_out)
    assert abs(n_ours / n_theirs - 1) < 0.03


def test_huggingface_reads_our_file_with_identical_ids(trained, tmp_path):
    _, _, ours = trained
    ours.save(tmp_path / "unigram.json")
    theirs = hf.Tokenizer.from_file(str(tmp_path / "unigram.json"))
    again = tokenizers.load(tmp_path / "unigram.json")
    for text in list(corpora.lee_corpus()[200:230]) + ["unseen ☃ characters", "  spaced  out  "]:
        assert ours.encode(text).ids == theirs.encode(text).ids == again.encode(text).ids
        assert ours.decode(ours.encode(text).ids) == theirs.decode(theirs.encode(text).ids)


def test_learns_multi_character_pieces_of_chinese():
    """Chinese has no spaces: Metaspace leaves each line one word, and the trainer learns the repeated
    multi-character words ('北京', '大学') as pieces."""
    texts = ["我在北京大学学习", "北京大学很大", "他在北京工作", "大学生在北京", "我喜欢北京"] * 4
    tok = train_unigram(texts, 30)
    pieces = set(tok.model.vocab)
    assert "北京" in pieces or "▁北京" in pieces
    enc = tok.encode("我在北京大学")
    assert any(len(t.replace("▁", "")) >= 2 for t in enc.tokens)
    # Offsets: each token's span is its text; the '▁' put before the text is aligned to the first character.
    for token, (s, e) in zip(enc.tokens, enc.offsets):
        assert "我在北京大学"[s:e] == (token.replace("▁", "") or "我")
    theirs = hf.Tokenizer.from_str(json.dumps(tok.to_json()))
    assert theirs.encode("我在北京大学").offsets == enc.offsets


def test_vocabulary_smaller_than_the_alphabet_is_an_error():
    with pytest.raises(ScratchlmError, match="smaller than the"):
        train_unigram(["abcdefg"], 3)


def test_every_segmentation_enumerated_matches_viterbi():
    """The model's Viterbi path is the best of the brute-force segmentations (the objective)."""
    model = Unigram(PIECES, unk_id=0)
    for word in ("".join(p) for p in itertools.product("abc", repeat=4)):
        best = max(s for _, s in _segmentations(word, model))
        path = model.viterbi(word)
        assert sum(model.scores[i] if i else model.unk_score for i, _, _ in path) == pytest.approx(best, abs=1e-12)


@settings(max_examples=30, deadline=None)
@given(words=st.lists(st.tuples(st.text(st.sampled_from("abcdx"), min_size=1, max_size=9), st.integers(1, 4)),
                      min_size=1, max_size=6, unique_by=lambda w: w[0]),
       dropped=st.sets(st.integers(1, 6)))
def test_vectorized_e_step_equals_the_plain_one(words, dropped):
    """expected_counts_fast over flat arrays == expected_counts word by word, with pieces dropped from the
    seed vocabulary (unknown nodes appear where a character piece is gone).  Same sums in another order:
    ~1e-15 relative per term, a few dozen terms."""
    seeds = [p for p, _ in PIECES] + ["dd", "xa"]
    alive = [(p, s) for i, (p, s) in enumerate(PIECES + [("dd", -2.0), ("xa", -2.2)]) if i not in dropped]
    model = Unigram(alive, unk_id=0)
    lattices = ut.Lattices(words, seeds)
    seed_to_id = np.array([model.vocab.get(s, -1) for s in seeds])
    seed_to_id[0] = -1
    fast = ut.expected_counts_fast(lattices, model, seed_to_id)
    assert fast == pytest.approx(ut.expected_counts(model, words), rel=1e-9, abs=1e-12)


def test_tokens_per_line_within_three_percent_of_sentencepiece(trained, tmp_path):
    """The sentencepiece package's own Unigram trainer (NFKC, the same vocabulary size, one line a text):
    it seeds and splits differently (sentences, character coverage), so only the compression is compared."""
    spm = pytest.importorskip("sentencepiece")
    texts, _, ours = trained
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "sp"), vocab_size=500,
                                   model_type="unigram", normalization_rule_name="nfkc", max_sentence_length=1 << 20,
                                   bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2, num_threads=1)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "sp.model"))
    held_out = corpora.lee_corpus()[120:200]
    n_sp = sum(len(sp.encode(t)) for t in held_out)
    n_ours = sum(len(ours.encode(t).ids) for t in held_out)
    assert abs(n_ours / n_sp - 1) < 0.03


@settings(max_examples=30, deadline=None)
@given(words=st.lists(st.tuples(st.text(st.sampled_from("abcdx"), min_size=1, max_size=9), st.integers(1, 4)),
                      min_size=1, max_size=6, unique_by=lambda w: w[0]),
       dropped=st.sets(st.integers(1, 6)))
def test_vectorized_viterbi_counts_equal_the_plain_ones(words, dropped):
    """viterbi_counts_fast == viterbi_counts: the same best paths (ties to the piece starting first), so
    the same integer counts exactly."""
    seeds = [p for p, _ in PIECES] + ["dd", "xa"]
    alive = [(p, s) for i, (p, s) in enumerate(PIECES + [("dd", -2.0), ("xa", -2.2)]) if i not in dropped]
    model = Unigram(alive, unk_id=0)
    seed_to_id = np.array([model.vocab.get(s, -1) for s in seeds])
    seed_to_id[0] = -1
    fast = ut.viterbi_counts_fast(ut.Lattices(words, seeds), model, seed_to_id)
    assert list(fast) == ut.viterbi_counts(model, words)
