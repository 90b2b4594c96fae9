"""PeepholeLSTMCell: NumPy reference equations, parity with keras LSTMCell, gradients, args."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.layers.cells import PeepholeLSTMCell
from tests.testing import assert_allclose


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_peephole_step(x, h, c, kernel, recurrent_kernel, bias, peephole, cell_clip=None):
    """The issue's equations in float64 (Gers & Schmidhuber 2000)."""
    x, h, c = (np.asarray(a, np.float64) for a in (x, h, c))
    z = x @ kernel + h @ recurrent_kernel + bias
    z_i, z_f, z_c, z_o = np.split(z, 4, axis=-1)
    i = _sigmoid(z_i + peephole[0] * c)
    f = _sigmoid(z_f + peephole[1] * c)
    c_new = f * c + i * np.tanh(z_c)
    if cell_clip is not None:
        c_new = np.clip(c_new, -cell_clip, cell_clip)
    o = _sigmoid(z_o + peephole[2] * c_new)
    return o * np.tanh(c_new), c_new


def np_peephole_sequence(xs, h, c, weights, cell_clip=None):
    """xs [batch, time, features] -> (outputs [batch, time, units], h, c)."""
    outs = []
    for t in range(xs.shape[1]):
        h, c = np_peephole_step(xs[:, t], h, c, *weights, cell_clip=cell_clip)
        outs.append(h)
    return np.stack(outs, axis=1), h, c


def random_weights(cell, input_dim, rng, scale=0.5):
    """Random float32 weights assigned to a built cell; returns them as float64 arrays."""
    u = cell.units
    shapes = [(input_dim, 4 * u), (u, 4 * u), (4 * u,), (3, u)]
    ws = [(rng.standard_normal(s) * scale).astype("float32") for s in shapes]
    cell.set_weights(ws)
    return [w.astype(np.float64) for w in ws]


@pytest.mark.parametrize("cell_clip", [None, 0.3])
def test_one_step_matches_numpy_reference(cell_clip):
    rng = np.random.default_rng(0)
    cell = PeepholeLSTMCell(5, cell_clip=cell_clip)
    cell.build((3, 4))
    weights = random_weights(cell, 4, rng)
    x, h, c = (rng.standard_normal(s).astype("float32") for s in [(3, 4), (3, 5), (3, 5)])
    out, (h_new, c_new) = cell(x, [h, c])
    ref_h, ref_c = np_peephole_step(x, h, c, *weights, cell_clip=cell_clip)
    assert_allclose(out, ref_h, atol=1e-5, rtol=1e-5)
    assert_allclose(h_new, ref_h, atol=1e-5, rtol=1e-5)
    assert_allclose(c_new, ref_c, atol=1e-5, rtol=1e-5)
    if cell_clip is not None:
        assert np.abs(np.asarray(c_new)).max() <= cell_clip + 1e-7


def test_peepholes_change_the_output():
    rng = np.random.default_rng(1)
    cell = PeepholeLSTMCell(4)
    cell.build((2, 3))
    random_weights(cell, 3, rng)
    plain = PeepholeLSTMCell(4, use_peepholes=False)
    plain.build((2, 3))
    plain.set_weights(cell.get_weights()[:3])
    x, h, c = (rng.standard_normal(s).astype("float32") for s in [(2, 3), (2, 4), (2, 4)])
    assert not np.allclose(np.asarray(cell(x, [h, c])[0]), np.asarray(plain(x, [h, c])[0]))


def test_weight_layout():
    cell = PeepholeLSTMCell(6)
    cell.build((None, 3))
    shapes = {w.name: tuple(w.shape) for w in cell.weights}
    assert shapes == {"kernel": (3, 24), "recurrent_kernel": (6, 24), "bias": (24,),
                      "peephole_kernel": (3, 6)}
    bias = np.asarray(cell.bias)
    assert np.all(bias[6:12] == 1.0) and np.all(bias[:6] == 0) and np.all(bias[12:] == 0)
    no_peep = PeepholeLSTMCell(6, use_peepholes=False, use_bias=False)
    no_peep.build((None, 3))
    assert [w.name for w in no_peep.weights] == ["kernel", "recurrent_kernel"]


