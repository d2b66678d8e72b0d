"""Word2Vec's settings and the defaults derived from them; plain Python (no JAX), so that the command's
flags can read their defaults from :class:`Word2VecConfig` while ``scratchlm --help`` stays instant."""

from __future__ import annotations

import math
from dataclasses import dataclass

from scratchlm import checks
from scratchlm.errors import ScratchlmError


@dataclass(frozen=True)
class Word2VecConfig:
    """The settings of a Word2Vec run; ``scratchlm word2vec``'s flags read their defaults from here.

    ``batch_size`` and ``noise_share`` are the library's defaults; the command picks its own per
    device (:func:`default_cpu_batch`, :func:`default_noise_share`, on an accelerator
    :func:`scratchlm.embeddings.word2vec.model.accelerator_batch`), measured in ``benchmarks/RESULTS.md``.
    """

    model: str = "skipgram"  # or "cbow"
    dim: int = 100  # the C tool's and gensim's default size
    window: int = 5  # maximum reduced window (gensim default)
    negative: int = 5  # K noise words (Mikolov et al. 2013b: 5-20 for small data)
    min_count: int = 5  # gensim default
    sample: float = 1e-3  # subsampling threshold t (the C tool's and gensim's default)
    epochs: int = 5  # gensim default
    lr: float = 0.025  # SGD's starting learning rate (gensim's alpha, the C tool's -alpha): gensim's default
    min_lr: float = 1e-4  # the rate the linear decay ends at (gensim's min_alpha): gensim's default
    batch_size: int = 512  # centre words per step (CPU: moderate; GPU: 16k+ with normalize_duplicates)
    steps_per_call: int = 256  # jitted steps per dispatch
    normalize_duplicates: bool = False  # divide a row's summed update by sqrt(#occurrences in the step)
    # CBOW: a step's centres come in runs of this many consecutive words (gcd with batch_size), whose
    # windows share one gathered block of input rows (see cbow_block_update); 1 = fully spread centres
    run_length: int = 32
    # this many centres share one set of K noise words (skip-gram: of one window group, dealt at random;
    # CBOW: one position of several runs); 1 = K draws per centre
    noise_share: int = 1

    def __post_init__(self):
        if self.model not in ("skipgram", "cbow"):
            raise ScratchlmError(f"model must be 'skipgram' or 'cbow', got {self.model!r}")
        for name in ("dim", "window", "negative", "min_count", "epochs", "batch_size", "steps_per_call", "run_length",
                     "noise_share"):
            checks.at_least(name, getattr(self, name), 1)
        if self.model == "cbow" and self.batch_size % self.noise_share:
            raise ScratchlmError(f"CBOW: noise_share={self.noise_share} must divide batch_size={self.batch_size}")
        checks.at_least("sample", self.sample, 0)
        checks.positive("lr", self.lr)
        checks.at_least("min_lr", self.min_lr, 0)
        if self.min_lr > self.lr:
            raise ScratchlmError(f"--min-lr ({self.min_lr}) must not exceed --lr ({self.lr}): the rate decays")


# gensim's Word2Vec parameter -> this config's field, where the names differ (window, negative, min_count,
# sample and epochs are the same in both); sg's values are 1 (skip-gram) and 0 (CBOW).
GENSIM_NAMES = {"vector_size": "dim", "sg": "model", "alpha": "lr", "min_alpha": "min_lr", "size": "dim",
                "iter": "epochs"}  # size and iter: gensim 3's names


def from_gensim(**gensim) -> Word2VecConfig:
    """A :class:`Word2VecConfig` from gensim's parameter names (``Word2Vec(vector_size=100, window=5, sg=1,
    negative=5, min_count=5, alpha=0.025, ...)``), mapped as :data:`GENSIM_NAMES` says; also
    ``Word2VecConfig.from_gensim``.  Parameters scratchlm has no counterpart for are refused, except those
    that change nothing here: ``hs=0`` (negative sampling is the only objective), ``workers`` (threads),
    ``seed`` (scratchlm takes a PRNG key where it trains)."""
    fields = {}
    for name, value in gensim.items():
        if name in ("workers", "seed") or (name == "hs" and value == 0):
            continue
        if name == "hs":
            raise ScratchlmError("hs=1: hierarchical softmax is not implemented; scratchlm trains with negative "
                                 "sampling (negative=K)")
        field = GENSIM_NAMES.get(name, name)
        if field == "model":
            if value not in (0, 1):
                raise ScratchlmError(f"sg must be 1 (skip-gram) or 0 (CBOW), got {value!r}")
            value = "skipgram" if value == 1 else "cbow"
        if field not in Word2VecConfig.__dataclass_fields__:
            known = sorted([*GENSIM_NAMES, "window", "negative", "min_count", "sample", "epochs", "hs", "workers",
                            "seed"])
            raise ScratchlmError(f"from_gensim: gensim's {name!r} has no counterpart in Word2VecConfig (known: "
                                 f"{', '.join(known)})")
        fields[field] = value
    return Word2VecConfig(**fields)


def _refuse_gensim_names(init):
    """``Word2VecConfig(vector_size=...)`` is a :class:`ScratchlmError` that names scratchlm's field, not a bare
    ``TypeError`` (the dataclass's own ``__init__`` runs otherwise, unchanged)."""

    def __init__(self, *args, **kwargs):
        named = [k for k in kwargs if k in GENSIM_NAMES]
        if named:
            said = ", ".join(f"{k} -> {GENSIM_NAMES[k]}" + (" ('skipgram' or 'cbow')" if k == "sg" else "")
                             for k in named)
            raise ScratchlmError(f"Word2VecConfig has no field {', '.join(named)} (gensim's name): {said}; or "
                                 "Word2VecConfig.from_gensim(...) takes gensim's names")
        init(self, *args, **kwargs)

    __init__.__doc__, __init__.__wrapped__ = init.__doc__, init
    return __init__


Word2VecConfig.__init__ = _refuse_gensim_names(Word2VecConfig.__init__)
Word2VecConfig.from_gensim = staticmethod(from_gensim)


def cbow_run_length(config: Word2VecConfig) -> int:
    """Consecutive centres per run in a CBOW step: ``gcd(batch_size, run_length)``, so runs tile the batch."""
    return math.gcd(config.batch_size, config.run_length)


def default_cpu_batch(model: str) -> int:
    """Centre words per step on a CPU unless ``--batch-size`` says otherwise: 384 skip-gram, 1,024 CBOW.

    A step's centres are updated from the same parameters, which costs skip-gram analogy accuracy as
    the batch grows (benchmarks/RESULTS.md, 2 CPU cores, 15 epochs, 3 seeds: .027-.030 at 512,
    .031-.034 at 384, against gensim's .033-.038).  Since one threefry call draws a step's random
    words, 384 costs about 2 % more time than 512 (19.5 against 19.05 s), not the 10-20 % it did.
    """
    return 1024 if model == "cbow" else 384


def default_noise_share(model: str, batch: int, accelerator: bool) -> int:
    """Centres sharing one set of noise words unless ``--noise-share`` says otherwise.

    On a CPU (benchmarks/RESULTS.md, 2 seeds each, scores within seed noise): sets of 8 skip-gram
    centres, 1.3x a step; sets of 32 CBOW centres taken across runs (a divisor of the batch), 1.7x the
    whole run.  Not measured on an accelerator, which keeps per-centre draws.
    """
    if accelerator:
        return 1
    return math.gcd(32, batch) if model == "cbow" else 8
