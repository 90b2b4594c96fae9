"""CharLMFeatures (Flair-style char-LM features): the LM's state at word boundaries, frozen or
fine-tuned, serialisable; and the in-graph sentence text it reads (pipelines.char_lm)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.language_model import EMBEDDING, RNN, build_char_language_model
from models.layers.char_lm_features import CharLMFeatures
from pipelines.char_lm import reverse_chars, sentence_char_inputs
from pipelines.vocab import START_ID, CharVocabulary

WORDS = ["Jöhn", "lives", "in", "New", "York", "."]
OTHER = ["EU", "rejects", "it"]


@pytest.fixture(scope="module")
def vocab():
    return CharVocabulary(add_start_end=True).adapt(
        [" ".join(WORDS) + "\n", " ".join(OTHER).lower()])  # "E" and "U" stay unknown: OOV


def _lm(cell="lstm", num_layers=2):
    keras.utils.set_random_seed(0)
    return build_char_language_model(40, embedding_dim=6, units=8, num_layers=num_layers,
                                     cell=cell)


def _states(lm, text, vocab, start=False):
    """The LM's top-layer outputs on ``text`` run directly: float [len, units]."""
    ids = vocab(tf.constant([text]), add_start_end=False)
    if start:
        ids = tf.concat([[[START_ID]], ids], axis=1)
    hidden = keras.Model(lm.input, lm.get_layer(RNN).output[0])
    return hidden(ids).numpy()[0]


def _boundaries(words, reverse):
    """Independent reference: where each word's boundary is in "<ctx>" + sentence + " "."""
    if not reverse:
        text, out = "", []
        for word in words:
            text += word
            out.append(1 + len(text))  # the space after the word (after the context char)
            text += " "
        return " ".join(words) + " ", out
    text, out = "", [0] * len(words)
    for i in reversed(range(len(words))):  # the backward LM reads the last word first
        text += words[i][::-1]
        out[i] = 1 + len(text)  # the space before the word, in reading order
        text += " "
    return text, out


def test_reverse_chars_keeps_code_points():
    assert reverse_chars(tf.constant("héllo")).numpy().decode() == "olléh"
    out = reverse_chars(tf.constant(["ab c", "", "ü"])).numpy().tolist()
    assert [t.decode() for t in out] == ["c ba", "", "ü"]


@pytest.mark.parametrize("reverse", [False, True])
def test_sentence_text_and_positions_are_the_word_boundaries(vocab, reverse):
    ids, positions = sentence_char_inputs(tf.constant(WORDS), vocab, lines=False,
                                          reverse=reverse, max_token_chars=64)
    text, expected = _boundaries(WORDS, reverse)
    np.testing.assert_array_equal(ids, vocab(tf.constant(["\n" + text]),
                                             add_start_end=False)[0])
    assert positions.numpy().tolist() == expected
    chars = ["\n"] + list(text)
    assert all(chars[p] == " " for p in expected)
    # A batch with padding tokens (""): the same ids and positions per row, padding at 0.
    batch = tf.constant([WORDS, OTHER + [""] * 3])
    ids2, positions2 = sentence_char_inputs(batch, vocab, lines=True, reverse=reverse,
                                            max_token_chars=3)
    assert ids2.numpy()[0, 0] == START_ID and positions2.numpy()[1, 3:].tolist() == [0] * 3
    cut = [w[:3] for w in OTHER]
    text, expected = _boundaries(cut, reverse)
    assert positions2.numpy()[1, :3].tolist() == expected
    row = ids2.numpy()[1]
    np.testing.assert_array_equal(row[1:1 + len(text)], vocab(tf.constant(text),
                                                              add_start_end=False))
    assert not row[1 + len(text):].any()
    # A cap on the ids read: cut ids, boundaries beyond it read the last id kept.
    ids3, positions3 = sentence_char_inputs(batch, vocab, lines=True, reverse=reverse,
                                            max_token_chars=3, max_chars=6)
    np.testing.assert_array_equal(ids3, ids2[:, :6])
    expected = positions2.numpy()
    np.testing.assert_array_equal(positions3, np.where(expected > 0, np.minimum(expected, 5), 0))


