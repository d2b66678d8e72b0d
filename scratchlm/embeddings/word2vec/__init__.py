r"""Word2Vec: skip-gram and CBOW with negative sampling (Mikolov et al. 2013a, 2013b), as the C tool trains them.

The package, equations first: :mod:`~scratchlm.embeddings.word2vec.objective` (the loss of one
example and its closed-form gradient, as the papers write them), :mod:`~scratchlm.embeddings.word2vec.kernels`
(the batched sparse updates that train, each tested equal to ``jax.vmap`` of the objective),
:mod:`~scratchlm.embeddings.word2vec.sampling` (vocabulary, subsampling, noise, windows),
:mod:`~scratchlm.embeddings.word2vec.config` (:class:`~scratchlm.embeddings.word2vec.config.Word2VecConfig`),
:mod:`~scratchlm.embeddings.word2vec.model` (the tables and the word vectors) and
:mod:`~scratchlm.embeddings.word2vec.sharded` (the row-sharded step on a device mesh).  The training
recipe (epochs, dispatches, checkpoints and resume, the multi-host corpus) is
:mod:`scratchlm.training.word2vec`.

Two tables: input vectors ``v`` [V, D] (the word vectors kept at the end) and output vectors ``u``
[V, D], initialised as the C tool does: ``v`` uniform in :math:`\pm 0.5/D`, ``u`` zero.  One pair
(input word ``c``, output word ``o``) with ``K`` noise words :math:`w_k \sim P_n` costs

.. math::  \ell = -\log\sigma(u_o^\top v_c) - \sum_{k=1}^{K} \log\sigma(-u_{w_k}^\top v_c)

and plain SGD with a rate decaying linearly from ``lr`` to ``min_lr`` (gensim's ``alpha``, ``min_alpha``) over
all words of all epochs.  What follows the C tool / gensim, and where we choose otherwise:

- **Pair orientation (skip-gram).** The C tool, for a centre word and a context word, trains the
  *context* word's input vector against the *centre* word's output vector and its noise words (the
  paper's pair, swapped).  We do the same: :math:`v_c` is the context word, :math:`u_o` the centre.
- **Negatives.** The C tool draws ``K`` noise words per (centre, context) pair.  We draw ``K`` per
  centre word and share them across that centre's context words: each pair still sees ``K`` independent
  draws from :math:`P_n` (the expected update is unchanged), and the output rows are gathered once per
  centre instead of once per pair (2·window times fewer output-row gathers and scatters).  A noise word
  equal to the target is skipped, as in the C tool.  With ``noise_share`` S > 1 (the command's CPU
  default, 8), S centres of one window group, dealt at random, share one set of ``K`` draws
  (:func:`~scratchlm.embeddings.word2vec.kernels.skipgram_shared_update`): the expectation is still
  unchanged and each pair still sees ``K`` draws from :math:`P_n`, while the noise rows are gathered and
  scattered once per set and scored by one [S·J, D]·[D, K] product.  On the 2 CPU cores a step is 1.3x
  faster at S = 8 and the scores stay within seed noise (``benchmarks/RESULTS.md``).  CBOW takes the
  same option (:func:`~scratchlm.embeddings.word2vec.kernels.cbow_block_update`), its sets taken across
  the step's runs so that a set's centres come from unrelated sentences; at S = 32 (the command's CPU
  default for CBOW) a whole CPU run is 1.7x faster and scores as per-centre draws in both seeds tried.
  Sets of *consecutive* centres, whose mean contexts nearly coincide, cost .009 of analogy accuracy at S
  = 32.
- **CBOW** averages the context vectors, :math:`h = \frac{1}{|C|}\sum_{j\in C} v_j`, and (as the C
  tool and gensim do) adds the full error :math:`-\alpha\,\partial\ell/\partial h` to *every*
  context vector rather than the :math:`1/|C|` share the exact gradient would give.
- **Batching.** gensim applies each pair's update at once (Hogwild across threads).  We compute
  ``batch_size`` centre words' updates from the same parameters and apply them by scatter-add of the
  gradient rows (never a dense [V, D] gradient).  The centres of one step are spread evenly over the
  epoch (positions ``t, t+S, t+2S, …``) so that one step's rows come from unrelated sentences.  A word
  occurring ``m`` times in one step receives the sum of its ``m`` row updates, as sequential SGD would
  apply them (without the saturation of σ in between).  At ``batch_size`` 384 (skip-gram) and 1024
  (CBOW), the command's CPU defaults, this matches gensim's quality on the Wikipedia sample
  (``benchmarks/word2vec.py``, 15 epochs; 2026-11-23 on the 2 CPU cores, the CPU default noise sets:
  skip-gram 19.5 and 21.2 s, compilation included, against gensim's 21.7 and 24.5 s with ``workers=2``
  in the same runs, 1.11-1.15x its words/s, analogy 0.031 (seeds 0-2: 0.031-0.034) / gensim 0.037-0.038,
  WordSim-353 0.474 / 0.43, SimLex-999 0.226 / 0.21; at 512 skip-gram analogy falls to 0.027-0.030; CBOW
  9.2 s against 8.3 s, 0.90x, scores at or above gensim's).  The small batched products of a step, not
  its gathers and scatters, take most of its time on XLA:CPU.  For the much larger batches an
  accelerator wants, ``normalize_duplicates=True`` divides each row's summed update by :math:`\sqrt m`,
  damping the frequent words' rows that large batches hit many times; a large batch also needs a corpus
  large enough to leave many steps an epoch
  (:func:`~scratchlm.embeddings.word2vec.model.accelerator_batch`).  On an H100 (2026-11-23), the sample
  repeated 100 times: skip-gram 29.8 M words/s at B = 16,384, CBOW 47.2 M, scores as B = 512.
- **CBOW in runs.** A CBOW step takes its centres in runs of ``run_length`` consecutive words (the runs
  spread evenly over the epoch as above).  The windows of a run overlap, so the run's input rows are
  gathered once as one block of ``run_length + 2·window`` rows, each mean context is a masked sum of
  shifted slices of that block, and each block row is scattered back once with the sum of the updates of
  the centres whose window holds it: about 1 + 2·window/run_length rows gathered and scattered per
  centre instead of 2·window (:func:`~scratchlm.embeddings.word2vec.kernels.cbow_block_update`; the same
  arithmetic as :func:`~scratchlm.embeddings.word2vec.kernels.cbow_update` for the same centres).
- **Skip-gram by window.** A step's centres are dealt at random into ``window`` groups of equal size,
  group ``b`` taking reduced window ``b``
  (:func:`scratchlm.embeddings.word2vec.sampling.window_groups`): each centre's ``b`` is still uniform
  on ``1..window``, and each group is computed at its own width ``2b``
  (:func:`~scratchlm.embeddings.word2vec.kernels.skipgram_groups_update`), 6 context slots per centre on
  average at ``window`` 5 instead of 10 masked ones.
- Pair generation, subsampling and negative sampling happen on the device
  (see :mod:`scratchlm.embeddings.word2vec.sampling`); ``steps_per_call`` steps run in one ``lax.fori_loop``
  per dispatch, so Python never feeds the device pair by pair.  The ids, masks and draws of all the
  dispatch's steps are built first, as arrays, by a program of their own
  (:func:`scratchlm.training.word2vec.step_batches`), drawn for the next dispatch on a second thread
  while the current one's steps run (side by side given ``--threads 2`` and a free core), and the loop
  runs only the updates.
- **Reproducibility.** Every random draw comes from ``jax.random`` keys folded from one seed (the
  epoch, then the step), so a run is bit-reproducible on a given device and backend — which gensim
  and the C tool are not with more than one thread.
"""
