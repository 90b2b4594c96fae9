"""NER with Flair-style char-LM features (issue #19): a forward and a backward char_generation
run trained by the CLI, then ``ner train --set char_lm=FW,BW`` a few steps, evaluate, export
and predict from the export in a fresh process; the NER run needs the LM runs no longer; and
one clear error for each bad ``char_lm``."""

import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.language_model import EMBEDDING, RNN
from tasks import char_generation as cg
from tasks import ner, ner_char_lm
from tasks.runner import cli, errors
from tasks.runner import export as export_lib
from tasks.runner import run_dir as rd

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "ner", "tiny_conll")
SENTENCE = "Angela Merkel met Emmanuel Macron in Paris on Monday ."
QUIET = ["--set", "mixed_precision=off", "--set", "jit_compile=off"]
LM = ["--epochs", "1", "--set", "mode=continuous", "--set", "units=12", "--set",
      "embedding_dim=8", "--set", "num_layers=1", "--set", "cell=gru", "--set",
      "sequence_length=40", "--set", "batch_size=16", *QUIET]
NER = ["--epochs", "1", "--set", "steps_per_epoch=3", "--set", "units=16", "--set",
       "embedding_dim=8", "--set", "num_layers=1", "--set", "char_encoder=cnn", "--set",
       "char_units=8", "--set", "char_dim=8", "--set", "casing_dim=4", "--set",
       "batch_size=8", "--set", "dropout=0.0", *QUIET]


def _sentences():
    out = []
    for block in open(os.path.join(FIXTURE, "train.txt"), encoding="utf-8").read().split("\n\n"):
        words = [line.split()[0] for line in block.splitlines()
                 if line.strip() and not line.startswith("-DOCSTART-")]
        out += [" ".join(words)] if words else []
    return out


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    """``(forward run, backward run, text file)`` trained by the CLI on the NER sentences."""
    root = tmp_path_factory.mktemp("char_lm")
    text = root / "text.txt"
    text.write_text("\n\n".join(_sentences() * 2) + "\n", encoding="utf-8")  # paragraphs
    runs = []
    for name, extra in (("fw", []), ("bw", ["--set", "reverse=true"])):
        run = str(root / name)
        assert cli.main(cg.CharGenerationTask(), ["train", "--output", run, "--data", str(text),
                                                  *LM, *extra]) == 0
        runs.append(run)
    return runs[0], runs[1], str(text)


@pytest.fixture(scope="module")
def trained(lms, tmp_path_factory):
    """A NER run with char-LM features, trained from COPIES of the LM runs that are deleted
    afterwards: evaluate / export / predict must not need them."""
    root = tmp_path_factory.mktemp("ner_char_lm")
    copies = [shutil.copytree(run, root / name) for run, name in zip(lms[:2], ("fw", "bw"))]
    run_dir = str(root / "ner")
    assert cli.main(ner.NerTask(), ["train", "--output", run_dir, "--data", FIXTURE, "--set",
                                    f"char_lm={copies[0]},{copies[1]}", *NER]) == 0
    for copy in copies:
        shutil.rmtree(copy)
    return run_dir


def _lm_weights(run):
    model = keras.saving.load_model(os.path.join(run, rd.MODEL), compile=False)
    return model.get_layer(EMBEDDING).get_weights() + model.get_layer(RNN).get_weights()


