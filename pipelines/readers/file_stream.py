"""Streamed directories where a file is a record: aclImdb-style review folders (sentiment) and
MIDI folders (music generation).

The index pass reads (or parses) every file once, in sorted order, with the checks and
messages of the whole-corpus readers (``text_label.read_aclimdb``, ``music.read_midi``), and
keeps only the path and a few numbers per file. Splits are hash-ranked file numbers
(``streaming.split_records``); each split's dataset reads its files lazily through
``Dataset.from_generator`` (a file is opened, read and closed per example), or, for folders
under ``streaming.IN_MEMORY_MAX_BYTES``, once into memory (MIDI: the arrays the index pass
already parsed, so nothing is parsed twice).
"""

from __future__ import annotations

import array
import pathlib
import warnings

import numpy as np
import tensorflow as tf

from pipelines import streaming
from pipelines.errors import DataError
from pipelines.readers import music
from pipelines.readers._common import check_options, read_text
from pipelines.readers.evaluation import WHOLE_FILE_POLICY
from pipelines.readers.text_label import BINARY, clean_text

#: The vocabulary-size estimate of the data report reads at most this many train reviews.
ESTIMATE_RECORDS = 20_000
_SPLITS = ("train", "validation", "test")


def _named(parts) -> dict:
    return {s: p for s, p in zip(_SPLITS, parts) if p is not None}


def _size(paths) -> int:
    return streaming.total_bytes(paths) if paths else 0


# ----------------------------------------------------------------------------- aclImdb

def aclimdb_splits(source: str, *, seed: int, options: dict, max_examples: int = 0,
                   stream: bool | None = None) -> streaming.StreamedSplits:
    """An aclImdb-style directory (``pos/`` and ``neg/`` of ``.txt``, optionally under
    ``train/`` and ``test/``) as lazily read ``{"text", "label"}`` datasets.

    With ``test/``: ``train/`` seeded 80/20 into train/validation, ``test/`` (in file order)
    as test; without: the directory seeded 80/10/10. Labels index ``text_label.BINARY``.

    Raises:
        DataError: A missing ``pos/``/``neg/``, an empty review or bad UTF-8 (naming the file).
    """
    check_options(options, (), source)
    directory = pathlib.Path(source)
    roots = {s: directory / s for s in ("train", "test") if (directory / s).is_dir()}
    roots = roots or {"train": directory}
    paths, labels, tokens, by_root = [], array.array("i"), array.array("q"), {}
    for split, root in roots.items():
        start = len(paths)
        for label, sub in ((0, "neg"), (1, "pos")):
            if not (root / sub).is_dir():
                raise DataError("expected pos/ and neg/ subdirectories", root / sub)
            for file in sorted((root / sub).glob("*.txt")):
                body = read_text(file)  # the index pass: every file checked once
                if not body.strip():
                    raise DataError("empty review", file, 1)
                paths.append(str(file))
                labels.append(label)
                tokens.append(len(clean_text(body).split()))
        if len(paths) == start:
            raise DataError("no .txt files under pos/ and neg/", root)
        by_root[split] = np.arange(start, len(paths), dtype=np.int64)
    labels, tokens = np.frombuffer(labels, np.int32), np.frombuffer(tokens, np.int64)
    train = by_root["train"]
    if "test" in by_root:
        cut = streaming.split_records(len(train), seed, (0.8, 0.2, 0.0), source=str(source))
        parts = [train[cut[0]], train[cut[1]], by_root["test"]]
        policy = "train/ seeded 80/20 into train/validation; test/"
    else:
        cut = streaming.split_records(len(train), seed, (0.8, 0.1, 0.1), source=str(source))
        parts = [train[c] for c in cut]
        parts[2] = parts[2] if len(parts[2]) else None
        policy = "seeded 80/10/10 split of pos/ and neg/"
    parts = streaming.capped(parts, max_examples)

    def make(records):
        def read():
            for i in records:
                yield {"text": clean_text(read_text(paths[i])), "label": labels[i]}
        return read

    # By total size, not file count: a folder of small reviews is faster read in once.
    stream = bool(stream) if stream is not None else \
        _size(paths) >= streaming.IN_MEMORY_MAX_BYTES
    signature = {"text": tf.TensorSpec([], tf.string), "label": tf.TensorSpec([], tf.int32)}
    datasets = streaming.datasets(parts, make, signature, stream)
    named = _named(parts)
    vocab = set()
    for element in make(parts[0][:ESTIMATE_RECORDS])():
        vocab.update(element["text"].lower().split())
    info = {"source": str(source), "class_names": list(BINARY), "split_policy": policy,
            "streamed": stream, "files": len(paths), "num_classes": len(BINARY),
            "examples": {s: len(p) for s, p in named.items()},
            "tokens": {s: int(tokens[p].sum()) for s, p in named.items()},
            "class_counts": {s: np.bincount(labels[p], minlength=2).tolist()
                             for s, p in named.items()},
            "vocab_size_estimate": len(vocab)}
    return streaming.StreamedSplits(*datasets, info)


