"""The tokenization pipeline, HuggingFace's in plain Python:

    text -> added (special) tokens split out -> normalizer -> pre-tokenizer (words)
         -> model (WordPiece / BPE, cached per word) -> truncation -> special tokens -> padding

The hot path is one ``str.translate`` (normalization), one compiled regex (words) and a dictionary
look-up per word; only texts whose normalization changes lengths (accents written as combining
marks, CJK, control characters) pay for a per-character alignment, so offsets stay exact.

Why one module of ~510 lines: its four entry points (``encode``, ``encode_batch``, the
transformers-style ``__call__``, ``decode``) share the one encoding path above, read in one place
(the added tokens' own type and pattern are in ``added_tokens``).
"""

from __future__ import annotations

import json
from pathlib import Path

import regex

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers import hf_folder
from scratchlm.tokenizers.added_tokens import AddedToken, added_pattern
from scratchlm.tokenizers.decoders import SpaceDecoder
from scratchlm.tokenizers.encoding import Encoding, encodings_to_arrays
from scratchlm.tokenizers.processors import Padding, Truncation, call_settings, default_process

CACHE_CAPACITY = 200_000  # words; beyond it new words are tokenized but not cached (HuggingFace's rule)


class Tokenizer:
    """A normalizer, pre-tokenizer, model, post-processor and decoder, used as HuggingFace's ``Tokenizer``.

    ``encode(text, pair=None, *, add_special_tokens=True, is_pretokenized=False) -> Encoding`` and
    ``encode_batch(texts, pairs=None, ...) -> list[Encoding]``; ``tok(texts, padding=True, truncation=True,
    max_length=N, return_tensors="np")`` as transformers' tokenizers (a dict of ids, types and mask);
    ``decode(ids, skip_special_tokens=True)``;
    ``enable_truncation(max_length, ...)`` / ``no_truncation()``; ``enable_padding(length=None, ...)`` /
    ``no_padding()``; ``token_to_id``, ``id_to_token``, ``get_vocab``, ``get_vocab_size``; ``save(path)``
    writes a HuggingFace ``tokenizer.json`` (``tokenizers.load`` reads one), ``save_pretrained(folder)`` the
    tokenizer files of a transformers model folder.

    The components are given, never looked up: the post-processor is any object with
    ``num_special_tokens_to_add(is_pair)`` and ``process(first, second, add_special_tokens)``
    (``processors.TemplateProcessing``, ``processors.ByteLevelProcessing``), and each one writes its own JSON.
    """

    def __init__(self, model, *, normalizer=None, pre_tokenizer=None, post_processor=None,
                 decoder=None, added_tokens: list[AddedToken] = (), truncation: Truncation | None = None,
                 padding: Padding | None = None):
        self.model = model
        self.normalizer = normalizer
        self.pre_tokenizer = pre_tokenizer
        self.post_processor = post_processor
        self.decoder = decoder if decoder is not None else SpaceDecoder()
        self.truncation = truncation
        self.padding = padding
        self.added_tokens: list[AddedToken] = []
        self._cache: dict[str, tuple] = {}
        self._set_added(list(added_tokens))

    @property
    def normalizer(self):
        return self._normalizer

    @normalizer.setter
    def normalizer(self, normalizer) -> None:
        """A new normalizer re-writes the normalized added tokens (HuggingFace's ``refresh_normalized_tokens``)."""
        self._normalizer = normalizer
        if "_added_by_id" in self.__dict__:
            self._set_added(list(self.added_tokens))
            self._cache.clear()

    # ------------------------------------------------------------------ vocabulary

    def _set_added(self, tokens: list[AddedToken]) -> None:
        self.added_tokens = sorted(tokens, key=lambda t: t.id)
        self._added_by_content = {t.content: t for t in self.added_tokens}
        self._added_by_id = {t.id: t for t in self.added_tokens}
        self._raw_pattern = added_pattern([t for t in self.added_tokens if not t.normalized])
        # A normalized token is looked for in the normalized text, written as the normalizer writes it.
        self._norm_lookup = {}
        for t in self.added_tokens:
            if t.normalized:
                content = self.normalizer.normalize_str(t.content) if self.normalizer is not None else t.content
                self._norm_lookup[content] = t
        self._norm_pattern = added_pattern([AddedToken(**{**t.__dict__, "content": c})
                                             for c, t in self._norm_lookup.items()])

    def add_special_tokens(self, tokens: list[str]) -> int:
        """Add special tokens (ids after the model's vocabulary unless the model has them); returns how many are new."""
        new = []
        for content in tokens:
            if content in self._added_by_content:
                continue
            i = self.model.token_to_id(content)
            if i is None:
                i = self.get_vocab_size()
            new.append(AddedToken(content, i, special=True))
            self._set_added(self.added_tokens + new[-1:])
        return len(new)

    def add_tokens(self, tokens) -> int:
        """Add tokens after construction (HuggingFace's ``add_tokens``): each a str (not special, matched after
        normalization) or an :class:`AddedToken` whose ``id`` is ignored.  A token the vocabulary already has
        keeps its id; a new one takes the next id after the model's vocabulary and the added tokens.
        Returns how many were added or changed."""
        model_size = len(self.model.get_vocab())
        top = max((t.id for t in self.added_tokens), default=None)
        next_id = model_size if top is None or (top < model_size and model_size) else top + 1
        current = list(self.added_tokens)
        by_content = {t.content: t for t in current}
        count = 0
        for token in tokens:
            if isinstance(token, str):
                token = AddedToken(token, -1, special=False, normalized=True)
            if not token.content:
                continue
            old = by_content.get(token.content)
            if old is not None and old == AddedToken(**{**token.__dict__, "id": old.id}):
                continue
            i = self.token_to_id(token.content)
            if i is None:
                i, next_id = next_id, next_id + 1
            new = AddedToken(**{**token.__dict__, "id": i})
            current = [t for t in current if t.content != token.content] + [new]
            by_content[token.content] = new
            count += 1
        self._set_added(current)
        self._cache.clear()
        return count

    def token_to_id(self, token: str) -> int | None:
        added = self._added_by_content.get(token)
        return added.id if added is not None else self.model.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        added = self._added_by_id.get(i)
        return added.content if added is not None else self.model.id_to_token(i)

    def get_vocab(self, with_added_tokens: bool = True) -> dict[str, int]:
        vocab = self.model.get_vocab()
        if with_added_tokens:
            vocab.update({t.content: t.id for t in self.added_tokens})
        return vocab

    def get_vocab_size(self, with_added_tokens: bool = True) -> int:
        return len(self.get_vocab(with_added_tokens))

    @property
    def cls_token_id(self) -> int | None:
        return self._special_id("[CLS]", "<s>")

    @property
    def sep_token_id(self) -> int | None:
        return self._special_id("[SEP]", "</s>")

    @property
    def pad_token_id(self) -> int | None:
        if self.padding is not None:
            return self.padding.pad_id
        return self._special_id("[PAD]", "<pad>")

    @property
    def mask_token_id(self) -> int | None:
        return self._special_id("[MASK]", "<mask>")

    @property
    def unk_token_id(self) -> int | None:
        return self.token_to_id(getattr(self.model, "unk_token", None) or "[UNK]")

    def _special_id(self, *names: str) -> int | None:
        for name in names:
            i = self.token_to_id(name)
            if i is not None:
                return i
        return None

    # ------------------------------------------------------------------ settings

    def enable_truncation(self, max_length: int, *, stride: int = 0, strategy: str = "longest_first",
                          direction: str = "right") -> None:
        processor = self.post_processor
        effective = max_length - (processor.num_special_tokens_to_add(False) if processor is not None else 0)
        if stride and stride >= effective:
            raise ScratchlmError(f"truncation stride {stride} must be smaller than the effective max_length "
                                 f"{effective} (max_length {max_length} less the special tokens)")
        self.truncation = Truncation(max_length, strategy, direction, stride)

    def no_truncation(self) -> None:
        self.truncation = None

    def enable_padding(self, *, length: int | None = None, direction: str = "right", pad_id: int | None = None,
                       pad_type_id: int = 0, pad_token: str | None = None,
                       pad_to_multiple_of: int | None = None) -> None:
        """Pad to ``length`` (``None``: to the longest encoding of each batch).  The pad token defaults to
        ``[PAD]`` / ``<pad>`` when the vocabulary has one, its id to that token's id."""
        self.padding = self._padding(length, direction, pad_id, pad_type_id, pad_token, pad_to_multiple_of)

    def _padding(self, length=None, direction="right", pad_id=None, pad_type_id=0, pad_token=None,
                 pad_to_multiple_of=None) -> Padding:
        if pad_token is None:
            has_pad = self.token_to_id("[PAD]") is not None or self.token_to_id("<pad>") is None
            pad_token = "[PAD]" if has_pad else "<pad>"
        if pad_id is None:
            pad_id = self.token_to_id(pad_token) or 0
        return Padding(length, pad_id, pad_type_id, pad_token, direction, pad_to_multiple_of)

    def no_padding(self) -> None:
        self.padding = None

    # ------------------------------------------------------------------ encoding

    def encode(self, text, pair=None, *, add_special_tokens: bool = True, is_pretokenized: bool = False) -> Encoding:
        """Tokenize ``text`` (and ``pair``): ids with special tokens by default, offsets into each text.

        With ``is_pretokenized=True`` the inputs are lists of words; ``word_ids`` then index those words
        and offsets are relative to each word, as in HuggingFace.
        """
        first = self._encode_sequence(text, 0, is_pretokenized)
        second = None if pair is None else self._encode_sequence(pair, 1, is_pretokenized)
        encoding = self._post_process(first, second, add_special_tokens, self.truncation)
        if self.padding is not None:
            self.padding.apply([encoding])
        return encoding

    def encode_batch(self, texts, pairs=None, *, add_special_tokens: bool = True,
                     is_pretokenized: bool = False) -> list[Encoding]:
        """``encode`` for each text (and pair); with padding enabled the batch is padded together.  Without
        ``pairs`` an item may itself be a pair, ``(text, pair)``, as in HuggingFace."""
        return self._encode_all(texts, pairs, add_special_tokens, is_pretokenized, self.truncation, self.padding)

    def _encode_all(self, texts, pairs, add_special_tokens: bool, is_pretokenized: bool,
                    truncation: Truncation | None, padding: Padding | None) -> list[Encoding]:
        if pairs is not None and len(pairs) != len(texts):
            raise ScratchlmError(f"encode_batch: {len(texts)} texts but {len(pairs)} pairs")
        out = []
        for k, text in enumerate(texts):
            pair = None if pairs is None else pairs[k]
            if pairs is None and _is_pair(text, is_pretokenized):  # HuggingFace's (text, pair) items
                text, pair = text
            first = self._encode_sequence(text, 0, is_pretokenized)
            second = None if pair is None else self._encode_sequence(pair, 1, is_pretokenized)
            out.append(self._post_process(first, second, add_special_tokens, truncation))
        if padding is not None:
            padding.apply(out)
        return out

    def __call__(self, text, text_pair=None, *, padding=False, truncation=None, max_length: int | None = None,
                 pad_to_multiple_of: int | None = None, return_tensors: str | None = None,
                 add_special_tokens: bool = True) -> dict:
        """Tokenize as a transformers tokenizer does: ``tok(texts, padding=True, truncation=True,
        max_length=N, return_tensors="np")`` -> ``{"input_ids", "token_type_ids", "attention_mask"}``.

        ``text`` is a str or a list of str; ``text_pair`` the second sequence(s) of pairs.  Padding and
        truncation are this call's only (transformers' rules: :func:`processors.call_settings`): the
        file's own settings are not used, so MiniLM's ``tokenizer.json``, which pads every text to 128,
        gives unpadded ids here unless ``padding=`` asks (``encode`` / ``encode_batch`` keep the file's
        settings).  ``truncation=True`` without ``max_length`` cuts at the file's truncation length
        (MiniLM's: 128; transformers takes ``model_max_length``, 512, from ``tokenizer_config.json``).
        ``return_tensors=None`` gives lists (a list per text for a batch, one list for a str);
        ``"np"`` gives int32 arrays [B, T] ([1, T] for a str), which need equal lengths (pad).
        """
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        pairs = None if text_pair is None else [text_pair] if isinstance(text_pair, str) else list(text_pair)
        cut, pad = call_settings(padding, truncation, max_length, pad_to_multiple_of,
                                 default_max_length=self.truncation.max_length if self.truncation else None,
                                 pad=self.padding or self._padding())
        encodings = self._encode_all(texts, pairs, add_special_tokens, False, cut, pad)
        if return_tensors is None:
            out = {"input_ids": [e.ids for e in encodings], "token_type_ids": [e.type_ids for e in encodings],
                   "attention_mask": [e.attention_mask for e in encodings]}
            return {k: v[0] for k, v in out.items()} if single else out
        if return_tensors != "np":
            raise ScratchlmError(f"return_tensors={return_tensors!r}: scratchlm's tokenizers give NumPy arrays "
                                 "('np'; jax.numpy.asarray takes them) or lists (None)")
        if len({len(e) for e in encodings}) > 1:
            raise ScratchlmError("return_tensors='np' needs texts of equal length: pass padding=True")
        arrays = encodings_to_arrays(encodings)
        return {k: arrays[k] for k in ("input_ids", "token_type_ids", "attention_mask")}

    def _post_process(self, first: Encoding, second: Encoding | None, add_special_tokens: bool,
                      truncation: Truncation | None) -> Encoding:
        processor = self.post_processor
        if truncation is not None:
            n_added = processor.num_special_tokens_to_add(second is not None) if processor and add_special_tokens else 0
            if truncation.max_length >= n_added:  # HuggingFace does not truncate when the specials alone overflow
                truncation.apply(first, second, truncation.max_length - n_added)
        # HuggingFace's Encoding::merge_with: each overflowing window of the first text with the second and
        # with each of its windows, then the first text with each window of the second.
        first_over, first.overflowing = first.overflowing, []
        second_over = [] if second is None else second.overflowing
        if second is not None:
            second.overflowing = []
        combos = []
        for a in first_over:
            combos.append((a, None if second is None else second.copy()))
            combos += [(a.copy(), b) for b in second_over]
        combos += [(first.copy(), b) for b in second_over]

        def process(a, b):
            return default_process(a, b) if processor is None else processor.process(a, b, add_special_tokens)

        encoding = process(first, second)
        encoding.overflowing = [process(a, b) for a, b in combos]
        return encoding

    def _encode_sequence(self, text, type_id: int, is_pretokenized: bool) -> Encoding:
        if is_pretokenized:
            if isinstance(text, str):
                raise ScratchlmError("is_pretokenized=True expects a list of words, got a str")
            words = list(text)
        else:
            if not isinstance(text, str):
                raise ScratchlmError(f"encode expects a str, got {type(text).__name__}")
            words = [text]
        for word in words:
            if not word.isascii():
                try:
                    word.encode("utf-8")
                except UnicodeEncodeError as err:  # HuggingFace's Rust strings cannot hold one either
                    raise ScratchlmError(f"encode: the text holds a lone surrogate {word[err.start]!r} at "
                                         f"character {err.start}: it is not valid Unicode") from None
        ids, tokens, offsets, word_ids = [], [], [], []
        word_index = 0
        for k, word in enumerate(words):
            fixed = k if is_pretokenized else None
            pieces = [(word, 0, None)] if self._raw_pattern is None else self._split_added(word, self._raw_pattern)
            for piece, base, added in pieces:
                if added is not None:
                    ids.append(added.id)
                    tokens.append(piece)
                    offsets.append((base, base + len(piece)))
                    word_ids.append(word_index if fixed is None else fixed)
                    word_index += 1
                else:
                    word_index = self._encode_piece(piece, base, word_index, fixed, ids, tokens, offsets, word_ids)
        return Encoding.from_tokens(ids, tokens, offsets, word_ids, type_id=type_id, sequence_id=type_id)

    def _split_added(self, text: str, pattern: regex.Pattern,
                     lookup: dict | None = None) -> list[tuple[str, int, AddedToken | None]]:
        """``text`` cut around the added tokens it holds: ``(piece, start, token or None)``."""
        pieces, cursor = [], 0
        lookup = self._added_by_content if lookup is None else lookup
        for m in pattern.finditer(text):
            if m.start() > cursor:
                pieces.append((text[cursor:m.start()], cursor, None))
            pieces.append((m.group(), m.start(), _which(m.group(), lookup)))
            cursor = m.end()
        if cursor < len(text) or not pieces:
            pieces.append((text[cursor:], cursor, None))
        return pieces

    def _encode_piece(self, text, base, word_index, fixed, ids, tokens, offsets, word_ids) -> int:
        """Normalize, pre-tokenize and tokenize one stretch of text free of raw added tokens, appending to the lists."""
        if self.normalizer is not None:
            normalized, alignment = self.normalizer.normalize(text)
        else:
            normalized, alignment = text, None
        pre = self.pre_tokenizer
        if pre is not None and pre.add_prefix_space and normalized and not normalized.startswith(" "):
            # The added space stands for the first character (HuggingFace aligns it there too).
            alignment = [0] + (alignment if alignment is not None else list(range(len(normalized))))
            normalized = " " + normalized
        if self._norm_pattern is not None:
            segments = self._split_added(normalized, self._norm_pattern, self._norm_lookup)
        else:
            segments = ((normalized, 0, None),)
        general = getattr(pre, "general", False)
        pattern = pre.pattern if pre is not None and not general else _WHOLE_TEXT
        cache, tokenize_word = self._cache, self._tokenize_word
        for segment, seg_start, added in segments:
            if added is not None:
                s, e = seg_start, seg_start + len(segment)
                ids.append(added.id)
                tokens.append(segment)  # the text matched, as HuggingFace writes it (normalized, with l/rstrip)
                offsets.append((base + s, base + e) if alignment is None
                               else (base + alignment[s], base + alignment[e - 1] + 1))
                word_ids.append(word_index if fixed is None else fixed)
                word_index += 1
                continue
            if general:
                word_index = self._encode_general(segment, seg_start, base, alignment, word_index, fixed, ids,
                                                  tokens, offsets, word_ids)
                continue
            # Whole-list comprehensions rather than a loop body per word: this is the hot path.
            matches = list(pattern.finditer(segment))
            hits = [cache.get(w) or tokenize_word(w) for w in [m.group() for m in matches]]
            starts = [m.start() + seg_start for m in matches]
            ids += [i for h in hits for i in h[0]]
            tokens += [t for h in hits for t in h[1]]
            if alignment is None:
                offsets += [(base + s + a, base + s + b) for h, s in zip(hits, starts) for a, b in h[2]]
            else:
                offsets += [(base + alignment[s + a], base + alignment[s + b - 1] + 1)
                            for h, s in zip(hits, starts) for a, b in h[2]]
            if fixed is None:
                word_ids += [k for k, h in enumerate(hits, start=word_index) for _ in h[0]]
            else:
                word_ids += [fixed] * sum(len(h[0]) for h in hits)
            word_index += len(hits)
        return word_index

    def _encode_general(self, segment, seg_start, base, alignment, word_index, fixed, ids, tokens, offsets,
                        word_ids) -> int:
        """A segment through a general pre-tokenizer (``split_pre_tokenizers``): its pieces carry their own
        alignment to the segment, which the normalizer's alignment maps on to the original text."""
        def original(j: int) -> int:  # segment position -> original character
            return base + (seg_start + j if alignment is None else alignment[seg_start + j])

        pieces = self.pre_tokenizer.pre_tokenize([(segment, list(range(len(segment))))],
                                                 at_origin=lambda j: original(j) == 0)
        cache, tokenize_word = self._cache, self._tokenize_word
        hits = [cache.get(word) or tokenize_word(word) for word, _ in pieces]
        ids += [i for h in hits for i in h[0]]
        tokens += [t for h in hits for t in h[1]]
        if alignment is None:  # segment position j is original character base + seg_start + j
            shift = base + seg_start
            offsets += [(shift + align[a], shift + align[b - 1] + 1)
                        for h, (_, align) in zip(hits, pieces) for a, b in h[2]]
        else:
            offsets += [(original(align[a]), original(align[b - 1]) + 1)
                        for h, (_, align) in zip(hits, pieces) for a, b in h[2]]
        if fixed is None:
            word_ids += [k for k, h in enumerate(hits, start=word_index) for _ in h[0]]
        else:
            word_ids += [fixed] * sum(len(h[0]) for h in hits)
        return word_index + len(hits)

    def _tokenize_word(self, word: str) -> tuple:
        """The model's tokens for one word, offsets in the word's characters; cached."""
        if self.pre_tokenizer is not None:
            model_input, char_of = self.pre_tokenizer.transform(word)
        else:
            model_input, char_of = word, None
        pieces = self.model.tokenize(model_input)
        ids = tuple(p[0] for p in pieces)
        tokens = tuple(p[1] for p in pieces)
        if char_of is None:
            offsets = tuple((p[2], p[3]) for p in pieces)
        else:
            offsets = tuple((char_of[p[2]], char_of[p[3] - 1] + 1) for p in pieces)
        hit = (ids, tokens, offsets)
        if len(self._cache) < CACHE_CAPACITY and not getattr(self.model, "dropout", None):  # dropout: random
            self._cache[word] = hit
        return hit

    # ------------------------------------------------------------------ decoding

    def decode(self, ids, *, skip_special_tokens: bool = True) -> str:
        tokens = []
        for i in ids:
            i = int(i)
            added = self._added_by_id.get(i)
            if added is not None and added.special and skip_special_tokens:
                continue
            token = self.id_to_token(i)
            if token is None:
                raise ScratchlmError(f"decode: id {i} is not in the vocabulary (size {self.get_vocab_size()})")
            tokens.append(token)
        return self.decoder.decode(tokens)

    def decode_batch(self, sequences, *, skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(ids, skip_special_tokens=skip_special_tokens) for ids in sequences]

    # ------------------------------------------------------------------ files

    def to_json(self) -> dict:
        """HuggingFace's ``tokenizer.json`` layout, each component writing its own entry."""
        def entry(component):
            return None if component is None else component.to_json()

        return {
            "version": "1.0",
            "truncation": entry(self.truncation),
            "padding": entry(self.padding),
            "added_tokens": [t.to_json() for t in self.added_tokens],
            "normalizer": entry(self.normalizer),
            "pre_tokenizer": entry(self.pre_tokenizer),
            "post_processor": entry(self.post_processor),
            "decoder": self.decoder.to_json(),
            "model": self.model.to_json(),
        }

    def save(self, path: str | Path) -> None:
        """Write a HuggingFace ``tokenizer.json`` (``tokenizers.Tokenizer.from_file`` reads it)."""
        Path(path).write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    def save_pretrained(self, folder: str | Path, *, model_max_length: int | None = None,
                        special_tokens: dict[str, str] | None = None) -> list[Path]:
        """Write the tokenizer files of a HuggingFace model folder (``tokenizer.json``,
        ``tokenizer_config.json``, ``special_tokens_map.json``, ``vocab.txt``), so transformers'
        ``AutoTokenizer.from_pretrained(folder)`` runs this pipeline (:mod:`scratchlm.tokenizers.hf_folder`);
        ``special_tokens`` adds roles (``{"pad_token": "<|endoftext|>"}``)."""
        return hf_folder.save_pretrained(folder, self, model_max_length=model_max_length,
                                         special_tokens=special_tokens)


_WHOLE_TEXT = regex.compile(r"(?s).+")


def _which(matched: str, lookup: dict):
    """The added token a match of the added-token pattern is (the match may hold the spaces l/rstrip took)."""
    token = lookup.get(matched) or lookup.get(matched.strip())
    if token is None:  # a token whose own content starts or ends with a space: the longest one inside the match
        token = max((t for c, t in lookup.items() if c in matched), key=lambda t: len(t.content))
    return token


def _is_pair(item, is_pretokenized: bool) -> bool:
    """A batch item that is a pair: a tuple of two texts (or of two word lists), or a list of two str."""
    if isinstance(item, tuple) and len(item) == 2:
        return True
    return not is_pretokenized and isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)
