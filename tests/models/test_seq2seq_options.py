"""models.seq2seq options of issue #20: tied decoder embeddings, a residual encoder, and
per-sentence output caps in greedy and beam search."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.seq2seq import build_inference_models, build_seq2seq_model, decode
from models.word_language_model import WordEmbedding
from tests.models.test_seq2seq import END, SRC_VOCAB, START, TGT_VOCAB, _batch, _log_softmax
from tests.testing import keras_roundtrip, mixed_precision_policy, to_numpy


def _model(**kwargs):
    args = dict(embedding_dim=6, units=8, encoder_layers=2)
    args.update(kwargs)
    return build_seq2seq_model(SRC_VOCAB, TGT_VOCAB, **args)


def _assert_step_matches_training(model, source, target, atol=1e-5):
    logits = to_numpy(model([source, target], training=False))
    encoder, step = build_inference_models(model)
    outputs, mask, *states = encoder(source)
    for t in range(target.shape[1]):
        log_probs, states, _ = step(target[:, t], states, (outputs, mask))
        np.testing.assert_allclose(to_numpy(log_probs), _log_softmax(logits[:, t]), atol=atol)
    return logits


@pytest.mark.parametrize("tie, residual, cell", [(True, False, "lstm"), (False, True, "gru"),
                                                  (True, True, "lstm")])
def test_step_decoder_matches_training_logits_with_tied_and_residual(tie, residual, cell):
    model = _model(tie_embeddings=tie, encoder_residual=residual, cell=cell, decoder_layers=2)
    source, target = _batch()
    logits = _assert_step_matches_training(model, source, target)
    assert logits.shape == (3, 5, TGT_VOCAB) and logits.dtype == np.float32
    names = {layer.name for layer in model.layers}
    assert ("logits" in names) != tie and ("output_projection" in names) == tie
    assert model.get_layer("encoder").residual == residual
    # Padded and unpadded sources agree on the valid steps (the residual keeps the mask).
    short = to_numpy(model([source[2:, :2], target[2:]]))
    np.testing.assert_allclose(logits[2:], short, atol=1e-5)


def test_tied_output_reuses_the_target_embedding_matrix():
    model = _model(tie_embeddings=True)
    untied = _model()
    embedding = model.get_layer("target_embedding")
    assert isinstance(embedding, WordEmbedding)
    assert model.get_layer("output_projection").kernel.shape == (8 + 16, 6)
    # The [vocab, emb] matrix is the only vocabulary-sized matrix: fewer parameters than untied.
    assert model.count_params() < untied.count_params()
    source, target = _batch(seed=1)
    before = to_numpy(model([source, target]))
    # Moving one row of the matrix moves that token's logits (and nothing else's).
    matrix = to_numpy(embedding.embeddings).copy()
    matrix[7] += 1.0
    embedding.embeddings.assign(matrix)
    after = to_numpy(model([source[:, :], target[:, :1]]))  # first step: input START
    changed = np.abs(after[:, 0] - before[:, 0]) > 1e-6
    assert changed[:, 7].all() and not changed[:, [i for i in range(TGT_VOCAB) if i != 7]].any()


def test_tied_model_survives_keras_round_trip_and_stays_tied(tmp_path):
    model = _model(tie_embeddings=True, encoder_residual=True, dropout=0.1)
    source, target = _batch(seed=2)
    loaded = keras_roundtrip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(loaded([source, target])),
                               to_numpy(model([source, target])), atol=0)
    assert loaded.get_layer("encoder").residual
    _assert_step_matches_training(loaded, source, target)
    # Still one matrix after loading: the lookup and the output projection share it.
    embedding = loaded.get_layer("target_embedding")
    assert sum(w is embedding.embeddings for w in loaded.weights) == 1
    encoder, step = build_inference_models(loaded)
    outputs, mask, *states = encoder(source)
    before = to_numpy(step(target[:, 0], states, (outputs, mask))[0])
    embedding.output_bias.assign(np.eye(TGT_VOCAB, dtype="float32")[3] * 5.0)
    after = to_numpy(step(target[:, 0], states, (outputs, mask))[0])
    assert np.all(after[:, 3] > before[:, 3])


def test_tied_mixed_precision_keeps_float32_logits():
    with mixed_precision_policy("mixed_float16"):
        model = _model(tie_embeddings=True, encoder_residual=True)
        source, target = _batch()
        logits = model([source, target])
        encoder, step = build_inference_models(model)
        outputs, mask, *states = encoder(source)
        log_probs = step(target[:, 0], states, (outputs, mask))[0]
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert keras.backend.standardize_dtype(log_probs.dtype) == "float32"
    assert {keras.backend.standardize_dtype(w.dtype) for w in model.weights} == {"float32"}
    assert np.all(np.isfinite(to_numpy(logits)))


@pytest.mark.parametrize("tie", [False, True])
def test_shared_embeddings_one_matrix_for_both_sides(tie, tmp_path):
    model = build_seq2seq_model(SRC_VOCAB, SRC_VOCAB, embedding_dim=6, units=8,
                                share_embeddings=True, tie_embeddings=tie)
    names = {layer.name for layer in model.layers}
    assert "source_embedding" not in names and "target_embedding" in names
    matrices = [w for w in model.weights if tuple(w.shape) == (SRC_VOCAB, 6)]
    assert len(matrices) == 1
    source, target = _batch(seed=4)
    loaded = keras_roundtrip(model, tmp_path)
    np.testing.assert_allclose(to_numpy(loaded([source, target])),
                               to_numpy(model([source, target])), atol=0)
    _assert_step_matches_training(loaded, source, target)
    # The encoder reads the shared matrix: moving a source token's row moves the encoding.
    encoder, _ = build_inference_models(loaded)
    before = to_numpy(encoder(source)[0])
    matrix = [w for w in loaded.weights if tuple(w.shape) == (SRC_VOCAB, 6)][0]
    matrix.assign(to_numpy(matrix) + (np.arange(SRC_VOCAB)[:, None] == source[0, 0]).astype(
        "float32"))
    assert not np.allclose(to_numpy(encoder(source)[0])[0], before[0])


@pytest.mark.parametrize("kwargs, match", [
    (dict(tie_embeddings="yes"), "tie_embeddings must be a bool; got 'yes'"),
    (dict(encoder_residual=1), "encoder_residual must be a bool; got 1"),
    (dict(share_embeddings=True), "share_embeddings needs one vocabulary .*15 != .*12"),
])
def test_bad_option_types(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)


def test_each_sentence_ends_by_its_own_cap_in_greedy_and_beam():
    model = _model(tie_embeddings=True)
    # Untrained and pushed away from END: every hypothesis runs until something stops it.
    model.get_layer("target_embedding").output_bias.assign(
        -10.0 * np.eye(TGT_VOCAB, dtype="float32")[END])
    encoder, step = build_inference_models(model)
    source = np.zeros((2, 6), "int32")
    source[0, :2] = [4, 5]             # short: cap 7
    source[1, :] = [4, 5, 6, 7, 8, 9]  # long: cap 15
    caps = np.array([7, 15], "int32")
    kw = dict(start_token=START, end_token=END, max_length=15)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None], tf.int32)], autograph=False)
    def both(ids, limits):
        out = decode(encoder, step, ids, method="both", beam_width=3, max_lengths=limits, **kw)
        return out["greedy"], out["beam"]

    for result in to_numpy(both(source, caps)):
        lengths, tokens = result["lengths"], result["tokens"]
        assert lengths.tolist() == [7, 15], lengths
        assert tokens[0, 6] == END and np.all(tokens[0, 7:] == 0)
        assert np.all(tokens[0, :6] != END) and np.all(tokens[1, :14] != END)
        np.testing.assert_array_equal(result["attention"][0, 7:], 0)
    # Without the caps, the short sentence runs to the batch's limit like the long one.
    free = to_numpy(decode(encoder, step, source, method="greedy", **kw))
    assert free["lengths"].tolist() == [15, 15]
    beam = to_numpy(decode(encoder, step, source, method="beam", beam_width=3,
                           keep_greedy=False, max_lengths=caps, **kw))
    assert np.all(beam["beam_lengths"][0] <= 7) and np.all(beam["beam_lengths"][1] <= 15)
    # A forced END still costs its log-probability: the scores stay sums of emitted tokens.
    assert np.all(beam["scores"] < -10.0)
