"""One load path: ``load(path)`` for a run directory or an export, resolved once.

``predict``, ``evaluate`` and the tasks' own commands (``generate``, ``score``) all start
here, so "is ``--model`` a run or an export?" is answered in one place, and both answer with
the config the model was trained with: a run directory's ``config.json``, or the copy an
export carries beside its warm-up requests (:data:`CONFIG_ASSET`, written by
:func:`write_config_asset` when exporting). An export made before exports carried their
config falls back to the task's default config.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from tasks.runner import config as config_lib
from tasks.runner import errors, serving_check
from tasks.runner import run_dir as rd

#: The config an export was trained with, relative to its version directory. TF Serving
#: ignores ``assets.extra/`` except for its warm-up file, and nothing here is needed to serve.
CONFIG_ASSET = os.path.join("assets.extra", "recurrent_suite.json")


@dataclasses.dataclass
class Loaded:
    """A trained model ready for ``predict`` / ``generate`` / ``score`` / ``evaluate``.

    Attributes:
        task: The Task instance.
        config: The config the model was trained with.
        kind: ``"run"`` or ``"export"``.
        path: The run directory, or the export's version directory.
        model: The Keras model (runs only; None for an export).
        preprocessor: The fitted preprocessor (runs only; None for an export).
        module: The serving module (a run's, built on first use) or the loaded SavedModel.
    """

    task: Any
    config: Any
    kind: str
    path: str
    model: Any = None
    preprocessor: Any = None
    module: Any = None

    def signature_names(self) -> list[str]:
        """The callable signatures, ``serving_default`` first."""
        if self.kind == "export":
            return list(self.module.signatures)
        return list(getattr(self.serving_module(), "signature_names", ("serving_default",)))

    def serving_module(self):
        """The run's serving module (built once and kept: its tf.functions hold it weakly)."""
        if self.module is None:
            self.module = self.task.serving_module(self.config, self.model, self.preprocessor)
        return self.module

    def input_specs(self, name: str = "serving_default") -> dict:
        """``{input: tf.TensorSpec}`` of signature ``name`` (see :meth:`signature`)."""
        fn = self.signature(name)
        if self.kind == "export":
            return dict(fn.structured_input_signature[1])
        return {spec.name: spec for spec in fn.input_signature}

    def signature(self, name: str = "serving_default"):
        """The function serving ``name`` (called with raw named inputs).

        Raises:
            errors.InputError: No such signature (the message lists the ones there are).
        """
        names = self.signature_names()
        if name not in names:
            where = f"the export at {self.path}" if self.kind == "export" else \
                f"the {self.task.name} serving module"
            raise errors.InputError(f"--signature {name!r} is not in {where}; it has {names}")
        if self.kind == "export":
            return self.module.signatures[name]
        return getattr(self.serving_module(), name)


def is_run_dir(path: str) -> bool:
    """A run directory (its config.json or run marker is there), not an export."""
    return any(os.path.exists(os.path.join(path, name)) for name in (rd.CONFIG, rd.MARKER))


def load(path: str, task=None, *, model: bool = True) -> Loaded:
    """Loads a run directory or an export (``saved_models/<task>`` or one version of it).

    Args:
        path: The run directory or export.
        task: The Task; None: the one the run marker or the export's config names (from
            ``tasks.runner.registry``).
        model: False: a run's config and preprocessor only (no Keras model).

    Raises:
        errors.RunDirError / errors.ExportError / FileNotFoundError: Nothing loadable there.
        errors.ConfigError: The run or export names a task the registry does not know.
    """
    if is_run_dir(path):
        if task is None:
            task = _registered((rd.read_marker(path) or {}).get("task"), path)
        if not model:
            rd.require_run(path)
            config = rd.load_config(task, path)
            return Loaded(task, config, "run", path,
                          preprocessor=task.load_preprocessor(config, rd.path(path, rd.ASSETS)))
        config, preprocessor, keras_model = rd.load_run(task, path)
        return Loaded(task, config, "run", path, model=keras_model, preprocessor=preprocessor)
    import tensorflow as tf

    from tasks.runner import export as export_lib

    version_dir = export_lib.latest_version_dir(path)
    stored = read_config_asset(version_dir)
    if task is None:
        task = _registered(stored.get("task"), version_dir)
    config = task.config_class()
    if "config" in stored:
        config = config_lib.override(config, stored["config"],
                                     origin=os.path.join(version_dir, CONFIG_ASSET),
                                     validate=False)
    serving_check.register_op_libraries()  # TF Text's ops (subword exports), when installed
    return Loaded(task, config, "export", version_dir, module=tf.saved_model.load(version_dir))


def read_config_asset(version_dir: str) -> dict:
    """``{"task": name, "config": {...}}`` an export carries, or {} (an older export)."""
    asset = os.path.join(version_dir, CONFIG_ASSET)
    if not os.path.isfile(asset):
        return {}
    with open(asset, encoding="utf-8") as f:
        return json.load(f)


def write_config_asset(version_dir: str, task, config) -> str:
    """Writes :data:`CONFIG_ASSET` into an export being made; returns its path."""
    asset = os.path.join(version_dir, CONFIG_ASSET)
    os.makedirs(os.path.dirname(asset), exist_ok=True)
    rd.write_json_atomic(asset, {"task": task.name, "config": dataclasses.asdict(config)})
    return asset


def _registered(name: str | None, where: str):
    from tasks.runner import registry

    if not name:
        raise errors.ConfigError(f"{where} does not say which task it holds; run the task's "
                                 f"own command (python -m tasks NAME ...)")
    return registry.get(name)
