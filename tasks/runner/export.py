"""``export``: RUN_DIR -> ``saved_models/<task>/<version>/`` ready for TF Serving.

The serving module of the task (a ``tf.Module`` whose signatures take RAW inputs and run the
preprocessing, the model and the decoding in one graph) is saved with every variable that its
signatures read tracked explicitly (:func:`track_serving_variables`): TF Serving's session loader
restores only the variables of the saved object graph. The SavedModel is written to a temporary
directory beside the target, given TF Serving warm-up requests (one per signature), validated in
a fresh Python process that cannot import this project, through both TensorFlow loaders and the
warm-up replay (:mod:`tasks.runner.serving_check`), made world-readable, and only then renamed
into place. Exports into one directory run one at a time (a file lock), so two of them never
pick the same version; a failure at any step leaves nothing behind; an existing version is never
replaced unless ``overwrite=True``, and then in one atomic exchange where Linux offers it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tasks.runner import errors, loading, serving_check
from tasks.runner import run_dir as rd
from tasks.runner.serving_check import WARMUP_FILE, as_numpy

PARTIAL = ".partial-"
GLOB_CHARS = "*?[\\"  # tensorflow/core/platform/file_system_helper.cc


class ExportValidationError(errors.ExportError, RuntimeError):
    """The export failed to load or answered differently in a fresh process."""


def to_numpy_inputs(inputs: dict) -> dict[str, np.ndarray]:
    """Raw inputs as numpy arrays (strings as bytes arrays, which npz stores without pickle)."""
    out = {}
    for key, value in inputs.items():
        array = np.asarray(value.numpy() if isinstance(value, tf.Tensor) else value)
        if array.dtype.kind in ("U", "O"):
            array = np.vectorize(lambda s: s.encode("utf-8") if isinstance(s, str) else s,
                                 otypes=[object])(array).astype(bytes)
        out[key] = array
    return out


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


def track_serving_variables(module, signatures: dict) -> int:
    """Makes every variable that a signature reads a direct dependency of ``module``.

    A Keras 3 variable saves a *copy* of its ``tf.Variable`` into the SavedModel's object graph,
    while the traced functions capture the original: ``tf.saved_model.load`` maps captures by
    object and works, but the MetaGraph's saver (what TF Serving and ``saved_model_cli`` run)
    then restores only the copy, and the first read fails with "Could not find variable".
    Keras' own ``ExportArchive`` tracks the functions' variables the same way. The Keras models
    held by the module are untracked, so each variable is stored once, not twice.

    Returns:
        The number of variables tracked.
    """
    import keras

    variables, seen = [], set()
    for fn in signatures.values():
        for variable in fn.get_concrete_function().variables:
            if id(variable) not in seen:
                seen.add(id(variable))
                variables.append(variable)
    for name, value in list(vars(module).items()):
        if isinstance(value, keras.Layer):
            module._delete_tracking(name)  # still an attribute; only no longer saved
    module.serving_variables = variables
    return len(variables)


def write_warmup(export_dir: str, model_name: str, requests: dict) -> str | None:
    """One PredictionLog per signature, which TF Serving replays at load time."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError:
        print("tensorflow-serving-api is not installed: no warm-up requests written "
              "(pip install '.[demo]')")
        return None
    path = os.path.join(export_dir, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for signature, inputs in requests.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def models_config_text(export_base: str, model_name: str) -> str:
    """``models.config`` for ``tensorflow_model_server --model_config_file``, its strings
    escaped as the text format requires (a path may hold quotes or backslashes)."""
    from google.protobuf import text_encoding

    def quoted(text: str) -> str:
        return '"' + text_encoding.CEscape(text, as_utf8=True) + '"'

    return ("model_config_list {\n  config {\n"
            f"    name: {quoted(model_name)}\n"
            f"    base_path: {quoted(os.path.abspath(export_base))}\n"
            '    model_platform: "tensorflow"\n  }\n}\n')


def write_models_config(export_base: str, model_name: str) -> str:
    path = os.path.join(export_base, "models.config")
    rd.write_text_atomic(path, models_config_text(export_base, model_name))
    os.chmod(path, 0o644)
    return path


def validate_in_fresh_process(export_dir: str, requests: dict, expected: dict,
                              rtol=1e-4, atol=1e-5) -> None:
    """Loads ``export_dir`` in a new interpreter through both TensorFlow loaders (and replays its
    warm-up records through the session loader, as TF Serving does) and compares every answer
    with ``expected``.

    Args:
        requests: ``{signature: {input: array}}``.
        expected: ``{signature: {output: array}}``, the in-memory module's answers.
    """
    with tempfile.TemporaryDirectory() as tmp:
        in_path, out_path = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.npz")
        np.savez(in_path, **serving_check.pack(requests))
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        proc = subprocess.run([sys.executable, os.path.abspath(serving_check.__file__),
                               os.path.abspath(export_dir), in_path, out_path],
                              cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ExportValidationError(f"the export failed to serve in a fresh process:\n"
                                        f"{proc.stderr[-3000:]}")
        with np.load(out_path, allow_pickle=False) as data:
            got = serving_check.unpack({k: data[k] for k in data.files})
    for loader, answers in got.items():
        if loader == "warmup" and set(answers) != set(expected):
            raise ExportValidationError(f"warm-up records cover {sorted(answers)}, expected "
                                        f"{sorted(expected)}")
        for signature, want in expected.items():
            compare_outputs(answers[signature], want, f"{loader} loader, {signature}",
                            rtol=rtol, atol=atol)


def compare_outputs(have: dict, want: dict, where: str, rtol=1e-4, atol=1e-5) -> None:
    """Raises ExportValidationError unless both dicts hold the same keys and values (floats
    allclose, everything else exactly)."""
    if set(have) != set(want):
        raise ExportValidationError(f"{where}: outputs {sorted(have)} differ from the "
                                    f"model's {sorted(want)}")
    for key, value in want.items():
        same = have[key].shape == value.shape and (
            np.allclose(have[key], value, rtol=rtol, atol=atol) if value.dtype.kind == "f"
            else np.array_equal(have[key], value))
        if not same:
            raise ExportValidationError(f"{where}: output {key!r} differs from the in-memory "
                                        f"model:\n{have[key]!r}\nvs\n{value!r}")


@contextlib.contextmanager
def export_lock(export_base: str):
    """Exclusive lock on ``export_base`` for the whole export: versions are chosen and published
    one export at a time, and a ``.partial-`` folder found while holding it is left over from a
    killed export."""
    fd = os.open(export_base, os.O_RDONLY)  # the folder itself: no lock file left behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _remove_stale_partials(export_base: str) -> None:
    for name in os.listdir(export_base):
        if name.startswith(".") and (PARTIAL in name or ".old-" in name):
            shutil.rmtree(os.path.join(export_base, name), ignore_errors=True)


def _make_world_readable(top: str) -> None:
    """0755 folders, 0644 files: TF Serving often runs as another user (temp folders are 0700)."""
    os.chmod(top, 0o755)
    for folder, dirs, files in os.walk(top):
        for name in dirs:
            os.chmod(os.path.join(folder, name), 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)


def _exchange(a: str, b: str) -> bool:
    """Atomically swaps two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        at_fdcwd, rename_exchange = -100, 2
        return libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b),
                              rename_exchange) == 0
    except (AttributeError, OSError):
        return False


def _publish(tmp: str, target: str) -> None:
    """Moves the validated ``tmp`` to ``target``; an existing ``target`` is exchanged with it in
    one step (no moment without a version), falling back to two renames."""
    if not os.path.exists(target):
        os.rename(tmp, target)
        return
    if not _exchange(tmp, target):
        old = tmp + ".old"
        os.rename(target, old)
        os.rename(tmp, target)
        tmp = old
    shutil.rmtree(tmp)


def export(task, run_dir: str, export_base: str | None = None, version: int | None = None,
           overwrite: bool = False) -> str:
    """Exports a finished run and returns the version directory."""
    # The target is checked before the run is loaded: a bad path fails at once.
    export_base = export_base or os.path.join("saved_models", task.name)
    if os.path.exists(export_base) and not os.path.isdir(export_base):
        raise NotADirectoryError(f"--export-dir {export_base} is a file, not a directory; "
                                 f"choose a directory path")
    odd = sorted(set(GLOB_CHARS) & set(os.path.abspath(export_base)))
    if odd:  # TF's checkpoint reader globs the variables path: it could not load the export
        raise errors.ExportError(f"--export-dir {export_base} holds {' '.join(odd)}: "
                                 f"TensorFlow and TF Serving read SavedModel paths as glob "
                                 f"patterns; choose a path without {GLOB_CHARS}")
    if version is not None and int(version) <= 0:
        raise errors.ExportError(f"--version must be a positive integer, got {version}")
    config, preprocessor, model = rd.load_run(task, run_dir)
    os.makedirs(export_base, exist_ok=True)
    os.chmod(export_base, 0o755)

    module = task.serving_module(config, model, preprocessor)
    signatures = signatures_of(module)
    requests = {name: to_numpy_inputs(inputs)
                for name, inputs in task.warmup_requests(config).items()}
    expected = {name: {k: as_numpy(v) for k, v in getattr(module, name)(
        **{k: tf.constant(v) for k, v in inputs.items()}).items()}
        for name, inputs in requests.items()}
    track_serving_variables(module, signatures)

    with export_lock(export_base):
        _remove_stale_partials(export_base)
        version = next_version(export_base) if version is None else int(version)
        target = os.path.join(export_base, str(version))
        if os.path.exists(target) and not overwrite:
            raise FileExistsError(f"{target} already exists; choose another --version or pass "
                                  f"--overwrite")
        tmp = tempfile.mkdtemp(prefix=f".{version}{PARTIAL}", dir=export_base)
        try:
            tf.saved_model.save(module, tmp, signatures=signatures)
            loading.write_config_asset(tmp, task, config)  # predict reads the trained config
            write_warmup(tmp, task.name, requests)
            validate_in_fresh_process(tmp, requests, expected)
            _make_world_readable(tmp)
            _publish(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        write_models_config(export_base, task.name)
    return target


def load_serving_function(path: str, signature: str = "serving_default"):
    """The serving function of an export (``saved_models/<task>`` or a version directory)."""
    loaded = tf.saved_model.load(latest_version_dir(path))
    if signature not in loaded.signatures:
        raise errors.ExportError(f"the export at {path} has no signature {signature!r}; it has "
                                 f"{list(loaded.signatures)}")
    fn = loaded.signatures[signature]
    fn._loaded_root = loaded  # keep the restored resources alive with the function
    return fn
