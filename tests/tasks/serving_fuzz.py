"""Fuzzed requests against an export, in a fresh process (the acceptance test of issue #16).

:func:`run_fuzz` loads the SavedModel with ``tf.saved_model.load`` in a new interpreter that
cannot import this project (``python -I``, another working directory), sends each request and
reports, per request, the output shapes or the error (type and message), the seconds it took
and the process's peak resident memory so far (``VmHWM``: unlike ``ru_maxrss``, which Linux
carries over from the forking pytest process, it covers this process image only).
:func:`assert_survives` then asks of every request: outputs, or ONE ``InvalidArgumentError``
whose message names an input.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np

#: Peak RSS the serving process may reach (TensorFlow itself takes ~0.6-0.9 GB of it).
MAX_RSS_MB = 1536
MEGABYTE = 1 << 20

_SCRIPT = r"""
import json, pickle, resource, sys, time
import tensorflow as tf

def peak_rss_mb():
    # VmHWM: the peak of THIS process image. ru_maxrss also counts the parent's peak when the
    # process was forked (vfork) from a big one: Linux carries it across execve.
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

export_dir, cases_path, out_path = sys.argv[1:4]
loaded = tf.saved_model.load(export_dir)
loaded_mb = peak_rss_mb()
with open(cases_path, "rb") as f:
    cases = pickle.load(f)
results = []
for name, signature, inputs in cases:
    fn = loaded.signatures[signature]
    specs = fn.structured_input_signature[1]
    start = time.time()
    try:
        args = {k: tf.convert_to_tensor(v, dtype=specs[k].dtype) for k, v in inputs.items()}
        out = fn(**args)
        result = {"ok": True, "shapes": {k: list(v.shape) for k, v in out.items()}}
    except tf.errors.OpError as err:
        result = {"ok": False, "error": type(err).__name__, "message": err.message[:3000]}
    except Exception as err:  # noqa: BLE001 - reported, and the test fails on it
        result = {"ok": False, "error": type(err).__name__, "message": str(err)[:3000]}
    result.update(case=name, signature=signature, seconds=round(time.time() - start, 3),
                  maxrss_mb=peak_rss_mb(), loaded_mb=loaded_mb)
    results.append(result)
    with open(out_path, "w") as f:
        json.dump(results, f)
"""


def text_cases(signature: str, name: str = "text", batch_rows: str = "a b") -> list:
    """The string-input cases of one signature: ``[(case, signature, {name: array})]``; the
    case names start with ``"<signature>: "``."""
    def strings(values):
        return np.array(values, dtype=object)

    cases = [
        ("1 MB text", ["word " * (MEGABYTE // 5)]),
        ("1 MB one word", ["x" * MEGABYTE]),
        ("empty", [""]),
        ("whitespace", [" \t\n\u2028 "]),
        ("NUL bytes", [b"a\x00b\x00\x00 c"]),
        ("invalid UTF-8", [b"\xff\xfe\xc3( ok \xed\xa0\x80"]),
        ("batch 0", []),
        ("batch 1000", [batch_rows] * 1000),
    ]
    return [(f"{signature}: {case}", signature, {name: strings(values)})
            for case, values in cases]


def skip_export_revalidation(monkeypatch) -> None:
    """``export()`` without its fresh-process comparison of both loaders (the export tests of
    every task check that): the fuzz tests only need the SavedModel, and faster."""
    from tasks.runner import export as export_lib

    monkeypatch.setattr(export_lib, "validate_in_fresh_process", lambda *args, **kwargs: None)


def run_fuzz(export_dir: str, cases: list, tmp_path, timeout: float = 300) -> dict:
    """Runs ``cases`` (``[(case, signature, inputs)]``, the case names unique) against the
    export in a fresh process; returns ``{case: result}`` (see the module docstring)."""
    cases_path, out_path = tmp_path / "fuzz_cases.pkl", tmp_path / "fuzz_results.json"
    with open(cases_path, "wb") as f:
        pickle.dump(cases, f)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run([sys.executable, "-I", "-c", _SCRIPT, os.path.abspath(export_dir),
                           str(cases_path), str(out_path)], cwd=str(tmp_path), env=env,
                          capture_output=True, text=True, timeout=timeout)
    results = json.loads(out_path.read_text()) if out_path.exists() else []
    done = {r["case"] for r in results}
    assert proc.returncode == 0, (f"the serving process died (rc {proc.returncode}) after "
                                  f"{sorted(done)}:\n{proc.stderr[-3000:]}")
    for r in results:  # shown with pytest -s: the figures the README quotes
        print(f"fuzz {r['case']}: {'ok' if r['ok'] else r['error']}, {r['seconds']} s, "
              f"peak RSS {r['maxrss_mb']:.0f} MB (after loading {r['loaded_mb']:.0f} MB)")
    return {r["case"]: r for r in results}


def assert_survives(results: dict, input_names: dict, must_fail: dict = (),
                    max_rss_mb: float = MAX_RSS_MB, max_seconds: float = 30.0) -> None:
    """Every request answered, or failed with one ``InvalidArgumentError`` naming an input.

    Args:
        results: from :func:`run_fuzz`.
        input_names: ``{signature: [input names]}``: a message must name one of them.
        must_fail: ``{case: input name}``: requests that must be refused, naming that input.
        max_rss_mb: the serving process's peak resident memory bound.
        max_seconds: per request.
    """
    must_fail = dict(must_fail)
    for case, result in results.items():
        where = f"{case} ({result['signature']}): {result.get('message', '')[:500]}"
        if result["ok"]:
            assert case not in must_fail, f"{where}: answered, should be refused"
        else:
            assert result["error"] == "InvalidArgumentError", where
            names = [must_fail[case]] if case in must_fail else input_names[result["signature"]]
            assert any(n in result["message"] for n in names), where
        assert result["seconds"] < max_seconds, f"{where}: took {result['seconds']} s"
        assert result["maxrss_mb"] < max_rss_mb, f"{where}: peak RSS {result['maxrss_mb']} MB"
