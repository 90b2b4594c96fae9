"""Tagging and scoring a NER split (used by :mod:`tasks.ner` for evaluation and epoch metrics).

The model's potentials are computed once per sentence, then decoded twice: sentence by sentence,
and with document context (:func:`models.layers.document_context.pool_repeated_tokens` over each
``-DOCSTART-`` document's repeated capitalised words). Sentences outside any document are only
tagged on their own.
"""

from __future__ import annotations

import collections
import warnings

import numpy as np
import tensorflow as tf

from models.layers.document_context import pool_repeated_tokens
from models.tagger import decode_tags
from pipelines import batching
from pipelines import tags as tagging
from pipelines.ner_features import document_keys

_DECODE_BATCH = 128


def entity_metrics(gold: list[list[str]], pred: list[list[str]], scheme: str) -> dict:
    """seqeval strict entity P/R/F1 (micro) + per type, and token accuracy. Tags in ``scheme``."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB1, IOB2, IOBES

    scheme_class = {"IOB1": IOB1, "IOB2": IOB2, "BIOES": IOBES}[scheme]
    report = classification_report(gold, pred, mode="strict", scheme=scheme_class,
                                   output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    per_type = {k: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                    "f1": float(v["f1-score"]), "support": int(v["support"])}
                for k, v in report.items() if not k.endswith(" avg")}
    tokens = sum(len(s) for s in gold)
    correct = sum(g == p for gs, ps in zip(gold, pred) for g, p in zip(gs, ps))
    return {"f1": float(micro["f1-score"]), "precision": float(micro["precision"]),
            "recall": float(micro["recall"]), "token_accuracy": correct / max(tokens, 1),
            "entities": int(micro["support"]), "examples": len(gold), "per_type": per_type}


class SplitTagger:
    """Tags every sentence of a split with a model: ``tagger(model)`` -> ``(gold, sentence,
    document)``, three lists of tag-string sequences in the corpus's scheme (dataset order).
    ``document`` is None when ``document_context`` is 0 or the split has no documents.

    Args:
        preprocessor: A fitted ``tasks.ner.NerPreprocessor``.
        split: ``{"tokens", "tags", "document"}`` examples (``pipelines.sources``; without
            ``document`` every sentence stands alone).
        batch_size: Sentences per model call.
        document_context: The document mean's weight in [0, 1] (0 = sentence level only).
    """

    def __init__(self, preprocessor, split, batch_size: int, document_context: float):
        if not 0.0 <= float(document_context) <= 1.0:
            raise ValueError(f"document_context must be in [0, 1], got {document_context!r}")
        self.preprocessor, self.weight = preprocessor, float(document_context)
        has_documents = "document" in split.element_spec

        def encode(e):
            keys, capital = document_keys(e["tokens"])
            document = e["document"] if has_documents else tf.constant(-1, tf.int64)
            return {"features": preprocessor.features(e["tokens"]),
                    "tags": preprocessor.labels(e["tags"]), "document": document,
                    "keys": keys, "capital": capital}

        ds = (split.filter(lambda e: tf.size(e["tokens"]) > 0)
              .map(encode, num_parallel_calls=tf.data.AUTOTUNE).cache())
        self.dataset, _ = batching.bucket_batch(ds, batch_size,
                                                length_fn=lambda x: tf.shape(x["tags"])[0])
        self._model = None

    def _trace(self, model):
        # One set of tf.functions per model (a tuner builds one model per trial).
        if self._model is model:
            return
        # Fixed signatures: every batch and document has its own length, so one trace each.
        self._model = model
        tags = len(self.preprocessor.tag_names)
        potentials = tf.TensorSpec([None, None, tags], tf.float32)
        flags = tf.TensorSpec([None, None], tf.bool)
        self._potentials = tf.function(lambda f: model(f, training=False),
                                       input_signature=[self.dataset.element_spec["features"]])
        self._decode = tf.function(lambda p, m: decode_tags(model, p, m),
                                   input_signature=[potentials, flags])
        weight = self.weight
        self._pool = tf.function(
            lambda p, k, m, a: pool_repeated_tokens(p, k, m, a, weight),
            input_signature=[potentials, tf.TensorSpec([None, None], tf.int64), flags, flags])

    def __call__(self, model):
        self._trace(model)
        rows = []  # per sentence: (document, gold ids [n], potentials [n, K], keys, capital)
        for batch in self.dataset:
            potentials = self._potentials(batch["features"]).numpy()
            lengths = np.sum(batch["features"]["word_ids"].numpy() != 0, axis=1)
            arrays = [batch[k].numpy() for k in ("document", "tags", "keys", "capital")]
            for i, n in enumerate(lengths):
                rows.append((int(arrays[0][i]), arrays[1][i, :n], potentials[i, :n],
                             arrays[2][i, :n], arrays[3][i, :n]))
        names = np.array(self.preprocessor.tag_names)
        gold = [self._convert(list(names[r[1]]), repair=False) for r in rows]
        sentence = self._decode_rows([r[2] for r in rows], names)
        documents = collections.defaultdict(list)
        for index, row in enumerate(rows):
            if row[0] >= 0:
                documents[row[0]].append(index)
        if self.weight == 0 or not documents:
            return gold, sentence, None
        pooled = [r[2] for r in rows]
        for indices in documents.values():
            for index, p in zip(indices, self._pool_document([rows[i] for i in indices])):
                pooled[index] = p
        return gold, sentence, self._decode_rows(pooled, names)

    def _pool_document(self, rows):
        """The rows of one document, padded into [S, T, ...], pooled, cut back to lengths."""
        lengths = [len(r[1]) for r in rows]
        shape = (len(rows), max(lengths))
        potentials = np.zeros(shape + rows[0][2].shape[1:], np.float32)
        keys, mask = np.zeros(shape, np.int64), np.zeros(shape, bool)
        capital = np.zeros(shape, bool)
        for i, (_, _, p, k, c) in enumerate(rows):
            n = lengths[i]
            potentials[i, :n], keys[i, :n], mask[i, :n], capital[i, :n] = p, k, True, c
        out = self._pool(potentials, keys, mask, capital).numpy()
        return [out[i, :n] for i, n in enumerate(lengths)]

    def _decode_rows(self, potentials, names):
        tags = []
        for start in range(0, len(potentials), _DECODE_BATCH):
            chunk = potentials[start:start + _DECODE_BATCH]
            lengths = [len(p) for p in chunk]
            padded = np.zeros((len(chunk), max(lengths)) + chunk[0].shape[1:], np.float32)
            mask = np.zeros(padded.shape[:2], bool)
            for i, (p, n) in enumerate(zip(chunk, lengths)):
                padded[i, :n], mask[i, :n] = p, True
            ids = self._decode(padded, mask).numpy()
            tags += [self._convert(list(names[ids[i, :n]]), repair=True)
                     for i, n in enumerate(lengths)]
        return tags

    def _convert(self, tags, repair):
        source, target = self.preprocessor.scheme, self.preprocessor.input_scheme
        if not repair:
            return tagging.convert(tags, source, target)
        with warnings.catch_warnings():  # softmax outputs may hold invalid sequences
            warnings.simplefilter("ignore")
            return tagging.convert(tags, source, target, repair=True)
