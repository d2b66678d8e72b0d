"""Wikipedia markup to paragraphs with link spans (scratchlm/data/wikitext.py)."""

from scratchlm.data.wikitext import clean_wikitext


def test_clean_wikitext_worked_example():
    """Templates, refs, files, categories, emphasis and headings go; anchors stay with their spans."""
    wikitext = (
        "{{Infobox person|name=X}}'''Ada Lovelace''' was an [[England|English]] "
        "[[mathematician]]s<ref>Some source</ref> who worked with [[Charles Babbage]] "
        "on the {{nowrap|Analytical Engine}}[[File:Ada.jpg|thumb|A [[portrait]]]].\n"
        "== Life ==\n"
        "[[Category:Mathematicians]]\n"
    )
    (paragraph,) = clean_wikitext(wikitext, "Ada Lovelace")
    assert paragraph.text == "Ada Lovelace was an English mathematicians who worked with Charles Babbage on the ."
    anchors = [(paragraph.text[l.start : l.end], l.target) for l in paragraph.links]
    assert anchors == [("English", "England"), ("mathematicians", "Mathematician"),
                       ("Charles Babbage", "Charles Babbage")]
