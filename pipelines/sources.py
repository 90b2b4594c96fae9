"""One entry point for every task's data: ``load(task, source) -> Splits``.

Readers (``pipelines.readers``) produce plain-Python splits (named and generated sources);
this module caps them, turns them into ``tf.data`` datasets of dicts and counts what is in
them. File, folder and TFDS sources are read by streamed readers that return
:class:`pipelines.streaming.StreamedSplits` (already datasets, capped and counted), passed
through as they are. Splits are made by the
readers with a seeded shuffle (or by file/stream), so the same seed always gives the same
examples in the same order, and the test split never feeds anything fitted on train.

Which readers serve which task is not known here: each task registers a :class:`TaskData`
(its named sources, default, raw-split and dataset builders) with :func:`register`, and a
task not registered yet is looked up through the finders added with :func:`add_finder`
(``tasks.runner.registry`` adds one that imports the task's module), so ``pipelines`` never
imports ``tasks``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from pipelines.errors import DataError
from pipelines.readers._common import RawSplits
from pipelines.readers.evaluation import evaluation_splits
from pipelines.streaming import StreamedSplits

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Splits:
    """The splits of one task's data.

    Attributes:
        train: Dataset of dicts (see :func:`load` for the element structure per task).
        validation: Same structure as ``train``; None only when loaded for evaluation from a
            corpus directory without a validation file.
        test: Same structure, or None when the source has no held-out test split.
        info: Counts (``examples`` per split, tokens, classes/tags, vocabulary estimate...),
            task keys (``class_names``, ``tag_names``, ``scheme``, ``mode``, ``unit``),
            ``"source"`` (name or path), ``"synthetic"`` (bool) and ``"split_policy"``.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    test: tf.data.Dataset | None
    info: dict


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Where one task's data comes from: what a task registers with :func:`register`.

    Attributes:
        task: The task's name (``load``'s first argument).
        named: Named sources (built in or downloaded), the default among them.
        default: The source ``load`` uses when given none.
        raw: ``(source, *, seed, max_examples, options) -> RawSplits``: reads and splits.
        build: ``(raw, options) -> (datasets, info)``: ``{split: tf.data.Dataset of dicts}``
            (the task's element structure, documented in its module) and its counts.
        read_whole: ``(path, options) -> (examples, info)``: one file read whole for
            ``evaluate --data FILE`` (or a streamed reader's
            :class:`pipelines.streaming.StreamedSplits` of it, ``info["whole_file"]`` set);
            None: such a file loads as for training.
        whole_directories: A directory, too, is read whole by ``read_whole`` (music's form
            of a file: a folder of MIDI files).
        evaluation_directory: ``(path, options) -> RawSplits`` (or ``StreamedSplits``): a
            corpus directory for
            evaluation (e.g. CoNLL's, which needs no training file there); None: as for
            training.
        tfds: ``tfds:NAME`` sources are allowed.
        path_prefix: A prefix a path source may carry (e.g. ``"pairs:"``), stripped off.
    """

    task: str
    named: tuple[str, ...]
    default: str
    raw: Callable[..., RawSplits]
    build: Callable[[RawSplits, dict], tuple[dict, dict]]
    read_whole: Callable[[str, dict], tuple[list, dict]] | None = None
    whole_directories: bool = False
    evaluation_directory: Callable[[str, dict], RawSplits] | None = None
    tfds: bool = False
    path_prefix: str = ""

    def path(self, source: str) -> str:
        """``source`` as a filesystem path (without :attr:`path_prefix`)."""
        if self.path_prefix and source.startswith(self.path_prefix):
            return source[len(self.path_prefix):]
        return source


_REGISTRY: dict[str, TaskData] = {}
_FINDERS: list[Callable[[str], None]] = []


def register(data: TaskData) -> TaskData:
    """Makes ``data.task`` loadable by :func:`load`; registering the same task again replaces
    it (a module reloaded). Returns ``data``."""
    if not isinstance(data, TaskData):
        raise TypeError(f"register() takes a TaskData, got {type(data).__name__}")
    _REGISTRY[data.task] = data
    return data


def add_finder(finder: Callable[[str], None]) -> None:
    """Adds ``finder(task)``, called for a task not registered yet so that it can import the
    module that registers it (finders must not raise for names they do not know)."""
    if finder not in _FINDERS:
        _FINDERS.append(finder)


def registered() -> tuple[str, ...]:
    """The tasks registered so far, in registration order."""
    return tuple(_REGISTRY)


def task_data(task: str) -> TaskData:
    """The registered :class:`TaskData` of ``task``, asking the finders if needed.

    Raises:
        ValueError: No finder knows ``task``.
    """
    if task not in _REGISTRY:
        for finder in list(_FINDERS):
            finder(task)
            if task in _REGISTRY:
                break
    if task not in _REGISTRY:
        raise ValueError(f"unknown task {task!r}; expected one of {registered()}")
    return _REGISTRY[task]


def load(task: str, source: str | None = None, *, seed: int = 1337, max_examples: int = 0,
         evaluation: bool = False, **options) -> Splits:
    """Loads ``task``'s data from ``source``.

    Each split is a ``tf.data.Dataset`` of dicts, in a fixed order; a task's keys, named
    sources and options are documented in the module that registers its :class:`TaskData`
    (the built-in tasks: ``tasks/<task>_data.py``).

    Args:
        task: A registered task (:func:`task_data`).
        source: A named source, ``tfds:NAME``, a prefixed path or a filesystem path;
            None or "" means the task's default (:attr:`TaskData.default`).
        seed: Fixes the split and the order of examples.
        max_examples: If > 0, keep the first ``max_examples`` training examples and the
            first ``max(1, max_examples // 4)`` validation and test examples.
        evaluation: For scoring a trained model on ``source``
            (:mod:`pipelines.readers.evaluation`): a single file is evaluated whole (it is
            both ``validation`` and ``test``, ``train`` is empty, ``info["whole_file"]``),
            a CoNLL directory needs no training file (``validation`` may then be None), and
            ``max_examples`` does not apply.
        **options: Source options (the task's); unknown ones raise ValueError.

    Returns:
        The :class:`Splits`.

    Raises:
        ValueError: Unknown task, source or option.
        pipelines.errors.DataError: Bad input data (naming file, line and value).
    """
    data = task_data(task)
    source = source or data.default
    if not isinstance(max_examples, int) or max_examples < 0:
        raise ValueError(f"max_examples must be an int >= 0, got {max_examples!r}")
    raw = None
    if evaluation:
        resolve(task, source)
        max_examples = 0
        raw = evaluation_splits(data, source, dict(options))
    if raw is None:
        raw = data.raw(source, seed=seed, max_examples=max_examples, options=dict(options))
        if not isinstance(raw, StreamedSplits):
            raw = _cap(raw, max_examples)
    if isinstance(raw, StreamedSplits):  # already datasets, capped and counted
        info = {"task": task, "source": source, "synthetic": False, "seed": seed,
                "max_examples": max_examples, **raw.info}
        return Splits(raw.train, raw.validation, raw.test, info)
    splits, info = data.build(raw, options)
    info = {"task": task, "source": source, "synthetic": False, "seed": seed,
            "max_examples": max_examples, **raw.info, **info,
            "examples": {s: len(x) for s, x in _named(raw).items()}}
    return Splits(splits["train"], splits.get("validation"), splits.get("test"), info)


def describe(splits: Splits) -> str:
    """Human-readable count report: a header line, then one line per split."""
    info = splits.info
    head = f"{info.get('task', '?')} data from {info.get('source')}"
    if info.get("synthetic"):
        head += " -- SYNTHETIC (generated, not real-world data)"
    extra = [f"{k}={info[k]}" for k in ("mode", "unit", "scheme", "target_scheme", "voices")
             if k in info]
    for key in ("num_classes", "num_tags", "vocab_size_estimate"):
        if key in info:
            extra.append(f"{key}={info[key]:,}")
    if extra:
        head += " [" + ", ".join(extra) + "]"
    if info.get("split_policy"):
        head += f"; split: {info['split_policy']}"
    lines = [head]
    for name in SPLITS:
        if name not in info.get("examples", {}):
            lines.append(f"  {name}: none")
            continue
        parts = [f"{info['examples'][name]:,} examples"]
        for key, unit in (("tokens", "tokens"), ("characters", "chars"), ("notes", "notes")):
            if name in info.get(key, {}):
                parts.append(f"{info[key][name]:,} {unit}")
        if name in info.get("class_counts", {}):
            counts = info["class_counts"][name]
            parts.append(" ".join(f"{c}={n:,}" for c, n in zip(info["class_names"], counts)))
        if name in info.get("entities", {}):
            parts.append("entities " + " ".join(
                f"{k}={v:,}" for k, v in sorted(info["entities"][name].items())))
        lines.append(f"  {name}: " + ", ".join(parts))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- for TaskData

def resolve(task: str, source: str) -> str:
    """"named", "tfds" or "path"; a clear error for anything else."""
    data = task_data(task)
    if source in data.named:
        return "named"
    if source.startswith("tfds:") and data.tfds:
        return "tfds"
    path = data.path(source)
    if os.path.exists(path):
        return "path"
    raise DataError(f"unknown {task} source {source!r}: not one of {data.named}"
                     + (", not tfds:NAME" if data.tfds else "")
                     + f" and no file or directory {path!r}")


def _named(raw: RawSplits) -> dict[str, list]:
    """``{split: examples}`` of the splits ``raw`` has."""
    out = {"train": raw.train}
    if raw.validation is not None:
        out["validation"] = raw.validation
    if raw.test is not None:
        out["test"] = raw.test
    return out


def _cap(raw: RawSplits, max_examples: int) -> RawSplits:
    if not max_examples:
        return raw
    cap = max(1, max_examples // 4)
    return RawSplits(raw.train[:max_examples], raw.validation[:cap],
                     None if raw.test is None else raw.test[:cap], raw.info)


# ----------------------------------------------------------------------------- datasets

@tf.autograph.experimental.do_not_convert
def _dense(element: dict) -> dict:
    # Slices of a RaggedTensor come out as dense tensors but keep a RaggedTensorSpec, which
    # padded_batch and Keras reject; an identity map gives them a plain TensorSpec.
    return {k: tf.identity(v) for k, v in element.items()}


def _ragged(values: list, dtype, inner: tuple = ()) -> tf.RaggedTensor:
    """[n, None, *inner] ragged tensor from a list of lists (strings) or arrays (floats)."""
    lengths = [len(v) for v in values]
    if dtype == tf.string:
        flat = [x for v in values for x in v]
        flat_t = tf.constant(flat, tf.string, shape=[len(flat)])
    else:
        flat = np.concatenate(values) if values else np.zeros((0,) + inner)
        flat_t = tf.constant(np.asarray(flat, np.float32).reshape((-1,) + inner))
    return tf.RaggedTensor.from_row_lengths(flat_t, tf.constant(lengths, tf.int64))


def _strings(values: list[str]) -> tf.Tensor:
    return tf.constant(values, tf.string, shape=[len(values)])


# Public names for the task modules' builders (the underscored ones stay for this module).
named_splits, dense, ragged, strings = _named, _dense, _ragged, _strings
