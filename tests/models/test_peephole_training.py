"""PeepholeLSTM training: it learns a task that needs memory; XLA-compiled train step."""

import keras
import numpy as np

from models.layers.peephole_lstm import PeepholeLSTM


def _xs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


class _StopWhenSolved(keras.callbacks.Callback):
    """Stops once training accuracy is ~perfect, so the test costs only what it needs."""

    def on_epoch_end(self, epoch, logs=None):
        if (logs or {}).get("accuracy", 0.0) >= 0.99:
            self.model.stop_training = True


def _recall_data(n, steps, rng):
    """First step: symbol 0/1 (one-hot channel 0/1); then random distractors (channel 2/3)."""
    first = rng.integers(0, 2, n)
    rest = rng.integers(2, 4, (n, steps - 1))
    xs = keras.ops.convert_to_numpy(
        keras.ops.one_hot(np.concatenate([first[:, None], rest], axis=1), 4))
    return xs.astype("float32"), first.astype("float32")[:, None]


def test_learns_to_recall_first_symbol_after_30_steps():
    rng = np.random.default_rng(0)
    steps = 31
    x_train, y_train = _recall_data(256, steps, rng)
    x_test, y_test = _recall_data(128, steps, rng)

    def fit_eval(body):
        inputs = keras.Input((steps, 4))
        model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(body(inputs)))
        model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
        model.fit(x_train, y_train, batch_size=32, epochs=40, verbose=0,
                  callbacks=[_StopWhenSolved()])
        return model.evaluate(x_test, y_test, verbose=0)[1]

    peephole_acc = fit_eval(PeepholeLSTM(8))
    # No memory: the model only sees the current (last) step.
    last_step_acc = fit_eval(lambda x: keras.layers.Flatten()(
        keras.layers.Cropping1D((steps - 1, 0))(x)))
    assert peephole_acc >= 0.9, peephole_acc
    assert last_step_acc <= 0.7, last_step_acc


def test_xla_train_step():
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, keras.layers.Dense(1)(PeepholeLSTM(4, dropout=0.1)(inputs)))
    model.compile("sgd", "mse", jit_compile=True)
    loss = model.train_on_batch(_xs((4, 5, 3)), np.zeros((4, 1), "float32"))
    assert np.isfinite(loss)


