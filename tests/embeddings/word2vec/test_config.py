"""scratchlm/embeddings/word2vec/config.py: gensim's parameter names, mapped by ``from_gensim`` and named in the
error the config itself gives for them (issue 24, point 4)."""

from __future__ import annotations

import inspect

import pytest

from scratchlm.embeddings.word2vec.config import GENSIM_NAMES, Word2VecConfig, from_gensim
from scratchlm.errors import ScratchlmError


def test_from_gensim_maps_every_name_that_differs():
    config = Word2VecConfig.from_gensim(vector_size=50, window=3, sg=0, negative=7, min_count=2, sample=1e-4,
                                        alpha=0.05, min_alpha=0.001, epochs=3, hs=0, workers=4, seed=1)
    assert config == Word2VecConfig(model="cbow", dim=50, window=3, negative=7, min_count=2, sample=1e-4, lr=0.05,
                                    min_lr=0.001, epochs=3)
    assert from_gensim(sg=1).model == "skipgram" and from_gensim(size=8, iter=2) == Word2VecConfig(dim=8, epochs=2)


def test_the_names_are_gensims_own():
    """Every gensim 4 name mapped is a parameter of gensim's Word2Vec, and every other field name scratchlm shares
    with gensim means the same there (their defaults agree: gensim's defaults are scratchlm's, config.py says)."""
    from gensim.models import Word2Vec

    params = inspect.signature(Word2Vec.__init__).parameters
    for name in set(GENSIM_NAMES) - {"size", "iter"}:  # gensim 3's names, renamed in gensim 4
        assert name in params, name
    mapped = from_gensim(**{name: params[name].default for name in ("vector_size", "window", "negative", "min_count",
                                                                     "sample", "alpha", "min_alpha", "epochs", "sg")})
    assert mapped == Word2VecConfig(model="cbow")  # gensim's default sg=0 is CBOW; every other default agrees


@pytest.mark.parametrize("name, value, field", [("vector_size", 50, "dim"), ("sg", 1, "model"), ("alpha", 0.1, "lr"),
                                                ("min_alpha", 0.0, "min_lr")])
def test_a_gensim_name_given_to_the_config_names_scratchlms_field(name, value, field):
    with pytest.raises(ScratchlmError, match=rf"no field {name} \(gensim's name\): {name} -> {field}.*from_gensim"):
        Word2VecConfig(**{name: value})


def test_what_has_no_counterpart_is_refused():
    with pytest.raises(ScratchlmError, match="hierarchical softmax is not implemented"):
        from_gensim(hs=1)
    with pytest.raises(ScratchlmError, match="'cbow_mean' has no counterpart"):
        from_gensim(cbow_mean=1)
    with pytest.raises(ScratchlmError, match="sg must be 1"):
        from_gensim(sg=2)
    with pytest.raises(TypeError):  # a name that is neither scratchlm's nor gensim's: Python's own error
        Word2VecConfig(dimension=3)
