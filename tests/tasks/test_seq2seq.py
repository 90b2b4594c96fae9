"""tasks.seq2seq on the shared runner, tiny: overfit, train/evaluate, export, predict, data."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from pipelines import batching
from pipelines.vocab import END_ID, START_ID
from tasks import seq2seq as s2s
from tasks.runner import cli, training, tuning
from tasks.runner import config as config_lib
from tasks.runner import export as export_lib
from tasks.runner import run_dir as rd
from tests.tasks.export_checks import assert_loaders_agree
from tests.tasks.serving_fuzz import (
    assert_survives,
    run_fuzz,
    skip_export_revalidation,
    text_cases,
)

TINY = {"max_examples": 64, "epochs": 1, "units": 16, "embedding_dim": 8, "batch_size": 32,
        "dropout": 0.0, "beam_width": 3, "eval_batch_size": 64,
        "locales": ("en_US", "de_DE", "fr_FR", "ja_JP")}
PAIRS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pairs", "spa_tiny.tsv")


@pytest.fixture(scope="module")
def task():
    return s2s.Seq2SeqTask()


@pytest.fixture(scope="module")
def trained_run(task, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run") / "seq2seq")
    config = config_lib.override(s2s.Seq2SeqConfig(), TINY)
    metrics = training.train(task, config, run_dir, verbose=0)
    return run_dir, metrics


@pytest.mark.slow  # ~1-2 minutes of fitting on a contended CPU: `make test-slow`
def test_overfits_50_date_pairs_to_exact_match(task):
    config = config_lib.override(s2s.Seq2SeqConfig(), {
        "max_examples": 50, "units": 48, "embedding_dim": 32, "dropout": 0.0})
    keras.utils.set_random_seed(0)
    splits = task.load_splits(config)
    pre = task.fit_preprocessor(config, splits)
    pairs = list(splits.train.as_numpy_iterator())
    sources = [p["source"].decode("utf-8") for p in pairs]
    targets = [p["target"].decode("utf-8") for p in pairs]
    assert len(pairs) == 50
    (source, decoder_in), labels = batching.teacher_forcing(
        pre.source_ids(tf.constant(sources)),
        pre.target_ids(tf.constant(targets)).to_tensor(0), START_ID, END_ID)
    model = task.build_model(config, pre)
    model.compile(optimizer=keras.optimizers.Adam(0.02, clipnorm=1.0),
                  **task.compile_kwargs(config))

    class StopWhenMemorised(keras.callbacks.Callback):
        # Accuracy is measured before each update; a small loss also leaves the argmax margin
        # that greedy decoding (which feeds its own predictions back) needs.
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = logs["accuracy"] >= 1.0 and logs["loss"] < 0.02

    history = model.fit((source, decoder_in), labels, batch_size=50, epochs=200, verbose=0,
                        callbacks=[StopWhenMemorised()])
    serving = task.serving_module(config, model, pre)
    out = serving.greedy(tf.constant(sources))
    hypotheses = [h.decode("utf-8") for h in out["translation"].numpy()]
    wrong = [(s, h, t) for s, h, t in zip(sources, hypotheses, targets) if h != t]
    assert not wrong, (len(history.history["loss"]), history.history["loss"][-1], wrong)


def test_training_writes_decoding_metrics_and_attention_plot(trained_run):
    run_dir, metrics = trained_run
    for key in ("accuracy", "loss", "greedy_exact_match", "beam_exact_match",
                "greedy_char_accuracy", "beam_char_accuracy", "beam_below_greedy"):
        assert key in metrics, key
    assert metrics["beam_below_greedy"] == 0  # length_penalty 0: beam >= greedy log-prob
    assert metrics["examples"] == 16
    assert os.path.exists(os.path.join(run_dir, "plots", "attention.png"))


def test_export_serves_beam_and_greedy_in_a_fresh_process(task, trained_run, tmp_path,
                                                          capsys):
    run_dir, _ = trained_run
    target = export_lib.export(task, run_dir, str(tmp_path / "export"))  # validates fresh
    # TF Serving's session loader (and its warm-up replay) answer as tf.saved_model.load does.
    text = np.array(["14 July 1789", "3 mars 2021"], dtype=object)
    agreed = assert_loaders_agree(target, {"serving_default": {"text": text},
                                           "greedy": {"text": text}})
    assert agreed["serving_default"]["translation"].shape == (2,)
    loaded = tf.saved_model.load(target)
    text = tf.constant(["14 July 1789", "3 mars 2021"])
    b = loaded.signatures["serving_default"](text=text)
    g = loaded.signatures["greedy"](text=text)
    assert b["translation"].dtype == tf.string and b["translation"].shape == (2,)
    assert np.all(b["log_prob"].numpy() >= g["log_prob"].numpy() - 1e-4)
    assert b["attention"].shape[0] == 2 and b["attention"].shape[2] == 12  # source chars
    # predict through the export, with the attention heatmap.
    png = str(tmp_path / "attention.png")
    assert cli.main(task, ["predict", "--model", target, "--json", "--plot-attention", png,
                           "14 July 1789", "1 Jan 2000"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    results = [json.loads(line) for line in lines[-2:]]
    assert results[0]["translation"] == b["translation"].numpy()[0].decode("utf-8")
    assert os.path.exists(png) and os.path.exists(str(tmp_path / "attention-1.png"))


def test_a_1mb_source_is_read_up_to_max_source_length(task, trained_run):
    # Issue #16: a 1 MB input took ~100 s and 4 GB, and returned a [1, 18, 1048576] attention.
    config, preprocessor, model = rd.load_run(task, trained_run[0])
    module = task.serving_module(config, model, preprocessor)
    out = module.greedy(tf.constant(["3 mars 2021" * 100_000, "3 mars 2021"]))
    assert out["truncated"].numpy().tolist() == [True, False]
    assert out["attention"].shape[2] == out["source_tokens"].shape[1] == 500
    assert out["translation"].shape == (2,)


def test_locales_override_and_pairs_data(task):
    config = config_lib.override(s2s.Seq2SeqConfig(), {"max_examples": 40},
                                 origin="test")
    config = config_lib.override(config, config_lib.parse_set_arguments(
        ["locales=de_DE,fr_FR"]), origin="--set")
    assert config.locales == ("de_DE", "fr_FR")
    assert task.load_splits(config).info["locales"] == ["de_DE", "fr_FR"]

    pairs = config_lib.override(s2s.Seq2SeqConfig(), {"data": PAIRS, "lowercase": True})
    splits = task.load_splits(pairs)
    pre = task.fit_preprocessor(pairs, splits)
    assert pre.unit == "word"
    ds = task.make_dataset(pairs, pre, splits.train, training=False)
    (source, decoder_in), labels = next(iter(ds))
    assert np.all(decoder_in.numpy()[:, 0] == START_ID)
    assert source.dtype == tf.int32 and labels.shape == decoder_in.shape
    ends = (labels.numpy() == END_ID).sum(axis=1)
    assert np.all(ends == 1)
    words = pre.decode(labels).numpy()
    assert all(w.decode("utf-8") == w.decode("utf-8").lower() for w in words)
    # Word-level decoding puts punctuation back in place: training targets round-trip.
    targets = [e["target"] for e in splits.train.as_numpy_iterator()]
    round_trip = pre.decode(pre.target_ids(tf.constant(targets)).to_tensor(0)).numpy()
    assert [t.decode("utf-8") for t in round_trip] == [t.decode("utf-8") for t in targets]


def test_sequence_metrics():
    got = s2s.sequence_metrics(["2001-02-03", "2001-02-04", ""], ["2001-02-03"] * 3, bleu=False)
    assert got["exact_match"] == pytest.approx(1 / 3)
    assert got["char_accuracy"] == pytest.approx((1 + 0.9 + 0) / 3)
    scored = s2s.sequence_metrics(["el gato negro duerme en la casa", "hola amigo"],
                                  ["el gato negro duerme en la cama", "adiós amigo"], True)
    assert 0 < scored["bleu"] < 100 and 0 < scored["chrf"] < 100
    with pytest.raises(ValueError, match="2 hypotheses for 1 references"):
        s2s.sequence_metrics(["a", "b"], ["a"], bleu=False)


def test_bad_unit_is_one_clear_error(task):
    config = config_lib.override(s2s.Seq2SeqConfig(), {"unit": "bytes", "max_examples": 8})
    with pytest.raises(ValueError, match="unit must be auto, char, word or subword; got 'bytes'"):
        task.fit_preprocessor(config, task.load_splits(config))
    with pytest.raises(config_lib.ConfigError, match="vocab_size"):
        config_lib.override(s2s.Seq2SeqConfig(), {"unit": "subword", "vocab_size": 100},
                            validate=True)


@pytest.mark.slow
def test_tune_two_trials_one_epoch(task, tmp_path):
    config = config_lib.override(s2s.Seq2SeqConfig(), {**TINY, "epochs": 1})
    result = tuning.tune(task, config, str(tmp_path / "tune"), max_trials=2, verbose=0)
    assert {"attention", "cell", "units"} <= set(result["hparams"])
    assert os.path.exists(tmp_path / "tune" / "best.json")


@pytest.mark.slow  # ~35 s; the default run fuzzes the sentiment export (test_export)
def test_export_survives_fuzzed_requests_in_a_fresh_process(task, trained_run, tmp_path,
                                                            monkeypatch):
    # A 1 MB text is read up to max_source_length (500) characters: answered, flagged,
    # with a [1, out, 500] attention, within 1.5 GB RSS.
    skip_export_revalidation(monkeypatch)
    target = export_lib.export(task, trained_run[0], str(tmp_path / "export"))
    cases = (text_cases("serving_default", batch_rows="3 mars 2021")
             + text_cases("greedy", batch_rows="3 mars 2021"))
    results = run_fuzz(target, cases, tmp_path)
    assert set(results) == {case for case, _, _ in cases}
    assert_survives(results, {"serving_default": ["text"], "greedy": ["text"]})
    assert all(r["ok"] for r in results.values()), results
    assert results["serving_default: 1 MB text"]["shapes"]["attention"][2] == 500
