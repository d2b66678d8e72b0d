"""Fine-tuning tasks as arrays: reading the user's files, encoding sentences (and sentence pairs),
and aligning word-level tags with WordPiece sub-tokens; :func:`load_task` and :func:`encode_task` take a
task whole (``polarity``, ``wikiner`` or a file), as ``scratchlm finetune`` reads it.

Input layout (Devlin et al. 2019, §3 and Fig. 2): a single sentence is ``[CLS] A [SEP]`` with
segment ids 0; a pair is ``[CLS] A [SEP] B [SEP]`` with segment ids 0 up to and including the first
``[SEP]`` and 1 after it.  Pairs longer than ``max_length`` lose tokens from the longer side first
(HuggingFace's ``longest_first``).

Token classification labels the first sub-token of each word and gives the others, the special
tokens and the padding the label ``IGNORE = -100``, which the loss skips (Devlin et al. 2019, §5.3;
HuggingFace's ``run_ner`` does the same).  :func:`word_predictions` inverts the alignment: the
predictions at the positions holding a label are the word-level predictions, in order.

The tokenizer enters only as callables ``encode(text) -> list[int]`` (no special tokens), so this
module needs neither a particular tokenizer nor JAX.  Words are encoded one at a time, as
HuggingFace does for ``is_split_into_words=True``; a word the tokenizer turns into nothing (a lone
control character) is given ``unk_id`` so that every word keeps a position and a prediction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchlm.data.batching import IGNORE, pad_batch
from scratchlm.data.corpora import read_lines
from scratchlm.errors import CorpusError, ScratchlmError
from scratchlm.io import read_text

Encode = Callable[[str], list[int]]


@dataclass(frozen=True)
class SpecialIds:
    """The ids a model's input template uses; ``cls`` and ``sep`` None for a model without one (GPT-2)."""

    cls: int | None
    sep: int | None
    pad: int
    unk: int | None


# ----------------------------------------------------------------------------- reading files


def read_jsonl(path: str | Path) -> list[tuple[str, str | None, str]]:
    """A sequence task from JSON lines: ``{"text": ..., "label": ...}``, or a pair with ``"text_pair"``.

    Returns ``(text_a, text_b or None, label)`` per line; labels are kept as strings.
    """
    examples = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path} line {number}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(record, dict) or "text" not in record or "label" not in record:
            raise CorpusError(f'{path} line {number}: expected an object with "text" and "label" '
                              '(and optionally "text_pair")')
        pair = record.get("text_pair")
        examples.append((str(record["text"]), None if pair is None else str(pair), str(record["label"])))
    if not examples:
        raise CorpusError(f"{path} holds no example")
    return examples


def read_fasttext_labels(path: str | Path) -> list[tuple[str, int]]:
    """``(text, label)`` pairs from fastText-style lines ``__label__pos text`` / ``__label__neg text`` (pos = 1)."""
    pairs = []
    for number, line in enumerate(read_lines(path), start=1):
        label, _, text = line.partition(" ")
        if label not in ("__label__pos", "__label__neg"):
            raise CorpusError(f"{path}:{number}: expected '__label__pos' or '__label__neg' first, got {label!r}")
        pairs.append((text, int(label == "__label__pos")))
    return pairs


def read_conll(path: str | Path) -> list[tuple[list[str], list[str]]]:
    """A token task in CoNLL columns: token first, tag last, blank line between sentences.

    ``-DOCSTART-`` lines are skipped.  Returns ``(words, tags)`` per sentence.
    """
    sentences, words, tags = [], [], []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if len(columns) < 2:
            raise CorpusError(f"{path} line {number}: expected 'token ... tag' columns, got {line!r}")
        words.append(columns[0])
        tags.append(columns[-1])
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise CorpusError(f"{path} holds no sentence")
    return sentences


def label_vocabulary(labels: Sequence[str]) -> tuple[str, ...]:
    """Sorted distinct labels, with ``O`` first when present (so tag id 0 is "outside")."""
    distinct = sorted(set(labels))
    if "O" in distinct:
        distinct.remove("O")
        distinct.insert(0, "O")
    return tuple(distinct)


