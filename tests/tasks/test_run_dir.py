"""The run directory's life cycle: the marker, --overwrite that validates first and keeps the
old run until the new one has a checkpoint, failed starts that leave nothing, and the warning
on an unfinished run (sentiment, tiny settings)."""

import json
import os
import shutil

import keras
import pytest

from tasks import sentiment
from tasks.runner import cli, training
from tasks.runner import config as config_lib
from tasks.runner import run_dir as rd
from tests.tasks import interrupt as cb

CSV = os.path.join(os.path.dirname(__file__), "..", "fixtures", "sentiment", "tiny_reviews.csv")
TINY = {"max_tokens": 200, "max_length": 20, "embedding_dim": 8, "units": 8, "batch_size": 8,
        "epochs": 1, "patience": 5, "dropout": 0.0, "data": CSV}


def tiny_config(**changes):
    return config_lib.override(sentiment.SentimentConfig(), {**TINY, **changes})


@pytest.fixture(scope="module")
def task():
    return sentiment.SentimentTask()


@pytest.fixture(scope="module")
def finished(task, tmp_path_factory):
    """A finished run; tests copy it before changing anything."""
    run_dir = str(tmp_path_factory.mktemp("finished") / "run")
    training.train(task, tiny_config(), run_dir, verbose=0)
    return run_dir


def copy_run(finished, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(finished, run_dir)
    return run_dir


def snapshot(run_dir):
    return {name: open(os.path.join(run_dir, name), "rb").read()
            for name in ("config.json", "model.keras", "history.json")}


@pytest.mark.parametrize("bad", [{"batch_size": 0}, {"cell": "foo"}, {"dropout": 2.0}])
def test_overwrite_with_a_bad_config_keeps_the_finished_run(task, finished, tmp_path, bad):
    run_dir = copy_run(finished, tmp_path)
    before = snapshot(run_dir)
    with pytest.raises(ValueError):
        training.train(task, tiny_config(**bad), run_dir, overwrite=True, verbose=0)
    assert snapshot(run_dir) == before and rd.state(run_dir) == "finished"
    assert not os.path.exists(rd.aside_path(run_dir))


def test_overwrite_refuses_a_directory_that_is_not_a_run(task, tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\documentclass{article}")
    (thesis / "config.json").write_text('{"latex": "pdflatex"}')
    with pytest.raises(FileExistsError, match="not a run directory"):
        training.train(task, tiny_config(), str(thesis), overwrite=True, verbose=0)
    assert sorted(os.listdir(thesis)) == ["config.json", "thesis.tex"]


class SeeAside(keras.callbacks.Callback):
    def __init__(self, run_dir):
        super().__init__()
        self.run_dir, self.seen = run_dir, []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(os.path.isdir(rd.aside_path(self.run_dir)))


def test_overwrite_keeps_the_old_run_aside_until_the_first_checkpoint(task, finished, tmp_path):
    run_dir = copy_run(finished, tmp_path)
    see = SeeAside(run_dir)
    training.train(task, tiny_config(epochs=2, units=4), run_dir, overwrite=True, verbose=0,
                   extra_callbacks=[see])
    assert see.seen == [True, False]  # deleted once epoch 1's backup was on disk
    assert rd.load_config(task, run_dir).units == 4 and rd.state(run_dir) == "finished"


class FailInEpochOne(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise KeyboardInterrupt("simulated crash before the first checkpoint")


def test_a_failed_start_leaves_nothing_and_brings_back_the_replaced_run(task, finished,
                                                                        tmp_path):
    fresh = str(tmp_path / "fresh")
    with pytest.raises(KeyboardInterrupt):
        training.train(task, tiny_config(), fresh, verbose=0, extra_callbacks=[FailInEpochOne()])
    assert not os.path.exists(fresh)
    run_dir = copy_run(finished, tmp_path)
    before = snapshot(run_dir)
    with pytest.raises(KeyboardInterrupt):
        training.train(task, tiny_config(units=4), run_dir, overwrite=True, verbose=0,
                       extra_callbacks=[FailInEpochOne()])
    assert snapshot(run_dir) == before and not os.path.exists(rd.aside_path(run_dir))


def test_a_run_killed_before_its_first_checkpoint_restarts_with_the_same_command(
        task, finished, tmp_path):
    # What kill -9 in epoch 1 leaves: the marker, config and assets, no backup.
    run_dir = str(tmp_path / "killed")
    os.makedirs(os.path.join(run_dir, rd.ASSETS))
    rd.write_marker(run_dir, task.name, "started")
    shutil.copy(os.path.join(finished, rd.CONFIG), run_dir)
    assert rd.state(run_dir) == "unstarted"
    training.train(task, tiny_config(), run_dir, verbose=0)
    assert rd.state(run_dir) == "finished"
    # kill -9 during an --overwrite's first epoch: the old run is aside, the new one unstarted;
    # the next command finds the old run back in place.
    replaced = copy_run(finished, tmp_path)
    before = snapshot(replaced)
    rd.move_aside(replaced)
    os.makedirs(replaced)
    rd.write_marker(replaced, task.name, "started")
    with pytest.raises(FileExistsError, match="already holds a run"):
        training.train(task, tiny_config(), replaced, verbose=0)
    assert snapshot(replaced) == before and not os.path.exists(rd.aside_path(replaced))


def test_evaluate_warns_on_an_unfinished_run_and_legacy_runs_load(task, finished, tmp_path,
                                                                 capsys):
    run_dir = str(tmp_path / "unfinished")
    with pytest.raises(KeyboardInterrupt):
        training.train(task, tiny_config(epochs=3), run_dir, verbose=0,
                       extra_callbacks=[cb.InterruptAfter(1)])
    assert rd.state(run_dir) == "unfinished"
    assert cli.main(task, ["evaluate", "--model", run_dir]) == 0
    captured = capsys.readouterr()
    assert "unfinished run (stopped after epoch 1)" in captured.err
    assert "accuracy" in json.loads(captured.out.strip().splitlines()[-1])
    legacy = copy_run(finished, tmp_path)
    os.remove(os.path.join(legacy, rd.MARKER))  # a run written before the marker existed
    assert rd.state(legacy) == "finished"
    assert cli.main(task, ["predict", "--model", legacy, "--json", "a fine film"]) == 0
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(FileExistsError, match="already holds a run"):
        training.train(task, tiny_config(), legacy, verbose=0)
