"""Sentence pairs for seq2seq: ``source<TAB>target[<TAB>attribution]`` (Anki / Tatoeba)."""

from __future__ import annotations

import os
import pathlib

from pipelines.errors import DataError
from pipelines.readers._common import RawSplits, check_options, grouped_split, read_text

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
        if not line.strip():
            continue
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
            continue
        pairs.append((target, source) if reverse else (source, target))
    if not pairs:
        raise DataError("no pairs (after the max_length filter)" if max_length else "no pairs",
                        path)
    return pairs


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
