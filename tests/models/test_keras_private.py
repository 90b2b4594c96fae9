"""Fails loudly, naming the API, when Keras changes or removes a private API the suite uses
(models/keras_private.py, and the trainer functions tasks/runner/distributed.py patches)."""

from __future__ import annotations

import importlib
import warnings

import keras
import numpy as np
import pytest

from models import keras_private
from models.optimizers import Adam


@pytest.mark.parametrize("api", sorted(keras_private.PRIVATE_APIS))
def test_private_api_is_there(api):
    assert keras_private.PRIVATE_APIS[api](), (
        f"Keras {keras.version()} no longer has {api}: adapt models/keras_private.py")


# What tasks/runner/distributed.patch_keras_trainer replaces or calls (it falls back to Keras'
# own code without them, so multi-worker fit would fail again, keras-team/keras#20585).
DISTRIBUTED = [
    ("keras.src.tree", "map_structure"),
    ("keras.src.backend.tensorflow.trainer", "reduce_per_replica"),
    ("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer._maybe_symbolic_build"),
    ("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer._symbolic_build"),
    ("keras.src.backend.tensorflow.trainer", "TensorFlowTrainer._distribute_strategy"),
]


@pytest.mark.parametrize("module,attribute", DISTRIBUTED, ids=lambda v: v)
def test_trainer_internals_patched_by_distributed_are_there(module, attribute):
    obj = importlib.import_module(module)
    head, _, tail = attribute.partition(".")
    obj = getattr(obj, head, None)
    if tail == "_distribute_strategy":  # an instance attribute, set in Trainer.__init__
        assert obj is not None and hasattr(keras.Sequential(), tail), f"{module}.{attribute}"
        return
    if tail:
        obj = getattr(obj, tail, None)
    assert callable(obj), (f"Keras {keras.version()} no longer has {module}.{attribute}: "
                           "adapt tasks/runner/distributed.py")


def test_keras_calls_the_ema_hook():
    # Step 0 copies the weights (Keras does too); at step 1 the warm-up momentum is 1/11, where
    # Keras' own update (hook not called) would use ema_momentum = 0.99.
    var = keras.Variable(np.array([1.0, -2.0], "float32"))
    optimizer = Adam(learning_rate=0.5, use_ema=True, ema_momentum=0.99)
    weights = []
    for _ in range(2):
        optimizer.apply_gradients([(keras.ops.ones((2,)), var)])
        weights.append(keras.ops.convert_to_numpy(var))
    expected = weights[0] / 11 + weights[1] * 10 / 11
    average = optimizer._model_variables_moving_average[0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(average), expected, rtol=1e-5)


def test_fit_resumes_at_the_initial_epoch_set_through_the_hook():
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            keras_private.set_initial_epoch(self.model, 2)

        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    model.fit(np.zeros((2, 1)), np.zeros((2, 1)), epochs=3, verbose=0, callbacks=[Record()])
    assert seen == [2]


def test_backup_hooks_route_keras_save_and_load(tmp_path):
    calls = []

    class Hooks(keras_private.BackupHooks):
        def restore_backup(self, metadata_path):
            calls.append(("restore", metadata_path))

        def write_backup(self, epoch):
            calls.append(("write", epoch))

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    hooks = Hooks(str(tmp_path))
    model.fit(np.zeros((2, 1)), np.zeros((2, 1)), epochs=2, verbose=0, callbacks=[hooks])
    assert calls == [("restore", hooks.metadata_path), ("write", 1), ("write", 2)]
    assert hooks.metadata_path.startswith(str(tmp_path))


def test_swap_flag_reaches_keras_callback():
    callback = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    keras_private.set_ema_weights_in_model(callback, True)
    assert callback._ema_weights_in_model is True


def test_missing_api_is_named(monkeypatch):
    monkeypatch.setitem(keras_private.PRIVATE_APIS, "Optimizer._gone", lambda: False)
    with pytest.raises(keras_private.KerasPrivateAPIError, match=r"no Optimizer\._gone"):
        keras_private.require("Optimizer._gone")


def test_version_check(monkeypatch):
    with pytest.raises(keras_private.KerasPrivateAPIError, match="Keras 4.0.0"):
        keras_private.check_version("4.0.0")
    monkeypatch.setattr(keras_private, "_warned", False)
    with pytest.warns(UserWarning, match="3.99.1 is not among"):
        keras_private.check_version("3.99.1")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        keras_private.check_version("3.99.1")  # once
        keras_private.check_version(keras_private.CHECKED_ON[0] + ".0")