# ----------------------------------------------------------------------------- MIDI

def midi_files(source: str) -> list[pathlib.Path]:
    """``source`` itself (a file), or every ``*.mid``/``*.midi`` under a directory, sorted."""
    root = pathlib.Path(source)
    if not root.is_dir():
        return [root]
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi"))


def midi_splits(source: str, *, seed: int, options: dict, max_examples: int = 0,
                stream: bool | None = None, evaluation: bool = False
                ) -> streaming.StreamedSplits:
    """A directory of MIDI files as lazily parsed ``{"notes": float32 [None, 3]}`` datasets,
    one example per non-drum track.

    Split 80/10/10 by file (hash-ranked file numbers, so the tracks of one piece stay
    together); a file without a usable track is skipped with a warning, a file that does not
    parse is a ``DataError`` naming it (as ``music.music_splits`` did). ``evaluation``: every
    file (or the one file ``source`` names) whole, in order, no warning for empty files.
    """
    check_options(options, ("unit", "min_notes"), source)
    unit, min_notes = options.get("unit", "seconds"), options.get("min_notes", 1)
    files = midi_files(source)
    if not files:
        raise DataError("no .mid/.midi files", source)
    kept, tracks, notes, pitch_sets, parsed = [], array.array("i"), array.array("q"), [], []
    small = stream is False or (stream is None and _size(files) < streaming.IN_MEMORY_MAX_BYTES)
    for path in files:
        arrays = music.read_midi(path, unit=unit, min_notes=min_notes)
        if not arrays:
            if not evaluation:
                warnings.warn(f"{path}: no non-drum track with notes; skipped", stacklevel=2)
            continue
        kept.append(str(path))
        tracks.append(len(arrays))
        notes.append(sum(len(a) for a in arrays))
        pitches = np.zeros(128, bool)
        for a in arrays:
            pitches[np.clip(np.round(a[:, 0]).astype(int), 0, 127)] = True
        pitch_sets.append(pitches)
        if small:  # the in-memory path keeps what it parsed; streaming parses again lazily
            parsed.append(arrays)
    if not kept:
        raise DataError("no non-drum track with notes", source)
    tracks, notes = np.frombuffer(tracks, np.int32), np.frombuffer(notes, np.int64)
    if evaluation:
        whole = np.arange(len(kept), dtype=np.int64)
        parts = [whole[:0], whole, whole]
        info = {"whole_file": True, "split_policy": WHOLE_FILE_POLICY,
                "files": {"test": [str(f) for f in files]}}
    else:
        parts = list(streaming.split_records(len(kept), seed, (0.8, 0.1, 0.1),
                                             source=str(source)))
        parts[2] = parts[2] if len(parts[2]) else None
        info = {"split_policy": "MIDI files, seeded 80/10/10 by file (tracks stay together)"}
    if max_examples and not evaluation:  # caps count tracks: the files that hold them
        caps = (max_examples,) + (max(1, max_examples // 4),) * 2
        parts = [None if p is None else p[:int(np.searchsorted(np.cumsum(tracks[p]), c) + 1)]
                 for p, c in zip(parts, caps)]

    def make(records, cap=None):
        def read():
            count = 0
            for i in records:
                arrays = parsed[i] if parsed else music.read_midi(kept[i], unit=unit,
                                                                   min_notes=min_notes)
                for a in arrays:
                    if cap is not None and count == cap:
                        return
                    count += 1
                    yield {"notes": a}
        return read

    caps = [None] * 3
    if max_examples and not evaluation:
        caps = [max_examples, max(1, max_examples // 4), max(1, max_examples // 4)]
    build = streaming.materialise if parsed else streaming.generator_dataset
    signature = {"notes": tf.TensorSpec([None, 3], tf.float32)}
    datasets = [None if p is None else build(make(p, c), signature)
                for p, c in zip(parts, caps)]
    if evaluation:
        datasets[2] = datasets[1]
    named = _named(parts)
    counts = {s: int(tracks[p].sum()) for s, p in named.items()}
    if caps[0] is not None:
        counts = {s: min(n, c) for (s, n), c in zip(counts.items(), caps)}
    pitches = np.flatnonzero(np.any([pitch_sets[i] for i in parts[0]], axis=0)) \
        if len(parts[0]) else np.zeros(1, int)
    info.setdefault("files", {s: sorted(kept[i] for i in ([] if p is None else p))
                              for s, p in zip(_SPLITS, parts)})
    info.update({"source": str(source), "unit": unit, "streamed": not parsed,
                 "examples": counts,
                 "notes": {s: int(notes[p].sum()) for s, p in named.items()},
                 "pitch_range": [int(pitches.min()), int(pitches.max())],
                 "vocab_size_estimate": len(pitches)})
    return streaming.StreamedSplits(*datasets, info)


__all__ = ["aclimdb_splits", "midi_files", "midi_splits"]
