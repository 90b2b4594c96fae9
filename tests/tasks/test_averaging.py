"""tasks.runner.averaging: the saved model is the mean of the last K epochs' weights."""

import os

import keras
import numpy as np
import pytest

from tasks.runner.averaging import AverageLastCheckpoints, average_weights, epoch_files


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append([np.array(w) for w in self.model.get_weights()])


def _model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def test_averaged_model_weights_equal_the_mean_of_the_saved_epochs(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 3)), rng.normal(size=(32, 1))
    model = _model()
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)  # the runner's best checkpoint, replaced by the average
    recorder = Recorder()
    averaging = AverageLastCheckpoints(3, str(tmp_path / "averaging"), model_path)
    model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[recorder, averaging])
    files = epoch_files(str(tmp_path / "averaging"))
    assert [os.path.basename(p) for p in files] == [
        "epoch-0003.weights.h5", "epoch-0004.weights.h5", "epoch-0005.weights.h5"]
    assert averaging.averaged == files
    saved = keras.saving.load_model(model_path, compile=False).get_weights()
    for i, weight in enumerate(saved):
        want = np.mean([epoch[i] for epoch in recorder.weights[-3:]], axis=0)
        np.testing.assert_allclose(weight, want, rtol=1e-6, atol=1e-7)
    # The training model keeps its last-epoch weights (only the saved model is averaged).
    for have, last in zip(model.get_weights(), recorder.weights[-1]):
        np.testing.assert_array_equal(have, last)


def test_one_epoch_leaves_the_checkpoint_and_bad_k_is_refused(tmp_path):
    model = _model()
    model_path = str(tmp_path / "model.keras")
    model.save(model_path)
    before = os.path.getmtime(model_path)
    model.fit(np.zeros((4, 3)), np.zeros((4, 1)), epochs=1, verbose=0,
              callbacks=[AverageLastCheckpoints(2, str(tmp_path / "avg"), model_path)])
    assert os.path.getmtime(model_path) == before
    with pytest.raises(ValueError, match="average_last must be an int >= 2"):
        AverageLastCheckpoints(1, str(tmp_path), model_path)
    with pytest.raises(ValueError, match="no epoch weights"):
        average_weights(model, [])
