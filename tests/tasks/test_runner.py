"""The shared runner on tiny settings, driven through the sentiment task.

Covers: run directory contents, refusal to overwrite, resume after interruption, NaN stop, mixed
precision, mirrored strategy (two logical CPUs, in a subprocess), Keras Tuner round trip, and
the export's atomicity, refusal, warm-up file and fresh-process validation.
"""

import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tasks import sentiment
from tasks.runner import callbacks as cb
from tasks.runner import cli, training, tuning
from tasks.runner import config as config_lib
from tasks.runner import export as export_lib
from tasks.runner import run_dir as rd
from tests.tasks.export_checks import assert_loaders_agree
from tests.tasks.interrupt import InterruptAfter

TINY = {"max_tokens": 200, "max_length": 20, "embedding_dim": 8, "units": 8, "batch_size": 8,
        "epochs": 2, "patience": 5, "dropout": 0.0}


@pytest.fixture(scope="module")
def task():
    return sentiment.SentimentTask()


@pytest.fixture(scope="module")
def csv_path():
    return os.path.join(os.path.dirname(__file__), "..", "fixtures", "sentiment",
                        "tiny_reviews.csv")


def tiny_config(csv_path, **changes):
    return config_lib.override(sentiment.SentimentConfig(), {**TINY, "data": csv_path, **changes})


