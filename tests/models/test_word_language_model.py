"""models.word_language_model: AWD-style layers, tying, carried states, masking, precision."""

import keras
import numpy as np
import pytest
from keras import ops

from models import language_model as lm
from models import word_language_model as wlm


def _ids(batch=4, time=7, vocab=30, seed=0):
    rng = np.random.default_rng(seed)
    return ops.convert_to_tensor(rng.integers(2, vocab, (batch, time)).astype("int32"))


def _model(**kwargs):
    args = {"vocab_size": 30, "embedding_dim": 8, "units": 12, "num_layers": 2,
            "embedding_dropout": 0.1, "input_dropout": 0.1, "hidden_dropout": 0.1,
            "output_dropout": 0.1, "carry_batch_size": 4, "seed": 3, **kwargs}
    return wlm.build_word_language_model(**args)


@pytest.mark.parametrize("cell,tie,embedding_dim", [("lstm", True, 8), ("lstm", True, 12),
                                                    ("lstm", False, 8),
                                                    ("peephole_lstm", True, 8)])
def test_layer_names_and_save_load_round_trip(tmp_path, cell, tie, embedding_dim):
    model = _model(cell=cell, tie_weights=tie, embedding_dim=embedding_dim)
    names = [layer.name for layer in model.layers]
    assert names[1:4] == ["embedding", "input_dropout", "lstm_1"] and "lstm_2" in names
    assert ("projection" in names) == (tie and embedding_dim != 12)
    assert ("logits" in names) == (not tie)
    if tie:  # the output reuses the embedding matrix: no [units, vocab] kernel anywhere
        assert not any(tuple(w.shape) in ((12, 30), (8, 30)) for w in model.weights)
    ids = _ids()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(loaded(ids), model(ids), atol=1e-6)
    assert loaded.get_layer("lstm_1").get_config()["carry_batch_size"] == 4
    assert loaded.get_layer("embedding").get_config()["embedding_dropout"] == 0.1


def test_training_carries_states_and_reset_zeroes_them():
    model = _model()
    ids = _ids()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    carried = model.get_layer("lstm_2").carried_states
    assert [tuple(v.shape) for v in carried] == [(4, 12), (4, 12)]
    model.fit(ids, ids, batch_size=4, epochs=1, verbose=0)
    assert np.abs(carried[0].numpy()).sum() > 0  # the last batch's final h
    before = [v.numpy().copy() for v in carried]
    model(ids, training=False)  # inference neither reads nor writes them
    np.testing.assert_array_equal(carried[0].numpy(), before[0])
    model.fit(ids[:3], ids[:3], batch_size=3, epochs=1, verbose=0)  # other batch size: zeros
    np.testing.assert_array_equal(carried[1].numpy(), before[1])
    wlm.reset_carried_states(model)
    assert all(np.abs(v.numpy()).sum() == 0 for v in carried)


def test_state_model_continues_exactly_where_it_stopped():
    model = _model()
    ids = _ids(time=9)
    state = wlm.build_state_model(model)
    zeros = lm.zero_states(wlm.build_state_model(model, step=True), 4)
    first = state([ids[:, :4], *zeros])
    second = state([ids[:, 4:], *first[1:]])
    np.testing.assert_allclose(np.concatenate([first[0], second[0]], axis=1), model(ids),
                               atol=1e-5)


def test_masking_right_padding_changes_nothing_before_it():
    model = _model()
    ids = _ids(batch=2, time=5)
    padded = ops.concatenate([ids, ops.zeros((2, 3), "int32")], axis=1)
    np.testing.assert_allclose(model(padded)[:, :5], model(ids), atol=1e-6)
    state = wlm.build_state_model(model)
    zeros = lm.zero_states(wlm.build_state_model(model, step=True), 2)
    # masked steps keep the states: the padded row ends in the unpadded row's states
    for a, b in zip(state([padded, *zeros])[1:], state([ids, *zeros])[1:]):
        np.testing.assert_allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_gives_float32_logits(policy):
    keras.config.set_dtype_policy(policy)
    model = _model(embedding_dim=12)
    ids = _ids()
    assert model(ids).dtype == "float32"
    step = wlm.build_state_model(model, step=True)
    out = step([ids[:, :1], *lm.zero_states(step, 4)])
    assert out[0].dtype == "float32" and tuple(out[0].shape) == (4, 30)
    assert model.get_layer("embedding").embeddings.dtype == "float32"


def test_embedding_dropout_drops_whole_word_rows():
    layer = wlm.WordEmbedding(20, 6, embedding_dropout=0.5, seed=1)
    ids = ops.convert_to_tensor(np.tile(np.arange(1, 20, dtype="int32"), (3, 1)))
    out = ops.convert_to_numpy(layer(ids, training=True))
    plain = ops.convert_to_numpy(layer(ids))
    dropped = np.all(out == 0, axis=-1)
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[0]).all()  # a word is dropped in every row or in none
    np.testing.assert_allclose(out[~dropped], plain[~dropped] * 2, rtol=1e-6)
    assert ops.convert_to_numpy(layer.compute_mask(ops.convert_to_tensor([[3, 0]]))).tolist() \
        == [[True, False]]


def test_locked_dropout_uses_one_mask_per_sequence():
    x = ops.ones((3, 10, 16))
    out = ops.convert_to_numpy(wlm.LockedDropout(0.5, seed=2)(x, training=True))
    assert (out == out[:, :1]).all() and (out == 0).any()
    np.testing.assert_array_equal(wlm.LockedDropout(0.5)(x), x)  # inference: identity


def test_in_graph_generation_is_seeded():
    model = _model()
    step = wlm.build_state_model(model, step=True)
    prompt = _ids(batch=2, time=3)
    runs = [lm.generate(step, prompt, 6, temperature=1.0, top_k=5, top_p=0.9,
                        seed=keras.random.SeedGenerator(7))[0] for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert tuple(runs[0].shape) == (2, 6) and ops.convert_to_numpy(runs[0]).min() >= 2


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="cell must be one of"):
        _model(cell="gru")
    with pytest.raises(ValueError, match="hidden_dropout"):
        _model(hidden_dropout=1.0)
    with pytest.raises(ValueError, match="embedding_dropout"):
        wlm.WordEmbedding(10, 4, embedding_dropout=-0.1)
    with pytest.raises(ValueError, match="carry_batch_size"):
        wlm.CarriedLSTM(4, carry_batch_size=-1, return_state=True)
