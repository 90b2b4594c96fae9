"""`.keras` files saved before the models/ reorganisation (tests/fixtures/keras_v0_1, written by
its make_fixtures.py) still load and give the same outputs: the registered serialization names
(``recurrent_suite>ClassName``) did not change with the modules."""

from __future__ import annotations

import pathlib
import zipfile

import keras
import numpy as np
import pytest

# Importing the task builders registers every class of models/ (they import the layers).
import models.classifier  # noqa: F401
import models.language_model  # noqa: F401
import models.music_language_model  # noqa: F401
import models.optimizers  # noqa: F401
import models.seq2seq  # noqa: F401
import models.tagger  # noqa: F401

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "keras_v0_1"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.keras"))
#: Every class models/ registered when the fixtures were written (SourceAttention is abstract).
REGISTERED_V0_1 = {
    "Adam", "BahdanauAttention", "CRF", "CRFModel", "CharEncoder", "LuongAttention",
    "MaskedConcatenate", "MaskedPooling", "NoteFeatures", "PeepholeLSTM", "PeepholeLSTMCell",
    "SqueezeTime", "StackedBidirectional",
}


def test_fixtures_cover_every_registered_class():
    assert len(NAMES) == 9
    text = "".join(zipfile.ZipFile(FIXTURES / f"{n}.keras").read("config.json").decode()
                   for n in NAMES)
    for cls in REGISTERED_V0_1:
        assert f'"recurrent_suite>{cls}"' in text, cls
        assert keras.saving.get_registered_object(f"recurrent_suite>{cls}") is not None, cls


@pytest.mark.parametrize("name", NAMES)
def test_saved_before_the_move_loads_with_same_outputs(name):
    model = keras.saving.load_model(FIXTURES / f"{name}.keras")
    data = np.load(FIXTURES / f"{name}.npz")
    inputs = {k[3:]: data[k] for k in data.files if k.startswith("in/")}
    expected = {k[4:]: data[k] for k in data.files if k.startswith("out/")}
    outputs = model(inputs if len(inputs) > 1 else next(iter(inputs.values())), training=False)
    if isinstance(outputs, dict):
        got = dict(sorted(outputs.items()))
    else:
        got = {str(i): v for i, v in enumerate(outputs if isinstance(outputs, (list, tuple))
                                                 else [outputs])}
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got[key]), value,
                                   rtol=1e-5, atol=1e-5, err_msg=f"{name} output {key}")
