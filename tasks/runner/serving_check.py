"""Runs an export's signatures the two ways TensorFlow loads a SavedModel.

1. The object loader (``tf.saved_model.load``): what TF2 Python code and ``predict --model
   saved_models/<task>`` use.
2. The session loader (``tf.compat.v1.saved_model.loader.load``): a TF1 session, the
   MetaGraph's ``saver_def`` restore op, the asset initialisers, then the signature's tensors
   fed and fetched by name. This is the path of TF Serving's C++ loader and of
   ``saved_model_cli run``; it fails where the object loader does not when a variable a
   signature reads is missing from the saved object graph (the saver never restores it).

TF Serving then replays ``assets.extra/tf_serving_warmup_requests`` through the session:
:func:`replay_warmup` does the same.

This file needs only numpy and TensorFlow (plus ``tensorflow-serving-api`` for the warm-up
records, and ``tensorflow-text`` when installed: an export with subword vocabularies runs TF
Text's SentencePiece ops, whose kernels a Python process registers by importing it; that is an
op library, not project code, and TF Serving's model server has those ops built in): the export
step runs it as a script in a fresh interpreter that refuses to import the
project, which proves the export serves without project code.

    python tasks/runner/serving_check.py EXPORT_DIR REQUESTS.npz OUTPUTS.npz

``REQUESTS.npz`` holds ``<signature>::<input>`` arrays; ``OUTPUTS.npz`` receives
``<loader>::<signature>::<output>`` arrays for the loaders ``object``, ``session`` and
``warmup`` (the warm-up records' answers, when the export has warm-up records).
"""

from __future__ import annotations

import os
import sys

import numpy as np

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SEP = "::"


def as_numpy(value) -> np.ndarray:
    """A tensor or array as numpy; strings as a bytes array (storable in npz without pickle)."""
    array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
    return array.astype(bytes) if array.dtype.kind in ("O", "S", "U") else array


def object_loader_outputs(export_dir: str, requests: dict) -> dict:
    """``{signature: {input: array}}`` -> ``{signature: {output: array}}`` via
    ``tf.saved_model.load``."""
    import tensorflow as tf

    loaded = tf.saved_model.load(export_dir)
    out = {}
    for signature, inputs in requests.items():
        fn = loaded.signatures[signature]
        answer = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        out[signature] = {k: as_numpy(v) for k, v in answer.items()}
    return out


def session_loader_outputs(export_dir: str, requests: dict) -> dict:
    """The same through the TF1 session loader, feeding and fetching the signature's tensors by
    name as TF Serving does."""
    import tensorflow as tf

    out = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
        for signature, inputs in requests.items():
            if signature not in meta_graph.signature_def:
                raise KeyError(f"signature {signature!r} not in the MetaGraph; has "
                               f"{sorted(meta_graph.signature_def)}")
            definition = meta_graph.signature_def[signature]
            missing = set(definition.inputs) - set(inputs)
            if missing:
                raise KeyError(f"signature {signature!r} needs inputs {sorted(missing)}")
            feed = {definition.inputs[k].name: np.asarray(v) for k, v in inputs.items()}
            names = sorted(definition.outputs)
            values = session.run([definition.outputs[k].name for k in names], feed_dict=feed)
            out[signature] = {k: as_numpy(v) for k, v in zip(names, values)}
    return out


def read_warmup_requests(export_dir: str) -> list[tuple[str, dict]]:
    """The ``(signature, inputs)`` of each PredictionLog in the export's warm-up file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(os.path.join(export_dir, WARMUP_FILE)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        requests.append((request.model_spec.signature_name or "serving_default",
                         {k: tf.make_ndarray(v) for k, v in request.inputs.items()}))
    return requests


def replay_warmup(export_dir: str) -> dict:
    """Every warm-up record through the session loader: ``{signature: {output: array}}``."""
    out = {}
    for signature, inputs in read_warmup_requests(export_dir):
        if signature in out:
            raise ValueError(f"two warm-up records for {signature!r}; one per signature expected")
        out.update(session_loader_outputs(export_dir, {signature: inputs}))
    return out


def pack(nested: dict, prefix: str = "") -> dict:
    """``{a: {b: x}}`` -> ``{"a::b": x}`` (npz keys)."""
    flat = {}
    for key, value in nested.items():
        name = f"{prefix}{SEP}{key}" if prefix else key
        flat.update(pack(value, name) if isinstance(value, dict) else {name: value})
    return flat


def unpack(flat) -> dict:
    """The inverse of :func:`pack`."""
    nested: dict = {}
    for name in flat:
        *parents, leaf = name.split(SEP)
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = flat[name]
    return nested


class _NoProjectCode:
    """A meta-path finder that refuses the project's packages: the export must serve on TF only."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("models", "pipelines", "tasks"):
            raise ImportError(f"the export needs project code: it imported {name!r}")
        return None


def register_op_libraries() -> None:
    """Imports ``tensorflow_text`` when installed, so exports using its ops load (a plain
    ``tf.saved_model.load`` fails with "Op type not registered 'SentencepieceOp'" otherwise)."""
    try:
        import tensorflow_text  # noqa: F401
    except ImportError:
        pass


def main(argv: list[str]) -> int:
    sys.meta_path.insert(0, _NoProjectCode())
    register_op_libraries()
    export_dir, requests_path, outputs_path = argv
    with np.load(requests_path, allow_pickle=False) as data:
        requests = unpack({k: data[k] for k in data.files})
    results = {"object": object_loader_outputs(export_dir, requests),
               "session": session_loader_outputs(export_dir, requests)}
    if os.path.exists(os.path.join(export_dir, WARMUP_FILE)):
        results["warmup"] = replay_warmup(export_dir)
    np.savez(outputs_path, **pack(results))
    return 0


if __name__ == "__main__":
    # Run as a script: drop this file's folder from the path so nothing beside it is importable.
    sys.path.pop(0)
    raise SystemExit(main(sys.argv[1:]))
