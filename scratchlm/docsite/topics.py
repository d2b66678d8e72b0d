"""The index's map: the design documents' topics, each to the modules that implement it.

The only hand-written list in the site generator.  A topic names module-name patterns
(:func:`fnmatch.fnmatch` over dotted names), not modules, so modules added later join their topic
without an edit here; a module matching no topic is listed under "Foundations".
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatch


@dataclass(frozen=True)
class Topic:
    name: str
    blurb: str
    design_doc: str  # where the design documents treat it (shared/design-documents/README.md)
    papers: str
    patterns: tuple[str, ...]

    def matches(self, module: str) -> bool:
        return any(fnmatch(module, p) for p in self.patterns)


TOPICS: tuple[Topic, ...] = (
    Topic("Tokenization", "normalisation, pre-tokenization, BPE and WordPiece training and encoding",
          "001 text processing of words", "Sennrich et al. 2016; Schuster & Nakajima 2012; Wu et al. 2016",
          ("scratchlm.tokenizers*", "*.commands.tokenize", "*bpe*", "*wordpiece*")),
    Topic("Sigmoid MLP", "the sigmoid, binary cross-entropy and its gradient, the embedding-bag classifier",
          "000 §4.1–4.3, §5; 001 §4.2, §5.2; 004 §4", "Rumelhart et al. 1986; Bengio et al. 2003",
          ("*mlp*", "*classif*", "*embedding_bag*", "*minilm*", "scratchlm.models.heads",
           "scratchlm.nn.functional", "scratchlm.nn.losses")),
    Topic("Word2Vec", "skip-gram and CBOW with negative sampling, subsampling, the noise distribution",
          "002 §3.2", "Mikolov et al. 2013a, 2013b",
          ("*word2vec*", "scratchlm.embeddings.evaluat*", "scratchlm.embeddings.formats*",
           "scratchlm.embeddings.vectors")),
    Topic("GloVe", "co-occurrence counts and the weighted least-squares loss", "002 §3.2, §4.2",
          "Pennington et al. 2014", ("*glove*", "*cooccur*")),
    Topic("GRU", "the gated recurrent unit over a sequence, the GRU language model", "003 §5.2",
          "Cho et al. 2014; Chung et al. 2014", ("*gru*", "scratchlm.training.lm", "scratchlm.data.codec")),
    Topic("LSTM", "the long short-term memory over a sequence, design document 002's sentiment classifier",
          "002 §5.2", "Hochreiter & Schmidhuber 1997; Gers et al. 2000",
          ("*lstm*", "*rnn_classifier*", "scratchlm.training.recurrent")),
    Topic("Transformer", "scaled dot-product attention, the encoder layer, BERT", "003 §4.2",
          "Vaswani et al. 2017; Devlin et al. 2019", ("*attention*", "*transformer*", "*bert*", "*encoder*",
                                                       "*unpadding*", "scratchlm.models.hub")),
    Topic("Pretraining", "masked-language-model pretraining", "004 (the series' pretraining recipe)",
          "Devlin et al. 2019", ("*pretrain*", "*mlm*", "*masking*")),
    Topic("Fine-tuning", "task heads, AdamW, freezing, LoRA adapters, early stopping, NER and its classification "
          "report", "004 §3.2, §5", "Devlin et al. 2019; Loshchilov & Hutter 2019; Hu et al. 2021",
          ("*finetune*", "*fine_tun*", "*lora*", "*peft*", "*seqeval*", "*wikiner*", "*tasks*", "*metrics*",
           "scratchlm.training.loop*",
           "scratchlm.training.freeze", "scratchlm.training.encoders", "scratchlm.training.cv",
           "scratchlm.training.epoch_timing",
           "scratchlm.data.batching")),
)


def topics_of(module: str) -> list[Topic]:
    return [t for t in TOPICS if t.matches(module)]
