"""One entry point for every task's data: ``load(task, source) -> Splits``.

(First version: the public API others code against. Readers are filled in next.)
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

TASKS = ("sentiment", "ner", "char_generation", "music_generation", "seq2seq")


@dataclasses.dataclass(frozen=True)
class Splits:
    """The splits of one task's data.

    Attributes:
        train: Dataset of dicts (see :func:`load` for the element structure per task).
        validation: Same structure as ``train``.
        test: Same structure, or None when the source has no held-out test split.
        info: Counts (examples per split, tokens, classes/tags, vocabulary estimate...),
            task keys (``class_names``, ``tag_names``, ``scheme``, ``mode``, ``unit``),
            ``"source"`` (name or path) and ``"synthetic"`` (bool).
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset | None
    info: dict


def load(task: str, source: str | None = None, *, seed: int = 1337, max_examples: int = 0,
         **options) -> Splits:
    """Loads ``task``'s data from ``source`` (None/"" = the task's default)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    raise NotImplementedError("pipelines.sources.load: readers land in the next commit")


def describe(splits: Splits) -> str:
    """Human-readable count report, one line per split."""
    info = splits.info
    lines = [f"source: {info.get('source')}" + (" (SYNTHETIC)" if info.get("synthetic") else "")]
    for name in ("train", "validation", "test"):
        if name in info.get("examples", {}):
            lines.append(f"{name}: {info['examples'][name]} examples")
    return "\n".join(lines)
