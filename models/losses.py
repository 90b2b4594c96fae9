"""Losses written in ``keras.ops``: sparse cross-entropy with label smoothing.

Keras' ``SparseCategoricalCrossentropy`` has no ``label_smoothing`` (only the one-hot
``CategoricalCrossentropy`` does, which would need [batch, time, vocab] one-hot targets).
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="recurrent_suite")
class SparseSmoothedCrossentropy(keras.losses.Loss):
    """``(1 - eps) * NLL(target) + eps * mean_v(-log p_v)``: cross-entropy against the target
    mixed with the uniform distribution (Szegedy et al. 2016; eps 0.1 in the Transformer).

    Args:
        label_smoothing: eps in [0, 1); 0 equals ``SparseCategoricalCrossentropy``.
        from_logits: ``y_pred`` are logits (else probabilities).

    Shapes: ``y_true`` int [...], ``y_pred`` float [..., vocab]; a Keras mask on ``y_pred``
    (seq2seq target padding) drops those positions, as for the built-in losses.
    """

    def __init__(self, label_smoothing: float = 0.0, from_logits: bool = True,
                 name: str = "sparse_smoothed_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float)) \
                or not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); got {label_smoothing!r}")
        self.label_smoothing, self.from_logits = float(label_smoothing), bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(y_pred, "float32")
        log_probs = (ops.log_softmax(y_pred, axis=-1) if self.from_logits
                     else ops.log(ops.clip(y_pred, 1e-7, 1.0)))
        target = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        nll = -ops.squeeze(ops.take_along_axis(log_probs, target, axis=-1), -1)
        uniform = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing,
                "from_logits": self.from_logits}