# ----------------------------------------------------------------------------- encoding


def _truncate_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Drop tokens from the end of the longer side until ``len(a) + len(b) <= budget`` (longest_first)."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        if len(a) >= len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def encode_sequence(a: list[int], b: list[int] | None, special: SpecialIds,
                    max_length: int) -> tuple[list[int], list[int]]:
    """``[CLS] A [SEP]`` or ``[CLS] A [SEP] B [SEP]`` (truncated to ``max_length``) and its segment ids; without
    ``[CLS]``/``[SEP]`` (``special.cls`` None: GPT-2, whose tokenizer has no template) ``A`` or ``A B``."""
    if special.cls is None:
        a, b = _truncate_pair(a, b or [], max_length)
        return [*a, *b], [0] * (len(a) + len(b))
    if b is None:
        a = a[: max_length - 2]
        return [special.cls, *a, special.sep], [0] * (len(a) + 2)
    a, b = _truncate_pair(a, b, max_length - 3)
    ids = [special.cls, *a, special.sep, *b, special.sep]
    return ids, [0] * (len(a) + 2) + [1] * (len(b) + 1)


def align_labels(words: Sequence[str], tags: Sequence[int], encode_word: Encode, special: SpecialIds,
                 max_length: int) -> tuple[list[int], list[int]]:
    """Sub-token ids ``[CLS] w_1 ... w_n [SEP]`` and labels: ``tags[i]`` on word i's first sub-token,
    ``IGNORE`` on its other sub-tokens and on the special tokens.  Words past ``max_length`` are cut."""
    ids, labels = [special.cls], [IGNORE]
    for word, tag in zip(words, tags, strict=True):
        pieces = encode_word(word) or [special.unk]
        if len(ids) + len(pieces) > max_length - 1:
            break
        ids += pieces
        labels += [tag] + [IGNORE] * (len(pieces) - 1)
    return ids + [special.sep], labels + [IGNORE]


def word_predictions(predicted: Sequence[int], labels: Sequence[int], n_words: int, outside: int = 0) -> list[int]:
    """Invert :func:`align_labels`: predictions at the labelled positions, in order, one per word.

    Words cut by truncation had no position; they are predicted ``outside`` (tag ``O``).
    """
    out = [int(p) for p, y in zip(predicted, labels) if y != IGNORE]
    return out[:n_words] + [outside] * (n_words - len(out))


def encode_sequence_task(examples: Sequence[tuple[str, str | None, int]], encode: Encode, special: SpecialIds,
                         max_length: int = 128, *, vocab_size: int | None = None) -> dict[str, np.ndarray]:
    """Sequence (or sentence-pair) classification examples as arrays; ``labels`` is ``[N]``.

    ``vocab_size``: the model's; every id is checked to fit it (:func:`scratchlm.data.batching.check_ids`)."""
    rows, segments = [], []
    for a, b, _ in examples:
        ids, seg = encode_sequence(encode(a), None if b is None else encode(b), special, max_length)
        rows.append(ids)
        segments.append(seg)
    batch = pad_batch(rows, segments, special.pad, vocab_size=vocab_size)
    batch["labels"] = np.asarray([y for _, _, y in examples], np.int32)
    return batch


def encode_token_task(sentences: Sequence[tuple[Sequence[str], Sequence[int]]], encode_word: Encode,
                      special: SpecialIds, max_length: int = 128, *, vocab_size: int | None = None
                      ) -> dict[str, np.ndarray]:
    """Token classification sentences (words, tag ids) as arrays; ``labels`` is ``[N, T]`` with ``IGNORE``.

    ``vocab_size``: the model's; every id is checked to fit it (:func:`scratchlm.data.batching.check_ids`)."""
    rows, labels = [], []
    for words, tags in sentences:
        ids, y = align_labels(words, tags, encode_word, special, max_length)
        rows.append(ids)
        labels.append(y)
    return pad_batch(rows, [[0] * len(r) for r in rows], special.pad, labels=labels, vocab_size=vocab_size)


# ----------------------------------------------------------------------------- a fine-tuning task, whole


