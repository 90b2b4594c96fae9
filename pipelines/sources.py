"""One entry point for every task's data: ``load(task, source) -> Splits``.

Readers (``pipelines.readers``) produce plain-Python splits; this module caps them, turns
them into ``tf.data`` datasets of dicts and counts what is in them. Splits are made by the
readers with a seeded shuffle (or by file/stream), so the same seed always gives the same
examples in the same order, and the test split never feeds anything fitted on train.
"""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import tensorflow as tf

from pipelines import tags as tagging
from pipelines.errors import DataError
from pipelines.readers import conll, dates, music, pairs, plain_text, text_label, text_stream
from pipelines.readers._common import RawSplits, check_options
from pipelines.streaming import StreamedSplits
from pipelines.readers.evaluation import evaluation_splits

TASKS = ("sentiment", "ner", "char_generation", "music_generation", "seq2seq")
DEFAULTS = {"sentiment": "imdb", "ner": "synthetic", "char_generation": "names",
            "music_generation": "bach", "seq2seq": "dates"}
NAMED = {"sentiment": ("imdb", "rotten_tomatoes"), "ner": ("synthetic", "conll2003"),
         "char_generation": ("names", "shakespeare"), "music_generation": ("bach",),
         "seq2seq": ("dates",)}
SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Splits:
    """The splits of one task's data.

    Attributes:
        train: Dataset of dicts (see :func:`load` for the element structure per task).
        validation: Same structure as ``train``; None only when loaded for evaluation from a
            corpus directory without a validation file.
        test: Same structure, or None when the source has no held-out test split.
        info: Counts (``examples`` per split, tokens, classes/tags, vocabulary estimate...),
            task keys (``class_names``, ``tag_names``, ``scheme``, ``mode``, ``unit``),
            ``"source"`` (name or path), ``"synthetic"`` (bool) and ``"split_policy"``.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    info: dict


def load(task: str, source: str | None = None, *, seed: int = 1337, max_examples: int = 0,
         evaluation: bool = False, **options) -> Splits:
    """Loads ``task``'s data from ``source``.

    Element structure (each split is a ``tf.data.Dataset`` of dicts, in a fixed order):

    * sentiment: ``{"text": string [], "label": int32 []}``; sources ``imdb`` (default),
      ``rotten_tomatoes``, ``tfds:imdb_reviews``, a CSV/TSV/JSONL file (options
      ``text_column``, ``label_column``, ``class_names``) or an aclImdb-style directory.
    * ner: ``{"tokens": string [None], "tags": string [None], "document": int64 []}``
      (``document``: the sentence's ``-DOCSTART-`` document in its file; a sentence outside
      any document gets a negative id of its own); sources ``synthetic``
      (default, offline), ``conll2003`` / ``tfds:NAME`` (online), a CoNLL directory or file.
      Options ``scheme`` (target, default "IOB2"), ``repair`` (default False),
      ``input_scheme`` (default detected).
    * char_generation: ``{"text": string []}``; sources ``names`` (default, lines mode),
      ``shakespeare`` (continuous), a text file (option ``mode``).
    * music_generation: ``{"notes": float32 [None, 3]}`` (pitch, step, duration); sources
      ``bach`` (default; options ``voices``, ``unit``), a directory of MIDI files (``unit``).
    * seq2seq: ``{"source": string [], "target": string []}``; sources ``dates`` (default;
      options ``locales``, ``num_examples``), ``pairs:PATH`` or a TSV path (options
      ``lowercase``, ``max_length``, ``reverse``).

    Args:
        task: One of :data:`TASKS`.
        source: A named source, ``tfds:NAME``, ``pairs:PATH`` or a filesystem path;
            None or "" means the task's default (:data:`DEFAULTS`).
        seed: Fixes the split and the order of examples.
        max_examples: If > 0, keep the first ``max_examples`` training examples and the
            first ``max(1, max_examples // 4)`` validation and test examples.
        evaluation: For scoring a trained model on ``source``
            (:mod:`pipelines.readers.evaluation`): a single file is evaluated whole (it is
            both ``validation`` and ``test``, ``train`` is empty, ``info["whole_file"]``),
            a CoNLL directory needs no training file (``validation`` may then be None), and
            ``max_examples`` does not apply.
        **options: Source options (listed above); unknown ones raise ValueError.

    Returns:
        The :class:`Splits`.

    Raises:
        ValueError: Unknown task, source or option.
        pipelines.errors.DataError: Bad input data (naming file, line and value).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    source = source or DEFAULTS[task]
    if not isinstance(max_examples, int) or max_examples < 0:
        raise ValueError(f"max_examples must be an int >= 0, got {max_examples!r}")
    raw = None
    if evaluation:
        _resolve(task, source)
        max_examples = 0
        raw = evaluation_splits(task, source, dict(options))
    if raw is None:
        raw = _RAW[task](source, seed=seed, max_examples=max_examples, options=dict(options))
        if isinstance(raw, StreamedSplits):  # already datasets, capped, counted
            info = {"task": task, "source": source, "synthetic": False, "seed": seed,
                    "max_examples": max_examples, **raw.info}
            return Splits(raw.train, raw.validation, raw.test, info)
        raw = _cap(raw, max_examples)
    splits, info = _BUILD[task](raw, options)
    info = {"task": task, "source": source, "synthetic": False, "seed": seed,
            "max_examples": max_examples, **raw.info, **info,
            "examples": {s: len(x) for s, x in _named(raw).items()}}
    return Splits(splits["train"], splits.get("validation"), splits.get("test"), info)


def describe(splits: Splits) -> str:
    """Human-readable count report: a header line, then one line per split."""
    info = splits.info
    head = f"{info.get('task', '?')} data from {info.get('source')}"
    if info.get("synthetic"):
        head += " -- SYNTHETIC (generated, not real-world data)"
    extra = [f"{k}={info[k]}" for k in ("mode", "unit", "scheme", "target_scheme", "voices")
             if k in info]
    for key in ("num_classes", "num_tags", "vocab_size_estimate"):
        if key in info:
            extra.append(f"{key}={info[key]:,}")
    if extra:
        head += " [" + ", ".join(extra) + "]"
    if info.get("split_policy"):
        head += f"; split: {info['split_policy']}"
    lines = [head]
    for name in SPLITS:
        if name not in info.get("examples", {}):
            lines.append(f"  {name}: none")
            continue
        parts = [f"{info['examples'][name]:,} examples"]
        for key, unit in (("tokens", "tokens"), ("characters", "chars"), ("notes", "notes")):
            if name in info.get(key, {}):
                parts.append(f"{info[key][name]:,} {unit}")
        if name in info.get("class_counts", {}):
            counts = info["class_counts"][name]
            parts.append(" ".join(f"{c}={n:,}" for c, n in zip(info["class_names"], counts)))
        if name in info.get("entities", {}):
            parts.append("entities " + " ".join(
                f"{k}={v:,}" for k, v in sorted(info["entities"][name].items())))
        lines.append(f"  {name}: " + ", ".join(parts))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- raw splits

def _resolve(task: str, source: str) -> str:
    """"named", "tfds" or "path"; a clear error for anything else."""
    if source in NAMED[task]:
        return "named"
    if source.startswith("tfds:") and task in ("sentiment", "ner"):
        return "tfds"
    path = source[len("pairs:"):] if task == "seq2seq" and source.startswith("pairs:") else source
    if os.path.exists(path):
        return "path"
    raise DataError(f"unknown {task} source {source!r}: not one of {NAMED[task]}"
                     + (", not tfds:NAME" if task in ("sentiment", "ner") else "")
                     + f" and no file or directory {path!r}")


def _raw_sentiment(source, *, seed, max_examples, options) -> RawSplits:
    if _resolve("sentiment", source) == "tfds":
        from pipelines.readers.tfds_sources import tfds_sentiment

        return tfds_sentiment(source[len("tfds:"):], seed=seed, options=options)
    if os.path.isfile(source):  # read lazily (pipelines.readers.text_stream)
        return text_stream.sentiment_file_splits(source, seed=seed, options=options,
                                                 max_examples=max_examples)
    return text_label.sentiment_splits(source, seed=seed, options=options,
                                       max_examples=max_examples)


def _raw_ner(source, *, seed, max_examples, options) -> RawSplits:
    kind = _resolve("ner", source)
    if kind == "tfds" or source == "conll2003":
        from pipelines.readers.tfds_sources import tfds_ner

        name = source[len("tfds:"):] if kind == "tfds" else source
        return tfds_ner(name, seed=seed, options=options)
    if source == "synthetic":
        from pipelines import synthetic_ner

        check_options(options, ("scheme", "repair", "input_scheme", "num_examples", "locales"),
                      source)
        counts = dict(synthetic_ner.DEFAULT_COUNTS)
        if options.get("num_examples"):
            counts["train"] = int(options["num_examples"])
        if max_examples:
            cap = max(1, max_examples // 4)
            counts = {"train": min(counts["train"], max_examples),
                      "validation": min(counts["validation"], cap),
                      "test": min(counts["test"], cap)}
        out = synthetic_ner.synthetic_splits(seed=seed, counts=counts,
                                             locales=options.get("locales"))
        return RawSplits(out["train"], out["validation"], out["test"], {
            "source": source, "synthetic": True,
            "split_policy": "generated per split from independent seeded streams"})
    return conll.ner_splits(source, seed=seed, options=options)


def _raw_char(source, *, seed, max_examples, options) -> RawSplits:
    if _resolve("char_generation", source) == "path":  # read lazily
        return text_stream.char_file_splits(source, seed=seed, options=options,
                                            max_examples=max_examples)
    return plain_text.char_splits(source, seed=seed, options=options)


def _raw_music(source, *, seed, max_examples, options) -> RawSplits:
    _resolve("music_generation", source)
    return music.music_splits(source, seed=seed, max_examples=max_examples, options=options)


def _raw_seq2seq(source, *, seed, max_examples, options) -> RawSplits:
    if _resolve("seq2seq", source) == "named":
        return dates.dates_splits(seed=seed, max_examples=max_examples, options=options)
    return pairs.pairs_splits(source, seed=seed, options=options)


def _named(raw: RawSplits) -> dict[str, list]:
    out = {"train": raw.train}
    if raw.validation is not None:
        out["validation"] = raw.validation
    if raw.test is not None:
        out["test"] = raw.test
    return out


def _cap(raw: RawSplits, max_examples: int) -> RawSplits:
    if not max_examples:
        return raw
    cap = max(1, max_examples // 4)
    return RawSplits(raw.train[:max_examples], raw.validation[:cap],
                     None if raw.test is None else raw.test[:cap], raw.info)


# ----------------------------------------------------------------------------- datasets

@tf.autograph.experimental.do_not_convert
def _dense(element: dict) -> dict:
    # Slices of a RaggedTensor come out as dense tensors but keep a RaggedTensorSpec, which
    # padded_batch and Keras reject; an identity map gives them a plain TensorSpec.
    return {k: tf.identity(v) for k, v in element.items()}


def _ragged(values: list, dtype, inner: tuple = ()) -> tf.RaggedTensor:
    """[n, None, *inner] ragged tensor from a list of lists (strings) or arrays (floats)."""
    lengths = [len(v) for v in values]
    if dtype == tf.string:
        flat = [x for v in values for x in v]
        flat_t = tf.constant(flat, tf.string, shape=[len(flat)])
    else:
        flat = np.concatenate(values) if values else np.zeros((0,) + inner)
        flat_t = tf.constant(np.asarray(flat, np.float32).reshape((-1,) + inner))
    return tf.RaggedTensor.from_row_lengths(flat_t, tf.constant(lengths, tf.int64))


def _strings(values: list[str]) -> tf.Tensor:
    return tf.constant(values, tf.string, shape=[len(values)])


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


def _build_ner(raw: RawSplits, options) -> tuple[dict, dict]:
    target = tagging.normalize_scheme(options.get("scheme", "IOB2"))
    repair = bool(options.get("repair", False))
    named = {s: [x if isinstance(x, conll.Sentence) else conll.Sentence(x[0], x[1], None,
                                                                        raw.info["source"])
                 for x in xs] for s, xs in _named(raw).items()}
    scheme = options.get("input_scheme") or tagging.detect_scheme(
        [s.tags for xs in named.values() for s in xs])
    scheme = tagging.normalize_scheme(scheme)
    out, info = {}, {"tokens": {}, "entities": {}, "scheme": scheme, "target_scheme": target}
    types = set()
    for split, sentences in named.items():
        converted = [tagging.convert(s.tags, scheme, target, repair=repair, path=s.path,
                                     lines=s.lines) for s in sentences]
        tokens = [s.tokens for s in sentences]
        # A sentence outside any -DOCSTART- document is a document of its own (id < 0).
        documents = [s.document if s.document >= 0 else -1 - i for i, s in enumerate(sentences)]
        out[split] = tf.data.Dataset.from_tensor_slices(
            {"tokens": _ragged(tokens, tf.string), "tags": _ragged(converted, tf.string),
             "document": tf.constant(documents, tf.int64)}
        ).map(_dense)
        spans = [tagging.to_spans(t, target) for t in converted]
        counts = collections.Counter(kind for sp in spans for kind, _, _ in sp)
        types.update(counts)
        info["entities"][split] = dict(sorted(counts.items()))
        info["tokens"][split] = sum(len(t) for t in tokens)
    # Entity types from every split: a tag inventory is label metadata, not a fitted
    # vocabulary, and a test tag missing from it would break evaluation.
    info["tag_names"] = tagging.tag_names(sorted(types), target)
    info["num_tags"] = len(info["tag_names"])
    info["vocab_size_estimate"] = len({t for s in named["train"] for t in s.tokens})
    return out, info


def _build_char(raw: RawSplits, options) -> tuple[dict, dict]:
    out, info = {}, {"characters": {}}
    for split, texts in _named(raw).items():
        out[split] = tf.data.Dataset.from_tensor_slices({"text": _strings(texts)})
        info["characters"][split] = sum(len(t) for t in texts)
    info["vocab_size_estimate"] = len(set("".join(raw.train)))
    return out, info


def _build_music(raw: RawSplits, options) -> tuple[dict, dict]:
    out, info = {}, {"notes": {}}
    for split, pieces in _named(raw).items():
        out[split] = tf.data.Dataset.from_tensor_slices(
            {"notes": _ragged(pieces, tf.float32, (3,))}).map(_dense)
        info["notes"][split] = sum(len(p) for p in pieces)
    pitches = np.concatenate([p[:, 0] for p in raw.train]) if raw.train else np.zeros(1)
    info["pitch_range"] = [int(pitches.min()), int(pitches.max())]
    info["vocab_size_estimate"] = len(np.unique(pitches))
    return out, info


def _build_seq2seq(raw: RawSplits, options) -> tuple[dict, dict]:
    out, info = {}, {"tokens": {}, "characters": {}}
    for split, examples in _named(raw).items():
        src, tgt = [s for s, _ in examples], [t for _, t in examples]
        out[split] = tf.data.Dataset.from_tensor_slices(
            {"source": _strings(src), "target": _strings(tgt)})
        info["tokens"][split] = sum(len(s.split()) + len(t.split()) for s, t in examples)
        info["characters"][split] = sum(len(s) + len(t) for s, t in examples)
    info["source_vocab_size_estimate"] = len({w for s, _ in raw.train for w in s.split()})
    info["target_vocab_size_estimate"] = len({w for _, t in raw.train for w in t.split()})
    info["source_chars"] = len({c for s, _ in raw.train for c in s})
    info["target_chars"] = len({c for _, t in raw.train for c in t})
    return out, info


_RAW = {"sentiment": _raw_sentiment, "ner": _raw_ner, "char_generation": _raw_char,
        "music_generation": _raw_music, "seq2seq": _raw_seq2seq}
_BUILD = {"sentiment": _build_sentiment, "ner": _build_ner, "char_generation": _build_char,
          "music_generation": _build_music, "seq2seq": _build_seq2seq}
