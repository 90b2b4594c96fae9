"""Optimizers the runner compiles with (registered, so checkpoints that hold them load wherever
this module is imported)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="recurrent_suite")
class Adam(keras.optimizers.Adam):
    """Adam whose weight average (``use_ema``) warms up, as
    ``tf.train.ExponentialMovingAverage(num_updates=step)`` does: the momentum at step ``t``
    (0 first) is ``min(ema_momentum, t / (10 + t))``, so step 0 copies the weights into the
    zero-initialised average. Keras' own average goes to full momentum at step 1 and then
    stays close to the first step's weights for ~1/(1-momentum) steps: short runs would
    validate (and keep) a barely trained model."""

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        step = keras.ops.cast(self.iterations, "float32")
        momentum = keras.ops.minimum(self.ema_momentum, step / (10.0 + step))
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                m = keras.ops.cast(momentum, var.dtype)
                average.assign(m * average + (1.0 - m) * var)
