"""Optimizers the runner compiles with (registered, so checkpoints that hold them load wherever
this module is imported)."""

from __future__ import annotations

import keras

from models.keras_private import EMAUpdateHook


@keras.saving.register_keras_serializable(package="recurrent_suite")
class Adam(EMAUpdateHook, keras.optimizers.Adam):
    """Adam whose weight average (``use_ema``) warms up, as
    ``tf.train.ExponentialMovingAverage(num_updates=step)`` does: the momentum at step ``t``
    (0 first) is ``min(ema_momentum, t / (10 + t))``, so step 0 copies the weights into the
    zero-initialised average. Keras' own average goes to full momentum at step 1 and then
    stays close to the first step's weights for ~1/(1-momentum) steps: short runs would
    validate (and keep) a barely trained model. Keras reaches :meth:`update_ema` through the
    private hook in :mod:`models.keras_private`."""

    def update_ema(self, trainable_variables, averages):
        """Args: the model's trainable variables and their averages (same order; None = none)."""
        if not self.use_ema:
            return
        step = keras.ops.cast(self.iterations, "float32")
        momentum = keras.ops.minimum(self.ema_momentum, step / (10.0 + step))
        for var, average in zip(trainable_variables, averages):
            if average is not None:
                m = keras.ops.cast(momentum, var.dtype)
                average.assign(m * average + (1.0 - m) * var)
