"""The merge learner (scratchlm/tokenizers/trainers.py): worked examples for both scores, ``merge_pair``'s
count changes against a recount, and the likelihood learner against the equation computed naively.

The frequency learner is compared with HuggingFace's ``BpeTrainer`` / ``WordPieceTrainer`` in
test_bpe.py and test_wordpiece.py.  Counts are integers and the likelihood score is one division of
integers, so every comparison here is exact.
"""

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from scratchlm.tokenizers import trainers

# Small words over a three-letter alphabet: many repeated and overlapping pairs ("aaa", "abab").
WORD_COUNTS = st.dictionaries(st.text("aab", min_size=1, max_size=8), st.integers(1, 6), min_size=1, max_size=12)


def test_worked_example_merges():
    """Words low:5, lower:2, newest:6, widest:3 (Sennrich et al. 2016, Fig. 1).  Pair counts: (e,s) 9,
    (s,t) 9, (l,o) 7, (o,w) 7, (w,e) 8, ...; (e,s) and (s,t) tie at 9 and the smaller ids win: e < s, so
    e+s first; then (es,t) has 9; then (l,o) 7 ties (o,w) 7 and l < o.  Alphabet d e i l n o r s t w (10),
    vocabulary 13: three merges."""
    _, merges = trainers.learn_merges({"low": 5, "lower": 2, "newest": 6, "widest": 3}, 13)
    assert merges == [("e", "s"), ("es", "t"), ("l", "o")]


def test_likelihood_rule_prefers_rare_pairs():
    """Word counts ab:10, xy:20, x:200, y:200.  Alphabet a, b, x, y, then ##b, ##y (6) and one merge (vocab 7).
    Frequency: c(x,##y) = 20 > c(a,##b) = 10, so xy.  Likelihood: c(a,##b)/(c(a) c(##b)) = 10/(10*10) = 0.1
    beats c(x,##y)/(c(x) c(##y)) = 20/(220*20) = 0.0045, so ab."""
    counts = {"ab": 10, "xy": 20, "x": 200, "y": 200}
    _, freq = trainers.learn_merges(counts, 7, continuing_subword_prefix="##")
    _, like = trainers.learn_merges(counts, 7, continuing_subword_prefix="##", score=trainers.likelihood)
    assert freq == [("x", "##y")] and like == [("a", "##b")]


def test_merge_pair_worked_example():
    """Words [a b a b] x2 and [a a a] x5, merging (a, a) -> 9 in both: the first word holds no (a, a) and is
    skipped; the second becomes [9 a] (left to right, not overlapping), so c(a, a) loses both of its
    occurrences (2 x 5), c(9, a) gains 5, and 5 occurrences were merged."""
    words, counts = [[1, 2, 1, 2], [1, 1, 1]], [2, 5]
    step = trainers.merge_pair(words, counts, [0, 1], (1, 1), 9)
    assert words == [[1, 2, 1, 2], [9, 1]]
    assert step.deltas == {(1, 1): -10, (9, 1): 5}
    assert step.gained == {(9, 1): {1}}
    assert step.merged == 5


def _merge(symbols: list[int], pair: tuple[int, int], new: int) -> list[int]:
    """minbpe's ``merge``: occurrences of ``pair`` replaced by ``new``, left to right, not overlapping."""
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def _pairs(words, counts) -> Counter:
    out = Counter()
    for symbols, n in zip(words, counts):
        for pair in zip(symbols, symbols[1:]):
            out[pair] += n
    return out


@settings(max_examples=200, derandomize=True, deadline=None)
@given(words=st.lists(st.lists(st.integers(0, 2), max_size=8), min_size=1, max_size=6),
       counts=st.lists(st.integers(1, 5), min_size=6, max_size=6), pair=st.tuples(st.integers(0, 2), st.integers(0, 2)))
def test_merge_pair_changes_equal_a_recount(words, counts, pair):
    """The new symbols are minbpe's ``merge``; the deltas are exactly the pair counts after the merge minus
    those before; ``merged`` is what c(a) and c(b) lose, each by one per merged occurrence."""
    counts = counts[:len(words)]
    before = [list(symbols) for symbols in words]
    step = trainers.merge_pair(words, counts, range(len(words)), pair, 7)
    after = [_merge(symbols, pair, 7) for symbols in before]
    assert words == after
    expected = _pairs(after, counts)
    expected.subtract(_pairs(before, counts))
    assert {p: d for p, d in step.deltas.items() if d} == {p: d for p, d in expected.items() if d}
    new_symbols = sum(n * s.count(7) for s, n in zip(after, counts))
    assert step.merged == new_symbols


def _naive_likelihood_merges(word_counts: dict[str, int], vocab_size: int) -> list[tuple[str, str]]:
    """The equation read literally: recount every pair and symbol, merge argmax c(a,b) / (c(a) c(b))
    (ties to the smaller ids) in every word, until the vocabulary is full or no pair is left."""
    id_to_token = sorted({ch for w in word_counts for ch in w})
    words = [[id_to_token.index(ch) for ch in w] for w in word_counts]
    counts = list(word_counts.values())
    merges = []
    while len(id_to_token) < vocab_size:
        pairs = _pairs(words, counts)
        symbols = Counter()
        for s, n in zip(words, counts):
            for t in s:
                symbols[t] += n
        if not pairs:
            break
        _, a, b = max((c / (symbols[a] * symbols[b]), -a, -b) for (a, b), c in pairs.items())
        a, b = -a, -b
        token = id_to_token[a] + id_to_token[b]
        if token not in id_to_token:
            id_to_token.append(token)
        new = id_to_token.index(token)
        merges.append((id_to_token[a], id_to_token[b]))
        words = [_merge(s, (a, b), new) for s in words]
    last = {m: r for r, m in enumerate(merges)}
    return [m for r, m in enumerate(merges) if last[m] == r]


@settings(max_examples=200, derandomize=True, deadline=None)
@given(word_counts=WORD_COUNTS, merges=st.integers(0, 12))
def test_likelihood_learner_equals_the_equation(word_counts, merges):
    """The incremental learner (heap, exact count updates, re-scoring of the merged symbols' pairs) picks
    the same pairs as recounting everything before every merge."""
    alphabet = len({ch for w in word_counts for ch in w})
    _, ours = trainers.learn_merges(word_counts, alphabet + merges, score=trainers.likelihood)
    assert ours == _naive_likelihood_merges(word_counts, alphabet + merges)
