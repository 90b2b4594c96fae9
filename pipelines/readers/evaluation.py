"""Evaluation data: what ``evaluate --data SOURCE`` scores.

A user who names a file to evaluate means all of it, so a single file (or a directory of
MIDI files, music's form of a file) is not split: every example, in file order, is both
``validation`` and ``test`` (``train`` is empty and ``info["whole_file"]`` is True). A CoNLL
corpus directory needs no training file here: its validation and test files are found by
name. Any other source loads as for training. A task whose ``read_whole`` (or
``evaluation_directory``) streams returns ``pipelines.streaming.StreamedSplits`` instead of
examples: the same splits, read lazily. What a task's file holds is read by the
readers its ``pipelines.sources.TaskData`` names (``read_whole``, ``evaluation_directory``).
"""

from __future__ import annotations

import os

from pipelines.readers._common import RawSplits
from pipelines.streaming import StreamedSplits

WHOLE_FILE_POLICY = "evaluation: the whole file, in order (not split)"


def evaluation_splits(data, source: str, options: dict
                      ) -> RawSplits | StreamedSplits | None:
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
    result = data.read_whole(path, dict(options))
    if isinstance(result, StreamedSplits):  # a streamed reader's whole file, already datasets
        return result
    examples, info = result
    return RawSplits([], examples, examples, {"source": path, "whole_file": True,
                                              "split_policy": WHOLE_FILE_POLICY, **info})
