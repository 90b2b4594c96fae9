"""models.seq2seq: training model vs step decoder, masking, saving, decoding, precision."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.seq2seq import build_inference_models, build_seq2seq_model, decode
from tests.testing import keras_roundtrip, mixed_precision_policy, to_numpy

SRC_VOCAB, TGT_VOCAB, START, END = 15, 12, 1, 2


def _model(cell="lstm", attention="luong", **kwargs):
    args = dict(embedding_dim=8, units=8, cell=cell, attention=attention)
    args.update(kwargs)
    return build_seq2seq_model(SRC_VOCAB, TGT_VOCAB, **args)


def _batch(seed=0, batch=3, src=6, tgt=5):
    rng = np.random.default_rng(seed)
    source = rng.integers(3, SRC_VOCAB, (batch, src)).astype("int32")
    source[1, 4:] = 0  # padded
    source[2, 2:] = 0
    target = rng.integers(3, TGT_VOCAB, (batch, tgt)).astype("int32")
    target[:, 0] = START
    return source, target


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


@pytest.mark.parametrize("cell, attention, layers", [
    ("lstm", "luong", 2), ("gru", "bahdanau", 1), ("peephole_lstm", "bahdanau", 1),
    ("simple_rnn", "luong", 1),
])
def test_step_decoder_matches_teacher_forced_training_logits(cell, attention, layers):
    model = _model(cell, attention, encoder_layers=layers, decoder_layers=layers)
    source, target = _batch()
    logits = to_numpy(model([source, target], training=False))
    assert logits.shape == (3, 5, TGT_VOCAB) and logits.dtype == np.float32
    attention_model = keras.Model(model.inputs, model.get_layer("attention").output[1])
    train_attention = to_numpy(attention_model([source, target]))

    encoder, step = build_inference_models(model)
    outputs, mask, *states = encoder(source)
    np.testing.assert_array_equal(to_numpy(mask), source != 0)
    for t in range(target.shape[1]):
        log_probs, states, weights = step(target[:, t], states, (outputs, mask))
        np.testing.assert_allclose(to_numpy(log_probs), _log_softmax(logits[:, t]), atol=1e-5)
        np.testing.assert_allclose(to_numpy(weights), train_attention[:, t], atol=1e-6)
    assert np.all(train_attention[2, :, 2:] == 0), "padded source positions got attention"


def test_padded_source_gives_the_same_logits_as_unpadded():
    model = _model("gru", "bahdanau", encoder_layers=2)
    source, target = _batch()
    padded = to_numpy(model([source, target]))
    short = to_numpy(model([source[2:, :2], target[2:]]))
    np.testing.assert_allclose(padded[2:], short, atol=1e-5)


def test_inference_models_share_weights_and_survive_keras_round_trip(tmp_path):
    model = _model("peephole_lstm", "luong", dropout=0.1)
    source, target = _batch(seed=1)
    loaded = keras_roundtrip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(loaded([source, target])),
                               to_numpy(model([source, target])), atol=0)
    encoder, step = build_inference_models(loaded)
    # Shared, not copied: changing the training model's logits bias moves the step output.
    outputs, mask, *states = encoder(source)
    before = to_numpy(step(target[:, 0], states, (outputs, mask))[0])
    bias = loaded.get_layer("logits").bias
    bias.assign(bias + np.eye(TGT_VOCAB, dtype="float32")[3] * 5.0)
    after = to_numpy(step(target[:, 0], states, (outputs, mask))[0])
    assert np.all(after[:, 3] > before[:, 3])
    weights_in_encoder = {id(w) for w in encoder.weights}
    assert weights_in_encoder <= {id(w) for w in loaded.weights}


def test_decoding_compiles_and_beam_never_scores_below_greedy():
    model = _model("lstm", "bahdanau")
    encoder, step = build_inference_models(model)
    source, _ = _batch(seed=2, batch=4)
    kw = dict(start_token=START, end_token=END, max_length=6)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def both(ids):  # greedy, and beam reusing that greedy result for keep_greedy
        out = decode(encoder, step, ids, method="both", beam_width=3, **kw)
        return out["greedy"], out["beam"]

    greedy, beam = to_numpy(both(source))
    assert greedy["tokens"].shape == (4, 6) and beam["attention"].shape == (4, 6, 6)
    assert np.all(beam["scores"] >= greedy["scores"] - 1e-5)
    # Id 0 (padding) is never generated before the end.
    for result in (greedy, beam):
        for row, n in zip(result["tokens"], result["lengths"]):
            assert np.all(row[:n] != 0) and np.all(row[n:] == 0)
    eager = to_numpy(decode(encoder, step, source[:2], method="greedy", **kw))
    np.testing.assert_array_equal(eager["tokens"], greedy["tokens"][:2])
    eager_beam = to_numpy(decode(encoder, step, source[:2], method="beam", beam_width=3, **kw))
    np.testing.assert_array_equal(eager_beam["tokens"], beam["tokens"][:2])
    # Padded vs unpadded source decode identically (row 2 has 2 real tokens).
    short = to_numpy(both(source[2:3, :2]))[1]
    np.testing.assert_array_equal(short["tokens"], beam["tokens"][2:3])
    np.testing.assert_allclose(short["attention"], beam["attention"][2:3, :, :2], atol=1e-6)
    assert np.all(beam["attention"][2, :, 2:] == 0)


def test_mixed_precision_keeps_float32_variables_and_logits():
    with mixed_precision_policy("mixed_float16"):
        model = _model("gru", "luong")
        source, target = _batch()
        logits = model([source, target])
        encoder, step = build_inference_models(model)
        outputs, mask, *states = encoder(source)
        log_probs, _, weights = step(target[:, 0], states, (outputs, mask))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert keras.backend.standardize_dtype(log_probs.dtype) == "float32"
    assert keras.backend.standardize_dtype(weights.dtype) == "float32"
    assert {keras.backend.standardize_dtype(w.dtype) for w in model.weights} == {"float32"}
    assert np.all(np.isfinite(to_numpy(logits)))


def test_loss_ignores_padded_targets_and_every_weight_gets_a_gradient():
    model = _model("lstm", "bahdanau", dropout=0.1)
    source, target = _batch(seed=3, batch=4, tgt=6)
    target[:, 4:] = 0  # padded targets
    labels = np.concatenate([target[:, 1:], np.zeros((4, 1), "int32")], 1)
    other = labels.copy()
    other[:, 4:] = 7  # garbage under the padding
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        logits = model([source, target], training=True)
        loss = loss_fn(labels, logits)
    assert float(loss_fn(other, logits)) == pytest.approx(float(loss), abs=1e-6)
    grads = tape.gradient(loss, model.trainable_weights)
    without = [w.path for w, g in zip(model.trainable_weights, grads)
               if g is None or not np.any(to_numpy(g))]
    assert not without, f"no gradient reaches {without}"


@pytest.mark.parametrize("kwargs, match", [
    (dict(cell="lstmx"), "cell must be one of .*'lstmx'"),
    (dict(attention="dot"), "attention must be one of .*'dot'"),
    (dict(attention="luong_dot"), "luong_dot"),
    (dict(dropout=1.0), r"dropout must be in \[0, 1\); got 1.0"),
    (dict(units=0), "units must be an int >= 1; got 0"),
    (dict(decoder_layers=0), "decoder_layers must be an int >= 1; got 0"),
])
def test_bad_arguments_raise_one_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_bad_vocabulary_and_decode_method():
    with pytest.raises(ValueError, match="source_vocab_size must be an int >= 2; got 1"):
        build_seq2seq_model(1, 5)
    model = _model()
    encoder, step = build_inference_models(model)
    with pytest.raises(ValueError, match="'greedy', 'beam' or 'both'; got 'sample'"):
        decode(encoder, step, _batch()[0], start_token=START, end_token=END, max_length=3,
               method="sample")
    with pytest.raises(ValueError, match="not a seq2seq model"):
        build_inference_models(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
