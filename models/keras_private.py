"""The one module of the suite that uses private Keras APIs, each behind a public name.

Keras has no public form of these hooks; everything else calls the names defined here:

* ``Optimizer._update_model_variables_moving_average(trainable_variables)`` (called by
  ``apply_gradients`` when ``use_ema=True``) and ``Optimizer._model_variables_moving_average``
  (the averages): :class:`EMAUpdateHook` routes them to a public ``update_ema`` method, which
  :class:`models.optimizers.Adam` implements to warm its average up.
* ``SwapEMAWeights._ema_weights_in_model`` (whether the average is swapped in):
  :func:`set_ema_weights_in_model` (tasks/runner/callbacks.py, resuming from a backup).
* ``BackupAndRestore._load_model()`` / ``_save_model()``, its ``_training_metadata_path`` and
  ``_current_epoch``, and ``Model._initial_epoch`` (the epoch ``fit`` resumes at):
  :class:`BackupHooks` and :func:`set_initial_epoch` (the runner's atomic, multi-worker backup).

Written for and checked on the Keras versions in :data:`CHECKED_ON` (by reading their source).
Each hook calls :func:`require` first: a Keras without the API raises
:class:`KerasPrivateAPIError` naming it instead of silently skipping the override; a Keras 3
release not in :data:`CHECKED_ON` only warns once. tests/models/test_keras_private.py checks
every entry of :data:`PRIVATE_APIS` and that Keras still calls the hooks.

tasks/runner/distributed.py patches Keras' TensorFlow trainer (``keras.src.backend.tensorflow``);
it needs tensorflow, which models/ never imports, so it keeps its own guard
(``patch_keras_trainer`` falls back to Keras' code); the same test checks its targets.
"""

from __future__ import annotations

import warnings

import keras

#: Keras releases (major.minor) whose source these hooks were checked against.
CHECKED_ON = ("3.15",)
#: The only Keras major version the hooks can work with.
KERAS_MAJOR = 3


class KerasPrivateAPIError(RuntimeError):
    """The installed Keras lacks a private API this module relies on (or is not Keras 3)."""


def _has_method(cls, name):
    return lambda: callable(getattr(cls, name, None))


def _instance_has(make, name):
    return lambda: hasattr(make(), name)


def _built_ema_optimizer():
    optimizer = keras.optimizers.SGD(use_ema=True)
    optimizer.build([keras.Variable(0.0)])
    return optimizer


#: "Owner.attribute" -> a check that it is there (instance attributes need an instance).
PRIVATE_APIS = {
    "Optimizer._update_model_variables_moving_average":
        _has_method(keras.optimizers.Optimizer, "_update_model_variables_moving_average"),
    # Checked here and again by EMAUpdateHook when used (it exists only once built).
    "Optimizer._model_variables_moving_average":
        _instance_has(_built_ema_optimizer, "_model_variables_moving_average"),
    "SwapEMAWeights._ema_weights_in_model":
        _instance_has(lambda: keras.callbacks.SwapEMAWeights(swap_on_epoch=True),
                      "_ema_weights_in_model"),
    "BackupAndRestore._load_model": _has_method(keras.callbacks.BackupAndRestore, "_load_model"),
    "BackupAndRestore._save_model": _has_method(keras.callbacks.BackupAndRestore, "_save_model"),
    "BackupAndRestore._training_metadata_path":
        _instance_has(lambda: keras.callbacks.BackupAndRestore("unused-backup-dir"),
                      "_training_metadata_path"),
    "BackupAndRestore._current_epoch":
        _instance_has(lambda: keras.callbacks.BackupAndRestore("unused-backup-dir"),
                      "_current_epoch"),
    "Model._initial_epoch": _instance_has(keras.Sequential, "_initial_epoch"),
}

_checked: set[str] = set()
_warned = False


def check_version(version: str | None = None) -> None:
    """Raises on a Keras other than 3; warns once on a 3.x release not in :data:`CHECKED_ON`."""
    global _warned
    version = version or keras.version()
    major, _, rest = version.partition(".")
    if major != str(KERAS_MAJOR):
        raise KerasPrivateAPIError(
            f"Keras {version}: models/keras_private.py was written for Keras {KERAS_MAJOR} "
            f"(checked on {', '.join(CHECKED_ON)}); its private APIs must be re-checked")
    if f"{major}.{rest.split('.')[0]}" not in CHECKED_ON and not _warned:
        _warned = True
        warnings.warn(f"Keras {version} is not among the releases models/keras_private.py was "
                      f"checked on ({', '.join(CHECKED_ON)}); run tests/models/"
                      "test_keras_private.py", stacklevel=3)


def require(*names: str) -> None:
    """Raises :class:`KerasPrivateAPIError` naming the first of ``names`` Keras lacks."""
    check_version()
    for name in names:
        if name in _checked:
            continue
        if not PRIVATE_APIS[name]():
            raise KerasPrivateAPIError(
                f"Keras {keras.version()} has no {name}, which models/keras_private.py "
                f"relies on (checked on Keras {', '.join(CHECKED_ON)}); adapt that module")
        _checked.add(name)


class EMAUpdateHook:
    """Mixin (before the Keras optimizer in the bases) that hands Keras' weight-average update
    to ``self.update_ema(trainable_variables, averages)``.

    ``averages`` is the list of average variables, one per trainable variable (``None`` for
    those without one); the subclass defines ``update_ema`` and returns nothing.
    """

    def __init__(self, *args, **kwargs):
        require("Optimizer._update_model_variables_moving_average")
        super().__init__(*args, **kwargs)

    def update_ema(self, trainable_variables, averages):
        raise NotImplementedError

    def _update_model_variables_moving_average(self, trainable_variables):
        averages = getattr(self, "_model_variables_moving_average", None)
        if averages is None:
            raise KerasPrivateAPIError(
                f"Keras {keras.version()} has no Optimizer._model_variables_moving_average, "
                "which models/keras_private.py relies on; adapt that module")
        self.update_ema(trainable_variables, averages)


def set_ema_weights_in_model(callback, value: bool) -> None:
    """Tells a ``keras.callbacks.SwapEMAWeights`` whether the average is in the model now."""
    require("SwapEMAWeights._ema_weights_in_model")
    callback._ema_weights_in_model = bool(value)


def set_initial_epoch(model, epoch: int) -> None:
    """The epoch (0-based count of finished epochs) the running ``fit`` continues from."""
    require("Model._initial_epoch")
    model._initial_epoch = int(epoch)


class BackupHooks(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose private save and load steps are public methods.

    Subclasses implement ``restore_backup(metadata_path)`` (read a backup if there is one,
    then :func:`set_initial_epoch`) and ``write_backup(epoch)`` (write one after ``epoch``
    finished epochs); Keras decides when (its ``save_freq``, ``on_train_begin``).
    """

    def __init__(self, backup_dir, *args, **kwargs):
        require("BackupAndRestore._load_model", "BackupAndRestore._save_model",
                "BackupAndRestore._training_metadata_path", "BackupAndRestore._current_epoch",
                "Model._initial_epoch")
        super().__init__(backup_dir, *args, **kwargs)

    @property
    def metadata_path(self) -> str:
        """Keras' ``training_metadata.json`` path in ``backup_dir``."""
        return self._training_metadata_path

    def restore_backup(self, metadata_path: str) -> None:
        raise NotImplementedError

    def write_backup(self, epoch: int) -> None:
        raise NotImplementedError

    def _load_model(self):
        self.restore_backup(self._training_metadata_path)

    def _save_model(self):
        self.write_backup(self._current_epoch)
