"""Tokenizer models: each turns one pre-tokenized word into tokens (``tokenize(word)``).

``bpe.BPE`` applies ranked merges; ``wordpiece.WordPiece`` takes the longest vocabulary match first.
"""

from scratchlm.tokenizers.models.bpe import BPE
from scratchlm.tokenizers.models.wordpiece import WordPiece

__all__ = ["BPE", "WordPiece"]
