"""A silver named-entity set from the Wikipedia sample's link markup, in WikiNER's manner.

Nothman et al. (2013), "Learning multilingual named entity recognition from Wikipedia", turn
Wikipedia into NER training data: the anchor text of a link to an article is a mention of the
entity that article describes.  Three of their steps are kept here, simplified:

1. **Mentions.**  A link anchor is an entity mention when it is capitalised (its first character
   is an upper-case letter).  Links with lower-case anchors (``[[philosophy]]``, ``[[oxygen|oxygen
   gas]]``) point at common-noun articles and are not entities — WikiNER's capitalisation test.
   As in WikiNER, unlinked occurrences of the article's own title (the article's subject, which
   Wikipedia never links to itself) are mentions too.
2. **Sentence selection.**  Wikipedia links an entity at its first mention only, so an unlinked
   capitalised word is likely an unlabelled entity.  WikiNER drops sentences it cannot fully label;
   here a sentence is kept only if it holds at least one entity and every capitalised word outside
   a mention is either its first token and a common word — one the sample also writes in lower
   case ("The", "Later") — or nothing else.  So "Alberta has ..." with an unlinked "Alberta" is
   dropped, since the sample never writes "alberta".
3. **Types.**  WikiNER types each article from its categories and first sentence.  The sample holds
   106 articles while its links point at 15,736 distinct targets, so almost no target's own article
   is available and no type evidence for it can be read from the sample; a typing from title
   keywords or name lists would be evidence brought in from outside.  We therefore use a single
   type, ``ENT``, and say so: the tag set is ``O, B-ENT, I-ENT``.

Sentences are split on ``.``, ``?`` or ``!`` followed by white space and an upper-case letter,
digit or quote, except after a known abbreviation or a single capital (an initial), and never
inside a link.  Tokens are numbers (``23.8``, ``1,000``), runs of letters/digits (inner hyphens and
apostrophes kept) or single punctuation marks, with character offsets into the sentence.

Splits are by article, so no article feeds two splits: articles are ordered by the md5 of their
title and dealt out in that order, the first ones to ``test`` until it holds 10% of the sentences,
the next to ``dev`` until it holds another 10%, the rest to ``train`` — deterministic, and balanced
in size although the sample has only about a hundred articles.

Plain Python; no JAX.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

from scratchlm.data import corpora
from scratchlm.data.wikitext import Paragraph

ENTITY_TYPE = "ENT"
TAGS = ("O", f"B-{ENTITY_TYPE}", f"I-{ENTITY_TYPE}")

_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:[-'\u2019][^\W_]+)*|[^\w\s]|_")
_SENTENCE_END = re.compile(r"[.?!]['\"\u201d)]?(?=\s+['\"\u201c(]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e c ca cf al fig no vol pp ed eds rev gen col lt sgt "
    "jan feb mar apr jun jul aug sep sept oct nov dec inc ltd co corp dept univ approx est".split()
)


@dataclass(frozen=True)
class Sentence:
    tokens: tuple[str, ...]
    tags: tuple[str, ...]  # BIO tags, one per token
    offsets: tuple[tuple[int, int], ...]  # character span of each token in ``text``
    text: str
    title: str  # the article it comes from


def split_sentences(text: str, protected: tuple[tuple[int, int], ...] = ()) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``; no split falls inside a ``protected`` span."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        end = m.end()
        word = text[:m.start()].rsplit(None, 1)[-1] if text[:m.start()].strip() else ""
        word = word.lstrip("(\"'").lower()
        if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
            continue  # "Dr. Smith", "J. R. R. Tolkien"
        if any(a < end < b for a, b in protected):
            continue
        spans.append((start, end))
        start = end + (len(text[end:]) - len(text[end:].lstrip()))
    if text[start:].strip():
        spans.append((start, len(text.rstrip())))
    return spans


def word_tokens(text: str, offset: int = 0) -> list[tuple[str, int, int]]:
    """Words and punctuation marks of ``text`` as ``(token, start, end)`` with ``offset`` added."""
    return [(m.group(), m.start() + offset, m.end() + offset) for m in _TOKEN.finditer(text)]


def bio_tags(offsets: list[tuple[int, int]], mentions: list[tuple[int, int]]) -> list[str]:
    """BIO tags for tokens given mention spans: a token belongs to a mention when it starts inside it."""
    tags, previous = [], None
    for start, _ in offsets:
        inside = next((m for m in mentions if m[0] <= start < m[1]), None)
        if inside is None:
            tags.append("O")
        else:
            tags.append(f"I-{ENTITY_TYPE}" if inside == previous else f"B-{ENTITY_TYPE}")
        previous = inside
    return tags


def is_mention(anchor: str) -> bool:
    """WikiNER's capitalisation test: an anchor starting with an upper-case letter names an entity."""
    return anchor[:1].isupper()


