"""The export step's safety: versions under a lock, atomic publish, readable files, escaping.

A tiny sentiment run is exported; the content checks (both TensorFlow loaders, warm-up replay)
live in each task's own test.
"""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from tasks import sentiment
from tasks.runner import config as config_lib
from tasks.runner import errors, training
from tasks.runner import export as export_lib
from tests.tasks.export_checks import assert_loaders_agree
from tests.tasks.serving_fuzz import (
    assert_survives,
    run_fuzz,
    skip_export_revalidation,
    text_cases,
)

TINY = {"max_tokens": 100, "max_length": 12, "embedding_dim": 4, "units": 4, "batch_size": 8,
        "epochs": 1, "dropout": 0.0}
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def task():
    return sentiment.SentimentTask()


@pytest.fixture(scope="module")
def run_dir(task, tmp_path_factory):
    csv = os.path.join(REPO, "tests", "fixtures", "sentiment", "tiny_reviews.csv")
    path = str(tmp_path_factory.mktemp("run") / "sentiment")
    config = config_lib.override(sentiment.SentimentConfig(), {**TINY, "data": csv})
    training.train(task, config, path, verbose=0)
    return path


def test_two_exports_at_once_get_two_versions(run_dir, tmp_path):
    base = str(tmp_path / "saved")
    command = [sys.executable, "-m", "tasks.sentiment", "export", "--model", run_dir,
               "--export-dir", base]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(os.listdir(base)) == ["1", "2", "models.config"]
    printed = sorted(line.rsplit(os.sep, 1)[-1].split()[0] for out in outputs
                     for line in out.splitlines() if line.startswith("exported"))
    assert printed == ["1", "2"]


def test_files_are_world_readable_whatever_the_umask(task, run_dir, tmp_path):
    old = os.umask(0o077)
    try:
        target = export_lib.export(task, run_dir, str(tmp_path / "saved"))
    finally:
        os.umask(old)
    modes = {}
    for folder, dirs, files in os.walk(str(tmp_path / "saved")):
        for name in dirs + files:
            path = os.path.join(folder, name)
            modes[path] = stat.S_IMODE(os.stat(path).st_mode)
    assert modes, target
    for path, mode in modes.items():
        assert mode == (0o755 if os.path.isdir(path) else 0o644), (path, oct(mode))


def test_stale_partial_folders_are_removed_and_never_counted(task, run_dir, tmp_path):
    base = tmp_path / "saved"
    (base / ".7.partial-abc" / "variables").mkdir(parents=True)  # a killed export's leftovers
    target = export_lib.export(task, run_dir, str(base))
    assert target.endswith(os.sep + "1")
    assert sorted(os.listdir(base)) == ["1", "models.config"]


def test_quotes_in_the_export_path_are_escaped_in_models_config(task, run_dir, tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    base = str(tmp_path / 'my "best" models')
    target = export_lib.export(task, run_dir, base)
    assert_loaders_agree(target, task.warmup_requests(None))
    config = text_format.Parse(open(os.path.join(base, "models.config")).read(),
                               model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert entry.base_path == os.path.abspath(base) and entry.name == "sentiment"


@pytest.mark.parametrize("name", ["v[1]", "a*b", "what?", "back\\slash"])
def test_glob_characters_in_the_export_path_are_refused_up_front(task, run_dir, tmp_path, name):
    base = tmp_path / name
    with pytest.raises(errors.ExportError, match="glob patterns"):
        export_lib.export(task, run_dir, str(base))
    assert not base.exists()


def test_overwrite_replaces_in_one_step_and_only_when_asked(task, run_dir, tmp_path):
    base = str(tmp_path / "saved")
    target = export_lib.export(task, run_dir, base)
    pb = os.path.join(target, "saved_model.pb")
    first = os.stat(pb).st_ino
    with pytest.raises(FileExistsError, match="already exists"):
        export_lib.export(task, run_dir, base, version=1)
    assert os.stat(pb).st_ino == first
    assert export_lib.export(task, run_dir, base, version=1, overwrite=True) == target
    assert os.stat(pb).st_ino != first
    assert sorted(os.listdir(base)) == ["1", "models.config"]


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("from a")
    if not export_lib._exchange(str(a), str(b)):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here")
    assert (b / "x").read_text() == "from a" and not (a / "x").exists()


def test_export_dir_that_is_a_file_is_refused(task, run_dir, tmp_path):
    path = tmp_path / "not-a-dir"
    path.write_text("user data")
    with pytest.raises(NotADirectoryError, match="is a file"):
        export_lib.export(task, run_dir, str(path))
    assert path.read_text() == "user data"


def test_saved_model_cli_runs_the_readme_command(task, run_dir, tmp_path):
    # README "Serving with TF Serving": saved_model_cli takes the session-loader path.
    target = export_lib.export(task, run_dir, str(tmp_path / "saved"))
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run(
        [cli, "run", "--dir", target, "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", 'text=["a wonderful film", "dull and far too long"]'],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    for key in ("class_id", "label", "probabilities"):
        assert f"Result for output key {key}:" in proc.stdout
    show = subprocess.run([cli, "show", "--dir", target, "--tag_set", "serve",
                           "--signature_def", "serving_default"],
                          capture_output=True, text=True, timeout=300)
    assert show.returncode == 0 and "inputs['text'] tensor_info" in show.stdout, show.stderr


def test_export_survives_fuzzed_requests_in_a_fresh_process(task, run_dir, tmp_path, monkeypatch):
    skip_export_revalidation(monkeypatch)
    target = export_lib.export(task, run_dir, str(tmp_path / "export"))
    cases = text_cases("serving_default") + [
        ("batch 1025", "serving_default", {"text": np.array(["a"] * 1025, dtype=object)})]
    results = run_fuzz(target, cases, tmp_path)
    assert set(results) == {case for case, _, _ in cases}
    assert_survives(results, {"serving_default": ["text"]}, {"batch 1025": "max_batch=1024"})
    assert all(r["ok"] for case, r in results.items() if case != "batch 1025"), results