@pytest.mark.parametrize("reverse", [False, True])
def test_features_are_the_lm_state_at_the_boundaries(vocab, reverse):
    lm = _lm()
    layer = CharLMFeatures.from_layers(lm.get_layer(EMBEDDING), lm.get_layer(RNN))
    batch = tf.constant([OTHER + [""] * 3, WORDS])
    ids, positions = sentence_char_inputs(batch, vocab, lines=False, reverse=reverse,
                                          max_token_chars=64)
    out = layer([ids, positions]).numpy()
    assert out.shape == (2, 6, 8) and out.dtype == np.float32
    for row, words in enumerate([OTHER, WORDS]):
        text, expected = _boundaries(words, reverse)
        states = _states(lm, "\n" + text, vocab)  # the LM run on the sentence string alone
        np.testing.assert_allclose(out[row, :len(words)], states[expected], atol=1e-5)


def test_lines_lm_reads_after_start(vocab):
    lm = _lm(cell="gru", num_layers=1)
    layer = CharLMFeatures.from_layers(lm.get_layer(EMBEDDING), lm.get_layer(RNN))
    ids, positions = sentence_char_inputs(tf.constant([WORDS]), vocab, lines=True,
                                          reverse=False, max_token_chars=64)
    text, expected = _boundaries(WORDS, False)
    states = _states(lm, text, vocab, start=True)
    np.testing.assert_allclose(layer([ids, positions]).numpy()[0], states[expected],
                               atol=1e-5)


def _fit_one_step(trainable):
    lm = _lm(num_layers=1)
    layer = CharLMFeatures.from_layers(lm.get_layer(EMBEDDING), lm.get_layer(RNN),
                                       trainable=trainable)
    ids, positions = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    model = keras.Model([ids, positions], keras.layers.Dense(1)(layer([ids, positions])))
    model.compile(keras.optimizers.SGD(1.0), "mse")
    x = [np.array([[2, 5, 6, 7, 4, 0]]), np.array([[3, 4]])]
    before = [w.numpy().copy() for w in layer.weights]
    model.fit(x, np.ones((1, 2, 1)), epochs=1, verbose=0)
    return before, [w.numpy() for w in layer.weights], layer


def test_frozen_by_default_and_trainable_when_asked():
    before, after, layer = _fit_one_step(trainable=False)
    assert not layer.trainable and not layer.trainable_weights and len(layer.weights) == 4
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    before, after, layer = _fit_one_step(trainable=True)
    assert len(layer.trainable_weights) == 4
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def test_config_round_trip_and_saved_model_file(tmp_path):
    lm = _lm(cell="gru")
    layer = CharLMFeatures.from_layers(lm.get_layer(EMBEDDING), lm.get_layer(RNN),
                                       name="char_lm_fw")
    config = layer.get_config()
    assert {k: config[k] for k in ("vocab_size", "embedding_dim", "units", "num_layers",
                                   "cell", "trainable")} == {
        "vocab_size": 40, "embedding_dim": 6, "units": 8, "num_layers": 2, "cell": "gru",
        "trainable": False}
    clone = CharLMFeatures.from_config(config)
    assert clone.get_config() == config
    ids, positions = keras.Input((None,), dtype="int32"), keras.Input((None,), dtype="int32")
    model = keras.Model([ids, positions], layer([ids, positions]))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    x = [np.array([[2, 5, 6, 7, 4, 0]]), np.array([[3, 4, 0]])]
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    reloaded = loaded.get_layer("char_lm_fw")
    assert not reloaded.trainable and not loaded.trainable_weights
    with pytest.raises(ValueError, match="positive int"):
        CharLMFeatures(0, 4, 8)


def test_mixed_precision_gives_float32_features_close_to_float32(vocab):
    lm = _lm()
    ids, positions = sentence_char_inputs(tf.constant([WORDS]), vocab, lines=False,
                                          reverse=False, max_token_chars=64)
    expected = CharLMFeatures.from_layers(lm.get_layer(EMBEDDING), lm.get_layer(RNN))(
        [ids, positions]).numpy()
    keras.config.set_dtype_policy("mixed_bfloat16")  # the conftest fixture resets it
    layer = CharLMFeatures.from_layers(lm.get_layer(EMBEDDING), lm.get_layer(RNN))
    out = layer([ids, positions])
    assert out.dtype == tf.float32 and layer.weights[0].dtype == "float32"
    np.testing.assert_allclose(out.numpy(), expected, atol=0.05)