@functools.cache
def lowercase_words() -> frozenset[str]:
    """Every word the Wikipedia sample writes in lower case (the evidence for step 2's first-token rule)."""
    return frozenset(t for p in corpora.wikipedia_paragraphs() for t in _TOKEN.findall(p) if t.islower())


def paragraph_sentences(paragraph: Paragraph, common: frozenset[str] = frozenset()) -> list[Sentence]:
    """The selected, BIO-tagged sentences of one paragraph (steps 1 and 2 of the module docstring).

    ``common`` holds the words written in lower case somewhere in the corpus; a sentence may start
    with an unlinked capitalised word only if its lower-cased form is among them.
    """
    text = paragraph.text
    links = [(l.start, l.end) for l in paragraph.links]
    mentions = [(a, b) for a, b in links if is_mention(text[a:b])]
    if paragraph.title:
        pattern = re.compile(r"(?<!\w)" + re.escape(paragraph.title) + r"(?!\w)")
        mentions += [m.span() for m in pattern.finditer(text)
                     if not any(a < m.end() and m.start() < b for a, b in links)]
    out = []
    for s_start, s_end in split_sentences(text, tuple(links)):
        tokens = word_tokens(text[s_start:s_end], s_start)
        if not tokens:
            continue
        # Only spans overlapping the sentence can hold its tokens (same order, so the same result):
        # scanning the paragraph's every link for every token made the set slow to build.
        local_links, local_mentions = ([(a, b) for a, b in spans if a < s_end and s_start < b]
                                       for spans in (links, mentions))
        offsets = [(a, b) for _, a, b in tokens]
        tags = bio_tags(offsets, local_mentions)
        covered = [any(a <= start < b for a, b in local_links + local_mentions) for start, _ in offsets]
        first, first_covered = tokens[0][0], covered[0]
        unlabelled = any(tok[:1].isupper() and not c for (tok, _, _), c in zip(tokens[1:], covered[1:]))
        unlabelled |= first[:1].isupper() and not first_covered and first.lower() not in common
        if unlabelled or f"B-{ENTITY_TYPE}" not in tags:
            continue
        # Offsets are made relative to the sentence text so a sentence stands on its own.
        out.append(Sentence(tuple(t for t, _, _ in tokens), tuple(tags),
                            tuple((a - s_start, b - s_start) for a, b in offsets),
                            text[s_start:s_end], paragraph.title))
    return out


def assign_splits(sizes: dict[str, int], dev: float = 0.1, test: float = 0.1) -> dict[str, str]:
    """Article title -> ``train``/``dev``/``test``, dealing articles out in md5-of-title order."""
    total = sum(sizes.values())
    order = sorted(sizes, key=lambda title: hashlib.md5(title.encode("utf-8")).hexdigest())
    out, filled = {}, 0
    for title in order:
        out[title] = "test" if filled < test * total else "dev" if filled < (test + dev) * total else "train"
        filled += sizes[title]
    return out


@functools.cache
def wikiner() -> dict[str, tuple[Sentence, ...]]:
    """The silver NER set: ``{"train": (...), "dev": (...), "test": (...)}``, each in file order."""
    common = lowercase_words()
    by_article: dict[str, list[Sentence]] = {}
    for paragraph in corpora.wikipedia_linked_paragraphs():
        by_article.setdefault(paragraph.title, []).extend(paragraph_sentences(paragraph, common))
    split = assign_splits({title: len(s) for title, s in by_article.items()})
    splits: dict[str, list[Sentence]] = {"train": [], "dev": [], "test": []}
    for title, sentences in by_article.items():
        splits[split[title]].extend(sentences)
    return {name: tuple(sentences) for name, sentences in splits.items()}
