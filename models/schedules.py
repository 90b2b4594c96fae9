"""Learning-rate schedules (keras.ops only; registered, so an optimizer saved with one in a
``.keras`` file loads wherever this module is imported).

:class:`SlantedTriangular` is ULMFiT's schedule (Howard & Ruder 2018, eq. 3): a short linear
warm-up to ``max_lr`` over the first ``cut_frac`` of the steps, then a long linear decay
back to ``max_lr / ratio``. The warm-up lets the parameters move towards a task-specific
region before the rate is high; the long decay refines them there. Under
:class:`~models.discriminative.DiscriminativeAdam` each layer group's scale multiplies the
scheduled rate.
"""

from __future__ import annotations

import math

import keras
from keras import ops

#: Names a config may give (``lr_schedule``); ``constant`` is a plain float learning rate.
SCHEDULES = ("constant", "slanted_triangular")


@keras.saving.register_keras_serializable(package="recurrent_suite")
class SlantedTriangular(keras.optimizers.schedules.LearningRateSchedule):
    """``lr(t) = max_lr * (1 + p * (ratio - 1)) / ratio`` with ``cut = floor(T * cut_frac)``,
    ``p = t / cut`` for ``t < cut``, else ``p = 1 - (t - cut) / (cut * (1 / cut_frac - 1))``,
    clipped to ``p >= 0`` after ``T`` steps (the rate stays at ``max_lr / ratio``).

    Args:
        max_lr: the peak rate (ULMFiT: 0.01; the runner passes the config's
            ``learning_rate``).
        total_steps: ``T``, the training steps of the whole run (epochs x steps per epoch).
        cut_frac: the fraction of ``T`` spent increasing (0.1).
        ratio: how much smaller the lowest rate is than ``max_lr`` (32).

    Call argument:
        step: the optimizer's 0-based iteration (int scalar tensor).

    Returns:
        float32 scalar tensor.
    """

    def __init__(self, max_lr: float, total_steps: int, cut_frac: float = 0.1,
                 ratio: float = 32.0, name: str = "slanted_triangular"):
        if not (max_lr > 0 and math.isfinite(max_lr)):
            raise ValueError(f"max_lr must be a finite number > 0, got {max_lr!r}")
        if int(total_steps) < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps!r}")
        if not 0 < cut_frac < 1:
            raise ValueError(f"cut_frac must be in (0, 1), got {cut_frac!r}")
        if not ratio >= 1:
            raise ValueError(f"ratio must be >= 1, got {ratio!r}")
        self.max_lr, self.total_steps = float(max_lr), int(total_steps)
        self.cut_frac, self.ratio, self.name = float(cut_frac), float(ratio), name
        # At least one warm-up step, so p is defined for tiny runs.
        self.cut = max(1, math.floor(self.total_steps * self.cut_frac))

    def __call__(self, step):
        t = ops.cast(step, "float32")
        cut = float(self.cut)
        up = t / cut
        down = 1.0 - (t - cut) / (cut * (1.0 / self.cut_frac - 1.0))
        p = ops.maximum(ops.where(t < cut, up, down), 0.0)
        return self.max_lr * (1.0 + p * (self.ratio - 1.0)) / self.ratio

    def get_config(self):
        return {"max_lr": self.max_lr, "total_steps": self.total_steps,
                "cut_frac": self.cut_frac, "ratio": self.ratio, "name": self.name}


def learning_rate(name: str, max_lr: float, total_steps: int | None):
    """The optimizer's ``learning_rate`` for schedule ``name``: a float for ``constant`` (or
    when ``total_steps`` is unknown: a model compiled only to be evaluated), else the
    schedule.

    Raises:
        ValueError: ``name`` is not one of :data:`SCHEDULES`.
    """
    if name not in SCHEDULES:
        raise ValueError(f"lr_schedule={name!r} (must be one of {', '.join(SCHEDULES)})")
    if name == "constant" or not total_steps:
        return max_lr
    return SlantedTriangular(max_lr, total_steps)
