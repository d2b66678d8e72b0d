"""The Unigram model (scratchlm/tokenizers/models/unigram.py): HuggingFace's own test expectations for the
Viterbi segmentation, the unknown-piece rule and byte fallback; and tokenizer.json files of the common
families, built locally with HuggingFace's classes, encoded id-, token- and offset-identically."""

import functools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers import hf_json
from scratchlm.tokenizers.models import BPE, Unigram
from tests.tokenizers.peers import texts

hf = pytest.importorskip("tokenizers")
N, P, D, PP, T = hf.normalizers, hf.pre_tokenizers, hf.decoders, hf.processors, hf.trainers

# HuggingFace's unigram/model.rs tests (test_encode, test_encode2): pieces, scores, segmentations.
ENCODE = [("<unk>", 0.0), ("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 0.0), ("cd", 1.0), ("ab", 2.0), ("abc", 5.0),
          ("abcd", 10.0)]
ENCODE2 = [("<unk>", 0.0), ("ab", 0.0), ("cd", -0.1), ("abc", -0.2), ("a", -0.3), ("b", -0.4), ("c", -0.5),
           ("ABC", -0.5), ("abcdabcd", 20.0), ("q", 20.5), ("r", 20.5), ("qr", -0.5)]


def pieces(model, word):
    return [word[s:e] for _, s, e in model.viterbi(word)]


def test_huggingface_encode_examples():
    model = Unigram(ENCODE, unk_id=0)
    assert pieces(model, "abcd") == ["abcd"]
    assert pieces(model, "abcdacdxx") == ["abcd", "a", "cd", "xx"]  # the doc example: unknowns fused


@pytest.mark.parametrize("word, expected", [
    ("abc", ["abc"]), ("AB", ["AB"]), ("abcd", ["ab", "cd"]), ("abcc", ["abc", "c"]),
    ("xabcabaabcdd", ["x", "abc", "ab", "a", "ab", "cd", "d"]), ("xyz東京", ["xyz東京"]), ("ABC", ["ABC"]),
    ("abABCcd", ["ab", "ABC", "cd"]), ("ababcdabcdcd", ["ab", "abcdabcd", "cd"]), ("abqrcd", ["ab", "q", "r", "cd"]),
])
def test_huggingface_encode2_examples(word, expected):
    """'abcd' -> ab + cd: 0 - 0.1 beats abc + unknown d (-0.2 + (-0.5 - 10)); 'AB' is two unknown
    characters fused into one token whose string is the text itself."""
    model = Unigram(ENCODE2, unk_id=0)
    assert pieces(model, word) == expected
    tokens = model.tokenize(word)
    assert [t[1] for t in tokens] == expected


def test_unknown_score_is_min_score_minus_ten():
    model = Unigram(ENCODE2, unk_id=0)
    assert model.unk_score == -0.5 - 10.0
    assert [t[0] for t in model.tokenize("xab")] == [0, 1]


def test_byte_fallback_example():
    """HuggingFace's test_unigram_bytefallback: 'é' is <0xC3> <0xA9>, both spanning the character; with a
    byte missing the unknown token is used."""
    model = Unigram([("<unk>", 0.0), ("<0xC3>", -0.01), ("<0xA9>", -0.03)], unk_id=0, byte_fallback=True)
    assert model.tokenize("é") == [(1, "<0xC3>", 0, 1), (2, "<0xA9>", 0, 1)]
    assert model.tokenize("?é")[0][0] == 0


def test_missing_unk_id_is_an_error():
    with pytest.raises(ScratchlmError, match="no unk_id"):
        Unigram([("a", -1.0)]).tokenize("ab")
    with pytest.raises(ScratchlmError, match="unk_id 5"):
        Unigram([("a", -1.0)], unk_id=5)


def test_viterbi_is_the_best_segmentation_by_brute_force():
    """The segmentation objective itself: the Viterbi score equals the maximum over every segmentation."""
    model = Unigram(ENCODE2, unk_id=0)

    def best(word):
        if not word:
            return 0.0
        scores = []
        for k in range(1, len(word) + 1):
            i = model.vocab.get(word[:k])
            if i is not None:
                scores.append(model.scores[i] + best(word[k:]))
        if word[0] not in model.vocab:
            scores.append(model.unk_score + best(word[1:]))
        return max(scores)

    for word in ["abcdabcd", "xabcabaab", "qrqrab", "cdcabc"]:
        path = model.viterbi(word)
        score = sum(model.unk_score if i == 0 else model.scores[i] for i, _, _ in path)
        assert score == pytest.approx(best(word), abs=1e-12)


# ----------------------------------------------------------------------------- families of tokenizer.json


def _train(tok, trainer):
    tok.train_from_iterator(corpora.lee_corpus()[:150], trainer)
    return tok


def sentencepiece_unigram():
    tok = hf.SentencePieceUnigramTokenizer()
    tok.train_from_iterator(corpora.lee_corpus()[:150], vocab_size=600, show_progress=False,
                            special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>")
    return tok._tokenizer


def sentencepiece_bpe():
    tok = hf.SentencePieceBPETokenizer()
    tok.train_from_iterator(corpora.lee_corpus()[:150], vocab_size=500, show_progress=False, special_tokens=["<unk>"])
    return tok._tokenizer


def char_bpe():
    tok = hf.CharBPETokenizer()
    tok.train_from_iterator(corpora.lee_corpus()[:150], vocab_size=500, show_progress=False, special_tokens=["<unk>"])
    return tok._tokenizer


def t5_like():
    tok = hf.Tokenizer(hf.models.Unigram())
    tok.normalizer = N.Sequence([N.Nmt(), N.NFKC(), N.Replace(hf.Regex(" {2,}"), " ")])
    tok.pre_tokenizer = P.Sequence([P.WhitespaceSplit(), P.Metaspace()])
    tok.decoder = D.Metaspace()
    _train(tok, T.UnigramTrainer(vocab_size=600, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>",
                                 show_progress=False))
    tok.post_processor = PP.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    return tok


def xlmr_like():
    tok = hf.Tokenizer(hf.models.Unigram())
    tok.normalizer = N.Sequence([N.Replace("``", '"'), N.Replace("''", '"'), N.NFKC(),
                                 N.Replace(hf.Regex(" {2,}"), " ")])
    tok.pre_tokenizer = P.Metaspace()
    tok.decoder = D.Metaspace()
    _train(tok, T.UnigramTrainer(vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                 unk_token="<unk>", show_progress=False))
    tok.post_processor = PP.TemplateProcessing(single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
                                               special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def llama_like():
    """BPE with byte fallback, the space handled by normalizers, the decoder a Sequence."""
    tok = hf.Tokenizer(hf.models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.normalizer = N.Sequence([N.Prepend("▁"), N.Replace(" ", "▁")])
    tok.decoder = D.Sequence([D.Replace("▁", " "), D.ByteFallback(), D.Fuse(), D.Strip(" ", 1, 0)])
    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    return _train(tok, T.BpeTrainer(vocab_size=600, special_tokens=["<unk>", "<s>", "</s>", *bytes_],
                                    show_progress=False))


def roberta_like():
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = P.ByteLevel(add_prefix_space=True)
    tok.decoder = D.ByteLevel()
    _train(tok, T.BpeTrainer(vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>"], show_progress=False,
                             initial_alphabet=P.ByteLevel.alphabet()))
    tok.post_processor = PP.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return tok


FAMILIES = {"sentencepiece-unigram": sentencepiece_unigram, "sentencepiece-bpe": sentencepiece_bpe,
            "char-bpe": char_bpe, "t5-like": t5_like, "xlmr-like": xlmr_like, "llama-like": llama_like,
            "roberta-like": roberta_like}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request, tmp_path_factory):
    theirs = FAMILIES[request.param]()
    path = tmp_path_factory.mktemp("family") / "tokenizer.json"
    theirs.save(str(path))
    return theirs, tokenizers.load(path), path


def _same(theirs, ours, text, pair=None):
    a, b = theirs.encode(text, pair), ours.encode(text, pair)
    assert (b.ids, b.tokens, b.offsets, b.type_ids, b.word_ids) == (a.ids, a.tokens, a.offsets, a.type_ids, a.word_ids)
    assert ours.decode(b.ids) == theirs.decode(a.ids)


FIXED = ["Hello  world", " a  b ", "ﬁne café e\u0301 東京 x", "", "  ", "<s>hi</s> there", "中文没有空格。北京大学",
         "é ü 中文 🐙", "tab\tand\nnewline", "\u2581already metaspace"]


def test_family_encodes_like_huggingface(family):
    theirs, ours, _ = family
    for text in list(corpora.lee_corpus()[150:180]) + FIXED:
        _same(theirs, ours, text)
    _same(theirs, ours, "a pair", "second one")


@settings(max_examples=60, deadline=None)
@given(text=texts)
def test_family_encodes_generated_text_like_huggingface(family, text):
    theirs, ours, _ = family
    _same(theirs, ours, text)


def test_family_file_round_trips_through_huggingface(family, tmp_path):
    """Our file written back is HuggingFace's, component for component, and encodes identically there."""
    theirs, ours, path = family
    ours.save(tmp_path / "ours.json")
    assert json.loads((tmp_path / "ours.json").read_text(encoding="utf-8"))["model"] == \
        json.loads(path.read_text(encoding="utf-8"))["model"]
    again = hf.Tokenizer.from_file(str(tmp_path / "ours.json"))
    for text in FIXED:
        assert again.encode(text).ids == theirs.encode(text).ids


def test_bpe_dropout_with_an_explicit_generator():
    """BPE-dropout (Provilkov et al. 2020): p = 0 is plain BPE, p = 1 applies no merge (characters only), the
    same seed gives the same segmentation, and on average dropout gives more tokens."""
    tok = hf.Tokenizer(hf.models.BPE())
    tok.pre_tokenizer = P.Whitespace()
    _train(tok, T.BpeTrainer(vocab_size=400, show_progress=False))
    spec = json.loads(tok.to_str())["model"]
    plain = BPE.from_json(spec)
    text = "the government announced tomorrow"
    never = BPE.from_json({**spec, "dropout": 1.0}, rng=np.random.default_rng(0))
    assert [t[1] for t in never.tokenize("government")] == list("government")

    def run(seed):
        model = BPE.from_json({**spec, "dropout": 0.3}, rng=np.random.default_rng(seed))
        return [t[1] for w in text.split() for t in model.tokenize(w)]

    assert run(1) == run(1)
    base = [t[1] for w in text.split() for t in plain.tokenize(w)]
    assert np.mean([len(run(s)) for s in range(20)]) > len(base)
    with pytest.raises(ScratchlmError, match="explicit rng"):
        BPE.from_json({**spec, "dropout": 0.3})


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_sampling_follows_the_sharpened_posterior(alpha):
    """Kudo 2018 Eq. 5: each segmentation x of 'abab' is drawn with probability P(x)^alpha / sum P(x')^alpha.
    4,000 draws: each empirical frequency within 5 binomial standard deviations, sqrt(p (1 - p) / 4000)."""
    model = Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -1.5), ("ab", -1.2), ("ba", -2.0), ("aba", -2.5)], unk_id=0)
    rng = np.random.default_rng(0)
    draws = 4000
    counts = {}
    for _ in range(draws):
        key = tuple((s, e) for _, s, e in model.sample("abab", rng, alpha=alpha))
        counts[key] = counts.get(key, 0) + 1

    def segmentations(word, pos=0):
        if pos == len(word):
            yield ()
        for end in range(pos + 1, len(word) + 1):
            if word[pos:end] in model.vocab:
                for rest in segmentations(word, end):
                    yield ((pos, end),) + rest

    weights = {seg: math.exp(alpha * sum(model.scores[model.vocab["abab"[s:e]]] for s, e in seg))
               for seg in segmentations("abab")}
    total = sum(weights.values())
    assert set(counts) <= set(weights)
    for seg, w in weights.items():
        p = w / total
        assert abs(counts.get(seg, 0) / draws - p) <= 5 * math.sqrt(p * (1 - p) / draws)


