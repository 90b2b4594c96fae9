"""Sequence classifier (sentiment): Embedding -> StackedBidirectional -> pooling -> Dense."""

from __future__ import annotations

import keras
from keras import ops

from models.layers.stacked import StackedBidirectional

POOLINGS = ("max", "mean", "last", "max_mean")


@keras.saving.register_keras_serializable(package="recurrent_suite")
class MaskedPooling(keras.layers.Layer):
    """Pools a sequence over time, ignoring masked (padded) steps.

    Keras' ``GlobalMaxPooling1D`` ignores the mask, so a padded review would max over the
    padding positions' outputs too; this layer does not.

    Args:
        mode: ``"max"``, ``"mean"`` or ``"max_mean"`` (both, concatenated).

    Call arguments:
        inputs: [batch, time, features].
        mask: optional bool [batch, time].

    Returns:
        [batch, features] (``[batch, 2 * features]`` for ``max_mean``).
    """

    def __init__(self, mode: str = "max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean", "max_mean"):
            raise ValueError(f"MaskedPooling mode must be max, mean or max_mean, got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        weights = ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        outputs = []
        if self.mode in ("max", "max_mean"):
            # Masked steps get the dtype's lowest value so they never win the max.
            lowest = ops.full_like(inputs, -65000.0 if inputs.dtype == "float16" else -1e9)
            pooled = ops.max(ops.where(ops.cast(weights, "bool"), inputs, lowest), axis=1)
            # An all-padding row (e.g. a text with no known token) pools to zeros, not -1e9.
            has_steps = ops.sum(weights, axis=1) > 0
            outputs.append(ops.where(has_steps, pooled, ops.zeros_like(pooled)))
        if self.mode in ("mean", "max_mean"):
            total = ops.sum(inputs * weights, axis=1)
            outputs.append(total / ops.maximum(ops.sum(weights, axis=1), 1.0))
        return outputs[0] if len(outputs) == 1 else ops.concatenate(outputs, axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        features = input_shape[-1]
        if self.mode == "max_mean" and features is not None:
            features *= 2
        return (input_shape[0], features)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def build_sequence_classifier(vocab_size: int, num_classes: int, *, embedding_dim: int = 64,
                              units: int | list[int] = 64, num_layers: int = 1,
                              cell: str = "lstm", dropout: float = 0.2,
                              recurrent_dropout: float = 0.0, pooling: str = "max",
                              name: str = "sequence_classifier") -> keras.Model:
    """Builds the text classifier used by the sentiment task.

    Args:
        vocab_size: word ids are in ``[0, vocab_size)``; 0 is padding (masked).
        num_classes: size of the softmax (2 for positive/negative).
        pooling: ``"last"`` uses the final forward/backward states; the others pool the
            per-step outputs over the unmasked steps (max pooling is the strongest on IMDB).

    Inputs:
        token_ids: int [batch, time].

    Returns:
        A model mapping token ids to float32 class probabilities [batch, num_classes].
    """
    if vocab_size <= 1:
        raise ValueError(f"vocab_size must be > 1, got {vocab_size}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True,
                               name="embedding")(token_ids)
    x = keras.layers.SpatialDropout1D(dropout, name="embedding_dropout")(x) if dropout else x
    x = StackedBidirectional(units, num_layers=num_layers, cell=cell, dropout=dropout,
                             recurrent_dropout=recurrent_dropout,
                             return_sequences=pooling != "last", name="encoder")(x)
    if pooling != "last":
        x = MaskedPooling(pooling, name="pooling")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x) if dropout else x
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 name="head")(x)
    return keras.Model(token_ids, outputs, name=name)
