"""Streamed text sources: labelled CSV/TSV/JSONL files (sentiment) and text files (chars).

Each function makes one index pass over the file(s) (:mod:`pipelines.streaming`), then returns
:class:`pipelines.streaming.StreamedSplits` whose datasets read the records lazily, in the
seeded split order. Files under ``streaming.IN_MEMORY_MAX_BYTES`` take the in-memory fast path:
the same generator is read once into tensors (``stream=True`` forces streaming, ``False``
memory; the default picks by size).
"""

from __future__ import annotations

import array
import collections
import csv
import json
import pathlib

import numpy as np
import tensorflow as tf

from pipelines import streaming
from pipelines.errors import DataError
from pipelines.readers._common import check_options
from pipelines.readers.evaluation import WHOLE_FILE_POLICY
from pipelines.readers.plain_text import MAX_CHUNK_CHARS
from pipelines.readers.text_label import clean_text, json_records, label_classes

#: The vocabulary-size estimate of the data report reads at most this many train records.
ESTIMATE_RECORDS = 100_000
_JSON = (".jsonl", ".json", ".ndjson")
_STRING = tf.TensorSpec([], tf.string)


def _lines_at(f, offset: int):
    """Decoded lines of an open binary file from ``offset`` (already checked as UTF-8)."""
    f.seek(offset)
    for raw in iter(f.readline, b""):
        text = raw.decode("utf-8")
        if offset == 0:
            text, offset = text.lstrip("\ufeff"), -1
        yield text[:-2] + "\n" if text.endswith("\r\n") else text


def _choose(stream, paths) -> bool:
    if stream is None:
        return len(paths) > 1 or streaming.total_bytes(paths) >= streaming.IN_MEMORY_MAX_BYTES
    return bool(stream)


def _datasets(parts, make, signature, stream):
    build = streaming.generator_dataset if stream else streaming.materialise
    return [None if part is None else build(make(part), signature) for part in parts]


# ----------------------------------------------------------------------------- sentiment

def _index_labelled(path: str, text_column: str, label_column: str, clean: bool):
    """Index pass of a CSV/TSV/JSONL file: offsets, label strings and token counts."""
    index = streaming.LineIndex([path])
    labels = array.array("i")         # label code per record (position in `names`)
    names: dict[str, int] = {}
    tokens = array.array("q")
    counts: collections.Counter = collections.Counter()
    first: dict[str, int] = {}
    json_file = pathlib.Path(path).suffix.lower() in _JSON
    lines = streaming.decoded_lines(path)
    if json_file:
        records = json_records(lines, path, text_column, label_column)
    else:
        records = _csv_records(lines, path, text_column, label_column,
                               "\t" if pathlib.Path(path).suffix.lower() in (".tsv", ".tab")
                               else ",")
    for offset, number, body, label in records:
        if not body.strip():
            raise DataError("empty text", path, number)
        if not label:
            raise DataError("empty label", path, number)
        index.add(0, offset, number)
        labels.append(names.setdefault(label, len(names)))
        counts[label] += 1
        first.setdefault(label, number)
        tokens.append(len((clean_text(body) if clean else body).split()))
    if not len(labels):
        raise DataError("no examples", path)
    return index.freeze(), np.frombuffer(labels, np.int32), names, counts, first, \
        np.frombuffer(tokens, np.int64)


class _Tracked:
    """Feeds lines to ``csv.reader`` and remembers where the current record started."""

    def __init__(self, lines):
        self.lines, self.start, self.pending = lines, None, True

    def __iter__(self):
        return self

    def __next__(self):
        offset, number, text = next(self.lines)
        if self.pending:
            self.start, self.pending = (offset, number), False
        return text


