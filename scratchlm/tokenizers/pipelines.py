r"""Whole tokenizers, built or trained: the BERT WordPiece pipeline and the (byte-level) BPE pipeline.

* :func:`bert_wordpiece` wraps a WordPiece model in BERT's normalizer, pre-tokenizer, decoder and
  ``[CLS] A [SEP] B [SEP]`` template (Devlin et al. 2019); :func:`bert_wordpiece_from_vocab` reads
  BERT's ``vocab.txt``; :func:`train_bert_wordpiece` learns the vocabulary first.
* :func:`train_bpe` learns a BPE model under GPT-2's byte-level pre-tokenizer (Radford et al. 2019) or
  HuggingFace's ``Whitespace`` one.
* :func:`train_unigram` learns a Unigram model (Kudo 2018) under SentencePiece's NFKC and ``▁`` spaces
  (Kudo & Richardson 2018), HuggingFace ``UnigramTrainer``'s defaults.

The merge trainers count the pre-tokenized words of the texts, then call
:func:`scratchlm.tokenizers.trainers.learn_merges`; the Unigram one calls
:func:`scratchlm.tokenizers.unigram_trainer.train_unigram_model`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from scratchlm.errors import ScratchlmError
from scratchlm.tokenizers import trainers
from scratchlm.tokenizers.decoders import ByteLevelDecoder, MetaspaceDecoder, WordPieceDecoder
from scratchlm.tokenizers.models import BPE, WordPiece
from scratchlm.tokenizers.normalizers import BertNormalizer
from scratchlm.tokenizers.pre_tokenizers import BertPreTokenizer, ByteLevel, Whitespace, bytes_to_unicode
from scratchlm.tokenizers.processors import TemplateProcessing
from scratchlm.tokenizers.split_pre_tokenizers import Metaspace
from scratchlm.tokenizers.text_normalizers import NFC
from scratchlm.tokenizers.tokenizer import AddedToken, Tokenizer
from scratchlm.tokenizers.unigram_trainer import train_unigram_model

BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def bert_wordpiece(model: WordPiece, *, lowercase: bool = True, special_tokens: Iterable[str] = ()) -> Tokenizer:
    """A :class:`~scratchlm.tokenizers.Tokenizer` around ``model`` with BERT's normalizer, pre-tokenizer,
    decoder and, when the vocabulary has ``[CLS]`` and ``[SEP]``, BERT's ``[CLS] A [SEP] B [SEP]``."""
    vocab = model.vocab
    post = None
    if "[CLS]" in vocab and "[SEP]" in vocab:
        post = TemplateProcessing.bert("[CLS]", vocab["[CLS]"], "[SEP]", vocab["[SEP]"])
    added = [AddedToken(t, vocab[t], special=True) for t in special_tokens if t in vocab]
    return Tokenizer(model, normalizer=BertNormalizer(lowercase=lowercase), pre_tokenizer=BertPreTokenizer(),
                     post_processor=post, decoder=WordPieceDecoder(), added_tokens=added)


def bert_wordpiece_from_vocab(path: str | Path, *, lowercase: bool = True) -> Tokenizer:
    """BERT's tokenizer from its ``vocab.txt`` (what ``transformers.BertTokenizerFast(vocab_file=...)`` builds)."""
    return bert_wordpiece(WordPiece.from_vocab_file(path), lowercase=lowercase, special_tokens=BERT_SPECIAL_TOKENS)


def train_bert_wordpiece(texts: Iterable[str], vocab_size: int, *, special_tokens: Iterable[str] = (),
                         lowercase: bool = True, min_frequency: int = 0, limit_alphabet: int | None = None,
                         score: str = "frequency", unk_token: str = "[UNK]") -> Tokenizer:
    """Train a BERT-style WordPiece tokenizer on ``texts``; returns a :class:`~scratchlm.tokenizers.Tokenizer`.

    BERT's pipeline (:func:`bert_wordpiece`); the vocabulary is learnt by
    :func:`~scratchlm.tokenizers.trainers.learn_merges` with ``##`` continuations and the score named by
    ``score`` (``"frequency"``, HuggingFace ``WordPieceTrainer``'s rule, or ``"likelihood"``, the WordPiece
    paper's), HuggingFace's defaults otherwise (no special tokens: pass ``special_tokens=BERT_SPECIAL_TOKENS``
    for a BERT vocabulary; without ``[UNK]`` a word with an unseen character cannot be encoded).
    """
    if score not in trainers.SCORES:
        raise ScratchlmError(f"score must be one of {', '.join(trainers.SCORES)}, got {score!r}")
    special_tokens = list(dict.fromkeys(special_tokens))
    normalizer, pattern = BertNormalizer(lowercase=lowercase), BertPreTokenizer.pattern
    words: Counter = Counter()
    for text in texts:
        words.update(pattern.findall(normalizer.normalize_str(text)))
    id_to_token, _ = trainers.learn_merges(dict(words), vocab_size, score=trainers.SCORES[score],
                                           special_tokens=special_tokens, limit_alphabet=limit_alphabet,
                                           min_frequency=min_frequency, continuing_subword_prefix="##")
    model = WordPiece({t: i for i, t in enumerate(id_to_token)}, unk_token=unk_token)
    return bert_wordpiece(model, lowercase=lowercase, special_tokens=special_tokens)


