"""The tuner: every trial builds its datasets from its own config and runs the task's epoch
metrics; a rerun resumes without re-running trials and refuses another base config."""

import json
import os

import pytest

from tasks import sentiment
from tasks.runner import config as config_lib
from tasks.runner import tuning

CSV = os.path.join(os.path.dirname(__file__), "..", "fixtures", "sentiment", "tiny_reviews.csv")
TINY = {"max_tokens": 200, "max_length": 20, "embedding_dim": 8, "units": 8, "batch_size": 8,
        "epochs": 1, "patience": 5, "dropout": 0.0, "data": CSV}


class RecordingTask(sentiment.SentimentTask):
    """Searches ``max_length`` (a data setting) and records what each trial trained on."""

    def __init__(self):
        self.trained_on, self.epoch_metric_calls = [], 0

    def search_space(self, hp):
        return {"max_length": hp.Choice("max_length", [4, 16])}

    def make_dataset(self, config, preprocessor, split, training):
        dataset = super().make_dataset(config, preprocessor, split, training)
        if training:
            inputs = [x for x, _ in dataset]
            self.trained_on.append((config.max_length, max(int(x.shape[1]) for x in inputs)))
        return dataset

    def epoch_metrics(self, config, preprocessor, split):
        def evaluate(model):
            self.epoch_metric_calls += 1
            return {"probe": 1.0}
        return evaluate


@pytest.mark.slow  # ~50 s; tuner round trips stay in test_runner, test_distributed
def test_trials_use_their_own_data_settings_and_resume(tmp_path):
    task = RecordingTask()
    config = config_lib.override(sentiment.SentimentConfig(), TINY)
    tune_dir = str(tmp_path / "tune")
    tuning.tune(task, config, tune_dir, max_trials=2, verbose=0)
    # Each trial's training batches are as long as ITS max_length allows.
    assert sorted(length for length, _ in task.trained_on) == [4, 16]
    for length, longest in task.trained_on:
        assert longest <= length
    assert max(longest for _, longest in task.trained_on) > 4
    assert task.epoch_metric_calls == 2  # one epoch per trial, as in train
    best = json.load(open(os.path.join(tune_dir, "best.json"), encoding="utf-8"))
    assert best["base_config"]["max_length"] == 20 and "max_length" in best["hparams"]

    task.trained_on.clear()
    tuning.tune(task, config, tune_dir, max_trials=2, verbose=0)  # resumes: nothing left
    assert task.trained_on == []

    changed = config_lib.override(config, {"max_tokens": 100})
    with pytest.raises(FileExistsError, match="another base config"):
        tuning.tune(task, changed, tune_dir, max_trials=2, verbose=0)
    assert json.load(open(os.path.join(tune_dir, "best.json"), encoding="utf-8")) == best
    tuning.tune(task, changed, tune_dir, max_trials=1, verbose=0, overwrite=True)
    assert len(task.trained_on) == 1
    record = json.load(open(os.path.join(tune_dir, tuning.TUNE_MARKER), encoding="utf-8"))
    assert record["base_config"]["max_tokens"] == 100


def test_refuses_a_directory_that_is_not_a_search(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    config = config_lib.override(sentiment.SentimentConfig(), TINY)
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not a search"):
            tuning.tune(RecordingTask(), config, str(tmp_path), max_trials=1, verbose=0,
                        overwrite=overwrite)
    assert os.listdir(tmp_path) == ["notes.txt"]
