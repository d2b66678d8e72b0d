"""Wikipedia markup to plain paragraphs, each with the character spans of its links.

The cleaner keeps the text of ``[[target|anchor]]`` links as their anchor and records each link's
character span in the cleaned paragraph, which is what the silver NER set (WikiNER's method,
Nothman et al. 2013) is built from.  :func:`parse_articles` reads a ``pages-articles`` XML dump
(bz2) and cleans its main-namespace articles; :mod:`scratchlm.data.corpora` locates the shipped
sample and caches the result.
"""

from __future__ import annotations

import bz2
import html
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from scratchlm.errors import CorpusError


@dataclass(frozen=True)
class Link:
    start: int  # character span of the anchor text in the cleaned paragraph
    end: int
    target: str  # the article linked to (first letter upper-cased, as MediaWiki does)


@dataclass(frozen=True)
class Paragraph:
    title: str  # the article it comes from
    text: str
    links: tuple[Link, ...]


_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref[^>/]*?/>|<ref[^>]*?>.*?</ref>", re.S | re.I)
_DROP_BLOCKS = re.compile(r"<(math|gallery|timeline|score|syntaxhighlight|source|pre|imagemap)\b[^>]*>.*?</\1>",
                          re.S | re.I)
_TAG = re.compile(r"</?[a-zA-Z][^>]*?/?>")
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_TABLE = re.compile(r"\{\|(?:(?!\{\|).)*?\|\}", re.S)
_NAMESPACED_LINK = re.compile(r"\[\[\s*(?:File|Image|Category|Media|Wikipedia|WP|Template|Help|Portal|Special|Talk|User"
                              r"|[a-z]{2,3}(?:-[a-z]+)?)\s*:[^\[\]]*\]\]", re.I)
_EXTERNAL = re.compile(r"\[(?:https?|ftp)://[^\s\]]+(?:\s+([^\]]*))?\]")
_BARE_URL = re.compile(r"https?://\S+")
_BOLD_ITALIC = re.compile(r"'{2,}")
_HEADING = re.compile(r"^=+.*?=+\s*$", re.M)
_LIST_MARK = re.compile(r"^[*#:;]+\s*", re.M)
_MAGIC = re.compile(r"__[A-Z]+__")
_SPACES = re.compile(r"[ \t\u00a0]+")
_INTERNAL = re.compile(r"\[\[([^\[\]|]*)(?:\|([^\[\]]*))?\]\]([a-z]*)")
_EMPTY_PARENS = re.compile(r"\(\s*[,;]?\s*\)")
_HALF_CLOSED_LINK = re.compile(r"\[\[([^\[\]]*)\](?!\])")  # "[[a|b]" typos in the source
_LEFTOVER_MARKUP = ("[[", "]]", "{{", "}}", "<ref", "'''")

MIN_PARAGRAPH_WORDS = 5  # drop list fragments, captions and leftovers shorter than this


def _strip_nested(pattern: re.Pattern, text: str) -> str:
    """Remove innermost matches until none is left (templates and tables nest)."""
    while True:
        text, n = pattern.subn("", text)
        if n == 0:
            return text


def _remove_namespaced_links(text: str) -> str:
    """Drop [[File:...|caption with [[links]]]] and friends, which may nest one level of links."""
    while True:
        new = _NAMESPACED_LINK.sub("", text)
        if new == text:
            # A File: link whose caption still holds inner links: resolve inner links first.
            start = re.search(r"\[\[\s*(?:File|Image)\s*:", text, re.I)
            if not start:
                return new
            depth, i = 0, start.start()
            while i < len(text) - 1:
                pair = text[i : i + 2]
                if pair == "[[":
                    depth += 1
                    i += 2
                elif pair == "]]":
                    depth -= 1
                    i += 2
                    if depth == 0:
                        break
                else:
                    i += 1
            new = text[: start.start()] + text[i:]
        text = new


def _links_to_text(line: str) -> tuple[str, tuple[Link, ...]]:
    """Replace [[target|anchor]]trail by anchor+trail and record where each anchor landed."""
    pieces: list[str] = []
    links: list[Link] = []
    cursor = length = 0
    for m in _INTERNAL.finditer(line):
        before = line[cursor : m.start()]
        pieces.append(before)
        length += len(before)
        target = m.group(1).strip()
        anchor = (m.group(2) if m.group(2) is not None else target).strip() + m.group(3)
        if target.startswith("#") or not anchor:
            anchor = anchor.lstrip("#")
        if anchor:
            target = target.split("#")[0].strip()
            if target:
                links.append(Link(length, length + len(anchor), target[:1].upper() + target[1:]))
            pieces.append(anchor)
            length += len(anchor)
        cursor = m.end()
    pieces.append(line[cursor:])
    return "".join(pieces), tuple(links)


def _collapse_spaces(line: str) -> str:
    """Runs of spaces, tabs and no-break spaces as one space.  Most lines hold none, and the regex
    scan of every line was a fifth of the sample's cleaning time."""
    if "  " in line or "\t" in line or "\xa0" in line:
        return _SPACES.sub(" ", line)
    return line


def clean_wikitext(wikitext: str, title: str = "") -> list[Paragraph]:
    """Wiki markup to plain paragraphs: templates, tables, refs, files, categories, HTML, emphasis
    and headings removed; link anchors kept (with their spans); one paragraph a line."""
    text = html.unescape(wikitext)
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _DROP_BLOCKS.sub("", text)
    text = _strip_nested(_TEMPLATE, text)
    text = _strip_nested(_TABLE, text)
    text = _remove_namespaced_links(text)
    text = _TAG.sub("", text)
    text = _EXTERNAL.sub(lambda m: m.group(1) or "", text)
    text = _BARE_URL.sub("", text)
    text = _BOLD_ITALIC.sub("", text)
    text = _HEADING.sub("", text)
    text = _LIST_MARK.sub("", text)
    text = _MAGIC.sub("", text)
    text = text.replace("{{", "").replace("}}", "").replace("{|", "").replace("|}", "")
    paragraphs = []
    for line in text.splitlines():
        line = _collapse_spaces(line).strip()
        if not line or line.startswith("|") or line.startswith("!"):
            continue  # table-row leftovers
        line = _collapse_spaces(_EMPTY_PARENS.sub("", line)).strip()
        plain, links = _links_to_text(_HALF_CLOSED_LINK.sub(r"[[\1]]", line))
        if any(marker in plain for marker in _LEFTOVER_MARKUP):
            continue  # markup too broken to clean without guessing
        if len(plain.split()) >= MIN_PARAGRAPH_WORDS:
            paragraphs.append(Paragraph(title, plain, links))
    return paragraphs


def parse_articles(path: Path) -> tuple[tuple[str, tuple[Paragraph, ...]], ...]:
    """The dump's main-namespace, non-redirect articles as ``(title, paragraphs)``, in file order."""
    articles = []
    with bz2.open(path, "rb") as stream:
        title = ns = None
        redirect = False
        for _, elem in ET.iterparse(stream, events=("end",)):
            tag = elem.tag.rsplit("}", 1)[-1]
            if tag == "title":
                title = elem.text or ""
            elif tag == "ns":
                ns = elem.text
            elif tag == "redirect":
                redirect = True
            elif tag == "text":
                if ns == "0" and not redirect and elem.text:
                    paragraphs = tuple(clean_wikitext(elem.text, title))
                    if paragraphs:
                        articles.append((title, paragraphs))
            elif tag == "page":
                title, ns, redirect = None, None, False
                elem.clear()
    if not articles:
        raise CorpusError(f"{path}: no article could be read from the Wikipedia sample")
    return tuple(articles)
