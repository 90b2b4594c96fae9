"""Multi-worker training and distributed tuning with real processes on 127.0.0.1.

Two workers of ``python -m tasks.sentiment train --strategy multiworker`` on the tiny review
fixture: the chief alone writes the run, a worker killed with SIGKILL is survived by restarting
every process with the same command, and a chief + worker Keras Tuner search finishes.
"""

import glob
import json
import os
import signal

import pytest

from tasks import sentiment
from tasks.runner import cli
from tasks.runner import export as export_lib
from tasks.runner import run_dir as rd
from tests.tasks.multiprocess import Cluster, free_port, tf_config, wait_for

CSV = os.path.join(os.path.dirname(__file__), "..", "fixtures", "sentiment", "tiny_reviews.csv")
TINY = ["--data", os.path.abspath(CSV), "--quiet", "--set", "max_tokens=200",
        "--set", "max_length=20", "--set", "embedding_dim=8", "--set", "units=8",
        "--set", "batch_size=8", "--set", "dropout=0.0"]
TIMEOUT = 240


def start_workers(cluster, run_dir, tmp, epochs, extra=()):
    ports = [free_port(), free_port()]
    args = ["-m", "tasks.sentiment", "train", "--strategy", "multiworker", "--output", run_dir,
            "--epochs", str(epochs), *TINY, *extra]
    return [cluster.start(args, {"TF_CONFIG": tf_config(ports, i), "TMPDIR": str(tmp)},
                          f"worker{i}") for i in range(2)]


def assert_one_finished_run(run_dir, epochs, chief_runs=1):
    """The chief's files only: one TensorBoard event file per split and chief process."""
    assert rd.read_marker(run_dir)["state"] == "finished"
    for split in ("train", "validation"):
        events = glob.glob(os.path.join(run_dir, "logs", split, "events.*"))
        assert len(events) == chief_runs, split
    for name in ("model.keras", "config.json", "metrics.json", "plots/training_curves.png"):
        assert os.path.exists(os.path.join(run_dir, name)), name
    assert not os.path.exists(os.path.join(run_dir, "backup"))
    history = json.load(open(os.path.join(run_dir, "history.json"), encoding="utf-8"))
    assert [e["epoch"] for e in history] == list(range(1, epochs + 1))


