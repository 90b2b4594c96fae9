"""Streamed CoNLL files and directories for NER: a sentence is a record.

The index pass (:func:`_index`) reads every file once, line by line: it checks each line (the
errors of :func:`pipelines.readers.conll.iter_conll`), records where each sentence starts
(file, byte offset, line: 12 bytes a sentence), its token count and ``-DOCSTART-`` document,
and keeps the sentence's tags as 2-byte codes only until the scheme is detected and every
sentence validated (so a bad tag sequence is one ``DataError`` naming file and line at load
time, as before). The splits then read their sentences lazily: seek, parse, convert the tags
to the target scheme. Sentences a ``repair=True`` load repaired are kept converted (the
repair warns once, at load, not every epoch).
"""

from __future__ import annotations

import array
import collections
import pathlib

import numpy as np
import tensorflow as tf

from pipelines import streaming
from pipelines import tags as tagging
from pipelines.errors import DataError
from pipelines.readers import conll
from pipelines.readers._common import check_options
from pipelines.readers.evaluation import WHOLE_FILE_POLICY

OPTIONS = ("scheme", "repair", "input_scheme", "token_column", "tag_column")
#: The vocabulary-size estimate of the data report reads at most this many train sentences
#: (a second read of each: 20,000 take ~2 s).
ESTIMATE_RECORDS = 20_000
SIGNATURE = {"tokens": tf.TensorSpec([None], tf.string), "tags": tf.TensorSpec([None], tf.string),
             "document": tf.TensorSpec([], tf.int64)}


class _Index:
    """Sentences of CoNLL files: where they start, their lengths, documents and tag codes."""

    def __init__(self, paths, read_opts):
        self.lines = streaming.LineIndex(paths)
        lengths, documents = array.array("i"), array.array("i")
        codes, names = array.array("H"), {}
        for file_id, path in enumerate(self.lines.paths):
            for s in conll.iter_conll(path, **read_opts):
                self.lines.add(file_id, s.offset, s.lines[0])
                lengths.append(len(s.tokens))
                documents.append(s.document)
                try:
                    codes.extend([names[tag] for tag in s.tags])
                except KeyError:  # a tag not seen before (rare: the inventory is small)
                    for tag in s.tags:
                        names.setdefault(tag, len(names))
                    if len(names) > 65536:
                        raise DataError("more than 65,536 distinct tags (is tag_column "
                                        "right?)", path, s.lines[0]) from None
                    codes.extend([names[tag] for tag in s.tags])
        self.lines.freeze()
        self.lengths = np.frombuffer(lengths, np.int32).copy()
        self.documents = np.frombuffer(documents, np.int32).copy()
        self.codes, self.tag_of = codes, list(names)
        self.starts = np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])

    def __len__(self):
        return len(self.lengths)

    def tags(self, i: int) -> list[str]:
        return [self.tag_of[c] for c in self.codes[self.starts[i]:self.starts[i + 1]]]


def _validate(index: _Index, scheme: str, target: str, repair: bool, split_of: np.ndarray):
    """Checks every sentence's tags (file order), counts entities per split; returns the entity
    counts per split, all entity types, and the repaired sentences' converted tags."""
    counts = [collections.Counter() for _ in range(3)]
    types, repaired = set(), {}
    for i in range(len(index)):
        tags = index.tags(i)
        path = index.lines.paths[index.lines.file_ids[i]]
        first = int(index.lines.lines[i])
        lines = range(first, first + len(tags))
        try:
            spans = tagging.to_spans(tags, scheme, path=path, lines=lines)
        except tagging.TagError:
            if not repair:
                raise
            spans = tagging.to_spans(tags, scheme, repair=True, path=path, lines=lines)
            repaired[i] = tagging.from_spans(spans, len(tags), target)
        kinds = [kind for kind, _, _ in spans]
        types.update(kinds)
        if split_of[i] >= 0:
            counts[split_of[i]].update(kinds)
    index.codes = None  # only needed until now: 2 bytes a token
    return counts, types, repaired


def _lines_from(f, offset: int, number: int):
    """``(offset, line, text)`` from byte ``offset`` of an open binary file (checked UTF-8)."""
    f.seek(offset)
    for raw in iter(f.readline, b""):
        text = raw.decode("utf-8")
        if offset == 0:
            text = text.lstrip("\ufeff")
        yield offset, number, text[:-2] + "\n" if text.endswith("\r\n") else text
        offset += len(raw)
        number += 1


