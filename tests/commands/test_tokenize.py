"""`scratchlm tokenize train|encode` end to end, and its errors for bad input."""

import io
import json
import sys

import pytest

from scratchlm import cli, tokenizers
from scratchlm.data import corpora

hf_tokenizers = pytest.importorskip("tokenizers")


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(corpora.lee_corpus()[:60]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("model, extra", [("bpe", ["--byte-level"]), ("bpe", []),
                                          ("wordpiece", ["--special", "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])])
def test_train_writes_a_file_huggingface_reads(corpus, tmp_path, model, extra):
    out = tmp_path / "new" / "folder" / "tok.json"  # folders that do not exist yet are made
    assert cli.main(["tokenize", "train", "--model", model, "--vocab-size", "400", "--corpus", str(corpus),
                     "--out", str(out), *extra]) == 0
    ours, hf = tokenizers.load(out), hf_tokenizers.Tokenizer.from_file(str(out))
    assert ours.get_vocab_size() == hf.get_vocab_size() == 400
    for text in corpora.lee_corpus()[60:70]:
        assert ours.encode(text).ids == hf.encode(text).ids
    spec = json.loads(out.read_text())
    assert [t["content"] for t in spec["added_tokens"]] == extra[1:]  # no special token unless named


def test_train_unigram_writes_a_file_huggingface_reads(corpus, tmp_path):
    """``--model unigram``: NFKC + Metaspace, ``<unk>`` at id 0; HuggingFace encodes our file identically."""
    out = tmp_path / "tok.json"
    assert cli.main(["tokenize", "train", "--model", "unigram", "--vocab-size", "300", "--corpus", str(corpus),
                     "--out", str(out)]) == 0
    ours, hf = tokenizers.load(out), hf_tokenizers.Tokenizer.from_file(str(out))
    assert ours.get_vocab_size() == hf.get_vocab_size() == 300
    for text in corpora.lee_corpus()[60:70]:
        assert ours.encode(text).ids == hf.encode(text).ids
    spec = json.loads(out.read_text())
    assert spec["model"]["type"] == "Unigram" and spec["model"]["unk_id"] == 0
    assert [t["content"] for t in spec["added_tokens"]] == ["<unk>"]


def test_encode_refuses_undecodable_standard_input(monkeypatch, capsys):
    """Bytes that are not UTF-8 on standard input are an error naming the line and byte (HuggingFace cannot
    take them either), not characters silently dropped."""
    path = corpora.minilm_path() / "tokenizer.json"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"fine\nbad \xff byte\n"), encoding="utf-8"))
    rc = cli.main(["tokenize", "encode", "--tokenizer", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and "line 2 is not valid UTF-8: byte 0xff at byte offset 4" in err


def test_encode_prints_ids_of_each_line(monkeypatch, capsys):
    path = corpora.minilm_path() / "tokenizer.json"
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello world\nA second line, with a comma.\n"))
    assert cli.main(["tokenize", "encode", "--tokenizer", str(path), "--no-special"]) == 0
    lines = capsys.readouterr().out.splitlines()
    hf = hf_tokenizers.Tokenizer.from_file(str(path))
    expected = [hf.encode(t, add_special_tokens=False).ids for t in ["Hello world", "A second line, with a comma."]]
    assert [list(map(int, line.split())) for line in lines] == expected


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"fine line\nthe \x97 dash\n", "not valid UTF-8: byte 0x97 at byte offset 14"),
])
def test_bad_corpora_are_clear_errors(tmp_path, capsys, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    rc = cli.main(["tokenize", "train", "--model", "bpe", "--vocab-size", "300", "--corpus", str(path),
                   "--out", str(tmp_path / "t.json")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and str(path) in err


def test_vocab_size_below_alphabet_is_a_clear_error(corpus, tmp_path, capsys):
    rc = cli.main(["tokenize", "train", "--model", "wordpiece", "--vocab-size", "10", "--corpus", str(corpus),
                   "--out", str(tmp_path / "t.json")])
    assert rc == 2 and "below the alphabet size" in capsys.readouterr().err


@pytest.mark.parametrize("edit, message", [
    (lambda spec: spec["model"].update(type="Mystery"), "model type 'Mystery' is not supported"),
    (lambda spec: spec.update(normalizer={"type": "Mystery"}), "normalizer type 'Mystery' is not supported"),
    (lambda spec: spec.update(pre_tokenizer={"type": "Mystery"}), "pre_tokenizer type 'Mystery' is not supported"),
])
def test_unsupported_tokenizer_json_is_a_clear_error(tmp_path, edit, message):
    spec = json.loads((corpora.minilm_path() / "tokenizer.json").read_text())
    edit(spec)
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec))
    with pytest.raises(tokenizers.ScratchlmError, match=message):
        tokenizers.load(path)


def test_not_a_tokenizer_file(tmp_path):
    bad = tmp_path / "t.json"
    bad.write_bytes(b"{\"model\": \xff}")
    with pytest.raises(tokenizers.ScratchlmError, match="byte 0xff at byte offset 10"):
        tokenizers.load(bad)
    bad.write_text("{not json")
    with pytest.raises(tokenizers.ScratchlmError, match="invalid JSON"):
        tokenizers.load(bad)
