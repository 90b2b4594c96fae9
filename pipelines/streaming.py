"""Streaming building blocks: record indexes, hash-ranked splits, lazy split datasets.

A file source is read twice, never held whole:

1. an *index pass* (Python, sequential, one line at a time) checks every record, remembers
   where it starts (file number and byte offset, 12 bytes a record) and a few per-record
   numbers (label code, token count) for the data report;
2. each split is then a ``tf.data`` dataset that reads its records lazily
   (``Dataset.from_generator`` over a file reader, or ``interleave`` over several files).

Splits are assigned by hashing a stable key, the record's number in the corpus, with the seed:
the records sorted by that hash give the split order, the first ``n_train`` are train, the next
``n_val`` validation, the rest test (sizes from ``split_sizes``, so tiny files still get a
validation example). Records that must stay together (translations of one sentence) are
ranked by a hash of a group key instead (:func:`split_groups`); a dataset that is already a
stream (TFDS) is filtered by the same hash computed in graph ops (:func:`record_hashes_tf`).
Only the index (integers) is ranked in memory, never the text. The same
seed gives the same splits and the same order, whichever path (streamed or in memory) reads
them: both go through :func:`split_records`.
"""

from __future__ import annotations

import array
import dataclasses
import os
from typing import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from pipelines.errors import DataError

#: Sources smaller than this (bytes) are read into memory once, then sliced
#: (``from_tensor_slices``): one pass over the train split of a generated 5 MB file took
#: 0.035 s vs 0.645 s streamed (sentiment CSV) and 0.066 s vs 1.207 s (char text), about 18x
#: faster, on this 2-core machine under load. Larger sources stream.
IN_MEMORY_MAX_BYTES = 64 * 2 ** 20

_MASK64 = (1 << 64) - 1


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser over uint64 (wrapping arithmetic): a fast, well-mixed hash."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def record_hashes(n: int, seed: int) -> np.ndarray:
    """uint64 [n]: the hash of (seed, record number) for records ``0..n-1``."""
    keys = np.arange(n, dtype=np.uint64) ^ _splitmix64(np.array([seed & _MASK64], np.uint64))
    return _splitmix64(keys)


def record_hashes_tf(numbers: tf.Tensor, seed: int) -> tf.Tensor:
    """:func:`record_hashes` in graph ops: uint64 hashes of int64 record ``numbers`` (any
    shape), for datasets that are filtered by split without a table of record numbers."""
    def mix(x):
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(shift, tf.uint64)))
            x = x * tf.constant(factor, tf.uint64)
        return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, tf.constant(31, tf.uint64)))

    key = int(_splitmix64(np.array([seed & _MASK64], np.uint64))[0])
    x = tf.bitwise.bitwise_xor(tf.cast(numbers, tf.uint64), tf.constant(key, tf.uint64))
    return mix(x + tf.constant(0x9E3779B97F4A7C15, tf.uint64))


def seeded_order(n: int, seed: int) -> np.ndarray:
    """int64 [n]: record numbers sorted by :func:`record_hashes` (a seeded permutation that
    needs only the count, so it is the same for a list in memory and a streamed file)."""
    return np.argsort(record_hashes(n, seed), kind="stable").astype(np.int64)


def split_records(n: int, seed: int, fractions: Sequence[float], *, source: str = "",
                  caps: Sequence[int] | None = None) -> tuple[np.ndarray, ...]:
    """Record numbers of (train, validation, test), each in its seeded order.

    Args:
        n: Number of records.
        seed: Split seed.
        fractions: (train, validation, test) fractions; ``test`` may be 0 (then test is empty).
        source: Named in the error for too few records.
        caps: Optional per-split maxima (0 = no cap): the first records of each split, so a
            capped split is a prefix of the uncapped one.

    Raises:
        DataError: Fewer than 2 records.
    """
    from pipelines.readers._common import split_sizes

    n_train, n_val, n_test = split_sizes(n, fractions, source=source)
    order = seeded_order(n, seed)
    parts = [order[:n_train], order[n_train:n_train + n_val], order[n_train + n_val:]]
    if caps:
        parts = [p[:c] if c else p for p, c in zip(parts, caps)]
    return tuple(parts)


