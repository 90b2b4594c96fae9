"""Assertions on an export through both TensorFlow loaders (shared by the task tests)."""

from __future__ import annotations

import os

from tasks.runner import export as export_lib
from tasks.runner import serving_check


def assert_loaders_agree(export_dir: str, requests: dict) -> dict:
    """Runs ``requests`` (``{signature: raw inputs}``) through ``tf.saved_model.load`` and
    through the TF1 session loader that TF Serving uses, replays the export's warm-up records
    through the session loader, and asserts that all of them give the same outputs.

    Returns:
        The object loader's outputs, ``{signature: {output: array}}``.
    """
    requests = {name: export_lib.to_numpy_inputs(inputs) for name, inputs in requests.items()}
    by_object = serving_check.object_loader_outputs(export_dir, requests)
    by_session = serving_check.session_loader_outputs(export_dir, requests)
    for signature, outputs in by_object.items():
        export_lib.compare_outputs(by_session[signature], outputs, f"session, {signature}")
    if os.path.exists(os.path.join(export_dir, export_lib.WARMUP_FILE)):
        warmup = serving_check.read_warmup_requests(export_dir)
        replayed = serving_check.replay_warmup(export_dir)
        assert sorted(replayed) == sorted(name for name, _ in warmup)
        for signature, inputs in warmup:
            want = serving_check.object_loader_outputs(export_dir, {signature: inputs})
            export_lib.compare_outputs(replayed[signature], want[signature],
                                       f"warm-up replay, {signature}")
    return by_object
