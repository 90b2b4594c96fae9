"""The command line's handling of bad input (issue #16): one-line errors before any data
loads, tracebacks for bugs, --output/--export-dir safety, predict inputs kept in order."""

import argparse
import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tasks import sentiment
from tasks.runner import cli, errors

CSV = os.path.join(os.path.dirname(__file__), "..", "fixtures", "sentiment", "tiny_reviews.csv")


class RaisingTask(sentiment.SentimentTask):
    """Sentiment whose data loading raises a given exception (nothing else runs)."""

    def __init__(self, exception):
        self.exception = exception

    def load_splits(self, config, evaluation=False):
        raise self.exception


def run_main(task, argv, capsys):
    code = cli.main(task, argv)
    captured = capsys.readouterr()
    return code, captured.err.strip()


# ---- errors: one line for input, a traceback for bugs ------------------------------------
@pytest.mark.parametrize("exception", [
    errors.DataError("bad tag", "train.txt", 7, "B-XYZ"), errors.RunDirError("run dir busy"),
    FileNotFoundError("no such file: x.csv")])
def test_input_errors_are_one_line(exception, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RECURRENT_SUITE_DEBUG", raising=False)
    code, err = run_main(RaisingTask(exception), ["train", "--output", str(tmp_path / "r")],
                         capsys)
    assert code == 2 and err == f"error: {exception}"


@pytest.mark.parametrize("exception", [KeyError("label"), ValueError("bad shape"),
                                       RuntimeError("boom")])
def test_unknown_errors_keep_their_traceback_and_say_how_to_report(exception, tmp_path):
    with pytest.raises(type(exception)) as info:
        cli.main(RaisingTask(exception), ["train", "--output", str(tmp_path / "r")])
    assert errors.REPORT_NOTE in info.value.__notes__


def test_debug_variable_raises_input_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("RECURRENT_SUITE_DEBUG", "1")
    with pytest.raises(errors.DataError):
        cli.main(RaisingTask(errors.DataError("x")), ["train", "--output", str(tmp_path / "r")])



def test_a_bug_in_task_code_after_loading_keeps_its_traceback(monkeypatch, capsys):
    # A KeyError from task code (here predict's post-processing) is a bug, not bad input: it
    # is raised with the report note, never turned into a one-line "error:".
    monkeypatch.delenv("RECURRENT_SUITE_DEBUG", raising=False)
    monkeypatch.setattr(cli, "_serve", lambda task, args: (
        sentiment.SentimentConfig(), lambda **inputs: {}, None))
    with pytest.raises(KeyError) as info:
        cli.main(sentiment.SentimentTask(), ["predict", "good film"])
    assert errors.REPORT_NOTE in info.value.__notes__
    assert "error:" not in capsys.readouterr().err


def test_an_export_without_the_signature_is_one_line(tmp_path, capsys, monkeypatch):
    # Looking a signature up in an export raised a KeyError (so a traceback asking for a bug
    # report) when the user gave the wrong export; it is the project's ExportError.
    from tasks import char_generation
    from tasks.runner import export as export_lib

    monkeypatch.delenv("RECURRENT_SUITE_DEBUG", raising=False)
    module = tf.Module()
    module.serve = tf.function(lambda x: {"y": x + 1.0},
                               input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "1"), signatures={"serving_default": module.serve})
    with pytest.raises(errors.ExportError, match=r"no signature 'generate'.*'serving_default'"):
        export_lib.load_serving_function(str(tmp_path), "generate")
    code, err = run_main(char_generation.CharGenerationTask(),
                         ["generate", "--model", str(tmp_path), "hello"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    # The CLI resolves the export through tasks.runner.loading, which names the signature asked for
    # and the ones the export has.
    assert err.startswith("error: ") and "'generate'" in err and "serving_default" in err

# ---- item 5: config errors before any data loads -----------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "epochs=0 (must be >= 1) from --epochs"),
    (["--set", "learning_rate=-1"], "learning_rate=-1.0 (must be > 0) from --set"),
    (["--set", "max_length=0"], "max_length=0 (must be >= 1) from --set")])
def test_train_refuses_bad_values_before_loading_data(argv, message, tmp_path, capsys):
    output = tmp_path / "run"
    loads = RaisingTask(AssertionError("the data must not be loaded"))
    code, err = run_main(loads, ["train", "--output", str(output), *argv], capsys)
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not output.exists()


