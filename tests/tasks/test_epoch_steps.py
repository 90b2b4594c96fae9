"""The runner tells Keras how many steps an epoch has (progress bar N/N), counted once and
kept in the run directory; ``steps_per_epoch`` caps it; ``cache`` fills a disk cache."""

import json
import os

import keras

from tasks import sentiment
from tasks.runner import config as config_lib
from tasks.runner import run_dir as rd
from tasks.runner import training

CSV = os.path.join(os.path.dirname(__file__), "..", "fixtures", "sentiment", "tiny_reviews.csv")
TINY = {"max_tokens": 200, "max_length": 20, "embedding_dim": 8, "units": 8, "batch_size": 8,
        "epochs": 2, "patience": 5, "dropout": 0.0, "data": CSV}


class _Steps(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.steps, self.batches = None, []

    def on_train_begin(self, logs=None):
        self.steps = self.params["steps"]

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.append(0)

    def on_train_batch_end(self, batch, logs=None):
        self.batches[-1] += 1


def _batches(task, config, splits, preprocessor):
    return sum(1 for _ in task.make_dataset(config, preprocessor, splits.train, training=True))


def test_fit_gets_the_counted_steps_per_epoch(tmp_path):
    task = sentiment.SentimentTask()
    config = config_lib.override(sentiment.SentimentConfig(), TINY)
    run_dir = str(tmp_path / "run")
    seen = _Steps()
    training.train(task, config, run_dir, verbose=0, extra_callbacks=[seen])
    splits = task.load_splits(config)
    expected = _batches(task, config, splits, task.load_preprocessor(config, rd.path(
        run_dir, rd.ASSETS)))
    assert seen.steps == expected > 1
    assert seen.batches == [expected, expected]  # each epoch is exactly one pass
    with open(rd.path(run_dir, training.STEPS_FILE), encoding="utf-8") as f:
        stored = json.load(f)
    assert stored["counts"]["train"] == expected and stored["counts"]["validation"] >= 1
    # Reused (not recounted) while the settings and split sizes match.
    stored["counts"]["train"] = expected + 7
    with open(rd.path(run_dir, training.STEPS_FILE), "w", encoding="utf-8") as f:
        json.dump(stored, f)
    steps = training.epoch_steps(task, config, None, splits, None, run_dir)
    assert steps["train"] == expected + 7
    capped = config_lib.override(config, {"steps_per_epoch": 2})
    assert training.epoch_steps(task, capped, task.load_preprocessor(
        config, rd.path(run_dir, rd.ASSETS)), splits, None, None)["train"] == 2


def test_steps_cap_and_disk_cache(tmp_path):
    task = sentiment.SentimentTask()
    cache = str(tmp_path / "cache")
    config = config_lib.override(sentiment.SentimentConfig(), {
        **TINY, "epochs": 1, "steps_per_epoch": 3, "cache": cache, "vocab_max_examples": 20})
    seen = _Steps()
    training.train(task, config, str(tmp_path / "run"), verbose=0, extra_callbacks=[seen])
    assert seen.steps == 3 and seen.batches == [3]
    assert any(name.endswith(".index") for name in os.listdir(cache))
