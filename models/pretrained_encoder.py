"""A text classifier on a pretrained word language model's encoder (ULMFiT's classifier).

``embedding`` (:class:`~models.word_language_model.WordEmbedding`, untied) -> locked dropout ->
``lstm_1`` ... ``lstm_N`` (the language model's own layer classes, so every weight maps 1:1)
-> ``pooling`` (:class:`ConcatPooling`: last state, max and mean over the unmasked steps) ->
dropout -> ``head`` (softmax, float32 under mixed precision too).

:func:`copy_encoder_weights` copies the embedding matrix and the recurrent weights from a
:func:`~models.word_language_model.build_word_language_model` model (the tied output bias,
the projection and the carried BPTT states stay behind). :func:`layer_groups` lists the
groups that :class:`~models.discriminative.DiscriminativeAdam` unfreezes top-down.
"""

from __future__ import annotations

import keras
from keras import ops

from models.classifier import MaskedPooling
from models.word_language_model import (
    CELLS,
    EMBEDDING,
    CarriedLSTM,
    CarriedPeepholeLSTM,
    LockedDropout,
    WordEmbedding,
    recurrent_layers,
    recurrent_name,
)

HEAD_LAYERS = ("pooling", "head")


@keras.saving.register_keras_serializable(package="recurrent_suite")
class ConcatPooling(MaskedPooling):
    """ULMFiT's concat pooling: ``[last, max, mean]`` of a right-padded masked sequence.

    Call arguments:
        inputs: [batch, time, features].
        mask: optional bool [batch, time], true on a prefix of each row (right padding).

    Returns:
        [batch, 3 * features]; an all-padding row gives zeros for ``last`` and ``max``.
    """

    def __init__(self, **kwargs):
        kwargs.pop("mode", None)  # always max_mean (+ last); kept out of the config
        super().__init__("max_mean", **kwargs)

    def call(self, inputs, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        steps = ops.sum(ops.cast(mask, "int32"), axis=1)  # [batch]
        index = ops.maximum(steps - 1, 0)[:, None, None]
        last = ops.take_along_axis(inputs, ops.cast(index, "int32"), axis=1)[:, 0, :]
        last = ops.where((steps > 0)[:, None], last, ops.zeros_like(last))
        return ops.concatenate([last, super().call(inputs, mask)], axis=-1)

    def compute_output_shape(self, input_shape):
        features = input_shape[-1]
        return (input_shape[0], None if features is None else 3 * features)

    def get_config(self):
        config = super().get_config()
        config.pop("mode", None)
        return config


def build_pretrained_classifier(vocab_size: int, num_classes: int, *, embedding_dim: int,
                                units: int, num_layers: int, cell: str = "lstm",
                                dropout: float = 0.3, seed=None,
                                name: str = "pretrained_classifier") -> keras.Model:
    """The classifier whose encoder has exactly a word language model's shapes.

    Args:
        vocab_size, embedding_dim, units, num_layers, cell: the language model's (ids 0 pad).
        num_classes: softmax size.
        dropout: locked dropout on the embeddings and after each recurrent layer, and dropout
            before the head.

    Inputs:
        token_ids: int32 [batch, time], right-padded with 0.

    Returns:
        ``keras.Model``: token ids -> float32 class probabilities [batch, num_classes].
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    layer_class = CarriedLSTM if cell == "lstm" else CarriedPeepholeLSTM
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    x = WordEmbedding(vocab_size, embedding_dim, tie_weights=False, seed=seed,
                      name=EMBEDDING)(token_ids)
    x = LockedDropout(dropout, seed=seed, name="input_dropout")(x)
    for i in range(1, num_layers + 1):
        x = layer_class(units, return_sequences=True, seed=seed, name=recurrent_name(i))(x)
        x = LockedDropout(dropout, seed=seed, name=f"hidden_dropout_{i}")(x)
    x = ConcatPooling(name="pooling")(x)
    x = keras.layers.Dropout(dropout, seed=seed, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32",
                                 name="head")(x)
    return keras.Model(token_ids, outputs, name=name)


def _trainable_values(layer) -> list:
    # The carried BPTT states are non-trainable extras of the language model's layers.
    return [v for v in layer.weights if "carried_" not in v.path.split("/")[-1]]


def copy_encoder_weights(classifier: keras.Model, language_model: keras.Model) -> None:
    """Copies ``embedding`` (the matrix) and ``lstm_1..N`` from ``language_model``.

    Raises:
        ValueError: the layers' counts or shapes differ (names the layer and shapes).
    """
    source = recurrent_layers(language_model)
    target = recurrent_layers(classifier)
    if len(source) != len(target):
        raise ValueError(f"the language model has {len(source)} recurrent layers, the "
                         f"classifier {len(target)}")
    pairs = [(language_model.get_layer(EMBEDDING).embeddings,
              classifier.get_layer(EMBEDDING).embeddings)]
    for src, dst in zip(source, target):
        src_vars, dst_vars = _trainable_values(src), _trainable_values(dst)
        if len(src_vars) != len(dst_vars):
            raise ValueError(f"{dst.name}: {len(src_vars)} weights in the language model, "
                             f"{len(dst_vars)} in the classifier")
        pairs += list(zip(src_vars, dst_vars))
    for src, dst in pairs:
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(f"{dst.path}: shape {tuple(dst.shape)} in the classifier, "
                             f"{tuple(src.shape)} in the language model")
        dst.assign(ops.cast(src.value, dst.dtype))


def layer_groups(num_layers: int) -> list[list[str]]:
    """Unfreezing groups, top first: the head, ``lstm_N`` ... ``lstm_1``, the embedding."""
    return ([list(HEAD_LAYERS)] + [[recurrent_name(i)] for i in range(num_layers, 0, -1)]
            + [[EMBEDDING]])


def layer_groups_of(variables) -> list[list[str]]:
    """:func:`layer_groups` of the classifier that owns ``variables`` (its ``lstm_i`` count)."""
    names = {v.path.split("/")[0] for v in variables}
    num_layers = 0
    while recurrent_name(num_layers + 1) in names:
        num_layers += 1
    return layer_groups(num_layers)
