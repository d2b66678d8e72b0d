"""GloVe's settings: one frozen dataclass, the single source of every default (the command's flags read them)."""

from __future__ import annotations

from dataclasses import dataclass

from scratchlm import checks
from scratchlm.errors import ScratchlmError


@dataclass(frozen=True)
class GloveConfig:
    dim: int = 100  # the paper's Fig. 4 sweeps 50..300; 100 is glove.c's demo.sh
    # f's cutoff (eq. 9): 10 as glove.c's demo.sh, the tool's own default for a small corpus.  The paper's
    # 100 (§4.2) was chosen for corpora of billions of tokens; on a corpus of a few million tokens most
    # X_ij fall far below 100, f(X_ij) is tiny, and the vectors are left barely trained.
    x_max: float = 10.0
    alpha: float = 0.75  # Pennington et al. 2014, §4.2: "α = 3/4 gives a modest improvement over α = 1"
    lr: float = 0.05  # AdaGrad's η: ibid., §4.2 "initial learning rate of 0.05"; glove.c -eta 0.05
    epochs: int = 50  # ibid., §4.2: 50 iterations for vectors smaller than 300 dimensions
    # Non-zeros per minibatch (glove.c updates after every single entry).  On the Wikipedia sample
    # (3.24M non-zeros, 8,853 words) B = 16,384 scores as glove.c's loop does on the same counts;
    # B = 65,536 is 15-25% faster per epoch but loses about .002 of analogy accuracy
    # (benchmarks/glove.py has the seeds)
    batch_size: int = 16384
    update: str = "auto"  # "dense" | "rows" | "auto" (dense when V <= batch_size): same arithmetic
    # AdaGrad's accumulator grows by the square of the minibatch's summed gradient ("minibatch") or
    # by the squares of each entry's gradient ("entry", as glove.c's per-entry steps grow it): the
    # same scores on the Wikipedia sample within seed noise; "entry" is 30-60% slower per epoch
    accumulate: str = "minibatch"
    output: str = "sum"  # "sum": W + W̃ (glove.c -model 2, the paper's §4.2 choice); "word": W only

    def __post_init__(self):
        checks.at_least("dim", self.dim, 1)
        checks.at_least("epochs", self.epochs, 1)
        checks.at_least("batch_size", self.batch_size, 1)
        checks.positive("x_max", self.x_max)
        checks.at_least("alpha", self.alpha, 0)
        checks.positive("lr", self.lr)
        if self.update not in ("auto", "dense", "rows"):
            raise ScratchlmError(f"GloveConfig.update must be 'auto', 'dense' or 'rows', got {self.update!r}")
        if self.accumulate not in ("entry", "minibatch"):
            raise ScratchlmError(f"GloveConfig.accumulate must be 'entry' or 'minibatch', got {self.accumulate!r}")
        if self.output not in ("sum", "word"):
            raise ScratchlmError(f"GloveConfig.output must be 'sum' (W + W̃) or 'word' (W only), got {self.output!r}")