@dataclasses.dataclass
class StreamedSplits:
    """Splits that are already ``tf.data`` datasets (``pipelines.sources.load`` passes them
    through instead of building datasets from Python lists).

    Attributes:
        train, validation, test: Datasets (test None when there is none).
        info: Source info plus the counts (``examples`` per split, ``tokens``...) gathered by
            the index pass; ``"streamed"`` says whether the splits read the files lazily.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    info: dict


class LineIndex:
    """Byte offsets of records in one or more UTF-8 files, built in one sequential pass.

    Attributes:
        paths: The files, in reading order.
        file_ids: int32 [n]: which file each record is in.
        offsets: int64 [n]: byte offset of each record's first line.
        lines: int64 [n]: 1-based line number of that line (for error messages).
    """

    def __init__(self, paths: Sequence[str]):
        self.paths = [str(p) for p in paths]
        # array.array, not lists: 4-8 bytes an entry instead of ~36 (pointer + int object),
        # which made a 3 GB corpus' index the largest thing in memory.
        self._file_ids, self._offsets, self._lines = array.array("i"), array.array("q"), \
            array.array("q")
        self.file_ids = self.offsets = self.lines = None

    def add(self, file_id: int, offset: int, line: int) -> None:
        self._file_ids.append(file_id)
        self._offsets.append(offset)
        self._lines.append(line)

    def freeze(self) -> "LineIndex":
        self.file_ids = np.frombuffer(self._file_ids, np.int32).copy()
        self.offsets = np.frombuffer(self._offsets, np.int64).copy()
        self.lines = np.frombuffer(self._lines, np.int64).copy()
        self._file_ids = self._offsets = self._lines = None
        return self

    def __len__(self) -> int:
        return 0 if self.offsets is None else len(self.offsets)


def decoded_lines(path: str, start: int = 0, first_line: int = 1
                  ) -> Iterator[tuple[int, int, str]]:
    """``(byte offset, line number, text)`` for each line of ``path`` from byte ``start``.

    Lines are read one at a time as bytes and decoded strictly (a BOM at the very start is
    dropped); the text keeps its line break, ``"\\r\\n"`` becomes ``"\\n"`` as in
    ``read_text``.

    Raises:
        DataError: Naming the file and line of the first byte that is not UTF-8.
    """
    offset, number = start, first_line
    with open(path, "rb") as f:
        f.seek(start)
        for raw in f:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError("not valid UTF-8", path, number,
                                raw[err.start: err.start + 8]) from None
            if offset == 0:
                text = text.lstrip("\ufeff")
            if text.endswith("\r\n"):
                text = text[:-2] + "\n"
            yield offset, number, text
            offset += len(raw)
            number += 1


#: Elements handed from the Python generator to tf.data at a time (then unbatched): one
#: hand-over per element costs more than reading the element.
GENERATOR_BLOCK = 256


def _fields(signature, row) -> list:
    """``row``'s values in ``tf.nest.flatten(signature)`` order, down to the signature's leaves
    only (``tf.nest.flatten`` would also flatten a list of tokens)."""
    if isinstance(signature, dict):
        return [x for k in sorted(signature) for x in _fields(signature[k], row[k])]
    if isinstance(signature, (tuple, list)):
        return [x for spec, value in zip(signature, row) for x in _fields(spec, value)]
    return [row]


def _is_ragged(spec) -> bool:
    """A field with a leading ``None`` dimension (tokens [None], notes [None, 3])."""
    return spec.shape.rank > 0


def _pack_column(values: list, spec):
    """One field of a block: a list (scalars) or ``(flat values, row lengths)`` (ragged)."""
    if not _is_ragged(spec):
        return values
    lengths = np.array([len(v) for v in values], np.int64)
    if spec.dtype == tf.string:
        return [x for v in values for x in v], lengths
    inner = tuple(spec.shape[1:])
    flat = np.concatenate([np.asarray(v, spec.dtype.as_numpy_dtype).reshape((-1,) + inner)
                           for v in values]) if values else np.zeros((0,) + inner)
    return flat.astype(spec.dtype.as_numpy_dtype), lengths


def _column_spec(spec):
    if not _is_ragged(spec):
        return tf.TensorSpec([None], spec.dtype)
    return (tf.TensorSpec([None, *spec.shape[1:]], spec.dtype), tf.TensorSpec([None], tf.int64))


@tf.autograph.experimental.do_not_convert
def _unpack_block(signature):
    specs = tf.nest.flatten(signature)

    def unpack(*columns):
        out = [tf.RaggedTensor.from_row_lengths(c[0], c[1]) if _is_ragged(spec) else c
               for c, spec in zip(columns, specs)]
        return tf.nest.pack_sequence_as(signature, out)
    return unpack


@tf.autograph.experimental.do_not_convert
def _dense_elements(*element):
    # Rows of a RaggedTensor come out dense but keep a RaggedTensorSpec, which padded_batch
    # and Keras reject; an identity gives them a plain TensorSpec.
    return tf.nest.map_structure(tf.identity, element if len(element) > 1 else element[0])


def generator_dataset(make_iterator: Callable[[], Iterator], signature) -> tf.data.Dataset:
    """A dataset that calls ``make_iterator()`` afresh for every pass (every epoch).

    Elements cross from Python in blocks of :data:`GENERATOR_BLOCK` (one ``[block]`` tensor per
    scalar field; flat values and row lengths per variable-length field, e.g. tokens [None] or
    notes [None, 3]) and are unbatched, in order.
    """
    specs = tf.nest.flatten(signature)

    def block(rows):
        return tuple(_pack_column([r[i] for r in rows], spec) for i, spec in enumerate(specs))

    def blocks():
        rows = []
        for row in make_iterator():
            rows.append(_fields(signature, row))
            if len(rows) == GENERATOR_BLOCK:
                yield block(rows)
                rows = []
        if rows:
            yield block(rows)

    block_signature = tuple(_column_spec(spec) for spec in specs)
    ds = tf.data.Dataset.from_generator(blocks, output_signature=block_signature)
    ds = ds.map(_unpack_block(signature)).unbatch()
    return ds.map(_dense_elements) if any(map(_is_ragged, specs)) else ds


def materialise(make_iterator: Callable[[], Iterator], signature) -> tf.data.Dataset:
    """The in-memory fast path: the same elements as :func:`generator_dataset`, sliced from
    tensors built once (only for sources under :data:`IN_MEMORY_MAX_BYTES`)."""
    rows = [_fields(signature, row) for row in make_iterator()]
    columns = []
    for i, spec in enumerate(tf.nest.flatten(signature)):
        packed = _pack_column([row[i] for row in rows], spec)
        if _is_ragged(spec):
            flat = tf.constant(packed[0], spec.dtype, shape=[len(packed[0]), *spec.shape[1:]])
            columns.append(tf.RaggedTensor.from_row_lengths(flat, tf.constant(packed[1])))
        else:
            columns.append(tf.constant(packed, spec.dtype, shape=[len(packed)]))
    ds = tf.data.Dataset.from_tensor_slices(tf.nest.pack_sequence_as(signature, columns))
    return ds.map(_dense_elements) if any(map(_is_ragged, tf.nest.flatten(signature))) else ds


def choose(stream: bool | None, paths: Sequence[str]) -> bool:
    """Whether to stream: ``stream`` when given, else several files or a large one."""
    if stream is None:
        return len(paths) > 1 or total_bytes(paths) >= IN_MEMORY_MAX_BYTES
    return bool(stream)


def datasets(parts, make: Callable, signature, stream: bool) -> list:
    """One dataset per split (None for a None part): ``make(records)`` read lazily
    (``stream``) or once into memory."""
    build = generator_dataset if stream else materialise
    return [None if part is None else build(make(part), signature) for part in parts]


def capped(parts: Sequence[np.ndarray | None], max_examples: int) -> list:
    """The first ``max_examples`` train and ``max(1, max_examples // 4)`` validation/test
    records (prefixes, as for every source); all of them for 0."""
    if not max_examples:
        return list(parts)
    caps = (max_examples,) + (max(1, max_examples // 4),) * (len(parts) - 1)
    return [None if p is None else p[:c] for p, c in zip(parts, caps)]


def split_groups(keys: np.ndarray, seed: int, fractions: Sequence[float], *,
                 source: str = "") -> tuple[np.ndarray, ...]:
    """Like :func:`split_records`, but records with the same key (uint64 [n], e.g. a hash of
    the source sentence) land in one split: the distinct keys are ranked by their seeded hash
    and cut by count; each split lists its records by (key rank, record number).
    """
    from pipelines.readers._common import split_sizes

    unique, group = np.unique(keys, return_inverse=True)
    n_train, n_val, _ = split_sizes(len(unique), fractions, source=source)
    rank = np.empty(len(unique), np.int64)
    rank[np.argsort(_splitmix64(unique ^ np.uint64(seed & _MASK64)), kind="stable")] = \
        np.arange(len(unique))
    record_rank = rank[group.reshape(-1)]
    order = np.lexsort((np.arange(len(keys)), record_rank))
    ranks = record_rank[order]
    edges = np.searchsorted(ranks, [n_train, n_train + n_val])
    return order[:edges[0]], order[edges[0]:edges[1]], order[edges[1]:]


def total_bytes(paths: Sequence[str]) -> int:
    return sum(os.path.getsize(p) for p in paths)


__all__ = ["GENERATOR_BLOCK", "IN_MEMORY_MAX_BYTES", "LineIndex", "StreamedSplits", "capped",
           "choose", "datasets", "decoded_lines", "generator_dataset", "materialise",
           "record_hashes", "record_hashes_tf", "seeded_order", "split_groups", "split_records",
           "total_bytes"]
