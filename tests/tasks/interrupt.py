"""Test-only callbacks (kept out of tasks/runner/callbacks.py)."""

from __future__ import annotations

import keras


class InterruptAfter(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after ``epochs`` epochs, to simulate a killed run (passed to
    ``training.train`` through its ``extra_callbacks``)."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 >= self.epochs:
            raise KeyboardInterrupt(f"simulated interruption after epoch {epoch + 1}")
