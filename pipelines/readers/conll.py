"""CoNLL-style NER files: one token per line, blank lines between sentences.

Handles CoNLL-2003 (``token POS chunk NER`` separated by spaces, ``-DOCSTART-`` lines) and
WNUT-17 (``token<TAB>tag``). The token is the first column and the tag the last unless told
otherwise; a line with a tab is split on tabs only (tokens may then contain spaces).
"""

from __future__ import annotations

import os
import pathlib
from typing import Iterable, Iterator, NamedTuple

from pipelines import tags as tagging
from pipelines.errors import DataError
from pipelines.readers._common import RawSplits, check_options, seeded_split
from pipelines.streaming import decoded_lines

# Name fragments that identify a split file inside a corpus directory, most specific first
# (CoNLL-2003 "testa" is the validation set, "testb" the test set).
_SPLIT_NAMES = (
    ("validation", ("testa", "valid", "dev")),
    ("test", ("testb", "test")),
    ("train", ("train",)),
)
_SKIP_SUFFIXES = (".md", ".rst", ".json", ".py", ".zip", ".gz")


class Sentence(NamedTuple):
    """One sentence: ``tokens`` [n], ``tags`` [n], the file line of each token [n], the file,
    the index of its document in the file (-1: the file has no ``-DOCSTART-`` line before
    it, so the sentence stands alone) and the byte offset of its first line (what the
    streamed reader seeks to; -1 when unknown)."""

    tokens: list[str]
    tags: list[str]
    lines: list[int]
    path: str
    document: int = -1
    offset: int = -1


def iter_conll(path: str | os.PathLike, *, token_column: int = 0,
               tag_column: int = -1) -> Iterator[Sentence]:
    """Streams the sentences of a CoNLL file, one line read at a time; ``-DOCSTART-`` lines
    start a new document (``Sentence.document`` counts them from 0).

    Raises:
        DataError: Not UTF-8, a token line with a single column, or with a different number
            of columns than the file's first token line (file, line and the line's text).
    """
    return parse_sentences(decoded_lines(os.fspath(path)), os.fspath(path),
                           token_column=token_column, tag_column=tag_column)


def parse_sentences(lines: Iterable[tuple[int, int, str]], path: str, *, token_column: int = 0,
                    tag_column: int = -1) -> Iterator[Sentence]:
    """Sentences from ``(byte offset, line number, text)`` lines (as
    ``pipelines.streaming.decoded_lines`` gives them); a sentence is yielded as soon as the
    line that ends it is read, so a reader that seeks to a sentence reads no further."""
    name = path
    width = None
    tokens, tags, numbers = [], [], []
    document, start = -1, -1
    for offset, number, raw in lines:
        line = raw.rstrip("\n")
        # Whitespace-split fields need no strip (the common case: ~1 us a line saved).
        fields = [f.strip() for f in line.split("\t")] if "\t" in line else line.split()
        if not fields or not line.strip():
            if tokens:
                yield Sentence(tokens, tags, numbers, name, document, start)
                tokens, tags, numbers = [], [], []
            continue
        if fields[0] == "-DOCSTART-":
            # A document boundary is a sentence boundary even without the blank line.
            if tokens:
                yield Sentence(tokens, tags, numbers, name, document, start)
                tokens, tags, numbers = [], [], []
            document += 1
            continue
        if len(fields) < 2:
            raise DataError("expected 'token ... tag' (at least 2 columns)", path, number, line)
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise DataError(f"expected {width} columns like the first token line, "
                            f"found {len(fields)}", path, number, line)
        try:
            token, tag = fields[token_column], fields[tag_column]
        except IndexError:
            raise DataError(f"no column {token_column} / {tag_column}", path, number,
                            line) from None
        if not token or not tag:
            raise DataError("empty token or tag", path, number, line)
        if not tokens:
            start = offset
        tokens.append(token)
        tags.append(tag)
        numbers.append(number)
    if tokens:
        yield Sentence(tokens, tags, numbers, name, document, start)


