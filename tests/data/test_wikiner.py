"""The silver NER set: tokenization offsets, BIO well-formedness, selection and split rules."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from scratchlm.data import wikiner
from scratchlm.data.wikitext import Link, Paragraph


def test_worked_paragraph():
    """Capitalised anchors are entities, a lower-case anchor is not; the article's own title is a
    mention; a sentence with an unlinked name ("Paris") is dropped; "Dr." does not end a sentence."""
    text = ("Ada Lovelace worked with Charles Babbage on the engine. In London, Dr. Smith met the Royal "
            "Society. She visited Paris. The analytical engine used punched cards.")
    link = lambda s, target: Link(text.index(s), text.index(s) + len(s), target)  # noqa: E731
    paragraph = Paragraph("Ada Lovelace", text, (
        link("Charles Babbage", "Charles Babbage"), link("engine", "Analytical engine"),
        link("Dr. Smith", "John Smith"), link("Royal Society", "Royal Society"), link("London", "London"),
        link("punched cards", "Punched card")))
    got = wikiner.paragraph_sentences(paragraph, frozenset({"the", "she", "in"}))
    assert [s.text for s in got] == [
        "Ada Lovelace worked with Charles Babbage on the engine.",
        "In London, Dr. Smith met the Royal Society.",
    ]
    assert list(zip(got[0].tokens, got[0].tags)) == [
        ("Ada", "B-ENT"), ("Lovelace", "I-ENT"), ("worked", "O"), ("with", "O"), ("Charles", "B-ENT"),
        ("Babbage", "I-ENT"), ("on", "O"), ("the", "O"), ("engine", "O"), (".", "O")]
    assert got[1].tokens == ("In", "London", ",", "Dr", ".", "Smith", "met", "the", "Royal", "Society", ".")
    assert got[1].tags == ("O", "B-ENT", "O", "B-ENT", "I-ENT", "I-ENT", "O", "O", "B-ENT", "I-ENT", "O")
    # "The analytical engine ..." holds no entity (its only link is lower-case): dropped.


def test_adjacent_mentions_get_a_fresh_B():
    tags = wikiner.bio_tags([(0, 3), (4, 7), (8, 11)], [(0, 7), (8, 11)])
    assert tags == ["B-ENT", "I-ENT", "B-ENT"]


@given(st.text(alphabet=st.sampled_from("ab Cd.,'-1 \u00e9!?"), max_size=60))
def test_token_offsets_point_at_their_text(text):
    for token, start, end in wikiner.word_tokens(text):
        assert text[start:end] == token and token.strip() == token and token


@given(st.text(alphabet=st.sampled_from("ab Cd. X!?\""), max_size=80))
def test_sentences_cover_the_text_in_order(text):
    spans = wikiner.split_sentences(text)
    assert all(a < b for a, b in spans) and all(b1 <= a2 for (_, b1), (a2, _) in zip(spans, spans[1:]))
    assert "".join(text[a:b] for a, b in spans).replace(" ", "") == text.strip().replace(" ", "")


def test_splits_are_article_disjoint_and_sized():
    data = wikiner.wikiner()
    titles = {name: {s.title for s in sentences} for name, sentences in data.items()}
    assert not (titles["train"] & titles["dev"]) and not (titles["train"] & titles["test"])
    assert not (titles["dev"] & titles["test"])
    n = sum(len(v) for v in data.values())
    assert n > 2000  # the sample yields a few thousand silver sentences
    for name in ("dev", "test"):
        assert 0.05 * n < len(data[name]) < 0.2 * n
    for sentence in data["train"][:500]:
        assert len(sentence.tokens) == len(sentence.tags) == len(sentence.offsets)
        assert sentence.tags[0] != "I-ENT" and "B-ENT" in sentence.tags
        assert all(not (p == "O" and t == "I-ENT") for p, t in zip(sentence.tags, sentence.tags[1:]))
        assert all(sentence.text[a:b] == tok for tok, (a, b) in zip(sentence.tokens, sentence.offsets))
