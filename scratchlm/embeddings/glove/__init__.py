r"""GloVe: global vectors from weighted least squares on log co-occurrences (Pennington et al. 2014).

.. math::  J = \sum_{i,j:\,X_{ij}>0} f(X_{ij})\,\bigl(w_i^\top \tilde w_j + b_i + \tilde b_j - \log X_{ij}\bigr)^2

Read in this order:

- :mod:`~scratchlm.embeddings.glove.cooccurrence`: :math:`X_{ij} = \sum 1/d` over a window, streamed and
  memory-bounded (the C tools ``vocab_count`` and ``cooccur``), on one host or share by share on several;
- :mod:`~scratchlm.embeddings.glove.objective`: the paper's equations for one entry: :math:`f` (eq. 9),
  the residual, :math:`J` (eq. 8) and its closed-form gradient;
- :mod:`~scratchlm.embeddings.glove.kernels`: their fast form: minibatch AdaGrad steps (as ``glove.c``)
  that sum the per-entry gradients per row, densely or over the touched rows only;
- :mod:`~scratchlm.embeddings.glove.sharded`: the row step with the tables split over a device mesh;
- :mod:`~scratchlm.embeddings.glove.config`: :class:`~scratchlm.embeddings.glove.config.GloveConfig`,
  every default once.

The epochs, checkpoints and resume are :mod:`scratchlm.training.glove` (training sits above embeddings).
"""