@functools.cache
def _metaspace_vocab() -> list[tuple[str, float]]:
    """A Unigram vocabulary trained once behind Metaspace(split=False), so pieces may hold '▁' inside (words
    joined); every scheme and split below encodes with it (HuggingFace's trainer takes 6 s a run here)."""
    tok = hf.Tokenizer(hf.models.Unigram())
    tok.normalizer = N.NFKC()
    tok.pre_tokenizer = P.Metaspace(prepend_scheme="always", split=False)
    _train(tok, T.UnigramTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], unk_token="<unk>",
                                 show_progress=False))
    return [(piece, score) for piece, score in json.loads(tok.to_str())["model"]["vocab"]]


@pytest.mark.parametrize("scheme", ["first", "always", "never"])
@pytest.mark.parametrize("split", [True, False])
def test_metaspace_schemes_around_added_tokens(scheme, split):
    """prepend_scheme 'first' puts the '▁' only before the text that begins the input, not after an added
    token; 'always' before every stretch between added tokens.  With a normalized added token and one whose
    content starts with a space (lstrip)."""
    tok = hf.Tokenizer(hf.models.Unigram(_metaspace_vocab(), 0, False))
    tok.normalizer = N.NFKC()
    tok.pre_tokenizer = P.Metaspace(prepend_scheme=scheme, split=split)
    tok.decoder = D.Metaspace(prepend_scheme=scheme, split=split)
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.add_tokens(["Mixed", hf.AddedToken(" <mask>", lstrip=True, special=True, normalized=False)])
    ours = hf_json.from_json(json.loads(tok.to_str()))
    for text in ["<s>hello world</s>", "hello <s> world", " <s>x", "a Mixed  <mask> thing", "ﬁ<s>ﬁ", "MIXED", ""]:
        a, b = tok.encode(text), ours.encode(text)
        assert (b.ids, b.tokens, b.offsets, b.word_ids) == (a.ids, a.tokens, a.offsets, a.word_ids)
        assert ours.decode(b.ids, skip_special_tokens=False) == tok.decode(a.ids, skip_special_tokens=False)


@settings(max_examples=150, deadline=None)
@given(pieces=st.dictionaries(st.text(st.sampled_from("abcé中"), min_size=1, max_size=4),
                              st.sampled_from([-1.0, -2.0, -2.5, -3.0, 0.0]), min_size=1, max_size=12),
       byte_fallback=st.booleans(),
       word=st.text(st.sampled_from("abcé中xy"), min_size=1, max_size=12))
def test_random_vocabularies_segment_like_huggingface(pieces, byte_fallback, word):
    """Random pieces with tied scores, unknown characters (x, y), optional byte pieces: HuggingFace's Unigram
    model and ours give the same tokens, ids and offsets (ties, unknown fusion and byte fallback included)."""
    vocab = [("<unk>", 0.0)] + sorted(pieces.items())
    if byte_fallback:
        vocab += [(f"<0x{b:02X}>", -5.0) for b in "xé".encode()]
    theirs = hf.Tokenizer(hf.models.Unigram(vocab, 0, byte_fallback))
    ours = hf_json.from_json(json.loads(theirs.to_str()))
    a, b = theirs.encode(word), ours.encode(word)
    assert (b.ids, b.tokens, b.offsets) == (a.ids, a.tokens, a.offsets)
