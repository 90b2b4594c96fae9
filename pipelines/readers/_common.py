"""Helpers shared by the readers: strict UTF-8 reading, seeded splits, package data paths."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import os
import pathlib
import random
from typing import Callable, Hashable, Sequence, TypeVar

from pipelines.errors import DataError

T = TypeVar("T")

# Default split policy for sources without a split of their own: 80% / 10% / 10%.
FRACTIONS = (0.8, 0.1, 0.1)


@dataclasses.dataclass
class RawSplits:
    """Plain-Python splits before they become ``tf.data`` datasets.

    Attributes:
        train: Examples (task-specific Python values, see ``pipelines.sources``).
        validation: Same (None only for evaluation: a corpus directory without one).
        test: Same, or None when the source has no test split.
        info: Source-specific info (``source``, ``synthetic``, ``split_policy``, task keys).
    """

    train: list
    validation: list | None
    test: list | None
    info: dict


def read_text(path: str | os.PathLike) -> str:
    """Reads a whole file as strict UTF-8 (a BOM is dropped).

    Raises:
        DataError: Naming the file and the line of the first byte that is not UTF-8.
        FileNotFoundError: When the file does not exist.
    """
    data = pathlib.Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError("not valid UTF-8", path, line,
                        data[err.start: err.start + 8]) from None
    # Windows line endings would otherwise leave "\r" glued to the last column.
    return text.lstrip("\ufeff").replace("\r\n", "\n")


def package_file(distribution: str, *parts: str) -> pathlib.Path:
    """Path of a data file inside an installed pip package, without importing it.

    Raises:
        FileNotFoundError: Naming the package when it (or the file) is not installed.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"package {distribution!r} is not installed; install the 'demo' extras "
            f"(pip install -e '.[demo]') to use its embedded data") from None
    path = pathlib.Path(dist.locate_file(os.path.join(*parts)))
    if not path.exists():
        raise FileNotFoundError(f"{path} missing from package {distribution!r} {dist.version}")
    return path


def split_sizes(n: int, fractions: Sequence[float] = FRACTIONS, *,
                source: str = "") -> tuple[int, int, int]:
    """Sizes (train, validation, test) for ``n`` items; validation gets at least one.

    Raises:
        DataError: When there are too few items for a train and a validation example.
    """
    if n < 2:
        raise DataError(f"need at least 2 examples to make train and validation splits, "
                        f"found {n}", source or None)
    # Half-up rounding (not Python's banker's rounding), and a test split of at least one
    # example whenever one is asked for and there are 3+ items, so tiny files still get one.
    n_val = max(1, math.floor(n * fractions[1] + 0.5))
    n_test = 0
    if len(fractions) > 2 and fractions[2] > 0 and n >= 3:
        n_test = max(1, math.floor(n * fractions[2] + 0.5))
    if n - n_val - n_test < 1:
        n_test = max(0, n - n_val - 1)
    return n - n_val - n_test, n_val, n_test


def seeded_split(items: Sequence[T], seed: int, fractions: Sequence[float] = FRACTIONS, *,
                 source: str = "") -> tuple[list[T], list[T], list[T] | None]:
    """Shuffles a copy of ``items`` with ``seed`` and cuts it into train/validation/test.

    The shuffle uses its own ``random.Random(seed)`` so it is the same on every machine and
    independent of global random state. ``test`` is None when it would be empty.
    """
    order = list(items)
    random.Random(seed).shuffle(order)
    n_train, n_val, n_test = split_sizes(len(order), fractions, source=source)
    test = order[n_train + n_val:] if n_test else None
    return order[:n_train], order[n_train:n_train + n_val], test


def grouped_split(items: Sequence[T], key: Callable[[T], Hashable], seed: int,
                  fractions: Sequence[float] = FRACTIONS, *, source: str = ""
                  ) -> tuple[list[T], list[T], list[T] | None]:
    """Like :func:`seeded_split` but keeps all items with the same ``key`` in one split.

    Used where near-duplicates would leak across splits (one English sentence with several
    translations; several tracks of one MIDI file). Group order follows first appearance, so
    the result is deterministic for a fixed seed.
    """
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    train_keys, val_keys, test_keys = seeded_split(list(groups), seed, fractions, source=source)

    def flatten(keys):
        return None if keys is None else [item for k in keys for item in groups[k]]

    return flatten(train_keys), flatten(val_keys), flatten(test_keys)


def check_options(options: dict, allowed: Sequence[str], source: str) -> None:
    """Rejects options the chosen source does not use, so a typo is not silently ignored."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"source {source!r} does not take option(s) {unknown}; "
                         f"it takes {sorted(allowed)}")
