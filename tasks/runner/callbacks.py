"""Training callbacks that Keras does not ship in the form a long unattended run needs."""

from __future__ import annotations

import json
import math
import os

import keras

from models import keras_private
from tasks.runner import run_dir as rd
from tasks.runner.errors import TrainingError


class NanLossError(TrainingError):
    """Raised by the runner after :class:`StopOnNaN` stopped training."""


class StopOnNaN(keras.callbacks.Callback):
    """Stops at the first non-finite batch loss and remembers where, for a clear message.

    ``keras.callbacks.TerminateOnNaN`` only prints a terse line; the runner turns ``where`` into an
    error that says which epoch/batch and what to try.
    """

    def __init__(self):
        super().__init__()
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.where = (self._epoch + 1, batch + 1, float(loss))
            self.model.stop_training = True


class AtomicBestCheckpoint(keras.callbacks.Callback):
    """Saves ``model.keras`` whenever the monitored metric improves, through a temp file + rename
    so an interrupted save never leaves a truncated checkpoint behind.

    On resume (BackupAndRestore) the best value so far is read back from ``history.json``.
    """

    def __init__(self, file_path: str, monitor: str, mode: str, history_path: str):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"monitor mode must be 'min' or 'max', got {mode!r}")
        self.file_path, self.monitor, self.mode = file_path, monitor, mode
        self.history_path = history_path
        self.best = None

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_train_begin(self, logs=None):
        if os.path.exists(self.history_path) and os.path.exists(self.file_path):
            with open(self.history_path, encoding="utf-8") as f:
                values = [e[self.monitor] for e in json.load(f) if self.monitor in e]
            if values:
                self.best = min(values) if self.mode == "min" else max(values)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"monitor {self.monitor!r} is not among the epoch's metrics "
                           f"{sorted(logs or {})}; check the task's `monitor`")
        value = float(value)
        if math.isfinite(value) and self._better(value):
            self.best = value
            rd.save_atomic(self.file_path, self.model.save, suffix=".keras")


class EpochEvaluation(keras.callbacks.Callback):
    """Adds task metrics that Keras metrics cannot compute (entity F1, BLEU) to every epoch's
    logs as ``val_<name>``, so checkpointing, early stopping, the learning-rate schedule, the
    history and the tuner's objective can all use them.

    Put it before every callback that reads the logs: Keras hands one logs dict to the callbacks
    in list order.

    Args:
        evaluate: ``model -> {name: float}`` on the validation split.
    """

    def __init__(self, evaluate):
        super().__init__()
        self.evaluate = evaluate

    def __deepcopy__(self, memo):
        # Keras Tuner deep-copies the callbacks for every trial; the evaluation function (which
        # holds datasets and lookup tables) is shared, not copied.
        return type(self)(self.evaluate)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name, value in self.evaluate(self.model).items():
            logs[name if name.startswith("val_") else f"val_{name}"] = float(value)


class SwapEMAWeights(keras.callbacks.SwapEMAWeights):
    """``keras.callbacks.SwapEMAWeights(swap_on_epoch=True)`` that survives BackupAndRestore.

    The backup is taken at an epoch end, when the average is swapped into the model (so the
    checkpoint and the epoch metrics see it). Keras' callback starts every ``fit`` assuming
    the raw weights are in the model, so a resumed run would go on training from the average
    and average the raw weights. A fit that starts with a step count > 0 was restored from
    such a backup: the first epoch begins by swapping the raw weights back.
    """

    def __init__(self):
        super().__init__(swap_on_epoch=True)
        self._first_epoch = True

    def on_train_begin(self, logs=None):
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch:
            self._first_epoch = False
            if int(keras.ops.convert_to_numpy(self.model.optimizer.iterations)) > 0:
                keras_private.set_ema_weights_in_model(self, True)
        super().on_epoch_begin(epoch, logs)


class HistoryWriter(keras.callbacks.Callback):
    """Appends each finished epoch's logs to ``history.json`` (kept across resumes)."""

    def __init__(self, history_path: str):
        super().__init__()
        self.history_path = history_path
        self.entries = []

    def on_train_begin(self, logs=None):
        if os.path.exists(self.history_path):
            with open(self.history_path, encoding="utf-8") as f:
                self.entries = json.load(f)

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        # A resumed epoch replaces the entry it had before the interruption.
        self.entries = [e for e in self.entries if e.get("epoch") != epoch + 1] + [entry]
        rd.write_json_atomic(self.history_path, self.entries)


class RunBackup(keras_private.BackupHooks):
    """``BackupAndRestore`` for a run directory that survives ``kill -9`` and several workers.

    Every process restores from ``backup_dir`` (the chief's, on a file system all workers
    share), but only the chief writes it; a worker writes its backups to ``write_dir``, a
    private directory (TF's multi-worker checkpointing pattern). A backup is written atomically:
    the weights go to a new ``epoch-N.weights.h5``, then ``training_metadata.json`` is replaced
    to name them, then the older weights are deleted, so a process killed at any point leaves
    the previous backup intact. ``on_first_backup`` runs once, after the first backup is on disk.
    """

    def __init__(self, backup_dir: str, write_dir: str | None = None, on_first_backup=None):
        super().__init__(backup_dir)
        self.write_dir = write_dir or backup_dir
        self.on_first_backup = on_first_backup

    def restore_backup(self, metadata_path):
        try:
            with open(metadata_path, encoding="utf-8") as f:
                metadata = json.load(f)
        except FileNotFoundError:
            return
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        self.model.load_weights(os.path.join(self.backup_dir, metadata["weights"]))
        keras_private.set_initial_epoch(self.model, metadata["epoch"])

    def write_backup(self, epoch):
        os.makedirs(self.write_dir, exist_ok=True)
        name = f"epoch-{epoch}.weights.h5"
        tmp = os.path.join(self.write_dir, f".tmp-{name}")
        self.model.save_weights(tmp, overwrite=True)
        os.replace(tmp, os.path.join(self.write_dir, name))
        rd.write_json_atomic(os.path.join(self.write_dir, "training_metadata.json"),
                             {"epoch": epoch, "batch": 0, "weights": name})
        for old in os.listdir(self.write_dir):
            if old.endswith(".weights.h5") and old != name:
                os.remove(os.path.join(self.write_dir, old))
        if self.on_first_backup is not None:
            first, self.on_first_backup = self.on_first_backup, None
            first()

    def on_train_end(self, logs=None):
        import shutil

        shutil.rmtree(self.write_dir, ignore_errors=True)

