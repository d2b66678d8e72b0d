"""`scratchlm classify`: the embedding-bag sigmoid classifier (design document 001 §5.2) on polarity.

Trains on the 200 Pang–Lee movie-review sentences shipped with gensim (or a file of
``__label__pos|neg text`` lines), scoring it by k-fold cross-validation against the majority rate.
``--init`` picks where the embedding table starts: ``random``; ``minilm``, the input token
embeddings of the shipped all-MiniLM-L6-v2 encoder (each word's vector is the mean of its WordPiece
pieces' vectors, so the words stay scratchlm's word tokens); or a word2vec text file, e.g. the
``vectors.txt`` that ``scratchlm word2vec`` or ``scratchlm glove`` writes.  ``--freeze`` keeps the
table fixed and trains only the output layer.  Several ``--lr`` values are chosen among by nested
cross-validation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The grid nested CV chooses from (the demo, benchmarks/classifier.py): half-decade steps around the
# 0.01 that the random-init model was first tuned with.
LEARNING_RATES = (0.01, 0.03, 0.1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="polarity", help="'polarity' (gensim's sentences) or a file of '__label__pos|neg text' lines")
    parser.add_argument("--init", default="random",
                        help="embedding table: 'random', 'minilm' (the shipped MiniLM's token embeddings) or a word2vec text file")
    parser.add_argument("--freeze", action="store_true", help="keep the embedding table fixed (train only w, b)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=16, help="embedding width with --init random (pretrained: the vectors' width)")
    parser.add_argument("--steps", type=int, default=100, help="full-batch AdamW steps per fold")
    parser.add_argument("--lr", type=float, nargs="+", default=[0.01],
                        help="learning rate; several: each outer fold picks one by inner 3-fold CV on its training part")
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--dropout", type=float, default=0.0, help="drop rate on the token embeddings while training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for per-fold JSON-lines metrics and a summary")


def _load(spec: str) -> tuple[list[str], list[int]]:
    from scratchlm.data import corpora
    from scratchlm.errors import CorpusError

    if spec == "polarity":
        pairs = corpora.polarity_sentences()
    else:
        pairs = []
        for number, line in enumerate(corpora.read_lines(spec), start=1):
            label, _, text = line.partition(" ")
            if label not in ("__label__pos", "__label__neg"):
                raise CorpusError(f"{spec}:{number}: expected '__label__pos' or '__label__neg' first, got {label!r}")
            pairs.append((text, int(label == "__label__pos")))
    return [t for t, _ in pairs], [y for _, y in pairs]


def minilm_word_vectors(words) -> WordVectors:  # noqa: F821
    r"""Static word vectors from the shipped all-MiniLM-L6-v2: :math:`v(w) = \frac{1}{|P(w)|} \sum_{p \in P(w)} E_p`.

    :math:`P(w)` are the WordPiece pieces of ``w`` (its own uncased vocabulary) and :math:`E` the
    encoder's input token embeddings (``embeddings.word_embeddings.weight``), learned on a large
    text collection: only the table, no transformer layer.  A vector depends on the word alone, so
    building them for every word a data set holds uses no statistic of any fold.
    """
    import numpy as np
    from safetensors.numpy import load_file

    from scratchlm.data.corpora import minilm_path
    from scratchlm.embeddings.formats import WordVectors
    from scratchlm.tokenizers.models import WordPiece

    path = minilm_path()
    E = load_file(str(path / "model.safetensors"))["embeddings.word_embeddings.weight"]  # [30522, 384]
    pieces = WordPiece.from_vocab_file(path / "vocab.txt")
    words = sorted(set(words))
    return WordVectors(tuple(words), np.stack([E[[i for i, _, _, _ in pieces.tokenize(w)]].mean(0) for w in words]))


def load_vectors(spec: str, texts):
    """``--init``: None for 'random', MiniLM's vectors for the words of ``texts``, or a word2vec text file."""
    from scratchlm.data.corpora import word_tokens
    from scratchlm.embeddings.formats import load_word2vec
    from scratchlm.errors import MissingDataError

    if spec == "random":
        return None
    if spec == "minilm":
        return minilm_word_vectors(w for t in texts for w in word_tokens(t))
    if not Path(spec).is_file():
        raise MissingDataError(f"--init {spec}: no such file (give 'random', 'minilm' or a word2vec text file, "
                               f"e.g. the vectors.txt that 'scratchlm word2vec' writes)")
    return load_word2vec(spec)


def evaluate(args_like) -> dict:
    from scratchlm.models.classifier import CVConfig, cross_validate

    texts, labels = _load(args_like.data)
    vectors = load_vectors(args_like.init, texts)
    config = CVConfig(
        folds=args_like.folds, embed_dim=args_like.dim, steps=args_like.steps, learning_rates=tuple(args_like.lr),
        weight_decay=args_like.weight_decay, dropout=args_like.dropout, freeze_embedding=args_like.freeze,
        seed=args_like.seed,
    )
    out = args_like.out
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
    result = cross_validate(texts, labels, config, vectors=vectors, metrics_dir=out)
    result["init"] = Path(args_like.init).name if vectors is not None and args_like.init != "minilm" else args_like.init
    result["frozen"] = bool(args_like.freeze)
    if out is not None:
        (Path(out) / "summary.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _line(r: dict) -> str:
    init = f"{r['init']} init{', frozen' if r['frozen'] else ''}"
    return f"polarity accuracy {r['accuracy']:.2f} ({init}; {r['evaluation'].replace(' cross-validation', ' CV')}; majority {r['majority']:.2f})"


def run(args: argparse.Namespace) -> int:
    r = evaluate(args)
    for f in r["folds"]:
        print(f"fold {f['fold']}: accuracy {f['accuracy']:.3f}  macro-F1 {f['macro_f1']:.3f}  ({f['n_test']} held out; lr {f['learning_rate']:g})")
    print(_line(r) + f"; macro-F1 {r['macro_f1']:.2f}")
    return 0


def demo_step(ctx) -> dict:
    """MiniLM-initialised, frozen table (nested CV over three learning rates; one fixed rate with --quick),
    then the random-init table for contrast."""
    common = dict(data="polarity", folds=5, steps=100, weight_decay=0.01, dropout=0.0, seed=ctx.seed)
    lr = [0.1] if ctx.quick else list(LEARNING_RATES)
    best = evaluate(argparse.Namespace(init="minilm", freeze=True, dim=16, lr=lr, out=ctx.out / "minilm", **common))
    base = evaluate(argparse.Namespace(init="random", freeze=False, dim=16, lr=lr, out=ctx.out / "random", **common))
    return {"result": _line(best) + f"; random init {base['accuracy']:.2f}",
            **{k: best[k] for k in ("accuracy", "macro_f1", "majority", "folds")},
            "random_init_accuracy": base["accuracy"]}