def _csv_records(lines, path, text_column, label_column, delimiter):
    tracked = _Tracked(lines)
    reader = csv.reader(tracked, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise DataError("empty file", path)
    header = [h.strip() for h in header]
    for column in (text_column, label_column):
        if column not in header:
            raise DataError(f"no column {column!r} in the header (use the text_column/"
                            f"label_column options)", path, 1, header)
    ti, li = header.index(text_column), header.index(label_column)
    while True:
        tracked.pending = True
        fields = next(reader, None)
        if fields is None:
            return
        if not fields:
            continue
        if len(fields) != len(header):
            raise DataError(f"expected {len(header)} fields like the header, found "
                            f"{len(fields)}", path, reader.line_num, fields[:3])
        offset, number = tracked.start
        yield offset, number, fields[ti], fields[li].strip()


def sentiment_file_splits(source: str, *, seed: int, options: dict, max_examples: int = 0,
                          stream: bool | None = None, evaluation: bool = False
                          ) -> streaming.StreamedSplits:
    """A CSV/TSV/JSONL file, seeded 80/10/10, as lazily read ``{"text", "label"}`` datasets.

    Same options, checks, class names and counts as ``text_label.read_text_label``.
    ``evaluation``: the whole file in order (``validation`` = ``test``, ``train`` empty).
    """
    check_options(options, ("text_column", "label_column", "class_names"), source)
    path = str(source)
    text_column = options.get("text_column", "text")
    label_column = options.get("label_column", "label")
    index, codes, names, counts, first, tokens = _index_labelled(path, text_column,
                                                                 label_column, True)
    mapping, class_names = label_classes(counts, first, path, options.get("class_names"))
    classes = np.array([mapping[name] for name in names], np.int32)[codes]
    cap = max(1, max_examples // 4)
    if evaluation:
        whole = np.arange(len(index), dtype=np.int64)
        parts = (whole[:0], whole, whole)
    else:
        parts = streaming.split_records(len(index), seed, (0.8, 0.1, 0.1), source=path,
                                        caps=(max_examples, cap, cap) if max_examples else None)
    json_file = pathlib.Path(path).suffix.lower() in _JSON
    delimiter = "\t" if pathlib.Path(path).suffix.lower() in (".tsv", ".tab") else ","
    if not json_file:
        with open(path, "rb") as f:
            header = next(csv.reader(_lines_at(f, 0), delimiter=delimiter))
        column = [h.strip() for h in header].index(text_column)

    def make(records):
        def read():
            with open(path, "rb") as f:
                for i in records:
                    lines = _lines_at(f, int(index.offsets[i]))
                    if json_file:
                        body = str(json.loads(next(lines))[text_column])
                    else:
                        body = next(csv.reader(lines, delimiter=delimiter))[column]
                    yield {"text": clean_text(body), "label": classes[i]}
        return read

    stream = _choose(stream, [path])
    signature = {"text": _STRING, "label": tf.TensorSpec([], tf.int32)}
    parts = [parts[0], parts[1], parts[2] if len(parts[2]) else None]
    train, validation, test = _datasets(parts, make, signature, stream)
    if evaluation:
        test = validation
    named = dict(zip(("train", "validation", "test"), parts))
    named = {k: v for k, v in named.items() if v is not None}
    estimate = set()
    for element in make(parts[0][:ESTIMATE_RECORDS])():
        estimate.update(element["text"].lower().split())
    info = {"source": path, "class_names": class_names, "streamed": stream,
            "split_policy": WHOLE_FILE_POLICY if evaluation else "one file, seeded 80/10/10 split",
            **({"whole_file": True} if evaluation else {}),
            "examples": {k: len(v) for k, v in named.items()},
            "tokens": {k: int(tokens[v].sum()) for k, v in named.items()},
            "class_counts": {k: np.bincount(classes[v], minlength=len(class_names)).tolist()
                             for k, v in named.items()},
            "num_classes": len(class_names), "vocab_size_estimate": len(estimate)}
    return streaming.StreamedSplits(train, validation, test, info)


# ----------------------------------------------------------------------------- char text

def text_files(source: str) -> list[str]:
    """``source`` itself, or the ``*.txt`` files under a directory, sorted.

    Raises:
        DataError: A directory without ``.txt`` files.
    """
    root = pathlib.Path(source)
    if not root.is_dir():
        return [str(root)]
    files = sorted(str(p) for p in root.rglob("*.txt") if p.is_file())
    if not files:
        raise DataError("no .txt files in the directory", root)
    return files


def _chunks(lines, max_chars: int):
    """``(offset, line, chunk)`` paragraph chunks, as ``plain_text.chunk_text`` cuts them,
    from ``(offset, line, text)`` lines: blank lines end paragraphs; a paragraph longer than
    ``max_chars`` is cut at line boundaries."""
    piece, size, start = [], 0, None
    for offset, number, text in lines:
        line = text[:-1] if text.endswith("\n") else text
        if not line.strip():
            if piece:
                yield start + ("\n".join(piece),)
            piece, size = [], 0
            continue
        if piece and size + len(line) + 1 > max_chars:
            yield start + ("\n".join(piece),)
            piece, size = [], 0
        if not piece:
            start = (offset, number)
        piece.append(line)
        size += len(line) + 1
    if piece:
        yield start + ("\n".join(piece),)


def _records(lines, mode, max_chars):
    if mode == "lines":
        for offset, number, text in lines:
            line = text.rstrip()
            if line.strip():
                yield offset, number, line
    else:
        yield from _chunks(lines, max_chars)


def char_file_splits(source: str, *, seed: int, options: dict, max_examples: int = 0,
                     stream: bool | None = None, evaluation: bool = False
                     ) -> streaming.StreamedSplits:
    """A text file or a directory of ``.txt`` files as ``{"text"}`` datasets read lazily.

    ``mode="continuous"`` (default): paragraph chunks, first 90% / next 5% / last 5% in text
    order (files in sorted order; several files are read by ``interleave``).
    ``mode="lines"``: one non-empty line an example, seeded 80/10/10.
    ``evaluation``: every example in order (``validation`` = ``test``, ``train`` empty).
    """
    check_options(options, ("mode", "max_chunk_chars"), source)
    mode = options.get("mode", "continuous")
    if mode not in ("continuous", "lines"):
        raise ValueError(f"mode must be 'continuous' or 'lines', got {mode!r}")
    max_chars = options.get("max_chunk_chars", MAX_CHUNK_CHARS)
    paths = text_files(source)
    index = streaming.LineIndex(paths)
    sizes = array.array("q")
    for file_id, path in enumerate(paths):
        for offset, number, text in _records(streaming.decoded_lines(path), mode, max_chars):
            index.add(file_id, offset, number)
            sizes.append(len(text))
    index.freeze()
    sizes = np.frombuffer(sizes, np.int64)
    n = len(index)
    if evaluation:
        if not n:
            raise DataError("no non-empty lines" if mode == "lines" else "no text", source)
        whole = np.arange(n, dtype=np.int64)
        parts, policy = [whole[:0], whole, whole], WHOLE_FILE_POLICY
    elif mode == "lines":
        if not n:
            raise DataError("no non-empty lines", source)
        parts = list(streaming.split_records(n, seed, (0.8, 0.1, 0.1), source=source))
        policy = "lines, seeded 80/10/10"
    else:
        if n < 3:
            raise DataError(f"found {n} paragraph chunk(s); a continuous text needs at least 3 "
                            f"(or use mode='lines')", source)
        n_val = max(1, round(n * 0.05))
        edges = [0, n - 2 * n_val, n - n_val, n]
        parts = [np.arange(a, b, dtype=np.int64) for a, b in zip(edges, edges[1:])]
        policy = "paragraph chunks in order: first 90% / next 5% / last 5%"
    if max_examples and not evaluation:  # prefixes, as for every source
        parts = [p[:c] for p, c in zip(parts, (max_examples,) + (max(1, max_examples // 4),) * 2)]

    def make(records):
        def read():
            handles = {}
            try:
                for i in records:
                    fid = int(index.file_ids[i])
                    f = handles.get(fid) or handles.setdefault(fid, open(paths[fid], "rb"))
                    lines = ((0, 0, t) for t in _lines_at(f, int(index.offsets[i])))
                    yield {"text": next(_records(lines, mode, max_chars))[2]}
            finally:
                for f in handles.values():
                    f.close()
        return read

    stream = _choose(stream, paths)
    signature = {"text": _STRING}
    if stream and mode == "continuous" and len(paths) > 1:
        datasets = [_interleaved(part, index, make, signature) for part in parts]
    else:
        datasets = _datasets(parts, make, signature, stream)
    if evaluation:
        datasets[2] = datasets[1]
    named = dict(zip(("train", "validation", "test"), parts))
    chars = set()
    for element in make(parts[0][:ESTIMATE_RECORDS])():
        chars.update(element["text"])
    info = {"source": str(pathlib.Path(source)), "mode": mode, "split_policy": policy,
            "streamed": stream, "files": len(paths), **({"whole_file": True} if evaluation else {}),
            "examples": {k: len(v) for k, v in named.items()},
            "characters": {k: int(sizes[v].sum()) for k, v in named.items()},
            "vocab_size_estimate": len(chars)}
    return streaming.StreamedSplits(*datasets, info)


def _interleaved(records, index, make, signature):
    """One split's chunks, each file's part read by its own generator, files interleaved."""
    by_file = [records[index.file_ids[records] == fid] for fid in range(len(index.paths))]
    by_file = [r for r in by_file if len(r)]
    if len(by_file) < 2:
        return streaming.generator_dataset(make(records), signature)
    table = tf.constant(np.arange(len(by_file)), tf.int64)

    def read_file(k):
        return tf.data.Dataset.from_generator(
            lambda k: make(by_file[int(k)])(), args=(k,), output_signature=signature)

    return tf.data.Dataset.from_tensor_slices(table).interleave(
        read_file, cycle_length=min(4, len(by_file)), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
