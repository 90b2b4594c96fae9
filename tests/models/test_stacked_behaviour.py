"""StackedBidirectional behaviour: state structures, step-by-step state threading, masking,
sub-layer types, dropout, per-layer units, residual, merge modes, bad arguments."""

import keras
import numpy as np
import pytest

from models.layers.peephole_lstm import PeepholeLSTM
from models.layers.stacked import StackedBidirectional
from tests.testing import assert_allclose

CELLS = ["lstm", "peephole_lstm", "gru", "simple_rnn"]


def _xs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.mark.parametrize("cell, per_dir", [("lstm", 2), ("peephole_lstm", 2), ("gru", 1),
                                           ("simple_rnn", 1)])
def test_return_state_structure(cell, per_dir):
    xs = _xs((2, 5, 3))
    bi = StackedBidirectional(4, num_layers=2, cell=cell, return_sequences=True,
                              return_state=True)
    outs = bi(xs)
    assert bi.states_per_layer == 2 * per_dir
    assert len(outs) == 1 + 2 * per_dir
    assert tuple(outs[0].shape) == (2, 5, 8)
    assert all(tuple(s.shape) == (2, 4) for s in outs[1:])
    # Keras Bidirectional order: forward states, then backward states; the forward h is the
    # last forward output, the backward h the backward output at t = 0.
    fw_h, bw_h = outs[1], outs[1 + per_dir]
    assert_allclose(fw_h, np.asarray(outs[0])[:, -1, :4], atol=1e-6)
    assert_allclose(bw_h, np.asarray(outs[0])[:, 0, 4:], atol=1e-6)

    uni = StackedBidirectional(4, num_layers=2, cell=cell, bidirectional=False,
                               return_state=True)
    outs = uni(xs)
    assert uni.states_per_layer == per_dir
    assert len(outs) == 1 + per_dir
    assert_allclose(outs[1], outs[0], atol=0)  # h is the last output

    every = StackedBidirectional([4, 3], cell=cell, bidirectional=False, return_state="all")
    outs = every(xs)
    assert len(outs) == 1 + 2 * per_dir
    assert [s.shape[-1] for s in outs[1:]] == [4] * per_dir + [3] * per_dir


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm", "gru"])
def test_step_by_step_with_all_states_equals_full_sequence(cell):
    # What a generator's step model does: one timestep at a time, carrying every layer's state.
    xs = _xs((2, 6, 3))
    rnn = StackedBidirectional([5, 4], cell=cell, bidirectional=False, return_sequences=True,
                               return_state="all")
    full = rnn(xs)
    states = [np.zeros((2, u), "float32") for u in [5] * (rnn.states_per_layer) +
              [4] * rnn.states_per_layer]
    steps = []
    for t in range(6):
        out = rnn(xs[:, t:t + 1], initial_state=states)
        steps.append(np.asarray(out[0]))
        states = out[1:]
    assert_allclose(np.concatenate(steps, axis=1), full[0], atol=1e-5)
    assert_allclose(states, full[1:], atol=1e-5)


def test_initial_state_wrong_length_raises():
    rnn = StackedBidirectional(3, num_layers=2, bidirectional=False, return_state="all")
    with pytest.raises(ValueError, match="4 tensors"):
        rnn(_xs((2, 3, 2)), initial_state=[np.zeros((2, 3), "float32")] * 2)


@pytest.mark.parametrize("cell", CELLS)
def test_padded_and_unpadded_runs_agree(cell):
    ids = np.array([[3, 5, 2, 7]], "int32")
    padded = np.array([[3, 5, 2, 7, 0, 0, 0]], "int32")
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(10, 4, mask_zero=True)(inputs)
    seq_layer = StackedBidirectional(3, num_layers=2, cell=cell, return_sequences=True,
                                     residual=True)
    last_layer = StackedBidirectional(3, num_layers=2, cell=cell, return_state=True)
    model = keras.Model(inputs, [seq_layer(x), *last_layer(x)])
    short, long = model(ids), model(padded)
    assert_allclose(np.asarray(long[0])[:, :4], short[0], atol=1e-5)
    assert_allclose(long[1:], short[1:], atol=1e-5)
    assert seq_layer.compute_mask(None, np.ones((1, 4), bool)) is not None


def test_sublayers_are_keras_builtins_with_cudnn_defaults():
    for cell, cls in [("lstm", keras.layers.LSTM), ("gru", keras.layers.GRU),
                      ("simple_rnn", keras.layers.SimpleRNN), ("peephole_lstm", PeepholeLSTM)]:
        layer = StackedBidirectional(3, num_layers=2, cell=cell)
        for bi in layer.rnn_layers:
            assert isinstance(bi, keras.layers.Bidirectional)
            for rnn in (bi.forward_layer, bi.backward_layer):
                assert type(rnn) is cls
                assert not rnn.unroll
                assert rnn.cell.activation is keras.activations.tanh
                if cell in ("lstm", "gru"):
                    assert rnn.cell.recurrent_activation is keras.activations.sigmoid
                    assert rnn.use_cudnn == "auto"
    flat = StackedBidirectional(3, num_layers=2, bidirectional=False)
    assert all(type(r) is keras.layers.LSTM for r in flat.rnn_layers)