def test_two_workers_train_one_run(tmp_path, capsys):
    run_dir, tmp = str(tmp_path / "run"), tmp_path / "tmp"
    tmp.mkdir()
    with Cluster(tmp_path) as cluster:
        procs = start_workers(cluster, run_dir, tmp, epochs=2)
        codes = cluster.wait(procs, TIMEOUT)
        logs = [cluster.output(p) for p in procs]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert "replicas=2 role=chief" in logs[0] and "role=worker1" in logs[1]
    assert "validation metrics" in logs[0]
    assert_one_finished_run(run_dir, 2)
    assert os.listdir(tmp) == []  # the worker's private directory is gone
    assert cli.main(sentiment.SentimentTask(), ["evaluate", "--model", run_dir]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    target = export_lib.export(sentiment.SentimentTask(), run_dir, str(tmp_path / "export"))
    assert os.path.exists(os.path.join(target, "saved_model.pb"))


@pytest.mark.slow  # about 75 s on 2 CPU cores, 110 s with the --overwrite rerun
def test_killed_worker_then_restart_resumes(tmp_path):
    run_dir, tmp = str(tmp_path / "run"), tmp_path / "tmp"
    tmp.mkdir()
    metadata = os.path.join(run_dir, "backup", "training_metadata.json")

    def checkpointed():
        try:
            return json.load(open(metadata, encoding="utf-8"))["epoch"] >= 1
        except (OSError, ValueError, KeyError):
            return False

    epochs = 6
    with Cluster(tmp_path) as cluster:
        procs = start_workers(cluster, run_dir, tmp, epochs, ["--set", "patience=10"])
        assert wait_for(checkpointed, TIMEOUT), cluster.output(procs[0])[-3000:]
        os.kill(procs[1].pid, signal.SIGKILL)
        # The chief notices the lost worker (missing heartbeats) and fails; bounded wait.
        chief_code = cluster.wait(procs[:1], 120)[0]
        assert chief_code != 0
        assert rd.state(run_dir) == "unfinished"
        done = json.load(open(metadata, encoding="utf-8"))["epoch"]
        assert done < epochs
        procs = start_workers(cluster, run_dir, tmp, epochs, ["--set", "patience=10"])
        codes = cluster.wait(procs, TIMEOUT)
        logs = [cluster.output(p) for p in procs]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert f"(resuming after epoch {done})" in logs[0] and "(resuming" in logs[1]
    assert_one_finished_run(run_dir, epochs, chief_runs=2)
    # --overwrite on every process: the chief alone replaces the run.
    with Cluster(tmp_path) as cluster:
        procs = start_workers(cluster, run_dir, tmp, 1, ["--overwrite"])
        codes = cluster.wait(procs, TIMEOUT)
    assert codes == [0, 0]
    assert_one_finished_run(run_dir, 1)
    assert not os.path.exists(rd.aside_path(run_dir))


def test_chief_and_worker_tuning(tmp_path):
    tune_dir = str(tmp_path / "tune")
    oracle = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(free_port())}
    args = ["-m", "tasks.sentiment", "tune", "--output", tune_dir, "--max-trials", "2",
            "--epochs", "1", *TINY]
    with Cluster(tmp_path) as cluster:
        chief = cluster.start(args, {**oracle, "KERASTUNER_TUNER_ID": "chief"}, "chief")
        worker = cluster.start(args, {**oracle, "KERASTUNER_TUNER_ID": "tuner0"}, "tuner0")
        codes = cluster.wait([worker, chief], TIMEOUT)
        logs = [cluster.output(p) for p in (chief, worker)]
    assert codes == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    assert logs[1].count("trial ") >= 2 and "tuner0 ran 2 trial(s)" in logs[1]
    trials = [json.load(open(path, encoding="utf-8"))
              for path in glob.glob(os.path.join(tune_dir, "sentiment", "trial_*", "trial.json"))]
    assert sorted(t["status"] for t in trials) == ["COMPLETED", "COMPLETED"]
    best = json.load(open(os.path.join(tune_dir, "best.json"), encoding="utf-8"))
    assert best["trial_id"] in {t["trial_id"] for t in trials}
    assert "best trial" in logs[0]


def test_one_replica_mirrored_equals_the_default_strategy(tmp_path):
    from tasks.runner import config as config_lib
    from tasks.runner import training

    histories = {}
    for strategy in ("default", "mirrored"):
        config = config_lib.override(sentiment.SentimentConfig(), {
            "data": CSV, "max_tokens": 200, "max_length": 20, "embedding_dim": 8, "units": 8,
            "batch_size": 8, "epochs": 2, "dropout": 0.2, "strategy": strategy})
        run_dir = str(tmp_path / strategy)
        training.train(sentiment.SentimentTask(), config, run_dir, verbose=0)
        histories[strategy] = json.load(open(os.path.join(run_dir, "history.json")))
    assert histories["mirrored"] == histories["default"]


def test_mirrored_on_logical_cpus_from_the_command_line(tmp_path):
    args = ["-m", "tasks.sentiment", "train", "--strategy", "mirrored", "--set",
            "logical_devices=2", "--epochs", "1", "--output", str(tmp_path / "run"), *TINY]
    with Cluster(tmp_path) as cluster:
        proc = cluster.start(args, {}, "mirrored")
        code, log = cluster.wait([proc], TIMEOUT)[0], cluster.output(proc)
    assert code == 0, log[-3000:]
    assert "replicas=2" in log and "validation metrics" in log