def read_conll(path: str | os.PathLike, *, scheme: str | None = None, repair: bool = False,
               token_column: int = 0, tag_column: int = -1
               ) -> list[tuple[list[str], list[str]]]:
    """Reads a CoNLL file into ``[(tokens [n], tags [n]), ...]``, validating the tags.

    Args:
        path: The file.
        scheme: The file's tag scheme; None detects it (see ``pipelines.tags.detect_scheme``).
        repair: Repair invalid tag sequences with a warning instead of raising.
        token_column: Column of the token.
        tag_column: Column of the tag (default the last).

    Raises:
        DataError: Malformed line or invalid tag sequence, naming file and line.
    """
    sentences = list(iter_conll(path, token_column=token_column, tag_column=tag_column))
    scheme = scheme or tagging.detect_scheme([s.tags for s in sentences])
    out = []
    for s in sentences:
        spans = tagging.to_spans(s.tags, scheme, repair=repair, path=path, lines=s.lines)
        tags = s.tags if not repair else tagging.from_spans(spans, len(s.tags), scheme)
        out.append((s.tokens, tags))
    return out


def find_split_files(directory: str | os.PathLike, require_train: bool = True
                     ) -> dict[str, pathlib.Path]:
    """Maps split names to the files of a corpus directory, by file name.

    ``train`` must be present (unless ``require_train`` is False: evaluation needs none);
    ``validation`` (valid/dev/testa) and ``test`` (test/testb) are optional. Two candidates
    for one split is an error rather than a guess.
    """
    directory = pathlib.Path(directory)
    found: dict[str, pathlib.Path] = {}
    for path in sorted(directory.iterdir()):
        name = path.name.lower()
        if not path.is_file() or name.startswith(".") or name.endswith(_SKIP_SUFFIXES):
            continue
        if name.startswith("readme") or name.startswith("license"):
            continue
        for split, keys in _SPLIT_NAMES:
            if any(k in name for k in keys):
                if split in found:
                    raise DataError(f"two files look like the {split} split: "
                                    f"{found[split].name} and {path.name}", directory)
                found[split] = path
                break
    if "train" not in found and require_train:
        raise DataError("no training file (a name containing 'train') in the directory",
                        directory)
    if not found:
        raise DataError("no train/valid/dev/test file (found by name) in the directory",
                        directory)
    return found


def ner_splits(source: str, *, seed: int, options: dict,
               require_train: bool = True) -> RawSplits:
    """Splits for a CoNLL directory (train/valid/test by name) or a single CoNLL file.

    A missing validation file is carved from train (10%, seeded); a single file is split
    80/10/10 (seeded). Tags are returned in the file's own scheme; ``pipelines.sources``
    converts them. ``require_train=False`` (evaluation, a directory only): the training
    file is optional and not read (``train`` is empty), and ``validation`` is None without
    a validation file.
    """
    check_options(options, ("scheme", "repair", "input_scheme", "token_column", "tag_column"),
                  source)
    read_opts = dict(token_column=options.get("token_column", 0),
                     tag_column=options.get("tag_column", -1))
    path = pathlib.Path(source)
    if path.is_dir():
        files = find_split_files(path, require_train)
        if not require_train:
            raw = {s: list(iter_conll(f, **read_opts)) for s, f in files.items() if s != "train"}
            return RawSplits([], raw.get("validation"), raw.get("test"), {
                "source": str(source), "files": {s: str(f) for s, f in files.items()},
                "split_policy": "evaluation: validation/test files by name"})
        raw = {split: list(iter_conll(f, **read_opts)) for split, f in files.items()}
        train = raw["train"]
        if "validation" in raw:
            validation, policy = raw["validation"], "files by name"
        else:
            train, validation, _ = seeded_split(train, seed, (0.9, 0.1, 0.0), source=source)
            policy = "files by name; validation = seeded 10% of train"
        test = raw.get("test")
        paths = {split: str(f) for split, f in files.items()}
    else:
        sentences = list(iter_conll(path, **read_opts))
        train, validation, test = seeded_split(sentences, seed, source=source)
        policy = "one file, seeded 80/10/10 split of sentences"
        paths = {"train": str(path)}
    return RawSplits(train, validation, test, {"source": str(source), "files": paths,
                                               "split_policy": policy})
