"""What every tokenizer model shares: a vocabulary ``token -> id`` and its inverse, with HuggingFace's lookups."""

from __future__ import annotations


class Model:
    """A vocabulary and its inverse; subclasses add ``tokenize(word)`` and ``to_json()``."""

    def __init__(self, vocab: dict[str, int]):
        self.vocab = dict(vocab)
        self.inverse = {i: t for t, i in self.vocab.items()}

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token)

    def id_to_token(self, i: int) -> str | None:
        return self.inverse.get(i)

    def get_vocab(self) -> dict[str, int]:
        return dict(self.vocab)