def test_dropout_only_when_training():
    layer = StackedBidirectional(4, num_layers=2, dropout=0.5, recurrent_dropout=0.3, seed=1)
    xs = _xs((3, 5, 4))
    infer = np.asarray(layer(xs, training=False))
    np.testing.assert_array_equal(infer, np.asarray(layer(xs)))
    twin = StackedBidirectional(4, num_layers=2)
    twin(xs)
    twin.set_weights(layer.get_weights())
    np.testing.assert_allclose(infer, np.asarray(twin(xs)), atol=1e-6)
    assert not np.allclose(np.asarray(layer(xs, training=True)), infer)


def test_per_layer_units_and_weight_shapes():
    layer = StackedBidirectional([6, 4, 2], cell="gru", return_sequences=True)
    out = layer(_xs((2, 5, 3)))
    assert layer.num_layers == 3 and layer.layer_units == [6, 4, 2]
    assert tuple(out.shape) == (2, 5, 4)
    kernels = [w for w in layer.weights if w.name == "kernel"]
    assert [tuple(k.shape) for k in kernels] == [(3, 18), (3, 18), (12, 12), (12, 12),
                                                 (8, 6), (8, 6)]
    assert layer.get_config()["units"] == [6, 4, 2]


def test_residual_adds_layer_input():
    xs = _xs((2, 5, 6))
    res = StackedBidirectional(3, num_layers=2, residual=True, return_sequences=True)
    plain = StackedBidirectional(3, num_layers=2, return_sequences=True)
    res(xs)
    plain(xs)
    plain.set_weights(res.get_weights())
    first = res.rnn_layers[0](xs)[0]
    second = res.rnn_layers[1](first)[0]
    assert_allclose(res(xs), np.asarray(second) + np.asarray(first), atol=1e-5)
    assert not np.allclose(np.asarray(res(xs)), np.asarray(plain(xs)))
    with pytest.raises(ValueError, match="residual"):
        StackedBidirectional([3, 4], residual=True, return_sequences=True)(xs)



def test_residual_keeps_masking_padded_and_unpadded_agree():
    # The seq2seq encoder (encoder_residual): padding must change neither the valid steps'
    # outputs nor the final states when each layer adds its input.
    layer = StackedBidirectional(3, num_layers=3, residual=True, return_sequences=True,
                                 return_state=True)
    xs = _xs((2, 6, 6))
    mask = np.array([[True] * 6, [True] * 4 + [False] * 2])
    padded = layer(xs, mask=mask)
    short = layer(xs[1:, :4])
    assert_allclose(np.asarray(padded[0])[1, :4], short[0][0], atol=1e-5)
    for got, want in zip(padded[1:], short[1:]):
        assert_allclose(np.asarray(got)[1:], want, atol=1e-5)
    assert StackedBidirectional.from_config(layer.get_config()).residual is True

def test_merge_modes():
    xs = _xs((2, 5, 3))
    concat = StackedBidirectional(4, return_sequences=True)
    both = np.asarray(concat(xs))
    fw, bw = both[..., :4], both[..., 4:]
    expected = {"sum": fw + bw, "ave": (fw + bw) / 2, "mul": fw * bw}
    for mode, want in expected.items():
        layer = StackedBidirectional(4, merge_mode=mode, return_sequences=True)
        layer(xs)
        layer.set_weights(concat.get_weights())
        assert_allclose(layer(xs), want, atol=1e-6, msg=mode)


@pytest.mark.parametrize("kwargs, bad", [
    ({"units": 0}, "0"),
    ({"units": -2}, "-2"),
    ({"units": [4, 0]}, "0"),
    ({"units": 4, "num_layers": 0}, "0"),
    ({"units": [4, 4], "num_layers": 3}, "num_layers=3"),
    ({"units": 4, "cell": "transformer"}, "transformer"),
    ({"units": 4, "merge_mode": "max"}, "max"),
    ({"units": 4, "merge_mode": None}, "None"),
    ({"units": 4, "dropout": 1.0}, "1.0"),
    ({"units": 4, "return_state": "top"}, "top"),
])
def test_bad_arguments(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        StackedBidirectional(**kwargs)


def test_cells_no_longer_reexports_the_layers_that_import_it():
    # The lazy re-export (cells.PeepholeLSTM / cells.StackedBidirectional) was an import circle
    # (issue 18); the layers are imported from their own modules.
    import models.layers.cells as cells
    import models.layers.peephole_lstm as peephole_lstm
    import models.layers.stacked as stacked

    assert stacked.StackedBidirectional is StackedBidirectional
    assert peephole_lstm.PeepholeLSTM is PeepholeLSTM
    for name in ("StackedBidirectional", "PeepholeLSTM", "NotALayer"):
        with pytest.raises(AttributeError):
            getattr(cells, name)
