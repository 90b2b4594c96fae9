"""Sentence pairs for seq2seq: ``source<TAB>target[<TAB>attribution]`` (Anki / Tatoeba)."""

from __future__ import annotations

import array
import hashlib
import os
import pathlib

import numpy as np
import tensorflow as tf

from pipelines import streaming
from pipelines.errors import DataError
from pipelines.readers._common import RawSplits, check_options, grouped_split, read_text
from pipelines.readers.evaluation import WHOLE_FILE_POLICY

Pair = tuple[str, str]


def read_pairs(path: str | os.PathLike, *, lowercase: bool = False, max_length: int = 0,
               reverse: bool = False) -> list[Pair]:
    """Reads tab-separated pairs, in file order.

    Args:
        path: UTF-8 file, one ``source<TAB>target`` pair per line; a third column
            (Tatoeba attribution) is ignored.
        lowercase: Lowercase both sides.
        max_length: Drop pairs where either side has more than this many
            whitespace-separated words (0 = keep all). Dropping is the point of the option,
            so it is not an error.
        reverse: Swap source and target (e.g. Spanish -> English from an English-first file).

    Raises:
        DataError: A line without a tab, with more than 3 columns, or with an empty side.
    """
    pairs = []
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        pair = parse_pair(line, path, number, lowercase=lowercase, max_length=max_length,
                          reverse=reverse)
        if pair is not None:
            pairs.append(pair)
    if not pairs:
        raise DataError("no pairs (after the max_length filter)" if max_length else "no pairs",
                        path)
    return pairs


def parse_pair(line: str, path, number: int, *, lowercase: bool = False, max_length: int = 0,
               reverse: bool = False) -> Pair | None:
    """One line's pair (the options of :func:`read_pairs`); None for a blank line or one the
    ``max_length`` filter drops.

    Raises:
        DataError: A line without a tab, with more than 3 columns, or with an empty side.
    """
    if not line.strip():
        return None
    fields = line.split("\t")
    if len(fields) < 2:
        raise DataError("expected 'source<TAB>target'", path, number, line[:80])
    if len(fields) > 3:
        raise DataError(f"expected 2 or 3 tab-separated columns, found {len(fields)}",
                        path, number, line[:80])
    source, target = fields[0].strip(), fields[1].strip()
    if not source or not target:
        raise DataError("empty source or target", path, number, line[:80])
    if lowercase:
        source, target = source.lower(), target.lower()
    if max_length and max(len(source.split()), len(target.split())) > max_length:
        return None
    return (target, source) if reverse else (source, target)


def pairs_splits(source: str, *, seed: int, options: dict) -> RawSplits:
    """Seeded 80/10/10 split of a pairs file, grouped by source sentence.

    All translations of one source sentence land in the same split, so a model is never
    tested on a sentence it was trained on with another translation.
    """
    check_options(options, ("lowercase", "max_length", "reverse"), source)
    path = source[len("pairs:"):] if source.startswith("pairs:") else source
    pairs = read_pairs(path, **options)
    train, validation, test = grouped_split(pairs, lambda p: p[0], seed, source=path)
    return RawSplits(train, validation, test, {
        "source": str(pathlib.Path(path)),
        "split_policy": "seeded 80/10/10, grouped by source sentence"})


# ----------------------------------------------------------------------------- streamed

#: The vocabulary-size estimates of the data report read at most this many train pairs.
ESTIMATE_RECORDS = 100_000
_STRING = tf.TensorSpec([], tf.string)


def _source_key(text: str) -> int:
    # 8 bytes of BLAKE2b: a stable group key (Python's hash() changes per process).
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(),
                          "little")


def pairs_file_splits(source: str, *, seed: int, options: dict, max_examples: int = 0,
                      stream: bool | None = None, evaluation: bool = False
                      ) -> streaming.StreamedSplits:
    """A pairs file as lazily read ``{"source", "target"}`` datasets.

    One index pass checks every line (the errors of :func:`read_pairs`) and keeps its offset,
    an 8-byte hash of its source sentence and its token/character counts. Splits: seeded
    80/10/10 grouped by source sentence (``streaming.split_groups``: all translations of one
    sentence in one split); ``evaluation``: the whole file in order (``validation`` =
    ``test``, ``train`` empty). ``stream``: True lazily, False into memory once, None by size.
    """
    check_options(options, ("lowercase", "max_length", "reverse"), source)
    path = source[len("pairs:"):] if source.startswith("pairs:") else source
    index = streaming.LineIndex([path])
    keys, tokens, chars = array.array("Q"), array.array("i"), array.array("i")
    for offset, number, text in streaming.decoded_lines(path):
        pair = parse_pair(text[:-1] if text.endswith("\n") else text, path, number, **options)
        if pair is None:
            continue
        index.add(0, offset, number)
        keys.append(_source_key(pair[0]))
        tokens.append(len(pair[0].split()) + len(pair[1].split()))
        chars.append(len(pair[0]) + len(pair[1]))
    index.freeze()
    if not len(index):
        raise DataError("no pairs (after the max_length filter)" if options.get("max_length")
                        else "no pairs", path)
    tokens, chars = np.frombuffer(tokens, np.int32), np.frombuffer(chars, np.int32)
    if evaluation:
        whole = np.arange(len(index), dtype=np.int64)
        parts = [whole[:0], whole, whole]
        info = {"whole_file": True, "split_policy": WHOLE_FILE_POLICY}
    else:
        parts = list(streaming.split_groups(np.frombuffer(keys, np.uint64), seed,
                                            (0.8, 0.1, 0.1), source=path))
        parts[2] = parts[2] if len(parts[2]) else None
        parts = streaming.capped(parts, max_examples)
        info = {"split_policy": "seeded 80/10/10, grouped by source sentence"}
    del keys

    def make(records):
        def read():
            with open(path, "rb") as f:
                for i in records:
                    f.seek(int(index.offsets[i]))
                    text = f.readline().decode("utf-8")
                    if index.offsets[i] == 0:
                        text = text.lstrip("\ufeff")
                    text = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
                    pair = parse_pair(text, path, int(index.lines[i]), **options)
                    yield {"source": pair[0], "target": pair[1]}
        return read

    stream = streaming.choose(stream, [path])
    datasets = streaming.datasets(parts, make, {"source": _STRING, "target": _STRING}, stream)
    if evaluation:
        datasets[2] = datasets[1]
    named = {s: p for s, p in zip(("train", "validation", "test"), parts) if p is not None}
    words, letters = (set(), set()), (set(), set())
    for element in make(parts[0][:ESTIMATE_RECORDS])():
        for side, text in enumerate((element["source"], element["target"])):
            words[side].update(text.split())
            letters[side].update(text)
    info.update({
        "source": str(pathlib.Path(path)), "streamed": stream,
        "examples": {s: len(p) for s, p in named.items()},
        "tokens": {s: int(tokens[p].sum()) for s, p in named.items()},
        "characters": {s: int(chars[p].sum()) for s, p in named.items()},
        "source_vocab_size_estimate": len(words[0]), "target_vocab_size_estimate": len(words[1]),
        "source_chars": len(letters[0]), "target_chars": len(letters[1])})
    return streaming.StreamedSplits(*datasets, info)