def load_task(spec: str, limit: int | None = None) -> dict:
    """The task ``spec`` names, as a dict: ``kind`` (``"sequence"`` or ``"token"``), ``labels`` (the label
    names, in id order) and its ``examples`` ``(text, text_pair, label id)`` (a sequence task) or its
    ``splits`` ``{"train", "dev", "test"}`` of ``(words, tags)`` (a token task); ``limit`` keeps the first
    N examples of each.

    ``polarity``: the 200 Pang–Lee sentences; ``wikiner``: the silver NER set (:mod:`scratchlm.data.wikiner`);
    a ``.jsonl`` / ``.json`` file of ``{"text", "label"[, "text_pair"]}`` lines (a sequence task); any other
    file: CoNLL columns ``token ... tag`` (a token task), split 80/10/10 in file order, interleaved."""
    from scratchlm.data import corpora, wikiner

    if spec == "polarity":
        examples = [(text, None, y) for text, y in corpora.polarity_sentences()]
        return {"kind": "sequence", "labels": ("neg", "pos"), "examples": examples[:limit] if limit else examples}
    if spec == "wikiner":
        splits = {name: [(s.tokens, s.tags) for s in sentences] for name, sentences in wikiner.wikiner().items()}
        return _token_task(splits, limit)
    path = Path(spec)
    if not path.exists():
        raise ScratchlmError(f"--task {spec}: not polarity, wikiner, or an existing file")
    if path.suffix in (".jsonl", ".json"):
        raw = read_jsonl(path)
        names = label_vocabulary([y for _, _, y in raw])
        examples = [(a, b, names.index(y)) for a, b, y in raw]
        return {"kind": "sequence", "labels": names, "examples": examples[:limit] if limit else examples}
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    if head.lstrip().startswith("__label__"):  # it would read as CoNLL: token __label__X, tag its last word
        raise ScratchlmError(f"--task {spec}: fastText '__label__X text' lines; a sequence task is a .jsonl of "
                             '{"text": ..., "label": ...} lines (scratchlm classify --data reads fastText files)')
    sentences = read_conll(path)
    part = [i % 10 for i in range(len(sentences))]  # 80/10/10 in file order, interleaved
    splits = {"test": [s for s, p in zip(sentences, part) if p == 0],
              "dev": [s for s, p in zip(sentences, part) if p == 1],
              "train": [s for s, p in zip(sentences, part) if p > 1]}
    return _token_task(splits, limit)


def _token_task(splits: dict, limit: int | None) -> dict:
    names = label_vocabulary([t for sentences in splits.values() for _, tags in sentences for t in tags])
    return {"kind": "token", "labels": names,
            "splits": {k: (v[:limit] if limit else v) for k, v in splits.items()}}


def encode_task(task: dict, tok, max_length: int, vocab_size: int | None = None,
                special: SpecialIds | None = None) -> dict:
    """A :func:`load_task` task as arrays: a sequence task's examples as one
    :func:`encode_sequence_task` dict; a token task's as ``{split: (arrays, word counts)}``.

    ``tok``: a tokenizer (:func:`scratchlm.tokenizers.load`, without padding or truncation);
    ``vocab_size``, the model's, checks every id (a tokenizer larger than the model's table would
    otherwise train on clamped rows); ``special`` the model's template ids (default: the tokenizer's
    ``[CLS]``, ``[SEP]``, ``[PAD]``, ``[UNK]``)."""
    if special is None:
        special = SpecialIds(cls=tok.cls_token_id, sep=tok.sep_token_id, pad=tok.pad_token_id, unk=tok.unk_token_id)

    def text_ids(text: str) -> list[int]:
        return tok.encode(text, add_special_tokens=False).ids

    if task["kind"] == "sequence":
        return encode_sequence_task(task["examples"], text_ids, special, max_length, vocab_size=vocab_size)
    out = {}
    for name, sentences in task["splits"].items():
        tagged = [(words, [task["labels"].index(t) for t in tags]) for words, tags in sentences]
        out[name] = (encode_token_task(tagged, text_ids, special, max_length, vocab_size=vocab_size),
                     [len(w) for w, _ in sentences])
    return out
