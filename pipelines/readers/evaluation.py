"""Evaluation data: what ``evaluate --data SOURCE`` scores.

A user who names a file to evaluate means all of it, so a single file (or a directory of
MIDI files, music's form of a file) is not split: every example, in file order, is both
``validation`` and ``test`` (``train`` is empty and ``info["whole_file"]`` is True). A CoNLL
corpus directory needs no training file here: its validation and test files are found by
name. Any other source loads as for training. What a task's file holds is read by the
readers its ``pipelines.sources.TaskData`` names (``read_whole``, ``evaluation_directory``).
"""

from __future__ import annotations

import os

from pipelines.readers._common import RawSplits

WHOLE_FILE_POLICY = "evaluation: the whole file, in order (not split)"


def evaluation_splits(data, source: str, options: dict) -> RawSplits | None:
    """Splits for evaluating on ``source``, or None to load it as for training.

    Args:
        data: The task's ``pipelines.sources.TaskData``.
        source: What ``evaluate --data`` named (a prefixed path, e.g. ``pairs:PATH``, too).
        options: The task's source options (as for training).

    Raises:
        DataError: Bad data or an option the file does not take, naming the file.
    """
    path = data.path(source)
    if data.evaluation_directory is not None and os.path.isdir(path):
        return data.evaluation_directory(path, dict(options))
    if data.read_whole is None or not (
            os.path.isfile(path) or data.whole_directories and os.path.isdir(path)):
        return None
    examples, info = data.read_whole(path, dict(options))
    return RawSplits([], examples, examples, {"source": path, "whole_file": True,
                                              "split_policy": WHOLE_FILE_POLICY, **info})
