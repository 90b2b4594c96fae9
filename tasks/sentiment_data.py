"""The sentiment task's data sources, registered with ``pipelines.sources``.

Element structure: ``{"text": string [], "label": int32 []}``. Sources: ``imdb`` (default),
``rotten_tomatoes``, ``tfds:imdb_reviews``, a CSV/TSV/JSONL file (options ``text_column``,
``label_column``, ``class_names``) or an aclImdb-style directory.
"""

from __future__ import annotations

import collections
import os

import tensorflow as tf

from pipelines import sources
from pipelines.readers import file_stream, text_label, text_stream
from pipelines.readers._common import RawSplits

_named, _dense, _ragged, _strings = (sources.named_splits, sources.dense, sources.ragged,
                                     sources.strings)
_resolve = sources.resolve


# ---- training sources (verbatim moves from pipelines/sources.py)

def _raw_sentiment(source, *, seed, max_examples, options) -> RawSplits:
    if _resolve("sentiment", source) == "tfds":
        from pipelines.readers.tfds_sources import tfds_sentiment

        return tfds_sentiment(source[len("tfds:"):], seed=seed, options=options,
                              max_examples=max_examples)
    if os.path.isfile(source):  # read lazily (pipelines.readers.text_stream)
        return text_stream.sentiment_file_splits(source, seed=seed, options=options,
                                                 max_examples=max_examples)
    if os.path.isdir(source):  # aclImdb-style folders: a review file a record, read lazily
        return file_stream.aclimdb_splits(source, seed=seed, options=options,
                                          max_examples=max_examples)
    return text_label.sentiment_splits(source, seed=seed, options=options,
                                       max_examples=max_examples)


# ---- datasets

def _build_sentiment(raw: RawSplits, options) -> tuple[dict, dict]:
    names = raw.info["class_names"]
    out, info = {}, {"tokens": {}, "class_counts": {}, "num_classes": len(names)}
    for split, examples in _named(raw).items():
        texts = [t for t, _ in examples]
        labels = [y for _, y in examples]
        out[split] = tf.data.Dataset.from_tensor_slices(
            {"text": _strings(texts), "label": tf.constant(labels, tf.int32, [len(labels)])})
        info["tokens"][split] = sum(len(t.split()) for t in texts)
        counts = collections.Counter(labels)
        info["class_counts"][split] = [counts.get(i, 0) for i in range(len(names))]
    info["vocab_size_estimate"] = len({w for t, _ in raw.train for w in t.lower().split()})
    return out, info


# ---- evaluate --data FILE (from pipelines/readers/evaluation.py)

def _sentiment(path: str, options: dict):
    # The whole file, in order, streamed like a training file.
    return text_stream.sentiment_file_splits(path, seed=0, options=dict(options),
                                             evaluation=True)


DATA = sources.register(sources.TaskData(
    task="sentiment", named=("imdb", "rotten_tomatoes"), default="imdb", raw=_raw_sentiment,
    build=_build_sentiment, read_whole=_sentiment, tfds=True))