def test_broken_yaml_config_is_one_line(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("epochs: 2\n  units: [3\n")
    code, err = run_main(sentiment.SentimentTask(),
                         ["train", "--config", str(tmp_path / "c.yaml")], capsys)
    assert code == 2 and err.startswith(f"error: {tmp_path / 'c.yaml'}: line 2, column")
    assert "invalid YAML" in err and len(err.splitlines()) == 1


def test_train_api_validates_too(tmp_path):
    from tasks.runner import training

    bad = sentiment.SentimentConfig(data=CSV, epochs=0)  # built directly: not validated yet
    with pytest.raises(errors.ConfigError, match="epochs=0"):
        training.train(sentiment.SentimentTask(), bad, str(tmp_path / "r"), verbose=0)
    assert not (tmp_path / "r").exists()


# ---- item 7: --output / --export-dir ------------------------------------------------------
def test_output_that_is_a_file_or_a_users_directory_is_refused(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("mine")
    users = tmp_path / "users"
    users.mkdir()
    (users / "thesis.tex").write_text("mine")
    loads = RaisingTask(AssertionError("the data must not be loaded"))
    code, err = run_main(loads, ["train", "--output", str(tmp_path / "file.txt")], capsys)
    assert code == 2 and err == (f"error: --output {tmp_path / 'file.txt'} is a file, not a "
                                 f"directory; choose a directory path")
    code, err = run_main(loads, ["train", "--output", str(users)], capsys)
    assert code == 2 and "is a non-empty directory that holds no run" in err
    assert os.listdir(users) == ["thesis.tex"]
    code, err = run_main(loads, ["tune", "--output", str(users)], capsys)
    assert code == 2 and "holds no run" in err


def test_run_directories_empty_or_marked_pass_the_check(tmp_path):
    recognised = ("config.json", cli.RUN_MARKER)
    cli.check_output_dir(str(tmp_path / "new"), "--output", recognised)
    cli.check_output_dir(str(tmp_path), "--output", recognised)  # empty
    for name in recognised:
        run = tmp_path / name.strip(".")
        run.mkdir()
        (run / name).write_text("{}")
        (run / "model.keras").write_text("")
        cli.check_output_dir(str(run), "--output", recognised)


def test_export_dir_that_is_a_file_is_refused_before_loading(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    code, err = run_main(sentiment.SentimentTask(), [
        "export", "--model", str(tmp_path / "no_run"), "--export-dir", str(tmp_path / "f")],
        capsys)
    assert code == 2 and err == f"error: --export-dir {tmp_path / 'f'} is a file, not a " \
                                f"directory; choose a directory path"


# ---- item 6: predict inputs -----------------------------------------------------------------
def read(argv, stdin=None):
    args = cli.build_parser(sentiment.SentimentTask()).parse_args(["predict", *argv])
    return cli.read_inputs(args, stdin)


def test_input_file_keeps_blank_lines_in_order(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"good\r\n\r\n  \nbad\n\nlast\n")
    assert read(["first", "--input-file", str(path)]) == ["first", "good", "", "  ", "bad", "",
                                                          "last"]
    path.write_text("no final newline")
    assert read(["--input-file", str(path)]) == ["no final newline"]


def test_input_file_dash_reads_stdin():
    assert read(["--input-file", "-"], io.StringIO("a\n\nb\n")) == ["a", "", "b"]


def test_bad_input_files(tmp_path):
    with pytest.raises(errors.InputError, match="no such file"):
        read(["--input-file", str(tmp_path / "none.txt")])
    with pytest.raises(errors.InputError, match="is a directory"):
        read(["--input-file", str(tmp_path)])
    (tmp_path / "latin1.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(errors.InputError, match=r"latin1.txt:2: not valid UTF-8"):
        read(["--input-file", str(tmp_path / "latin1.txt")])


def fake_sentiment_serving(text):
    """Positive iff the text contains 'good'; fails on blank texts like a real graph may."""
    texts = [t.decode() for t in text.numpy().tolist()]
    assert all(t.strip() for t in texts), "a blank input reached the model"
    positive = np.array([float("good" in t) for t in texts], np.float32)
    probs = np.stack([1 - positive, positive], axis=1)
    return {"label": tf.constant(["positive" if p else "negative" for p in positive]),
            "probabilities": tf.constant(probs), "class_id": tf.constant(positive, tf.int32)}


@pytest.fixture
def fake_serving(monkeypatch):
    monkeypatch.setattr(cli, "_serve", lambda task, args: (
        sentiment.SentimentConfig(), fake_sentiment_serving, None))


def test_blank_inputs_get_explicit_empty_results_in_place(fake_serving, tmp_path, capsys):
    lines = ["good film", "", "dull", "   ", "good", "", "bad", "good again", "meh"]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n")
    task = sentiment.SentimentTask()
    assert cli.main(task, ["predict", "--json", "--input-file", str(tmp_path / "in.txt")]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text"] for r in rows] == lines  # 9 in, 9 out, aligned
    assert [r["label"] for r in rows] == ["positive", None, "negative", None, "positive", None,
                                          "negative", "positive", "negative"]
    assert [bool(r.get("empty")) for r in rows] == [not line.strip() for line in lines]
    assert cli.main(task, ["predict", "good", ""]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].split()[:2] == ["positive", "1.000"] and out[1] == "(empty input)"


def test_only_blank_inputs_never_reach_the_model(fake_serving, capsys):
    assert cli.main(sentiment.SentimentTask(), ["predict", "--json", ""]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row == {"text": "", "label": None, "probability": None, "probabilities": None,
                   "empty": True}


def test_no_inputs_at_all_is_an_error(fake_serving, capsys):
    code, err = run_main(sentiment.SentimentTask(), ["predict"], capsys)
    assert code == 2 and "nothing to predict" in err


# ---- predict --signature NAME: flags from the signature's input signature --------------------
def test_signature_flags_are_the_input_signature_names_of_every_registered_task():
    from tasks.runner import registry
    from tasks.runner.task import SIGNATURE_INPUT_PREFIX

    derived_by_task = {}
    for name in registry.names():
        task = registry.get(name)
        signatures = task.serving_signatures()  # read from the class: nothing built or loaded
        assert list(signatures)[0] == "serving_default", name
        if task.serving_class is not None:
            assert tuple(signatures) == getattr(task.serving_class, "signature_names",
                                                ("serving_default",)), name
        predict = cli.build_parser(task)._subparsers._group_actions[0].choices["predict"]
        derived = {a.dest[len(SIGNATURE_INPUT_PREFIX):]: a for a in predict._actions
                   if a.dest.startswith(SIGNATURE_INPUT_PREFIX)}
        own = {a.dest for a in predict._actions} - {SIGNATURE_INPUT_PREFIX + n for n in derived}
        inputs = {spec.name: spec for specs in list(signatures.values())[1:] for spec in specs}
        # A flag per input of the other signatures, named as the input signature names it,
        # except those the task's own flags or the positional texts give (and rank >= 2).
        assert set(derived) == {n for n, spec in inputs.items()
                                if n not in own | {"text"} and spec.shape.rank <= 1}, name
        for input_name, action in derived.items():
            spec = inputs[input_name]
            assert action.option_strings == ["--" + input_name.replace("_", "-")]
            assert action.nargs == ("+" if spec.shape.rank else None)
            if spec.dtype.is_bool:  # true/false (1/0): a Python bool, not a non-empty string
                assert action.type("true") is True and action.type("0") is False, name
                with pytest.raises(argparse.ArgumentTypeError):
                    action.type("maybe")
                continue
            kind = int if spec.dtype.is_integer else float if spec.dtype.is_floating else str
            assert action.type is kind, (name, input_name)
        derived_by_task[name] = set(derived)
    assert derived_by_task["char_generation"] == derived_by_task["music_generation"] == {
        "top_k", "top_p", "seed"}
    assert derived_by_task["sentiment"] == derived_by_task["ner"] == set()
    # translate_nbest's ranking settings (a float, a bool and a float scalar).
    assert derived_by_task["seq2seq"] == {"length_penalty", "average", "coverage_penalty"}


def test_signature_flags_follow_a_declared_serving_class_without_warmups():
    class Serving(tf.Module):
        signature_names = ("serving_default", "rank")

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serving_default(self, text):
            return {"n": tf.strings.length(text)}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None], tf.float32, name="weights"),
                                      tf.TensorSpec([], tf.bool, name="normalise")])
        def rank(self, text, weights, normalise):
            return {"score": weights}

    class Ranker(sentiment.SentimentTask):
        serving_class = Serving

        def warmup_requests(self, config):
            raise AssertionError("flags come from the input signature, not the warm-up")

    parser = cli.build_parser(Ranker())
    args = parser.parse_args(["predict", "a", "--signature", "rank", "--weights", "0.5", "2",
                              "--normalise", "true"])
    assert args.signature_input__weights == [0.5, 2.0] and args.signature_input__normalise
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "a", "--normalise", "maybe"])
