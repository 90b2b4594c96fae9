"""Entity tag schemes: IOB1, IOB2 (BIO) and BIOES; validation, conversion and repair.

All conversions go through spans ``(type, start, end)`` (end exclusive), so every pair of
schemes converts losslessly for valid sequences:

* IOB1: an entity starts with ``I-X``; ``B-X`` only separates two adjacent ``X`` entities.
* IOB2: every entity starts with ``B-X``; ``I-X`` continues it.
* BIOES: ``S-X`` single-token entity; ``B-X (I-X)* E-X`` otherwise.

Invalid sequences (``I-X`` with no entity to continue in IOB2, ``B-X`` not closed by
``E-X`` in BIOES ...) raise :class:`TagError` naming the token position (and the file line
when the caller passes one), unless ``repair=True``, which reads them the way conlleval does
(a stray ``I-X`` opens a new entity) and warns.
"""

from __future__ import annotations

import warnings
from typing import Sequence

from pipelines.errors import DataError

SCHEMES = ("IOB1", "IOB2", "BIOES")
_PREFIXES = {"IOB1": "BI", "IOB2": "BI", "BIOES": "BIES"}

_ALIASES = {"IOB1": "IOB1", "IOB2": "IOB2", "BIO": "IOB2", "BIOES": "BIOES", "IOBES": "BIOES"}

Span = tuple[str, int, int]


class TagError(DataError):
    """An invalid tag or tag sequence."""


def normalize_scheme(scheme: str) -> str:
    """Canonical scheme name (``"bio"`` -> ``"IOB2"``, ``"iobes"`` -> ``"BIOES"``)."""
    name = _ALIASES.get(str(scheme).upper())
    if name is None:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {SCHEMES}")
    return name


def split_tag(tag: str, *, scheme: str = "BIOES", where: tuple = (None, None)) -> tuple[str, str]:
    """``"B-PER" -> ("B", "PER")``, ``"O" -> ("O", "")``.

    Raises:
        TagError: For a malformed tag or a prefix the scheme does not use.
    """
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind or prefix not in _PREFIXES[scheme]:
        raise TagError(f"malformed {scheme} tag: expected O or one of "
                       f"{', '.join(p + '-TYPE' for p in _PREFIXES[scheme])}",
                       where[0], where[1], tag)
    return prefix, kind


def _where(index: int, path, lines: Sequence[int] | None) -> tuple:
    if lines is not None:
        return path, lines[index]
    return path, None


def to_spans(tags: Sequence[str], scheme: str = "IOB2", *, repair: bool = False,
             path=None, lines: Sequence[int] | None = None) -> list[Span]:
    """Entity spans of one tag sequence.

    Args:
        tags: Tags of one sentence, shape [n].
        scheme: The scheme ``tags`` are written in.
        repair: Read invalid transitions leniently (conlleval style) instead of raising;
            emits one warning per sequence that needed it.
        path: File name for error messages.
        lines: Line number of each tag, shape [n], for error messages.

    Returns:
        ``[(type, start, end), ...]`` in order, ``end`` exclusive.

    Raises:
        TagError: Invalid tag or transition (when ``repair`` is False).
    """
    scheme = normalize_scheme(scheme)
    spans: list[Span] = []
    open_kind, open_start, open_prefix = None, 0, "O"
    repaired = []

    def problem(i: int, message: str) -> None:
        if not repair:
            location = f"token {i + 1}" if lines is None else "this line"
            raise TagError(f"invalid {scheme} sequence at {location}: {message}",
                           *_where(i, path, lines), tags[i])
        repaired.append(i)

    def close(end: int) -> None:
        nonlocal open_kind
        if open_kind is not None:
            spans.append((open_kind, open_start, end))
        open_kind = None

    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag, scheme=scheme, where=_where(i, path, lines))
        continues = open_kind is not None and open_kind == kind
        if scheme == "BIOES" and open_kind is not None and not (prefix in "IE" and continues):
            problem(i, f"{open_prefix}-{open_kind} is not closed by E-{open_kind}")
            close(i)  # lenient reading: the unclosed entity ends before this token
            continues = False
        if prefix == "O":
            close(i)
        elif prefix == "S":
            close(i)
            spans.append((kind, i, i + 1))
        elif prefix == "B":
            # In IOB1, B-X after O is IOB2 style: tolerated, the span is still unambiguous.
            close(i)
            open_kind, open_start = kind, i
        else:  # I or E
            if not continues:
                if scheme != "IOB1":
                    problem(i, f"{tag} does not continue an entity of type {kind}")
                close(i)
                open_kind, open_start = kind, i
            if prefix == "E":
                close(i + 1)
        open_prefix = prefix
    if scheme == "BIOES" and open_kind is not None:
        problem(len(tags) - 1, f"{open_prefix}-{open_kind} is not closed by E-{open_kind}")
    close(len(tags))
    if repaired:
        where = f"{path}: " if path else ""
        if lines is not None:
            where += f"line(s) {', '.join(str(lines[i]) for i in repaired)}: "
        warnings.warn(f"{where}repaired invalid {scheme} tag sequence {list(tags)}",
                      stacklevel=2)
    return spans


