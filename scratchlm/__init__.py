"""scratchlm: from-scratch, pure-functional JAX language models, each beside its equation.

Params are plain pytrees, randomness is an explicit PRNG key, and every model is a pair of pure
functions ``init(key, config) -> params`` and ``apply(params, inputs, ...)``.  Submodules are
imported on demand (``import scratchlm.nn.gru``) so that the tokenizers stay usable without JAX.
"""

__version__ = "0.1.0"

from scratchlm.errors import ScratchlmError  # noqa: E402  (re-exported)

__all__ = ["ScratchlmError", "__version__"]
