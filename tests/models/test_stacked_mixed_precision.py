"""StackedBidirectional: full run_layer_test battery (fit step, mixed_float16 /
mixed_bfloat16) on the peephole cell, and mixed precision of the built-in LSTM stack."""

import keras
import numpy as np
import pytest

from models.layers.stacked import StackedBidirectional
from tests.layer_test import run_layer_test


def test_run_layer_test_peephole_full():
    # Full battery, mixed precision included, on the custom cell (unidirectional to keep the
    # number of compiled loops, and so the test time, down).
    run_layer_test(
        StackedBidirectional,
        init_kwargs={"units": 2, "num_layers": 2, "cell": "peephole_lstm", "dropout": 0.1,
                     "recurrent_dropout": 0.1, "residual": True, "return_sequences": True,
                     "return_state": "all", "bidirectional": False, "seed": 3},
        input_shape=(2, 3, 2),
        expected_output_shape=[(2, 3, 2)] + [(2, 2)] * 4,
        expected_num_trainable_weights=8,
        supports_masking=True,
    )



@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_standard_lstm(policy):
    keras.config.set_dtype_policy(policy)
    layer = StackedBidirectional(3, num_layers=2, return_state=True, residual=True)
    outs = layer(np.random.default_rng(0).standard_normal((2, 5, 6)).astype("float32"))
    compute = keras.mixed_precision.Policy(policy).compute_dtype
    assert layer.compute_dtype == compute
    assert all(w.dtype == "float32" for w in layer.weights)
    for t in outs:
        assert keras.backend.standardize_dtype(t.dtype) == compute
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(keras.ops.cast(t, "float32"))))
