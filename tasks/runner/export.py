"""``export``: RUN_DIR -> ``saved_models/<task>/<version>/`` ready for TF Serving.

The SavedModel is written to a temporary directory beside the target, given TF Serving warm-up
requests, validated in a fresh Python process that cannot import this project, and only then
renamed into place. A failure at any step leaves nothing behind; an existing version is never
replaced unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tasks.runner import run_dir as rd

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")

# Runs in a fresh interpreter: project packages are blocked so the export provably needs only TF.
_VALIDATE = r"""
import importlib.abc, sys
class _NoProjectCode(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("models", "pipelines", "tasks"):
            raise ImportError(f"the export needs project code: it imported {name!r}")
sys.meta_path.insert(0, _NoProjectCode())
import numpy as np
import tensorflow as tf
export_dir, inputs_path, outputs_path, signature = sys.argv[1:5]
fn = tf.saved_model.load(export_dir).signatures[signature]
data = np.load(inputs_path, allow_pickle=False)
out = fn(**{k: tf.constant(data[k]) for k in data.files})
np.savez(outputs_path, **{k: np.asarray(v.numpy()).astype(bytes) if v.dtype == tf.string
                          else v.numpy() for k, v in out.items()})
"""


class ExportValidationError(RuntimeError):
    """The export answered differently in a fresh process than the in-memory model."""


def to_numpy_inputs(inputs: dict) -> dict[str, np.ndarray]:
    """Raw inputs as numpy arrays (strings as bytes arrays, which npz stores without pickle)."""
    out = {}
    for key, value in inputs.items():
        if isinstance(value, tf.Tensor):
            value = value.numpy()
        array = np.asarray(value)
        if array.dtype.kind in ("U", "O"):
            array = np.vectorize(lambda s: s.encode("utf-8") if isinstance(s, str) else s,
                                 otypes=[object])(array).astype(bytes)
        out[key] = array
    return out


def _outputs_numpy(outputs: dict) -> dict[str, np.ndarray]:
    return {k: (np.asarray(v.numpy()).astype(bytes) if v.dtype == tf.string else v.numpy())
            for k, v in outputs.items()}


def next_version(export_base: str) -> int:
    versions = [int(d) for d in os.listdir(export_base) if d.isdigit()] \
        if os.path.isdir(export_base) else []
    return max(versions, default=0) + 1


def latest_version_dir(path: str) -> str:
    """``saved_models/<task>`` -> its highest version; a version dir is returned unchanged."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    if os.path.isdir(path):
        versions = [int(d) for d in os.listdir(path) if d.isdigit()
                    and os.path.exists(os.path.join(path, d, "saved_model.pb"))]
        if versions:
            return os.path.join(path, str(max(versions)))
    raise FileNotFoundError(f"no SavedModel found at {path}")


def signatures_of(module) -> dict:
    names = getattr(module, "signature_names", ("serving_default",))
    if not names or names[0] != "serving_default":
        raise ValueError(f"signature_names must start with 'serving_default', got {names}")
    return {name: getattr(module, name) for name in names}


def write_warmup(export_dir: str, model_name: str, inputs: dict[str, np.ndarray]) -> str | None:
    """One PredictionLog per warm-up example batch, as TF Serving reads at load time."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError:
        print("tensorflow-serving-api is not installed: no warm-up requests written "
              "(pip install '.[demo]')")
        return None
    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = "serving_default"
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    log = prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request))
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(log.SerializeToString())
    return path


def write_models_config(export_base: str, model_name: str) -> str:
    """``models.config`` for ``tensorflow_model_server --model_config_file``."""
    text = ("model_config_list {\n  config {\n"
            f'    name: "{model_name}"\n'
            f'    base_path: "{os.path.abspath(export_base)}"\n'
            '    model_platform: "tensorflow"\n  }\n}\n')
    path = os.path.join(export_base, "models.config")
    rd.write_text_atomic(path, text)
    return path


def validate_in_fresh_process(export_dir: str, inputs: dict[str, np.ndarray],
                              expected: dict[str, np.ndarray], rtol=1e-4, atol=1e-5) -> None:
    """Loads ``export_dir`` in a new interpreter and compares its answers with ``expected``."""
    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(in_path, **inputs)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        proc = subprocess.run([sys.executable, "-c", _VALIDATE, os.path.abspath(export_dir),
                               in_path, out_path, "serving_default"],
                              cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExportValidationError(f"the export failed to serve in a fresh process:\n"
                                        f"{proc.stderr[-3000:]}")
        got = dict(np.load(out_path, allow_pickle=False))
    if set(got) != set(expected):
        raise ExportValidationError(f"outputs differ: fresh process {sorted(got)}, "
                                    f"model {sorted(expected)}")
    for key, want in expected.items():
        have = got[key]
        same = (have.shape == want.shape and (
            np.allclose(have, want, rtol=rtol, atol=atol) if want.dtype.kind == "f"
            else np.array_equal(have, want)))
        if not same:
            raise ExportValidationError(f"output {key!r} differs between the fresh process and "
                                        f"the in-memory model:\n{have!r}\nvs\n{want!r}")


def export(task, run_dir: str, export_base: str | None = None, version: int | None = None,
           overwrite: bool = False) -> str:
    """Exports a finished run and returns the version directory."""
    config, preprocessor, model = rd.load_run(task, run_dir)
    export_base = export_base or os.path.join("saved_models", task.name)
    os.makedirs(export_base, exist_ok=True)
    version = next_version(export_base) if version is None else int(version)
    if version <= 0:
        raise ValueError(f"--version must be a positive integer, got {version}")
    target = os.path.join(export_base, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} already exists; choose another --version or pass "
                              f"--overwrite")

    module = task.serving_module(config, model, preprocessor)
    signatures = signatures_of(module)
    inputs = to_numpy_inputs(task.warmup_inputs(config))
    expected = _outputs_numpy(module.serving_default(
        **{k: tf.constant(v) for k, v in inputs.items()}))

    tmp = tempfile.mkdtemp(prefix=f".{version}.partial-", dir=export_base)
    try:
        tf.saved_model.save(module, tmp, signatures=signatures)
        write_warmup(tmp, task.name, inputs)
        validate_in_fresh_process(tmp, inputs, expected)
        if os.path.exists(target):  # overwrite: move the old one aside only once the new is good
            trash = tempfile.mkdtemp(prefix=f".{version}.old-", dir=export_base)
            os.rename(target, os.path.join(trash, "old"))
            os.rename(tmp, target)
            shutil.rmtree(trash)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_models_config(export_base, task.name)
    return target


def load_serving_function(path: str, signature: str = "serving_default"):
    """The serving function of an export (``saved_models/<task>`` or a version directory)."""
    loaded = tf.saved_model.load(latest_version_dir(path))
    if signature not in loaded.signatures:
        raise KeyError(f"signature {signature!r} not in export; has {list(loaded.signatures)}")
    fn = loaded.signatures[signature]
    fn._loaded_root = loaded  # keep the restored resources alive with the function
    return fn
