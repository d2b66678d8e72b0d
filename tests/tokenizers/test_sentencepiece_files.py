"""Real SentencePiece families: a ``sentencepiece`` model (nmt_nfkc rules) converted to ``tokenizer.json`` by
transformers' own converters -- XLM-R, T5, ALBERT, CamemBERT, Llama -- whose files hold the ``Precompiled``
normalizer (SentencePiece's compiled rules).  Each loads in scratchlm and encodes as HuggingFace does
(the converted files differ from the ``sentencepiece`` processor itself in places, e.g. T5's legacy
prefix handling; HuggingFace's reading of the file is the reference here)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings

from scratchlm.data import corpora
from scratchlm.tokenizers import hf_json
from tests.tokenizers.peers import texts

hf = pytest.importorskip("tokenizers")
spm = pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")
pb = pytest.importorskip("sentencepiece.sentencepiece_model_pb2")


@pytest.fixture(scope="module")
def sp_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spm")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n".join(t.replace("\n", " ") for t in corpora.lee_corpus()[:100]) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp / "sp"), vocab_size=400,
                                   model_type="unigram", minloglevel=2, num_threads=1)
    return tmp / "sp.model"


FAMILIES = ["XLMRobertaTokenizer", "T5Tokenizer", "AlbertTokenizer", "CamembertTokenizer", "LlamaTokenizer"]
TEXTS = ["Hello  world", " a  b ", "ﬁne café e\u0301 東京 x", "", "Ｈｅｌｌｏ　ｗｏｒｌｄ", "<s>hi</s> <mask> there",
         "x <unk> y", "①② a\u200bb"]


def _convert(name, sp_model):
    from transformers.convert_slow_tokenizer import convert_slow_tokenizer

    kwargs = {"legacy": True} if name in ("T5Tokenizer", "LlamaTokenizer") else {}
    return convert_slow_tokenizer(getattr(transformers, name)(vocab_file=str(sp_model), **kwargs))


@pytest.mark.parametrize("name", FAMILIES)
def test_converted_sentencepiece_file_encodes_like_huggingface(sp_model, name):
    theirs = _convert(name, sp_model)
    ours = hf_json.from_json(json.loads(theirs.to_str()))
    for text in list(corpora.lee_corpus()[100:120]) + TEXTS:
        a, b = theirs.encode(text), ours.encode(text)
        assert (b.ids, b.tokens, b.offsets) == (a.ids, a.tokens, a.offsets)
        assert ours.decode(b.ids) == theirs.decode(a.ids)


@pytest.fixture(scope="module")
def precompiled_pair(sp_model):
    proto = pb.ModelProto()
    proto.ParseFromString(sp_model.read_bytes())
    tok = hf.Tokenizer(hf.models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.normalizer = hf.normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap)
    tok.pre_tokenizer = hf.pre_tokenizers.Split(hf.Regex(r"[\s\S]"), "isolated")  # one token per character
    return tok, hf_json.from_json(json.loads(tok.to_str()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=texts)
def test_precompiled_normalizer_like_huggingface(precompiled_pair, text):
    """SentencePiece's nmt_nfkc rules (full-width forms, ligatures, zero-width spaces, ...): the same text and
    every character's offsets."""
    theirs, ours = precompiled_pair
    assert ours.normalizer.normalize_str(text) == theirs.normalizer.normalize_str(text)
    assert ours.encode(text).offsets == theirs.encode(text).offsets