def test_backward_lm_reads_right_to_left_and_generates_leftward(lms, capsys):
    fw, bw, _ = lms
    task = cg.CharGenerationTask()
    config, prep, _ = rd.load_run(task, bw)
    assert config.reverse and prep.reverse and not rd.load_run(task, fw)[1].reverse
    split = tf.data.Dataset.from_tensor_slices({"text": [" ".join(["Paris on Monday"] * 4)]})
    ids = next(iter(task.make_dataset(config, prep, split, training=False)))[0].numpy()[0]
    read = prep.vocab.decode(tf.constant(ids[ids > 0])).numpy().decode()
    assert read.startswith("yadnoM no siraP")  # the model reads the text right to left
    # Greedy generation continues the prompt to the LEFT: the prompt is the text's end.
    assert cli.main(task, ["predict", "--model", bw, "--prompt", "Paris", "--length", "6",
                           "--temperature", "0", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["text"].endswith("Paris") and len(row["text"]) == len("Paris") + 6
    assert cli.main(task, ["score", "--model", bw, "--json", "Paris", "sirap"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert {r["text"] for r in rows} == {"Paris", "sirap"}


def test_ner_trains_with_frozen_char_lm_features(lms, trained):
    run_dir = trained
    metrics = json.load(open(os.path.join(run_dir, "history.json"), encoding="utf-8"))
    assert len(metrics) == 1 and np.isfinite(metrics[0]["loss"])
    model = keras.saving.load_model(os.path.join(run_dir, rd.MODEL), compile=False)
    assert {"char_lm_fw_ids", "char_lm_fw_positions", "char_lm_bw_ids",
            "char_lm_bw_positions"} <= set(model.input)
    for direction, lm in zip(("fw", "bw"), lms):
        layer = model.get_layer(f"char_lm_{direction}")
        assert not layer.trainable and not layer.trainable_weights
        # Frozen through training, and saved in the NER model itself (the LM copies are gone).
        for ours, theirs in zip(layer.get_weights(), _lm_weights(lm)):
            np.testing.assert_array_equal(ours, theirs)
    assets = os.listdir(os.path.join(run_dir, rd.ASSETS))
    assert {"char_lm.json", "char_lm_chars.vocab.txt"} <= set(assets)
    prep = ner.NerPreprocessor.load(os.path.join(run_dir, rd.ASSETS))
    assert prep.char_lm.directions == ("fw", "bw") and not prep.char_lm.lines
    features = prep.features(tf.constant([["Paris", "on", ""]]))
    assert features["char_lm_fw_positions"].numpy().tolist() == [[6, 9, 0]]
    assert features["char_lm_bw_positions"].numpy().tolist() == [[9, 3, 0]]


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    # export() validates the warm-up sentences in a fresh interpreter (object loader, session
    # loader and warm-up replay) against the in-memory answers: it raises when they differ.
    return export_lib.export(ner.NerTask(), trained, str(tmp_path_factory.mktemp("export")))


def test_evaluate_and_export_serve_raw_sentences(trained, exported, capsys):
    assert cli.main(ner.NerTask(), ["evaluate", "--model", trained, "--split", "test"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["examples"] == 3 and 0.0 <= metrics["f1"] <= 1.0
    serve = export_lib.load_serving_function(exported)  # the unchanged NER signature
    out = serve(text=tf.constant([SENTENCE, ""]))
    assert out["lengths"].numpy().tolist() == [10, 0]
    assert cli.main(ner.NerTask(), ["predict", "--model", trained, "--json", SENTENCE]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["tags"] == out["tags"].numpy()[0].astype(str).tolist()


@pytest.mark.slow  # a third interpreter (TensorFlow start + export load): ~30-60 s
def test_predict_from_the_export_in_a_fresh_process(trained, exported, capsys):
    env = {**os.environ, "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-m", "tasks.ner", "predict", "--model", exported,
                           "--json", SENTENCE], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["text"] == SENTENCE and row["tokens"] == SENTENCE.split()
    assert cli.main(ner.NerTask(), ["predict", "--model", trained, "--json", SENTENCE]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["tags"] == row["tags"]


def test_trainable_char_lm_when_configured(lms):
    task = ner.NerTask()
    config = ner.NerConfig(data=FIXTURE, char_lm=f"{lms[0]},{lms[1]}", char_lm_trainable=True,
                           units=8, embedding_dim=8, num_layers=1, char_encoder="none")
    prep = task.fit_preprocessor(config, task.load_splits(config))
    model = task.build_model(config, prep)
    for direction in ("fw", "bw"):
        layer = model.get_layer(f"char_lm_{direction}")
        assert layer.trainable and len(layer.trainable_weights) == len(layer.weights) > 0
    assert ner_char_lm.feature_layers(ner.NerConfig(), None) is None


def _fake_run(path, task_name, state="finished"):
    os.makedirs(path, exist_ok=True)
    rd.write_marker(str(path), task_name, state)
    return str(path)


def test_bad_char_lm_runs_give_one_clear_error(lms, tmp_path, capsys):
    fw, bw, _ = lms
    sentiment = _fake_run(tmp_path / "sentiment", "sentiment")
    cases = {
        str(tmp_path / "nope"): "does not exist",
        sentiment: "is a sentiment run, not a char_generation run",
        str(tmp_path): "not a run of this suite",
        bw: "is a backward char LM (reverse=true), but the first run must be the forward one",
        f"{fw},{fw}": "is a forward char LM, but the second run must be a backward one",
    }
    # Different case handling: a copy of the backward run whose vocabulary lowercases.
    other = shutil.copytree(bw, tmp_path / "bw_lower")
    meta_path = other / "assets" / "chars.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["config"]["lowercase"] = True
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    cases[f"{fw},{other}"] = "have different character vocabularies"
    # An unfinished run without a checkpoint; one WITH a checkpoint is used, with a warning.
    unfinished = shutil.copytree(fw, tmp_path / "unfinished")
    rd.write_marker(str(unfinished), "char_generation", "training")
    ner_char_lm.load_runs(str(unfinished))
    assert "is an unfinished run" in capsys.readouterr().err
    os.remove(unfinished / rd.MODEL)
    cases[str(unfinished)] = "model.keras is missing (training did not finish"
    for value, message in cases.items():
        with pytest.raises(errors.SuiteError, match=re.escape(message)):
            ner_char_lm.load_runs(value)
    # Through the CLI: exit status 2 and one line naming the problem.
    args = ["train", "--output", str(tmp_path / "ner"), "--data", FIXTURE, *QUIET]
    assert cli.main(ner.NerTask(), args + ["--set", f"char_lm={sentiment}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: char_lm: {sentiment} is a sentiment run, not a char_generation "
                   f"run (train one with python -m tasks.char_generation train)"]
    assert cli.main(ner.NerTask(), args + ["--set", f"char_lm={fw},{bw},{bw}"]) == 2
    assert "char_lm" in capsys.readouterr().err


@pytest.mark.slow  # ~1-2 min: every fuzzed request in a fresh interpreter
def test_export_with_char_lm_survives_fuzzed_requests(exported, tmp_path):
    from tests.tasks.serving_fuzz import assert_survives, run_fuzz, text_cases

    # Empty, blank, 1 MB, NUL, invalid UTF-8, batch 0 and 1000: answered within the RSS cap,
    # the char LMs reading at most MAX_TOKEN_CHARS per token and MAX_SENTENCE_CHARS per row.
    cases = text_cases("serving_default") + text_cases("tag_document")
    results = run_fuzz(exported, cases, tmp_path)
    assert_survives(results, {"serving_default": ["text"], "tag_document": ["text"]})
    assert all(r["ok"] for r in results.values()), results