@pytest.fixture(scope="module")
def trained_run(task, csv_path, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run") / "sentiment")
    training.train(task, tiny_config(csv_path), run_dir, verbose=0)
    return run_dir


def test_run_directory_contents(trained_run):
    for name in ("config.json", "model.keras", "history.json", "metrics.json",
                 "plots/training_curves.png", "plots/confusion_matrix.png", "logs"):
        assert os.path.exists(os.path.join(trained_run, name)), name
    assert os.listdir(os.path.join(trained_run, "assets"))
    assert not os.path.exists(os.path.join(trained_run, "backup"))
    history = json.load(open(os.path.join(trained_run, "history.json")))
    assert [e["epoch"] for e in history] == [1, 2]
    assert all(np.isfinite(e["loss"]) for e in history)


def test_refuses_to_overwrite_a_finished_run(task, csv_path, trained_run):
    with pytest.raises(FileExistsError, match="already holds a run"):
        training.train(task, tiny_config(csv_path), trained_run, verbose=0)


def test_evaluate_prints_json_last(trained_run, capsys):
    assert cli.main(sentiment.SentimentTask(), ["evaluate", "--model", trained_run]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads(last)
    assert {"accuracy", "f1", "precision", "recall", "auc", "examples"} <= set(metrics)
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["examples"] > 0


def test_predict_from_run_dir(trained_run, capsys):
    assert cli.main(sentiment.SentimentTask(),
                    ["predict", "--model", trained_run, "--json", "a wonderful film"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["label"] in ("negative", "positive")
    assert abs(sum(result["probabilities"]) - 1.0) < 1e-5


def test_predict_input_file_keeps_blank_lines_aligned(trained_run, tmp_path, capsys,
                                                     monkeypatch):
    lines = ["a wonderful film", "", "dull", "  ", "great acting", "", "boring", "fine", "bad"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    task = sentiment.SentimentTask()
    argv = ["predict", "--model", trained_run, "--json", "--input-file"]
    assert cli.main(task, argv + [str(tmp_path / "in.txt")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text"] for r in rows] == lines  # 9 lines in, 9 results out
    assert [r["label"] is None for r in rows] == [not line.strip() for line in lines]
    monkeypatch.setattr("sys.stdin", io.StringIO("dull\n\nfine\n"))
    assert cli.main(task, argv + ["-"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text"] for r in rows] == ["dull", "", "fine"] and rows[1]["empty"]


def test_export_validates_refuses_and_serves_the_same(task, trained_run, tmp_path, capsys):
    base = str(tmp_path / "saved_models" / "sentiment")
    target = export_lib.export(task, trained_run, base)
    # TF Serving's session loader (and its warm-up replay) answer as tf.saved_model.load does.
    agreed = assert_loaders_agree(target, {"serving_default": {"text": ["a wonderful film", ""]}})
    assert agreed["serving_default"]["probabilities"].shape == (2, 2)
    assert target.endswith(os.path.join("sentiment", "1"))
    assert os.path.exists(os.path.join(target, export_lib.WARMUP_FILE))
    assert 'name: "sentiment"' in open(os.path.join(base, "models.config")).read()
    before = sorted(os.listdir(base))
    with pytest.raises(FileExistsError, match="already exists"):
        export_lib.export(task, trained_run, base, version=1)
    assert sorted(os.listdir(base)) == before
    assert export_lib.export(task, trained_run, base).endswith("2")  # next version

    cli.main(task, ["predict", "--model", trained_run, "--json", "dull and far too long"])
    from_run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    cli.main(task, ["predict", "--model", base, "--json", "dull and far too long"])
    from_export = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert from_export["label"] == from_run["label"]
    np.testing.assert_allclose(from_export["probabilities"], from_run["probabilities"],
                               atol=1e-6)


def test_failed_export_leaves_nothing(task, trained_run, tmp_path, monkeypatch):
    base = tmp_path / "exports"

    def broken(*args, **kwargs):
        raise export_lib.ExportValidationError("simulated mismatch")

    monkeypatch.setattr(export_lib, "validate_in_fresh_process", broken)
    with pytest.raises(export_lib.ExportValidationError):
        export_lib.export(task, trained_run, str(base))
    assert [p for p in os.listdir(base) if not p.startswith("models.config")] == []


def test_fresh_process_validation_detects_a_difference(task, trained_run, tmp_path):
    target = export_lib.export(task, trained_run, str(tmp_path / "e"))
    inputs = {"serving_default": export_lib.to_numpy_inputs({"text": ["great"]})}
    wrong = {"label": np.array([b"nope"]), "probabilities": np.array([[0.5, 0.5]], np.float32),
             "class_id": np.array([7], np.int32)}
    with pytest.raises(export_lib.ExportValidationError, match="differs"):
        export_lib.validate_in_fresh_process(target, inputs, {"serving_default": wrong})


def test_resume_after_interruption(task, csv_path, tmp_path):
    run_dir = str(tmp_path / "run")
    config = tiny_config(csv_path, epochs=3)
    with pytest.raises(KeyboardInterrupt):
        training.train(task, config, run_dir, verbose=0, extra_callbacks=[InterruptAfter(1)])
    assert rd.is_unfinished(run_dir)
    with pytest.raises(ValueError, match="different config"):
        training.train(task, tiny_config(csv_path, epochs=3, units=16), run_dir, verbose=0)
    training.train(task, config, run_dir, verbose=0)
    history = json.load(open(os.path.join(run_dir, "history.json")))
    assert [e["epoch"] for e in history] == [1, 2, 3]
    assert rd.is_finished(run_dir)


class RecordFirstStepWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.first = None

    def on_train_batch_begin(self, batch, logs=None):
        if self.first is None:
            self.first = self.model.get_weights()


def test_resume_with_ema_trains_on_from_the_raw_weights(task, csv_path, tmp_path):
    run_dir, before, after = str(tmp_path / "run"), RecordWeights(), RecordFirstStepWeights()
    config = tiny_config(csv_path, epochs=2, learning_rate=0.05, ema_momentum=0.9)
    with pytest.raises(KeyboardInterrupt):
        training.train(task, config, run_dir, verbose=0,
                       extra_callbacks=[before, InterruptAfter(1)])
    training.train(task, config, run_dir, verbose=0, extra_callbacks=[after])
    assert not np.array_equal(before.raw[0], before.validated[0][0])  # the average differs
    # The backup held the average in the model; the resumed run swaps the raw weights back
    # (Keras swaps by adding and subtracting, hence the tolerance).
    for a, b in zip(after.first, before.raw):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


class RecordLearningRate(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.rates = []

    def on_epoch_end(self, epoch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))


def test_learning_rate_halves_when_validation_stalls(task, csv_path, tmp_path):
    # learning_rate 1e-9: the validation monitor cannot move, so every epoch after the first
    # is a stall; lr_patience=1 halves the rate at each of them.
    record = RecordLearningRate()
    config = tiny_config(csv_path, epochs=3, learning_rate=1e-9, lr_patience=1)
    training.train(task, config, str(tmp_path / "run"), verbose=0, extra_callbacks=[record])
    np.testing.assert_allclose(record.rates, [1e-9, 5e-10, 2.5e-10], rtol=1e-5)
    record = RecordLearningRate()
    training.train(task, tiny_config(csv_path, epochs=2, learning_rate=1e-9),
                   str(tmp_path / "off"), verbose=0, extra_callbacks=[record])
    np.testing.assert_allclose(record.rates, [1e-9, 1e-9], rtol=1e-5)  # lr_patience=0: off


class RecordWeights(keras.callbacks.Callback):
    """The weights after the last training step (raw) and those validation/checkpoint saw."""

    def on_train_batch_end(self, batch, logs=None):
        self.raw = self.model.get_weights()

    def on_train_begin(self, logs=None):
        self.validated = []

    def on_epoch_end(self, epoch, logs=None):
        self.validated.append(self.model.get_weights())


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_ema_weights_are_validated_and_checkpointed(task, csv_path, tmp_path, ema):
    record = RecordWeights()
    run_dir = str(tmp_path / "run")
    config = tiny_config(csv_path, epochs=2, learning_rate=0.05, ema_momentum=ema)
    training.train(task, config, run_dir, verbose=0, extra_callbacks=[record])
    same = [np.array_equal(a, b) for a, b in zip(record.raw, record.validated[-1])]
    # With EMA the trained variables seen at epoch end are the average, not the last step's.
    assert all(same) if not ema else not any(same[:1]) and not all(same)
    # The checkpoint holds the weights that were validated at the best epoch.
    history = json.load(open(os.path.join(run_dir, "history.json"), encoding="utf-8"))
    scores = [entry["val_accuracy"] for entry in history]
    saved = keras.saving.load_model(os.path.join(run_dir, "model.keras"), compile=False)
    for a, b in zip(saved.get_weights(), record.validated[scores.index(max(scores))]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="ema_momentum"):
        training.compile_model(task, tiny_config(csv_path, ema_momentum=1.0), saved)


def test_ema_warms_up_instead_of_trailing_the_initial_weights():
    var = keras.Variable(np.zeros(2, "float32"))
    optimizer = training.Adam(learning_rate=0.1, use_ema=True, ema_momentum=0.999)
    average, values = None, []
    for step in range(4):
        optimizer.apply([keras.ops.convert_to_tensor(np.array([-1.0, 1.0], "float32"))], [var])
        value = keras.ops.convert_to_numpy(var)
        m = min(0.999, step / (10 + step))  # step 0 copies the weights
        average = value if average is None else m * average + (1 - m) * value
        values.append(value)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(optimizer._model_variables_moving_average[0]), average,
        rtol=1e-5)
    assert abs(average[0]) > 0.5 * abs(values[-1][0])  # Keras' own EMA would sit at step 0's


def nan_loss(y_true, y_pred):
    return keras.ops.mean(y_pred) * float("nan")


class NanTask(sentiment.SentimentTask):
    def compile_kwargs(self, config):
        return {**super().compile_kwargs(config), "loss": nan_loss}


def test_nan_loss_stops_with_a_clear_message(csv_path, tmp_path):
    with pytest.raises(cb.NanLossError, match="loss became nan at epoch 1, batch 1"):
        training.train(NanTask(), tiny_config(csv_path, epochs=1), str(tmp_path / "r"),
                       verbose=0)


@pytest.mark.parametrize("mode", ["float16", "bfloat16"])
def test_mixed_precision_training(task, csv_path, tmp_path, mode):
    run_dir = str(tmp_path / mode)
    metrics = training.train(task, tiny_config(csv_path, epochs=1, mixed_precision=mode),
                             run_dir, verbose=0)
    assert np.isfinite(metrics["accuracy"])
    config, prep, model = rd.load_run(task, run_dir)
    assert all(v.dtype == "float32" for v in model.weights)
    assert model.get_layer("encoder").compute_dtype == mode
    module = task.serving_module(config, model, prep)  # tf.function methods hold it weakly
    out = module.serving_default(tf.constant(["good"]))
    assert out["probabilities"].dtype == tf.float32


@pytest.mark.slow  # ~27 s; test_distributed runs mirrored from the CLI by default
def test_mirrored_strategy_on_two_logical_cpus(csv_path, tmp_path):
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tasks import sentiment
from tasks.runner import config as config_lib, training
config = config_lib.override(sentiment.SentimentConfig(), {TINY!r} | {{"data": {csv_path!r},
    "epochs": 1, "strategy": "mirrored"}})
m = training.train(sentiment.SentimentTask(), config, {str(tmp_path / "m")!r}, verbose=0)
print("ACCURACY", m["accuracy"])
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, cwd=os.path.dirname(os.path.dirname(__file__)) + "/..")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "replicas=2" in proc.stdout and "ACCURACY" in proc.stdout


def test_tuner_round_trip(task, csv_path, tmp_path):
    config = tiny_config(csv_path, epochs=1)
    result = tuning.tune(task, config, str(tmp_path / "tune"), max_trials=2, verbose=0)
    best = tmp_path / "tune" / "best.json"
    assert best.exists() and set(result["hparams"]) >= {"cell", "units", "learning_rate"}
    args = cli.build_parser(task).parse_args(["train", "--hparams", str(best),
                                              "--data", csv_path])
    trained = cli.config_from_args(task, args)
    for key, value in result["hparams"].items():
        assert getattr(trained, key) == value
