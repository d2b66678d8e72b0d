"""Tokenizer models: each turns one pre-tokenized word into tokens (``tokenize(word)``).

``bpe.BPE`` applies ranked merges; ``wordpiece.WordPiece`` takes the longest vocabulary match first;
``unigram.Unigram`` takes the segmentation of highest unigram likelihood (Viterbi); ``wordlevel.WordLevel``
looks the whole word up.
"""

from scratchlm.tokenizers.models.bpe import BPE
from scratchlm.tokenizers.models.unigram import Unigram
from scratchlm.tokenizers.models.wordlevel import WordLevel
from scratchlm.tokenizers.models.wordpiece import WordPiece

__all__ = ["BPE", "Unigram", "WordLevel", "WordPiece"]
