"""The NER task's data sources, registered with ``pipelines.sources``.

Element structure: ``{"tokens": string [None], "tags": string [None], "document": int64 []}``
(``document``: the sentence's ``-DOCSTART-`` document in its file; a sentence outside any
document gets a negative id of its own). Sources: ``synthetic`` (default, offline),
``conll2003`` / ``tfds:NAME`` (online), a CoNLL directory or file. Options ``scheme`` (target,
default "IOB2"), ``repair`` (default False), ``input_scheme`` (default detected).
"""

from __future__ import annotations

import collections

import tensorflow as tf

from pipelines import sources
from pipelines import tags as tagging
from pipelines.readers import conll, conll_stream
from pipelines.readers._common import RawSplits, check_options

_named, _dense, _ragged, _strings = (sources.named_splits, sources.dense, sources.ragged,
                                     sources.strings)
_resolve = sources.resolve


# ---- training sources (verbatim moves from pipelines/sources.py)

def _raw_ner(source, *, seed, max_examples, options) -> RawSplits:
    kind = _resolve("ner", source)
    if kind == "tfds" or source == "conll2003":
        from pipelines.readers.tfds_sources import tfds_ner

        name = source[len("tfds:"):] if kind == "tfds" else source
        return tfds_ner(name, seed=seed, options=options, max_examples=max_examples)
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
    # A CoNLL file or directory: indexed once, sentences read lazily (or, when small, into
    # memory once) by pipelines.readers.conll_stream.
    return conll_stream.ner_conll_splits(source, seed=seed, options=options,
                                         max_examples=max_examples)


# ---- datasets

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


# ---- evaluate --data FILE (from pipelines/readers/evaluation.py)

def _ner(path: str, options: dict) -> conll_stream.streaming.StreamedSplits:
    # The whole file, in order, streamed like a training file.
    return conll_stream.ner_conll_splits(path, seed=0, options=dict(options), evaluation=True)


def _evaluation_directory(path: str, options: dict) -> conll_stream.streaming.StreamedSplits:
    # A CoNLL corpus directory: its validation and test files, no training file needed.
    return conll_stream.ner_conll_splits(path, seed=0, options=dict(options),
                                         require_train=False)


DATA = sources.register(sources.TaskData(
    task="ner", named=("synthetic", "conll2003"), default="synthetic", raw=_raw_ner,
    build=_build_ner, read_whole=_ner, evaluation_directory=_evaluation_directory, tfds=True))
