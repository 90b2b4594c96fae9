"""Adam with per-layer-group learning rates: discriminative fine-tuning and gradual unfreezing
(ULMFiT, Howard & Ruder 2018).

Every trainable variable belongs to one *group*, by the layer name its path starts with
(``layer_groups[g]`` lists group ``g``'s layer names; a variable of no listed layer is in group
0, the head). Its learning rate is ``learning_rate * group_scale[g]``, where ``group_scale`` is
an optimizer variable that a callback changes between epochs: 0 freezes the group, ``1 / d**g``
is the discriminative rate ``lr / d`` per group going down.

Why a scale and not ``layer.trainable``: flipping ``trainable`` changes the model's variable
list, which the traced train step and Adam's slots were built for (Keras would need a
recompile and a fresh optimizer). With a scale of 0, Adam's step ``lr * m / (sqrt(v) + eps)``
is exactly 0, so a frozen layer's weights stay bit-for-bit unchanged, while the variable list,
the compiled step and the optimizer state stay the same across epochs (a frozen layer's
gradient is still computed: the cost of one backward pass through it).
"""

from __future__ import annotations

import keras
from keras import ops

from models.optimizers import Adam


@keras.saving.register_keras_serializable(package="recurrent_suite")
class DiscriminativeAdam(Adam):
    """The project's Adam (clipping, warmed-up EMA) with a learning-rate scale per layer group.

    Args:
        layer_groups: ``[[layer names of group 0], [group 1], ...]``; group 0 is the head
            (it also takes every variable of an unlisted layer). None: ULMFiT's groups of a
            :mod:`models.pretrained_encoder` classifier, read from the variables at build
            (:func:`models.pretrained_encoder.layer_groups_of`), so the optimizer can be
            made before the model is known.
        **kwargs: as ``models.optimizers.Adam``.
    """

    def __init__(self, layer_groups=None, **kwargs):
        super().__init__(**kwargs)
        self._set_groups(layer_groups)
        self._pending_scales = None  # set before build: the scale variable's initial value

    def _set_groups(self, layer_groups):
        self.layer_groups = None if layer_groups is None else [list(g) for g in layer_groups]
        self._layer_group = {name: g for g, names in enumerate(self.layer_groups or [])
                             for name in names}

    @property
    def num_groups(self) -> int:
        return len(self.layer_groups)

    def group_of(self, variable) -> int:
        """The group of a model variable (by the first component of its path)."""
        return self._layer_group.get(variable.path.split("/")[0], 0)

    def resolve_groups(self, variables) -> None:
        """Reads ULMFiT's groups from the model's variables when none were given."""
        if self.layer_groups is None:
            from models.pretrained_encoder import layer_groups_of

            self._set_groups(layer_groups_of(variables))

    def build(self, variables):
        self.resolve_groups(variables)
        super().build(variables)
        # Plain Python per variable index: the traced step reads the scale variable, so a
        # callback's assign takes effect without retracing.
        self._variable_groups = [self.group_of(v) for v in variables]
        initial = (keras.initializers.Constant(self._pending_scales)
                   if self._pending_scales is not None else "ones")
        self.group_scale = self.add_variable((self.num_groups,), initializer=initial,
                                             dtype="float32", name="group_scale")

    def set_group_scales(self, scales) -> None:
        """float [num_groups]: each group's learning-rate factor (0 = frozen). Before the
        optimizer is built (Keras builds it, wrapped for loss scaling or not, at the first
        step) the values wait and become the scale variable's initial value."""
        if getattr(self, "group_scale", None) is None:
            self._pending_scales = [float(x) for x in scales]
        else:
            self.group_scale.assign(ops.convert_to_tensor(scales, "float32"))

    def update_step(self, gradient, variable, learning_rate):
        group = self._variable_groups[self._get_variable_index(variable)]
        scale = ops.cast(self.group_scale[group], ops.dtype(learning_rate))
        super().update_step(gradient, variable, learning_rate * scale)

    def get_config(self):
        return {**super().get_config(), "layer_groups": self.layer_groups}


def group_scales(num_groups: int, unfrozen: int, factor: float) -> list[float]:
    """Scales of groups ``0..num_groups-1`` when the top ``unfrozen`` groups train: group ``g``
    gets ``factor ** -g`` (discriminative rates, ``lr / factor`` per group down), the rest 0."""
    return [factor ** -g if g < unfrozen else 0.0 for g in range(num_groups)]