def from_spans(spans: Sequence[Span], length: int, scheme: str = "IOB2") -> list[str]:
    """Tag sequence of ``length`` tokens in ``scheme`` for non-overlapping ``spans``."""
    scheme = normalize_scheme(scheme)
    tags = ["O"] * length
    previous_end, previous_kind = -1, None
    for kind, start, end in spans:
        if not 0 <= start < end <= length:
            raise ValueError(f"span {(kind, start, end)} outside a sequence of {length} tokens")
        if scheme == "IOB1":
            first = "B" if (start == previous_end and kind == previous_kind) else "I"
            tags[start:end] = [f"{first}-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        elif scheme == "IOB2":
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
        elif end - start == 1:
            tags[start] = f"S-{kind}"
        else:
            tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 2) + [f"E-{kind}"]
        previous_end, previous_kind = end, kind
    return tags


def convert(tags: Sequence[str], source: str, target: str, *, repair: bool = False,
            path=None, lines: Sequence[int] | None = None) -> list[str]:
    """Converts one tag sequence from scheme ``source`` to ``target`` (validating it).

    Raises:
        TagError: Invalid input sequence (unless ``repair``).
    """
    spans = to_spans(tags, source, repair=repair, path=path, lines=lines)
    return from_spans(spans, len(tags), target)


def validate(tags: Sequence[str], scheme: str = "IOB2", *, path=None,
             lines: Sequence[int] | None = None) -> None:
    """Raises :class:`TagError` if ``tags`` is not a valid ``scheme`` sequence."""
    to_spans(tags, scheme, path=path, lines=lines)


def detect_scheme(sequences: Sequence[Sequence[str]]) -> str:
    """Guesses the scheme of a corpus.

    ``E-``/``S-`` anywhere means BIOES. An ``I-X`` that starts an entity (sentence start,
    after ``O`` or after another type) means IOB1, but only if no ``B-X`` starts an entity
    too: IOB1 uses ``B-`` solely between two adjacent entities of one type. A corpus with both
    kinds of start is IOB2 with stray ``I-`` tags, so it is reported as IOB2 and validation
    points at them (pass the scheme explicitly to override).
    """
    i_starts = b_starts = False
    for tags in sequences:
        previous = ""
        for tag in tags:
            if tag[:2] in ("E-", "S-"):
                return "BIOES"
            if previous[2:] != tag[2:]:
                i_starts |= tag.startswith("I-")
                b_starts |= tag.startswith("B-")
            previous = tag if tag != "O" else ""
    return "IOB1" if i_starts and not b_starts else "IOB2"


def tag_names(types: Sequence[str], scheme: str = "IOB2") -> list[str]:
    """All tags of ``scheme`` for entity ``types``: ``"O"`` first, then sorted."""
    scheme = normalize_scheme(scheme)
    return ["O"] + sorted(f"{p}-{t}" for t in set(types) for p in _PREFIXES[scheme])
