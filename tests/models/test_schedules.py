"""SlantedTriangular: the values of Howard & Ruder (2018), eq. 3, its round trip and its use
under DiscriminativeAdam (a group's scale multiplies the scheduled rate)."""

import math

import keras
import numpy as np
import pytest

from models.discriminative import DiscriminativeAdam
from models.schedules import SlantedTriangular, learning_rate


def paper(t, T, lr_max=0.01, cut_frac=0.1, ratio=32):
    """Eq. 3 as printed: cut = floor(T cut_frac), p = t/cut or 1 - (t-cut)/(cut(1/cut_frac-1))."""
    cut = math.floor(T * cut_frac)
    p = t / cut if t < cut else 1 - (t - cut) / (cut * (1 / cut_frac - 1))
    return lr_max * (1 + p * (ratio - 1)) / ratio


def test_start_peak_and_end_follow_the_paper():
    schedule = SlantedTriangular(0.01, 1000)
    value = lambda t: float(keras.ops.convert_to_numpy(schedule(t)))  # noqa: E731
    assert value(0) == pytest.approx(0.01 / 32)           # start: lr_max / ratio
    assert value(100) == pytest.approx(0.01)              # peak at cut = T * cut_frac
    assert value(1000) == pytest.approx(0.01 / 32)        # end: back to lr_max / ratio
    for t in (0, 1, 37, 99, 100, 101, 550, 999, 1000):
        assert value(t) == pytest.approx(paper(t, 1000), rel=1e-5), t
    assert value(5000) == pytest.approx(0.01 / 32)        # after T: stays at the floor
    assert value(50) < value(100) and value(550) < value(100)


def test_round_trip_and_bad_values():
    schedule = SlantedTriangular(3e-3, 250, cut_frac=0.2, ratio=10)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert again.get_config() == schedule.get_config()
    steps = np.arange(0, 300, 7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(steps)),
                               keras.ops.convert_to_numpy(schedule(steps)))
    with pytest.raises(ValueError, match="total_steps"):
        SlantedTriangular(0.01, 0)
    with pytest.raises(ValueError, match="lr_schedule='cosine'"):
        learning_rate("cosine", 0.01, 100)
    assert learning_rate("constant", 0.01, 100) == 0.01
    assert learning_rate("slanted_triangular", 0.01, None) == 0.01  # evaluation-only compile


def test_group_scales_multiply_the_scheduled_rate():
    """Plain SGD-like check through Adam's first step: |update| = lr(t) * scale (Adam's first
    step moves every weight by ~lr, whatever the gradient's size)."""
    kernel = keras.Variable(np.zeros((3,), np.float32), name="kernel")
    schedule = SlantedTriangular(0.01, 100)
    optimizer = DiscriminativeAdam([["head"]], learning_rate=schedule, epsilon=1e-12)
    optimizer.build([kernel])
    optimizer.set_group_scales([0.5])
    optimizer.apply([np.ones(3, np.float32)], [kernel])
    expected = 0.5 * float(keras.ops.convert_to_numpy(schedule(0)))
    np.testing.assert_allclose(-kernel.numpy(), expected, rtol=1e-4)
    again = DiscriminativeAdam.from_config(optimizer.get_config())
    assert isinstance(again._learning_rate, SlantedTriangular)
