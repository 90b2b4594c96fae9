"""models.losses.SparseSmoothedCrossentropy against Keras' losses and the formula."""

import keras
import numpy as np
import pytest
from keras import ops

from models.losses import SparseSmoothedCrossentropy


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 5, size=(3, 4)), rng.normal(size=(3, 4, 5)).astype("float32")


def test_zero_smoothing_is_sparse_crossentropy_and_smoothing_matches_one_hot_keras():
    y, logits = _data()
    plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, logits)
    np.testing.assert_allclose(float(SparseSmoothedCrossentropy(0.0)(y, logits)), float(plain),
                               rtol=1e-6)
    # Keras' one-hot loss smooths to (1 - eps) one-hot + eps / V: the same thing.
    one_hot = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1)(
        np.eye(5)[y], logits)
    np.testing.assert_allclose(float(SparseSmoothedCrossentropy(0.1)(y, logits)),
                               float(one_hot), rtol=1e-5)


def test_masked_positions_are_dropped_and_config_round_trips():
    y, logits = _data(1)
    mask = np.array([[1, 1, 0, 0]] * 3, bool)
    masked = ops.convert_to_tensor(logits)
    masked._keras_mask = ops.convert_to_tensor(mask)
    loss = SparseSmoothedCrossentropy(0.2)
    want = float(loss(y[:, :2], logits[:, :2]))
    np.testing.assert_allclose(float(loss(y, masked)), want, rtol=1e-5)
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert again.label_smoothing == 0.2 and again.from_logits
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        SparseSmoothedCrossentropy(1.0)
