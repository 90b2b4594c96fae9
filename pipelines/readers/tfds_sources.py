"""TensorFlow Datasets sources (``tfds:NAME``): online, or from a prepared ``data_dir``.

Only imported when such a source is asked for: TFDS is slow to import, and some builders
(``conll2003``) retry the network for minutes when offline, so nothing here runs in tests.
"""

from __future__ import annotations

from pipelines.readers._common import RawSplits, check_options, seeded_split


def _builder(name: str, options: dict):
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=options.get("data_dir"))
    if options.get("download", True):
        builder.download_and_prepare()
    return builder


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def tfds_sentiment(name: str, *, seed: int, options: dict) -> RawSplits:
    """``(text, label)`` splits of a TFDS text classification dataset (``imdb_reviews``).

    ``train`` is split 80/20 into train/validation with ``seed``; ``test`` is TFDS's test
    split when there is one. Options: ``data_dir``, ``download`` (default True),
    ``text_key`` (default "text"), ``label_key`` (default "label").
    """
    import tensorflow_datasets as tfds

    from pipelines.readers.text_label import clean_text

    check_options(options, ("data_dir", "download", "text_key", "label_key"), f"tfds:{name}")
    builder = _builder(name, options)
    text_key, label_key = options.get("text_key", "text"), options.get("label_key", "label")
    class_names = list(builder.info.features[label_key].names)
    parts = {}
    for split in ("train", "test"):
        if split in builder.info.splits:
            rows = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
            parts[split] = [(clean_text(_decode(r[text_key])), int(r[label_key])) for r in rows]
    train, validation, _ = seeded_split(parts["train"], seed, (0.8, 0.2, 0.0))
    return RawSplits(train, validation, parts.get("test"), {
        "source": f"tfds:{name}", "class_names": class_names,
        "split_policy": "TFDS train seeded 80/20 into train/validation; TFDS test"})


def tfds_ner(name: str, *, seed: int, options: dict) -> RawSplits:
    """``(tokens, tags)`` splits of a TFDS NER dataset (``conll2003``).

    Uses TFDS's train / dev (or validation) / test splits. Options: ``data_dir``,
    ``download``, ``tokens_key`` (default "tokens"), ``tags_key`` (default "ner"), plus the
    NER options of ``pipelines.sources.load``.
    """
    import tensorflow_datasets as tfds

    check_options(options, ("data_dir", "download", "tokens_key", "tags_key", "scheme",
                            "repair", "input_scheme"), f"tfds:{name}")
    builder = _builder(name, options)
    tokens_key, tags_key = options.get("tokens_key", "tokens"), options.get("tags_key", "ner")
    feature = builder.info.features[tags_key]
    names = list(getattr(feature, "feature", feature).names)
    parts = {}
    for split, candidates in (("train", ("train",)), ("validation", ("dev", "validation")),
                              ("test", ("test",))):
        found = [c for c in candidates if c in builder.info.splits]
        if found:
            rows = tfds.as_numpy(builder.as_dataset(split=found[0], shuffle_files=False))
            parts[split] = [([_decode(t) for t in r[tokens_key]],
                             [names[int(i)] for i in r[tags_key]]) for r in rows]
    if "validation" not in parts:
        parts["train"], parts["validation"], _ = seeded_split(parts["train"], seed,
                                                              (0.9, 0.1, 0.0))
    return RawSplits(parts["train"], parts["validation"], parts.get("test"), {
        "source": f"tfds:{name}", "split_policy": "TFDS splits"})
