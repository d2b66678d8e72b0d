"""From-scratch tokenizers (plain Python + NumPy) that match HuggingFace ``tokenizers`` token for token.

Usage (the API the models and fine-tuning code rely on)::

    from scratchlm import tokenizers

    tok = tokenizers.load(path)   # any HuggingFace tokenizer.json, e.g. corpora.minilm_path() / "tokenizer.json"
    tok.no_padding()            # MiniLM's file pads to 128 and truncates at 128, as HuggingFace would
    enc = tok.encode("Hello world", pair=None, add_special_tokens=True)
    enc.ids, enc.tokens, enc.offsets, enc.attention_mask, enc.type_ids, enc.word_ids

    batch = tok(["a text", "another"], padding=True, truncation=True, max_length=64, return_tensors="np")
    # transformers' call: {"input_ids", "token_type_ids", "attention_mask"} [B, T] int32; this call's
    # padding and truncation only (never the file's 128), lists with return_tensors=None

    tok.enable_truncation(64)                 # max_length, strategy="longest_first", direction="right"
    tok.enable_padding()                      # length=None: pad each batch to its longest member
    encs = tok.encode_batch(["a text", "another"], pairs=None)
    batch = tokenizers.encodings_to_arrays(encs)   # {"input_ids", "attention_mask", "token_type_ids"}: [B, T] int32

    tok.token_to_id("[MASK]"), tok.id_to_token(103), tok.get_vocab_size()
    tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.mask_token_id, tok.unk_token_id
    tok.decode(ids, skip_special_tokens=True); tok.save("tokenizer.json")
    tok.save_pretrained(folder)   # + tokenizer_config.json, special_tokens_map.json, vocab.txt: AutoTokenizer reads it

Word-level models use ``Vocab``::

    vocab = tokenizers.Vocab.from_corpus(sentences, min_count=5, max_size=20000)   # lists of words
    vocab.encode(["the", "cat"]), vocab.decode(ids), vocab.unk_id, len(vocab), vocab.save(p), Vocab.load(p)

Pairs are ``[CLS] A [SEP] B [SEP]`` with ``token_type_ids`` 0 then 1 (the file's post-processor).
Offsets are character spans in the original text; special and padding tokens have ``(0, 0)``.

Training (``pipelines``)::

    from scratchlm.tokenizers import pipelines
    tok = pipelines.train_bert_wordpiece(texts, 8000, special_tokens=pipelines.BERT_SPECIAL_TOKENS)
    tok = pipelines.train_bpe(texts, 8000)          # GPT-2's byte-level BPE
    tok = pipelines.train_unigram(texts, 8000)      # SentencePiece's Unigram (NFKC, "▁" spaces)

Modules by role, in the order text flows through them: ``added_tokens`` (strings matched before
anything else), ``normalizers`` (character-wise: BERT's cleaning, accents, CJK, NFD; Unicode
normalization with HuggingFace's alignment) and ``text_normalizers`` (NFC/NFKC, Strip, Replace,
Prepend), ``pre_tokenizers`` (one regex: BERT's punctuation split, GPT-2's byte-level split) and
``split_pre_tokenizers`` (Metaspace, Split and its behaviours, Digits, Punctuation, Sequence),
``models`` (encode one word: ``bpe`` by merge rank, ``wordpiece`` by greedy longest match,
``unigram`` by Viterbi, ``wordlevel`` by look-up), ``processors`` (special tokens, truncation,
padding), ``decoders`` (tokens back to text), ``encoding`` (the result, its position helpers and
arrays), ``tokenizer`` (the pipeline); ``trainers`` (one merge learner, the score as its parameter),
``unigram_trainer`` (EM and pruning), ``pipelines`` (the BERT WordPiece, byte-level BPE and Unigram
tokenizers, built or trained), ``hf_json`` (the file format: a registry of component types),
``vocab`` (word-level vocabulary).
"""

import importlib

from scratchlm.errors import ScratchlmError

# The names above, each imported from its module on first use (PEP 562): Word2Vec and GloVe import only
# ``tokenizers.vocab``, and the pipeline's modules (regular expressions, the JSON registry) would cost every
# such command 30-60 ms at start-up.
_HOME = {"Encoding": "encoding", "encodings_to_arrays": "encoding", "load": "hf_json", "AddedToken": "tokenizer",
         "Tokenizer": "tokenizer", "Vocab": "vocab"}

__all__ = ["AddedToken", "Encoding", "ScratchlmError", "Tokenizer", "Vocab", "encodings_to_arrays", "load"]


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'scratchlm.tokenizers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"scratchlm.tokenizers.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
