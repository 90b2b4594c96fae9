"""TensorFlow Datasets sources (``tfds:NAME``): online, or from a prepared ``data_dir``.

Only imported when such a source is asked for: TFDS is slow to import, and some builders
(``conll2003``) retry the network for minutes when offline, so nothing here runs in tests
(they fake the builder). The splits are TFDS's own ``tf.data`` datasets, mapped to the task's
element structure, never drained into Python lists: a TFDS train split cut into train and
validation is filtered by a seeded hash of each record's number
(``pipelines.streaming.record_hashes_tf``; the same records, ranked the same way, as
``streaming.split_records`` picks), in TFDS's order.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from pipelines import streaming
from pipelines import tags as tagging
from pipelines.readers._common import check_options, split_sizes

# Whitespace as ``str.split`` sees it (RE2's \s is ASCII only), for clean_text in graph ops.
_SPACE = r"[\s\p{Z}\x{1c}-\x{1f}\x{85}\x{0b}]+"


def _builder(name: str, options: dict):
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=options.get("data_dir"))
    if options.get("download", True):
        builder.download_and_prepare()
    return builder


def clean_text_tf(text: tf.Tensor) -> tf.Tensor:
    """``text_label.clean_text`` in graph ops: ``<br />`` -> space, whitespace squeezed."""
    text = tf.strings.regex_replace(text, r"(?i)<br\s*/?>", " ")
    return tf.strings.strip(tf.strings.regex_replace(text, _SPACE, " "))


def seeded_cut(ds: tf.data.Dataset, n: int, seed: int, fractions) -> tuple:
    """(train, validation) of a dataset of ``n`` records, by the seeded hash of each record's
    number: the ``n_train`` smallest hashes are train (as ``streaming.split_records``)."""
    n_train, _, _ = split_sizes(n, fractions)
    threshold = np.sort(streaming.record_hashes(n, seed))[n_train - 1]
    limit = tf.constant(int(threshold), tf.uint64)
    numbered = ds.enumerate()

    def keep(train):
        def predicate(i, _):
            below = streaming.record_hashes_tf(i, seed) <= limit
            return below if train else tf.logical_not(below)
        return numbered.filter(predicate).map(lambda i, element: element)

    return keep(True), keep(False), (n_train, n - n_train)


def _count(builder, split: str) -> int:
    return int(builder.info.splits[split].num_examples)


def tfds_sentiment(name: str, *, seed: int, options: dict,
                   max_examples: int = 0) -> streaming.StreamedSplits:
    """``{"text", "label"}`` splits of a TFDS text classification dataset (``imdb_reviews``).

    ``train`` is split 80/20 into train/validation with ``seed``; ``test`` is TFDS's test
    split when there is one. Options: ``data_dir``, ``download`` (default True),
    ``text_key`` (default "text"), ``label_key`` (default "label").
    """
    check_options(options, ("data_dir", "download", "text_key", "label_key"), f"tfds:{name}")
    builder = _builder(name, options)
    text_key, label_key = options.get("text_key", "text"), options.get("label_key", "label")
    class_names = list(builder.info.features[label_key].names)

    def element(row):
        return {"text": clean_text_tf(row[text_key]), "label": tf.cast(row[label_key], tf.int32)}

    def split(s):
        return builder.as_dataset(split=s, shuffle_files=False).map(element)

    train, validation, sizes = seeded_cut(split("train"), _count(builder, "train"), seed,
                                          (0.8, 0.2, 0.0))
    test = split("test") if "test" in builder.info.splits else None
    counts = {"train": sizes[0], "validation": sizes[1]}
    if test is not None:
        counts["test"] = _count(builder, "test")
    return _capped([train, validation, test], counts, max_examples, {
        "source": f"tfds:{name}", "class_names": class_names, "num_classes": len(class_names),
        "split_policy": "TFDS train seeded 80/20 into train/validation; TFDS test"})


def tfds_ner(name: str, *, seed: int, options: dict,
             max_examples: int = 0) -> streaming.StreamedSplits:
    """``{"tokens", "tags", "document"}`` splits of a TFDS NER dataset (``conll2003``).

    Uses TFDS's train / dev (or validation) / test splits (no dev: a seeded 10% of train).
    The tags are TFDS's class names, read in ``input_scheme`` (default IOB2, TFDS's CoNLL
    scheme: it is not detected, which would need a pass over the data) and converted to
    ``scheme`` per sentence when the two differ. Every sentence is a document of its own.
    Options: ``data_dir``, ``download``, ``tokens_key`` (default "tokens"), ``tags_key``
    (default "ner"), plus the NER options of ``pipelines.sources.load``.
    """
    check_options(options, ("data_dir", "download", "tokens_key", "tags_key", "scheme",
                            "repair", "input_scheme"), f"tfds:{name}")
    builder = _builder(name, options)
    tokens_key, tags_key = options.get("tokens_key", "tokens"), options.get("tags_key", "ner")
    feature = builder.info.features[tags_key]
    names = list(getattr(feature, "feature", feature).names)
    scheme = tagging.normalize_scheme(options.get("input_scheme") or "IOB2")
    target = tagging.normalize_scheme(options.get("scheme", "IOB2"))
    repair = bool(options.get("repair", False))
    table = tf.constant(names, tf.string)

    def convert(tags):
        words = [t.decode("utf-8") for t in tags.numpy().tolist()]
        return tf.constant(tagging.convert(words, scheme, target, repair=repair), tf.string,
                           shape=[len(words)])

    def element(row):
        tags = tf.gather(table, tf.cast(row[tags_key], tf.int32))
        if scheme != target or repair:  # sentence by sentence, in Python (like a file's)
            tags = tf.ensure_shape(tf.py_function(convert, [tags], tf.string), [None])
        return {"tokens": row[tokens_key], "tags": tags, "document": tf.constant(-1, tf.int64)}

    parts, counts = {}, {}
    for split, candidates in (("train", ("train",)), ("validation", ("dev", "validation")),
                              ("test", ("test",))):
        found = [c for c in candidates if c in builder.info.splits]
        if found:
            parts[split] = builder.as_dataset(split=found[0], shuffle_files=False).map(element)
            counts[split] = _count(builder, found[0])
    if "validation" not in parts:
        parts["train"], parts["validation"], sizes = seeded_cut(
            parts["train"], counts["train"], seed, (0.9, 0.1, 0.0))
        counts.update(train=sizes[0], validation=sizes[1])
    types = sorted({tag[2:] for tag in names if tag != "O"})
    tag_names = tagging.tag_names(types, target)
    return _capped([parts["train"], parts["validation"], parts.get("test")], counts,
                   max_examples, {"source": f"tfds:{name}", "split_policy": "TFDS splits",
                                  "scheme": scheme, "target_scheme": target,
                                  "tag_names": tag_names, "num_tags": len(tag_names)})


def _capped(datasets, counts: dict, max_examples: int, info: dict) -> streaming.StreamedSplits:
    if max_examples:
        caps = (max_examples,) + (max(1, max_examples // 4),) * 2
        datasets = [None if d is None else d.take(c) for d, c in zip(datasets, caps)]
        counts = {s: min(n, c) for (s, n), c in zip(counts.items(), caps)}
    return streaming.StreamedSplits(*datasets, {**info, "streamed": True, "examples": counts})
