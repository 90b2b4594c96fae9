"""Attention over encoder outputs: additive (Bahdanau) and multiplicative (Luong) scores.

Both layers take ``[query, value]`` and return ``[context, weights]``:

* ``query``: [batch, target_time, query_dim] (or [batch, query_dim] for one decoder step),
* ``value``: [batch, source_time, value_dim] (the encoder outputs, also used as keys),
* ``context``: [batch, target_time, value_dim] (compute dtype),
* ``weights``: [batch, target_time, source_time] (float32; rows sum to 1 over valid positions).

Padded source positions are excluded through ``value_mask`` ([batch, source_time], bool), or the
Keras mask carried by ``value`` when no explicit mask is given. The query is the decoder *output*
(Luong-style) for both score functions: attention then needs no recurrence, so a whole
teacher-forced target sequence is attended in one batched matmul, and a one-step decoder doing the
same computation for one position matches training exactly.
"""

from __future__ import annotations

import keras
from keras import ops

# Added to masked scores before the softmax. Finite (not -inf) so a fully padded row gives a
# uniform distribution instead of NaN; those rows are then zeroed explicitly.
_MASK_SCORE = -1e9


@keras.saving.register_keras_serializable(package="recurrent_suite")
class SourceAttention(keras.layers.Layer):
    """Shared masking / softmax / context logic; subclasses implement :meth:`scores`.

    Args:
        **kwargs: standard ``keras.layers.Layer`` arguments (``name``, ``dtype``...).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    # -- to override -------------------------------------------------------------------
    def scores(self, query, value):
        """Unnormalised scores.

        Args:
            query: [batch, target_time, query_dim], compute dtype.
            value: [batch, source_time, value_dim], compute dtype.

        Returns:
            [batch, target_time, source_time].
        """
        raise NotImplementedError

    # -- shared ------------------------------------------------------------------------
    @staticmethod
    def _split_shapes(input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not all(
                isinstance(s, (list, tuple)) for s in input_shape):
            raise ValueError(
                "attention expects inputs [query, value]; got input shape "
                f"{input_shape!r}")
        query_shape, value_shape = tuple(input_shape[0]), tuple(input_shape[1])
        if len(query_shape) not in (2, 3):
            raise ValueError(
                f"query must be [batch, time, dim] or [batch, dim]; got shape {query_shape}")
        if len(value_shape) != 3:
            raise ValueError(f"value must be [batch, source_time, dim]; got shape {value_shape}")
        if query_shape[-1] is None or value_shape[-1] is None:
            raise ValueError(
                f"attention needs known feature sizes; got query {query_shape}, "
                f"value {value_shape}")
        return query_shape, value_shape

    def call(self, inputs, mask=None, value_mask=None):
        """Attends ``query`` over ``value``.

        Args:
            inputs: ``[query, value]`` as described in the module docstring.
            mask: Keras masks ``[query_mask, value_mask]`` (filled in automatically).
            value_mask: explicit [batch, source_time] bool mask; overrides ``mask``.

        Returns:
            ``[context, weights]``: [batch, target_time, value_dim] in the compute dtype and
            [batch, target_time, source_time] float32 (target_time dropped for a 2-D query).
        """
        query, value = inputs
        single_step = len(query.shape) == 2
        query = ops.cast(query, self.compute_dtype)
        value = ops.cast(value, self.compute_dtype)
        if single_step:
            query = ops.expand_dims(query, 1)
        if value_mask is None and isinstance(mask, (list, tuple)) and len(mask) == 2:
            value_mask = mask[1]
        # Softmax in float32: float16 exp overflows and the weights are a user-visible output.
        scores = ops.cast(self.scores(query, value), "float32")
        if value_mask is not None:
            value_mask = ops.cast(value_mask, "bool")
            scores = ops.where(ops.expand_dims(value_mask, 1), scores, _MASK_SCORE)
        # Written out rather than ops.softmax, which warns on a (legitimate) one-token source.
        scores = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
        weights = scores / ops.sum(scores, axis=-1, keepdims=True)
        if value_mask is not None:
            # An empty source (all padding) attends to nothing rather than uniformly to padding.
            has_any = ops.any(value_mask, axis=-1, keepdims=True)
            weights = weights * ops.cast(ops.expand_dims(has_any, 1), "float32")
        context = ops.matmul(ops.cast(weights, self.compute_dtype), value)
        if single_step:
            context, weights = context[:, 0], weights[:, 0]
        return [context, weights]

    def compute_mask(self, inputs, mask=None, value_mask=None):
        query_mask = mask[0] if isinstance(mask, (list, tuple)) else None
        return [query_mask, None]

    def compute_output_shape(self, input_shape):
        query_shape, value_shape = self._split_shapes(input_shape)
        if len(query_shape) == 2:
            return [(query_shape[0], value_shape[-1]), (query_shape[0], value_shape[1])]
        return [(query_shape[0], query_shape[1], value_shape[-1]),
                (query_shape[0], query_shape[1], value_shape[1])]

    def compute_output_spec(self, inputs, mask=None, value_mask=None):
        shapes = self.compute_output_shape([tuple(inputs[0].shape), tuple(inputs[1].shape)])
        return [keras.KerasTensor(shapes[0], dtype=self.compute_dtype),
                keras.KerasTensor(shapes[1], dtype="float32")]


@keras.saving.register_keras_serializable(package="recurrent_suite")
class BahdanauAttention(SourceAttention):
    """Additive attention: ``score(q, k) = v . tanh(W_q q + W_k k + b)``.

    Args:
        units: size of the hidden layer of the score MLP (positive int).
        kernel_initializer: initialiser for ``W_q``, ``W_k`` and ``v``.
        **kwargs: standard layer arguments.

    Inputs/outputs: see the module docstring. Weights: ``query_kernel`` [query_dim, units],
    ``key_kernel`` [value_dim, units], ``bias`` [units], ``score_vector`` [units].
    """

    def __init__(self, units: int, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"BahdanauAttention units must be a positive int; got {units!r}")
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        query_shape, value_shape = self._split_shapes(input_shape)
        self.query_kernel = self.add_weight(
            name="query_kernel", shape=(query_shape[-1], self.units),
            initializer=self.kernel_initializer)
        self.key_kernel = self.add_weight(
            name="key_kernel", shape=(value_shape[-1], self.units),
            initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
        self.score_vector = self.add_weight(
            name="score_vector", shape=(self.units,), initializer=self.kernel_initializer)

    def scores(self, query, value):
        q = ops.matmul(query, self.query_kernel)                  # [b, tq, u]
        k = ops.matmul(value, self.key_kernel) + self.bias        # [b, ts, u]
        hidden = ops.tanh(ops.expand_dims(q, 2) + ops.expand_dims(k, 1))  # [b, tq, ts, u]
        return ops.tensordot(hidden, self.score_vector, axes=[[3], [0]])

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config


@keras.saving.register_keras_serializable(package="recurrent_suite")
class LuongAttention(SourceAttention):
    """Multiplicative attention: ``general`` ``score = q W k^T`` or ``dot`` ``score = q k^T``.

    Args:
        score: ``"general"`` (learned [value_dim, query_dim] matrix, any sizes) or ``"dot"``
            (no weights; query_dim must equal value_dim).
        scale: multiply scores by ``1/sqrt(query_dim)`` (keeps the softmax soft at large sizes).
        kernel_initializer: initialiser for ``W`` (``general`` only).
        **kwargs: standard layer arguments.

    Inputs/outputs: see the module docstring.
    """

    SCORES = ("general", "dot")

    def __init__(self, score: str = "general", scale: bool = False,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if score not in self.SCORES:
            raise ValueError(f"LuongAttention score must be one of {self.SCORES}; got {score!r}")
        self.score = score
        self.scale = bool(scale)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        query_shape, value_shape = self._split_shapes(input_shape)
        self.kernel = None
        if self.score == "general":
            self.kernel = self.add_weight(
                name="kernel", shape=(value_shape[-1], query_shape[-1]),
                initializer=self.kernel_initializer)
        elif query_shape[-1] != value_shape[-1]:
            raise ValueError(
                "LuongAttention(score='dot') needs query_dim == value_dim; got query_dim="
                f"{query_shape[-1]}, value_dim={value_shape[-1]} (use score='general')")
        self._query_dim = int(query_shape[-1])

    def scores(self, query, value):
        keys = value if self.kernel is None else ops.matmul(value, self.kernel)  # [b, ts, dq]
        scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))          # [b, tq, ts]
        if self.scale:
            scores = scores * ops.cast(self._query_dim ** -0.5, scores.dtype)
        return scores

    def get_config(self):
        config = super().get_config()
        config.update(score=self.score, scale=self.scale,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config


def get_attention(kind: str, units: int, **kwargs) -> SourceAttention:
    """Attention layer by name: ``bahdanau`` | ``luong`` (general) | ``luong_dot``.

    Args:
        kind: the score function name.
        units: hidden size of the additive score (ignored by Luong).
        **kwargs: layer arguments (``name``...).
    """
    if kind == "bahdanau":
        return BahdanauAttention(units, **kwargs)
    if kind == "luong":
        return LuongAttention("general", **kwargs)
    if kind == "luong_dot":
        return LuongAttention("dot", **kwargs)
    raise ValueError(f"attention must be 'bahdanau', 'luong' or 'luong_dot'; got {kind!r}")
