"""A wall-clock training budget shared by the benchmarks that train "for N seconds"."""

from __future__ import annotations

import time
from typing import Callable

import keras


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the first batch end after ``seconds`` of wall-clock time.

    Counts batches and finished epochs; ``on_epoch(budget, epoch_logs)`` (optional) is called
    after each epoch, e.g. to print progress. ``start`` is the ``time.perf_counter()`` of
    ``on_train_begin``.
    """

    def __init__(self, seconds: float, on_epoch: Callable | None = None):
        super().__init__()
        self.seconds, self.on_epoch = seconds, on_epoch
        self.start, self.batches, self.epochs, self.steps_per_epoch = None, 0, 0, None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.elapsed() > self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.epochs += 1
        if self.steps_per_epoch is None:  # the first epoch is complete unless the budget hit
            self.steps_per_epoch = self.batches
        if self.on_epoch is not None:
            self.on_epoch(self, logs or {})

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def epochs_run(self) -> float:
        """Epochs as a fraction (batches / batches of the first epoch)."""
        if not self.steps_per_epoch:
            return float(self.epochs)
        return round(self.batches / self.steps_per_epoch, 2)


def prepare_run(task, config):
    """Seeds, loads the splits, fits the preprocessor, builds and compiles the model: what a
    budgeted bench run does before its clock starts.

    Returns:
        ``(splits, preprocessor, train_dataset, compiled_model, setup_seconds)``.
    """
    from tasks.runner import training

    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    splits = task.load_splits(config)
    pre = task.fit_preprocessor(config, splits)
    train = task.make_dataset(config, pre, splits.train, training=True)
    model = task.build_model(config, pre)
    training.compile_model(task, config, model)
    return splits, pre, train, model, time.perf_counter() - started