def test_no_peepholes_equals_keras_lstm_cell():
    rng = np.random.default_rng(2)
    ref = keras.layers.LSTMCell(5)
    mine = PeepholeLSTMCell(5, use_peepholes=False)
    x, h, c = (rng.standard_normal(s).astype("float32") for s in [(3, 4), (3, 5), (3, 5)])
    ref(x, [h, c])
    mine(x, [h, c])
    mine.set_weights(ref.get_weights())
    a, (ah, ac) = ref(x, [h, c])
    b, (bh, bc) = mine(x, [h, c])
    assert_allclose([a, ah, ac], [b, bh, bc], atol=1e-6, rtol=1e-6)


def test_cell_in_keras_rnn_matches_numpy_sequence():
    rng = np.random.default_rng(3)
    layer = keras.layers.RNN(PeepholeLSTMCell(4), return_sequences=True, return_state=True)
    xs = rng.standard_normal((2, 9, 3)).astype("float32")
    layer(xs)
    weights = random_weights(layer.cell, 3, rng)
    out, h, c = layer(xs)
    zeros = np.zeros((2, 4))
    ref_out, ref_h, ref_c = np_peephole_sequence(xs, zeros, zeros, weights)
    assert_allclose([out, h, c], [ref_out, ref_h, ref_c], atol=1e-5, rtol=1e-5)


def test_gradients_finite_and_nonzero_for_every_weight():
    rng = np.random.default_rng(4)
    cell = PeepholeLSTMCell(4, kernel_regularizer="l2")
    layer = keras.layers.RNN(cell)
    xs = rng.standard_normal((3, 6, 2)).astype("float32")
    layer(xs)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(xs) ** 2) + tf.add_n(layer.losses)
    grads = tape.gradient(loss, cell.trainable_weights)
    assert {w.name for w in cell.trainable_weights} == {
        "kernel", "recurrent_kernel", "bias", "peephole_kernel"}
    for w, g in zip(cell.trainable_weights, grads, strict=True):
        g = np.asarray(g)
        assert np.all(np.isfinite(g)), w.name
        assert np.abs(g).sum() > 0, w.name


def test_dropout_only_when_training():
    rng = np.random.default_rng(5)
    cell = PeepholeLSTMCell(8, dropout=0.5, recurrent_dropout=0.5, seed=1)
    x, h, c = (rng.standard_normal(s).astype("float32") for s in [(4, 3), (4, 8), (4, 8)])
    infer = [np.asarray(cell(x, [h, c], training=False)[0]) for _ in range(2)]
    np.testing.assert_array_equal(infer[0], infer[1])
    twin = PeepholeLSTMCell(8)
    twin(x, [h, c])
    twin.set_weights(cell.get_weights())
    np.testing.assert_allclose(infer[0], np.asarray(twin(x, [h, c])[0]), atol=1e-6)
    train = np.asarray(cell(x, [h, c], training=True)[0])
    assert not np.allclose(train, infer[0])


def test_cell_config_round_trip_and_keras_file(tmp_path):
    cell = PeepholeLSTMCell(3, cell_clip=2.0, seed=3, peephole_regularizer="l2",
                            recurrent_activation="hard_sigmoid")
    cfg = keras.saving.serialize_keras_object(cell)
    revived = keras.saving.deserialize_keras_object(cfg)
    assert isinstance(revived, PeepholeLSTMCell)
    assert revived.get_config() == cell.get_config()
    # Inside a generic keras.layers.RNN (as the seq2seq decoder uses it) the .keras file
    # restores bit-identical outputs.
    inputs = keras.Input((5, 2))
    model = keras.Model(inputs, keras.layers.RNN(cell, return_sequences=True)(inputs))
    xs = np.random.default_rng(0).standard_normal((2, 5, 2)).astype("float32")
    path = tmp_path / "cell.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(loaded(xs)), np.asarray(model(xs)))


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_cell_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    layer = keras.layers.RNN(PeepholeLSTMCell(4), return_state=True)
    out, h, c = layer(np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32"))
    compute = keras.mixed_precision.Policy(policy).compute_dtype
    assert all(w.dtype == "float32" for w in layer.cell.weights)
    for t in (out, h, c):
        assert keras.backend.standardize_dtype(t.dtype) == compute
        assert np.all(np.isfinite(np.asarray(keras.ops.cast(t, "float32"))))


@pytest.mark.parametrize("kwargs, bad", [
    ({"units": 0}, "0"), ({"units": -3}, "-3"), ({"units": 2.5}, "2.5"),
    ({"units": 4, "dropout": 1.5}, "1.5"), ({"units": 4, "recurrent_dropout": -0.1}, "-0.1"),
    ({"units": 4, "cell_clip": -1.0}, "-1.0"),
])
def test_bad_arguments(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        PeepholeLSTMCell(**kwargs)
