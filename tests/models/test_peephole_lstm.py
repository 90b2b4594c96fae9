"""PeepholeLSTM: reference equations over sequences, parity with keras LSTM, masking,
go_backwards, stateful, initial state, dropout, gradients, saving (memory task and XLA:
test_peephole_training.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.layers.cells import PeepholeLSTMCell
from models.layers.peephole_lstm import PeepholeLSTM
from tests.models.test_cells import np_peephole_sequence, random_weights
from tests.testing import assert_all_equal, assert_allclose, savedmodel_roundtrip


def _xs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.mark.parametrize("cell_clip", [None, 0.5])
def test_sequence_matches_numpy_reference_with_initial_state(cell_clip):
    rng = np.random.default_rng(0)
    layer = PeepholeLSTM(5, return_sequences=True, return_state=True, cell_clip=cell_clip)
    xs = _xs((3, 8, 4))
    layer(xs)
    weights = random_weights(layer.cell, 4, rng)
    h0, c0 = _xs((3, 5), 1), _xs((3, 5), 2)
    out, h, c = layer(xs, initial_state=[h0, c0])
    ref = np_peephole_sequence(xs, h0, c0, weights, cell_clip=cell_clip)
    assert_allclose([out, h, c], list(ref), atol=1e-5, rtol=1e-5)


def test_no_peepholes_equals_keras_lstm():
    xs = _xs((3, 7, 5))
    mask = np.ones((3, 7), bool)
    mask[0, 5:] = False
    mask[1, :2] = False
    for go_backwards, unroll in [(False, False), (True, False), (False, True)]:
        ref = keras.layers.LSTM(4, return_sequences=True, return_state=True,
                                go_backwards=go_backwards)
        mine = PeepholeLSTM(4, use_peepholes=False, return_sequences=True, return_state=True,
                            go_backwards=go_backwards, unroll=unroll)
        ref(xs)
        mine(xs)
        mine.set_weights(ref.get_weights())
        for m in (None, mask):
            assert_allclose(mine(xs, mask=m), ref(xs, mask=m), atol=1e-6, rtol=1e-6,
                            msg=f"go_backwards={go_backwards} unroll={unroll} mask={m is not None}")


def test_fast_path_equals_cell_in_generic_rnn():
    xs = _xs((2, 6, 3))
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    fast = PeepholeLSTM(4, return_sequences=True, return_state=True, cell_clip=1.0)
    slow = keras.layers.RNN(PeepholeLSTMCell(4, cell_clip=1.0), return_sequences=True,
                            return_state=True)
    fast(xs)
    slow(xs)
    random_weights(fast.cell, 3, np.random.default_rng(1))
    slow.set_weights(fast.get_weights())
    assert_allclose(fast(xs, mask=mask), slow(xs, mask=mask), atol=1e-6, rtol=1e-6)


def _values_and_grads(layer, xs, mask, h0, c0, training):
    # Same dropout masks for every layer compared.
    layer.cell.seed_generator.state.assign(
        np.array([7, 0], layer.cell.seed_generator.state.dtype))
    x, h_init, c_init = tf.constant(xs), tf.constant(h0), tf.constant(c0)
    with tf.GradientTape() as tape:
        tape.watch([x, h_init, c_init])
        out, h, c = layer(x, mask=mask, initial_state=[h_init, c_init], training=training)
        loss = tf.reduce_sum(out ** 2) + tf.reduce_sum(h * c)
    return [out, h, c] + tape.gradient(loss, [x, h_init, c_init] + layer.trainable_weights)


_PATH_CASES = [
    {}, {"go_backwards": True}, {"cell_clip": 0.3}, {"use_peepholes": False},
    {"dropout": 0.2, "recurrent_dropout": 0.3, "seed": 1}, {"zero_output_for_mask": True},
    {"return_sequences": False, "go_backwards": True}]


@pytest.mark.parametrize("path, kwargs", [("fused", k) for k in _PATH_CASES] + [
    ("chunked3", k) for k in _PATH_CASES[:2] + _PATH_CASES[5:]] + [
    ("fused_chunk3", k) for k in _PATH_CASES[:2]])
def test_fast_paths_match_per_step_loop_values_and_gradients(path, kwargs):
    # The fused loop's hand-written backward pass and the chunked loop (T=7 is not a multiple
    # of 3: padding) against autodiff through Keras' loop one step at a time.
    kwargs = {"return_sequences": True, **kwargs}
    xs = _xs((3, 7, 4))
    mask = np.ones((3, 7), bool)
    mask[0, 4:] = False
    mask[1, :2] = False
    mask[2, 3] = False
    h0, c0 = _xs((3, 5), 1), _xs((3, 5), 2)
    fast = PeepholeLSTM(5, return_state=True, **kwargs)
    slow = PeepholeLSTM.from_config(fast.get_config())
    fast(xs)
    slow(xs)
    slow.set_weights(fast.get_weights())
    slow.use_fused_kernel, slow.time_chunk = False, 1
    training = path.startswith("fused")
    if path == "fused_chunk3":
        fast.fused_chunk = 3
    if path == "chunked3":
        fast.use_fused_kernel, fast.time_chunk = False, 3
    assert fast.uses_fused_kernel == training and not slow.uses_fused_kernel
    for m in (None, mask):
        assert_allclose(_values_and_grads(fast, xs, m, h0, c0, training),
                        _values_and_grads(slow, xs, m, h0, c0, training),
                        atol=2e-6, rtol=1e-5, msg=f"{path} {kwargs} mask={m is not None}")


def test_padded_and_unpadded_runs_agree():
    ids = np.array([[3, 5, 2, 7]], "int32")
    padded = np.array([[3, 5, 2, 7, 0, 0, 0]], "int32")
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    seq, h, c = PeepholeLSTM(6, return_sequences=True, return_state=True)(x)
    model = keras.Model(inputs, [seq, h, c])
    a_seq, a_h, a_c = model(ids)
    b_seq, b_h, b_c = model(padded)
    assert_allclose([a_h, a_c], [b_h, b_c], atol=1e-6)
    assert_allclose(a_seq, np.asarray(b_seq)[:, :4], atol=1e-6)


def test_masked_step_keeps_state():
    layer = PeepholeLSTM(4, return_state=True)
    xs = _xs((2, 5, 3))
    mask = np.array([[1, 1, 0, 1, 1]] * 2, bool)
    _, h, c = layer(xs, mask=mask)
    _, h_ref, c_ref = layer(np.delete(xs, 2, axis=1))
    assert_allclose([h, c], [h_ref, c_ref], atol=1e-6)


def test_go_backwards_equals_reversed_input():
    fw = PeepholeLSTM(4, return_sequences=True, return_state=True)
    bw = PeepholeLSTM(4, return_sequences=True, return_state=True, go_backwards=True)
    xs = _xs((2, 6, 3))
    fw(xs)
    bw(xs)
    bw.set_weights(fw.get_weights())
    # Like keras LSTM, the sequence comes back in processing (reversed) order.
    assert_allclose(bw(xs), fw(xs[:, ::-1]), atol=1e-6)


def test_stateful_and_reset_state():
    xs = _xs((2, 8, 3))
    whole = PeepholeLSTM(4, return_sequences=True)
    stateful = PeepholeLSTM(4, return_sequences=True, stateful=True)
    whole(xs)
    stateful(xs[:, :4])
    stateful.reset_state()
    stateful.set_weights(whole.get_weights())
    first = stateful(xs[:, :4])
    second = stateful(xs[:, 4:])
    assert_allclose(np.concatenate([first, second], axis=1), whole(xs), atol=1e-6)
    stateful.reset_state()
    assert_allclose(stateful(xs[:, :4]), first, atol=0)


def test_dropout_only_when_training_and_one_mask_per_sequence():
    layer = PeepholeLSTM(6, return_sequences=True, dropout=0.5, seed=3)
    xs = np.repeat(_xs((4, 1, 5)), 7, axis=1)  # every timestep has the same input
    layer(xs)
    kernel, _, bias, peephole = layer.cell.get_weights()
    bias = bias.copy()
    bias[6:12] = -50.0  # forget gate ~0 and no recurrence: h_t depends on x_t only
    layer.cell.set_weights([kernel, np.zeros((6, 24), "float32"), bias, 0 * peephole])
    infer = np.asarray(layer(xs, training=False))
    np.testing.assert_array_equal(infer, np.asarray(layer(xs, training=False)))
    train = np.asarray(layer(xs, training=True))
    assert not np.allclose(train, infer)
    # Same input every step + one input mask per sequence -> the same output every step.
    np.testing.assert_allclose(train, np.repeat(train[:, :1], 7, axis=1), atol=1e-6)


def test_recurrent_dropout_only_when_training():
    layer = PeepholeLSTM(6, recurrent_dropout=0.5, seed=4)
    xs = _xs((3, 5, 2))
    infer = layer(xs, training=False)
    assert_all_equal(infer, layer(xs, training=False))
    assert not np.allclose(np.asarray(layer(xs, training=True)), np.asarray(infer))


def test_gradients_finite_and_nonzero_for_every_weight():
    layer = PeepholeLSTM(4, return_sequences=True, dropout=0.1, recurrent_dropout=0.1)
    xs = _xs((3, 6, 2))
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], bool)
    layer(xs)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(xs, mask=mask, training=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert len(grads) == 4
    for w, g in zip(layer.trainable_weights, grads, strict=True):
        assert np.all(np.isfinite(np.asarray(g))), w.name
        assert np.abs(np.asarray(g)).sum() > 0, w.name


def test_savedmodel_round_trip_bit_exact(tmp_path):
    ids = np.array([[3, 5, 2, 0], [1, 2, 3, 4]], "int32")
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    outputs = PeepholeLSTM(5, return_sequences=True, cell_clip=2.0)(x)
    model = keras.Model(inputs, outputs)
    assert_all_equal(savedmodel_roundtrip(model, ids, tmp_path), model(ids))


@pytest.mark.parametrize("kwargs, bad", [
    ({"units": 0}, "0"), ({"units": 4, "dropout": 2.0}, "2.0")])
def test_bad_arguments(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        PeepholeLSTM(**kwargs)