def train_bpe(texts: Iterable[str], vocab_size: int, *, byte_level: bool = True, special_tokens: Iterable[str] = (),
              min_frequency: int = 0, limit_alphabet: int | None = None,
              max_token_length: int | None = None) -> Tokenizer:
    r"""Train a BPE tokenizer on ``texts``; returns a :class:`~scratchlm.tokenizers.Tokenizer`.

    ``byte_level=True``: GPT-2's byte-level pre-tokenizer (no prefix space, so ``decode(encode(s)) == s``)
    with all 256 byte symbols in the alphabet, as HuggingFace's ``ByteLevelBPETokenizer`` trains.
    Otherwise words split by ``Whitespace`` (``\w+|[^\w\s]+``), characters as the alphabet, no unknown token.
    Other settings are HuggingFace ``BpeTrainer``'s defaults (``max_token_length``: no limit).
    """
    special_tokens = list(dict.fromkeys(special_tokens))
    if byte_level:
        pre = ByteLevel(add_prefix_space=False)
        alphabet = list(bytes_to_unicode().values())
        decoder = ByteLevelDecoder()
    else:
        pre, alphabet, decoder = Whitespace(), [], None
    words: Counter = Counter()
    for text in texts:
        words.update(pre.pattern.findall(text))
    word_counts: Counter = Counter()
    for word, n in words.items():
        word_counts[pre.transform(word)[0]] += n
    id_to_token, merges = trainers.learn_merges(word_counts, vocab_size, special_tokens=special_tokens,
                                                initial_alphabet=alphabet, limit_alphabet=limit_alphabet,
                                                min_frequency=min_frequency, max_token_length=max_token_length)
    vocab = {t: i for i, t in enumerate(id_to_token)}
    added = [AddedToken(t, vocab[t], special=True) for t in special_tokens]
    return Tokenizer(BPE(vocab, merges), pre_tokenizer=pre, decoder=decoder, added_tokens=added)


def train_unigram(texts: Iterable[str], vocab_size: int, *, special_tokens: Iterable[str] = ("<unk>",),
                  unk_token: str | None = "<unk>", shrinking_factor: float = 0.75, n_sub_iterations: int = 2,
                  max_piece_length: int = 16, seed_size: int = 1_000_000) -> Tokenizer:
    """Train a SentencePiece-style Unigram tokenizer on ``texts``; returns a :class:`~scratchlm.tokenizers.Tokenizer`.

    NFKC, then ``Metaspace`` (spaces become ``▁``, which starts every word, one put before the text), the
    Unigram model learnt by :func:`~scratchlm.tokenizers.unigram_trainer.train_unigram_model` with
    HuggingFace ``UnigramTrainer``'s settings; the special tokens first (ids 0, 1, ...), the unknown token
    ``<unk>`` at id 0 unless ``special_tokens`` places it (``unk_token=None``: no unknown token, and an
    unseen character is then an error when encoding, as in HuggingFace).
    """
    special_tokens = list(dict.fromkeys(special_tokens))
    normalizer, pre = NFC(compatibility=True), Metaspace()
    words: Counter = Counter()
    for text in texts:
        normalized, _ = normalizer.normalize(text)
        words.update(w for w, _ in pre.pre_tokenize([(normalized, list(range(len(normalized))))]))
    model = train_unigram_model(words, vocab_size, special_tokens=special_tokens, unk_token=unk_token,
                                shrinking_factor=shrinking_factor, n_sub_iterations=n_sub_iterations,
                                max_piece_length=max_piece_length, seed_size=seed_size)
    specials = special_tokens if unk_token is None or unk_token in special_tokens else [unk_token, *special_tokens]
    added = [AddedToken(t, model.vocab[t], special=True) for t in specials]
    return Tokenizer(model, normalizer=normalizer, pre_tokenizer=pre, decoder=MetaspaceDecoder(),
                     added_tokens=added)
