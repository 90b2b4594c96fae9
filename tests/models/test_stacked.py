"""StackedBidirectional through run_layer_test: config, eager/symbolic, .keras / SavedModel
round trips (behaviour: test_stacked_behaviour.py; training and mixed precision:
test_stacked_mixed_precision.py)."""

import keras
import numpy as np
import pytest

from models.layers.stacked import StackedBidirectional
from tests.layer_test import run_layer_test
from tests.testing import assert_all_equal, savedmodel_roundtrip


def test_run_layer_test_peephole_bidirectional():
    run_layer_test(
        StackedBidirectional,
        init_kwargs={"units": 2, "num_layers": 2, "cell": "peephole_lstm", "dropout": 0.1,
                     "return_sequences": True, "return_state": True, "seed": 3},
        input_shape=(2, 3, 2),
        expected_output_shape=[(2, 3, 4), (2, 2), (2, 2), (2, 2), (2, 2)],
        expected_num_trainable_weights=16,
        supports_masking=True,
        run_training_check=False,
        run_mixed_precision_check=False,
    )


@pytest.mark.parametrize("cell, n_states", [("lstm", 4), ("gru", 2), ("simple_rnn", 2)])
def test_run_layer_test_standard_cells(cell, n_states):
    run_layer_test(
        StackedBidirectional,
        init_kwargs={"units": [3, 2], "cell": cell, "merge_mode": "sum", "return_state": True},
        input_shape=(2, 4, 3),
        expected_output_shape=[(2, 2)] + [(2, 2)] * n_states,
        supports_masking=True,
        run_training_check=False,
        run_mixed_precision_check=False,
    )


def test_run_layer_test_unidirectional_all_states_with_initial_state():
    states = [np.full((2, u), 0.1 * (k + 1), "float32") for k, u in enumerate([3, 3, 2, 2])]
    run_layer_test(
        StackedBidirectional,
        init_kwargs={"units": [3, 2], "bidirectional": False, "return_sequences": True,
                     "return_state": "all"},
        input_shape=(2, 4, 3),
        call_kwargs={"initial_state": states},
        expected_output_shape=[(2, 4, 2), (2, 3), (2, 3), (2, 2), (2, 2)],
        run_training_check=False,
        run_mixed_precision_check=False,
    )


def test_keras_and_savedmodel_round_trip_bit_exact(tmp_path):
    ids = np.array([[3, 5, 2, 0, 0], [1, 2, 3, 4, 6]], "int32")
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    outs = StackedBidirectional(3, num_layers=2, cell="peephole_lstm", residual=True, dropout=0.2,
                                return_sequences=True, return_state=True)(x)
    model = keras.Model(inputs, outs)
    expected = model(ids)
    path = tmp_path / "stacked.keras"
    model.save(path)
    assert_all_equal(keras.saving.load_model(path)(ids), expected)
    assert_all_equal(savedmodel_roundtrip(model, ids, tmp_path), expected)
