"""PeepholeLSTM through run_layer_test: config, eager/symbolic, .keras round trip, a fit
step (fused training path) and mixed precision (float16 / bfloat16)."""

from models.layers.peephole_lstm import PeepholeLSTM
from tests.layer_test import run_layer_test


def test_run_layer_test():
    run_layer_test(
        PeepholeLSTM,
        init_kwargs={"units": 3, "return_sequences": True, "return_state": True,
                     "dropout": 0.2, "recurrent_dropout": 0.2, "cell_clip": 3.0, "seed": 1},
        input_shape=(2, 4, 3),
        expected_output_shape=[(2, 4, 3), (2, 3), (2, 3)],
        expected_num_trainable_weights=4,
        supports_masking=True,
    )
