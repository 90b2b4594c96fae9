"""pipelines.subword: SentencePiece trained on a few lines, run by TF Text ops, saved, exported."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("tensorflow_text")
pytest.importorskip("sentencepiece")

from pipelines.subword import MIN_VOCAB_SIZE, SubwordVocabulary  # noqa: E402
from pipelines.vocab import END_ID, OOV_ID, START_ID  # noqa: E402

LINES = ["¿Cómo estás?", "Estoy bien, gracias.", "El niño come una manzana.",
         "Ahora veo la casa grande.", "¡Qué día tan bonito!", "Él dijo «sí»…",
         "How are you?", "I see the big house now.", "The boy eats an apple."] * 4
# Unseen characters (Ñ, 東京, an emoji) go through byte fallback: still no [UNK].
TEXTS = ["¿Cómo estás?  Bien, ÉL dijo «sí»… Ñandú 東京 🙂", "Ahora veo la casa.", "x  ", ""]


@pytest.fixture(scope="module")
def vocab():
    return SubwordVocabulary.train(LINES, 320)


def _strings(tensor):
    return [t.decode("utf-8") for t in tensor.numpy()]


def test_round_trip_is_exact_and_never_unknown(vocab):
    ids = vocab(tf.constant(TEXTS), ragged=True)
    assert ids.dtype == tf.int32 and ids.shape[0] == len(TEXTS)
    assert not np.any(ids.flat_values.numpy() == OOV_ID)
    assert not np.any(np.isin(ids.flat_values.numpy(), [0, START_ID, END_ID]))
    assert _strings(vocab.decode(ids)) == TEXTS
    # The TF Text detokenizer drops leading whitespace (documented), nothing else.
    assert _strings(vocab.decode(vocab(tf.constant(["  a b"])))) == ["a b"]
    dense = vocab(tf.constant(TEXTS))
    assert dense.shape == (len(TEXTS), ids.bounding_shape()[1])
    assert _strings(vocab.decode(dense)) == TEXTS
    assert vocab.vocabulary_size == len(vocab.get_vocabulary()) <= 320
    assert vocab.get_vocabulary()[:4] == ["", "[UNK]", "[START]", "[END]"]


def test_decode_stops_at_end_and_drops_start_and_padding(vocab):
    hola = vocab(tf.constant("Hola amigo")).numpy().tolist()
    extra = vocab(tf.constant(" basura")).numpy().tolist()
    row = [START_ID] + hola + [END_ID] + extra + [0, 0]
    ended = [END_ID] + hola + [0] * (len(row) - 1 - len(hola))
    assert _strings(vocab.decode(tf.constant([row, ended]))) == ["Hola amigo", ""]
    with pytest.raises(tf.errors.InvalidArgumentError, match="id >= vocabulary size"):
        vocab.decode(tf.constant([[vocab.vocabulary_size]]))


def test_lowercase_and_bad_settings():
    lower = SubwordVocabulary.train(LINES, 320, model_type="bpe", lowercase=True)
    assert _strings(lower.decode(lower(tf.constant(["ÉL Dijo"])))) == ["él dijo"]
    with pytest.raises(ValueError, match=f"vocab_size must be an int >= {MIN_VOCAB_SIZE}"):
        SubwordVocabulary.train(LINES, 100)
    with pytest.raises(ValueError, match="model_type must be one of"):
        SubwordVocabulary.train(LINES, 320, model_type="wordpiece")
    with pytest.raises(ValueError, match="no non-empty training text"):
        SubwordVocabulary.train(["", "  "], 320)


def test_save_load_and_a_savedmodel_asset_in_a_fresh_process(vocab, tmp_path):
    vocab.save(str(tmp_path / "assets"), "target")
    loaded = SubwordVocabulary.load(str(tmp_path / "assets"), "target")
    assert loaded.get_vocabulary() == vocab.get_vocabulary()
    np.testing.assert_array_equal(loaded(tf.constant(TEXTS)).numpy(),
                                  vocab(tf.constant(TEXTS)).numpy())

    class Module(tf.Module):
        def __init__(self, v):
            super().__init__()
            self.v = v

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def round_trip(self, text):
            return {"text": self.v.decode(self.v(text))}

    module = Module(loaded)
    export = str(tmp_path / "export")
    tf.saved_model.save(module, export, signatures={"serving_default": module.round_trip})
    assert os.listdir(os.path.join(export, "assets")) == ["target.spm.model"]
    # A fresh interpreter that imports tensorflow_text (the op library) but no project code.
    script = ("import sys, tensorflow as tf, tensorflow_text\n"
              "m = tf.saved_model.load(sys.argv[1])\n"
              "out = m.signatures['serving_default'](text=tf.constant([sys.argv[2]]))\n"
              "sys.stdout.buffer.write(out['text'].numpy()[0])\n")
    text = "¿Qué tal, Ñandú? «Sí»… 🙂"
    proc = subprocess.run([sys.executable, "-c", script, export, text], capture_output=True,
                          cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert proc.stdout.decode("utf-8") == text


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="subword vocabulary file not found: .*x.json"):
        SubwordVocabulary.load(str(tmp_path), "x")


def test_a_vocab_size_below_the_characters_needed_is_one_clear_error():
    many = ["".join(chr(0x4E00 + i + 60 * j) for i in range(60)) for j in range(3)]
    with pytest.raises(ValueError, match="vocab_size=270 is too small for this training text"):
        SubwordVocabulary.train(many, 270)