def ner_conll_splits(source: str, *, seed: int, options: dict, max_examples: int = 0,
                     stream: bool | None = None, evaluation: bool = False,
                     require_train: bool = True) -> streaming.StreamedSplits:
    """A CoNLL file or corpus directory as lazily read ``{"tokens", "tags", "document"}``
    datasets (``tasks/ner_data.py``), tags in the target ``scheme``.

    * a directory: train/validation/test files by name (``conll.find_split_files``), each
      split its file's sentences in file order; no validation file: a seeded 10% of train
      (hash-ranked, ``streaming.split_records``);
    * a file: seeded 80/10/10 of its sentences (hash-ranked);
    * ``evaluation``: a file whole and in order (``validation`` = ``test``, ``train`` empty);
      ``require_train=False``: a directory's validation/test files, no training file needed.

    ``stream``: True reads lazily, False into memory once, None by size
    (``streaming.IN_MEMORY_MAX_BYTES``).

    Raises:
        DataError: Malformed lines or invalid tag sequences (file and line), too few sentences.
    """
    check_options(options, OPTIONS, source)
    read_opts = dict(token_column=options.get("token_column", 0),
                     tag_column=options.get("tag_column", -1))
    target = tagging.normalize_scheme(options.get("scheme", "IOB2"))
    repair = bool(options.get("repair", False))
    path = pathlib.Path(source)
    if path.is_dir():
        files = conll.find_split_files(path, require_train and not evaluation)
        if not require_train or evaluation:
            files.pop("train", None)
        names = [s for s in ("train", "validation", "test") if s in files]
        index = _Index([str(files[s]) for s in names], read_opts)
        by_file = {s: np.flatnonzero(index.lines.file_ids == k) for k, s in enumerate(names)}
        if "train" not in by_file:
            parts = [np.zeros(0, np.int64), by_file.get("validation"), by_file.get("test")]
            policy = "evaluation: validation/test files by name"
        elif "validation" in by_file:
            parts = [by_file["train"], by_file["validation"], by_file.get("test")]
            policy = "files by name"
        else:
            train = by_file["train"]
            cut = streaming.split_records(len(train), seed, (0.9, 0.1, 0.0), source=source)
            parts = [train[cut[0]], train[cut[1]], by_file.get("test")]
            policy = "files by name; validation = seeded 10% of train"
        info = {"files": {s: str(f) for s, f in files.items()}, "split_policy": policy}
    else:
        index = _Index([str(path)], read_opts)
        if evaluation:
            if not len(index):
                raise DataError("no sentences", path)
            whole = np.arange(len(index), dtype=np.int64)
            parts = [whole[:0], whole, whole]
            info = {"files": {"test": str(path)}, "whole_file": True,
                    "split_policy": WHOLE_FILE_POLICY}
        else:
            parts = list(streaming.split_records(len(index), seed, (0.8, 0.1, 0.1),
                                                 source=str(path)))
            parts[2] = parts[2] if len(parts[2]) else None
            info = {"files": {"train": str(path)},
                    "split_policy": "one file, seeded 80/10/10 split of sentences"}
    if not evaluation:
        parts = streaming.capped(parts, max_examples)
    scheme = tagging.normalize_scheme(options.get("input_scheme") or tagging.detect_scheme(
        index.tags(i) for i in range(len(index))))
    split_of = np.full(len(index), -1, np.int8)
    for k, part in enumerate(parts):
        if part is not None:
            split_of[part] = k
    entities, types, repaired = _validate(index, scheme, target, repair, split_of)
    paths, lines = index.lines.paths, index.lines
    # A valid IOB2 or BIOES sequence converts to itself (IOB1 does not: a B- after O becomes
    # I-), so the lazy reader skips the conversion then (~30% of its time).
    identity = scheme == target != "IOB1"

    def make(records):
        def read():
            handles = {}
            try:
                for position, i in enumerate(records):
                    fid = int(lines.file_ids[i])
                    f = handles.get(fid) or handles.setdefault(fid, open(paths[fid], "rb"))
                    sentence = next(conll.parse_sentences(
                        _lines_from(f, int(lines.offsets[i]), int(lines.lines[i])),
                        paths[fid], **read_opts))
                    tags = repaired.get(int(i))
                    if tags is None and identity:
                        tags = sentence.tags
                    elif tags is None:  # validated at load: converts without error or warning
                        tags = tagging.convert(sentence.tags, scheme, target)
                    # A sentence outside any -DOCSTART- document is one of its own (id < 0).
                    document = int(index.documents[i])
                    yield {"tokens": sentence.tokens, "tags": tags,
                           "document": document if document >= 0 else -1 - position}
            finally:
                for f in handles.values():
                    f.close()
        return read

    stream = streaming.choose(stream, paths)
    datasets = streaming.datasets(parts, make, SIGNATURE, stream)
    if evaluation and not path.is_dir():
        datasets[2] = datasets[1]  # one file: validation and test are the same examples
    named = {s: p for s, p in zip(("train", "validation", "test"), parts) if p is not None}
    vocab = set()
    for element in make(parts[0][:ESTIMATE_RECORDS])():
        vocab.update(element["tokens"])
    info.update({
        "source": str(source), "streamed": stream, "scheme": scheme, "target_scheme": target,
        "examples": {s: len(p) for s, p in named.items()},
        "tokens": {s: int(index.lengths[p].sum()) for s, p in named.items()},
        "entities": {s: dict(sorted(entities[k].items()))
                     for k, s in enumerate(("train", "validation", "test")) if s in named},
        # Entity types from every file read: a tag inventory is label metadata, not a fitted
        # vocabulary, and a test tag missing from it would break evaluation.
        "tag_names": tagging.tag_names(sorted(types), target), "vocab_size_estimate": len(vocab)})
    info["num_tags"] = len(info["tag_names"])
    return streaming.StreamedSplits(*datasets, info)
