"""Evaluation data: what ``evaluate --data SOURCE`` scores.

A user who names a file to evaluate means all of it, so a single file (or a directory of
MIDI files, music's form of a file) is not split: every example, in file order, is both
``validation`` and ``test`` (``train`` is empty and ``info["whole_file"]`` is True). A CoNLL
corpus directory needs no training file here: its validation and test files are found by
name. Any other source loads as for training.
"""

from __future__ import annotations

import os
import pathlib

from pipelines.errors import DataError
from pipelines.readers import conll, music, pairs, plain_text, text_label
from pipelines.readers._common import RawSplits, check_options, read_text

WHOLE_FILE_POLICY = "evaluation: the whole file, in order (not split)"


def _sentiment(path: str, options: dict) -> tuple[list, dict]:
    check_options(options, ("text_column", "label_column", "class_names"), path)
    examples, class_names = text_label.read_text_label(path, **options)
    return examples, {"class_names": class_names}


def _ner(path: str, options: dict) -> tuple[list, dict]:
    check_options(options, ("scheme", "repair", "input_scheme", "token_column", "tag_column"),
                  path)
    read_opts = {k: options[k] for k in ("token_column", "tag_column") if k in options}
    sentences = list(conll.iter_conll(path, **read_opts))
    if not sentences:
        raise DataError("no sentences", path)
    return sentences, {"files": {"test": path}}


def _char(path: str, options: dict) -> tuple[list, dict]:
    check_options(options, ("mode", "max_chunk_chars"), path)
    mode = options.get("mode", "continuous")
    if mode == "lines":
        return plain_text.read_lines(path), {"mode": mode}
    if mode != "continuous":
        raise DataError(f"mode must be 'continuous' or 'lines', got {mode!r}", path)
    chunks = plain_text.chunk_text(read_text(path),
                                   options.get("max_chunk_chars", plain_text.MAX_CHUNK_CHARS))
    if not chunks:
        raise DataError("no text", path)
    return chunks, {"mode": mode}


def _music(path: str, options: dict) -> tuple[list, dict]:
    check_options(options, ("unit", "min_notes"), path)
    unit = options.get("unit", "seconds")
    files = [pathlib.Path(path)]
    if files[0].is_dir():
        files = sorted(p for p in files[0].rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    tracks = [track for f in files
              for track in music.read_midi(f, unit=unit, min_notes=options.get("min_notes", 1))]
    if not tracks:
        raise DataError("no non-drum track with notes", path)
    return tracks, {"unit": unit, "files": {"test": [str(f) for f in files]}}


def _seq2seq(path: str, options: dict) -> tuple[list, dict]:
    check_options(options, ("lowercase", "max_length", "reverse"), path)
    examples = pairs.read_pairs(path, **options)
    if not examples:
        raise DataError("no pairs", path)
    return examples, {}


_READ = {"sentiment": _sentiment, "ner": _ner, "char_generation": _char,
         "music_generation": _music, "seq2seq": _seq2seq}


def evaluation_splits(task: str, source: str, options: dict) -> RawSplits | None:
    """Splits for evaluating on ``source``, or None to load it as for training.

    Args:
        task: The task name (``pipelines.sources.TASKS``).
        source: What ``evaluate --data`` named (``pairs:PATH`` for seq2seq included).
        options: The task's source options (as for training).

    Raises:
        DataError: Bad data or an option the file does not take, naming the file.
    """
    path = source[len("pairs:"):] if task == "seq2seq" and source.startswith("pairs:") else source
    if task == "ner" and os.path.isdir(path):
        return conll.ner_splits(path, seed=0, options=dict(options), require_train=False)
    if not (os.path.isfile(path) or task == "music_generation" and os.path.isdir(path)):
        return None
    examples, info = _READ[task](path, dict(options))
    return RawSplits([], examples, examples, {"source": path, "whole_file": True,
                                              "split_policy": WHOLE_FILE_POLICY, **info})
