"""The generative base (issue 18 item 4): typed predict requests, shared sampling flags and
``generate`` command, and ``predict --signature NAME`` with flags from the signature's inputs."""

import json

import pytest

from tasks import char_generation as cg
from tasks import music_generation as mg
from tasks.generative import GenerativeTask
from tasks.runner import cli, training
from tasks.runner import config as config_lib
from tasks.runner.errors import InputError
from tasks.runner.task import PredictRequest

TINY = {"mode": "lines", "embedding_dim": 8, "units": 8, "num_layers": 1, "batch_size": 16,
        "epochs": 1, "dropout": 0.0, "learning_rate": 0.01, "sequence_length": 12}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data = tmp_path_factory.mktemp("data") / "names.txt"
    data.write_text("\n".join(["Anna", "Maria", "Joel", "Lina", "Karl", "Sara", "Tobe",
                               "Elsa", "Jonas", "Mila", "Rita", "Lars"]) + "\n")
    run_dir = str(tmp_path_factory.mktemp("run") / "char")
    config = config_lib.override(cg.CharGenerationConfig(), {**TINY, "data": str(data)})
    training.train(cg.CharGenerationTask(), config, run_dir, verbose=0)
    return run_dir


def _json_lines(argv, capsys, task=None):
    assert cli.main(task or cg.CharGenerationTask(), argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]


def test_both_generators_share_the_base_and_its_flags():
    for task, unit in ((cg.CharGenerationTask(), "character"),
                       (mg.MusicGenerationTask(), "pitch")):
        assert isinstance(task, GenerativeTask) and "generate" in task.extra_commands()
        parser = cli.build_parser(task)
        sub = parser._subparsers._group_actions[0].choices
        flags = {f for a in sub["generate"]._actions for f in a.option_strings}
        assert {"--top-k", "--top-p", "--seed", "--temperature", "--model", "--json"} <= flags
        assert unit in sub["generate"].format_help()
        # predict --signature generate: the sampling inputs become predict flags too.
        predict_flags = {f for a in sub["predict"]._actions for f in a.option_strings}
        assert {"--top-k", "--top-p", "--seed"} <= predict_flags
    with pytest.raises(InputError, match="--top-p in"):
        cg.CharGenerationTask().sampling_inputs(PredictRequest(options={"top_p": 0.0}))
    with pytest.raises(InputError, match="--temperature must be >= 0"):
        mg.MusicGenerationTask().predict_inputs(mg.MusicGenerationConfig(),
                                                PredictRequest(options={"temperature": -1.0}))


def test_typed_request_reaches_predict_inputs():
    task, config = cg.CharGenerationTask(), cg.CharGenerationConfig()
    request = PredictRequest(texts=("Jo", "Ma"), options={"num_samples": 2, "length": 5,
                                                           "temperature": 0.0})
    inputs = task.predict_inputs(config, request)
    assert [p.decode() for p in inputs["prompt"].numpy()] == ["Jo", "Jo", "Ma", "Ma"]
    assert int(inputs["length"]) == 5 and float(inputs["temperature"]) == 0.0
    with pytest.raises(InputError, match="--num-samples"):
        task.predict_inputs(config, request.replace(options={"num_samples": 0}))


def test_predict_signature_flags_match_the_generate_command(run, capsys):
    sampling = ["--top-k", "3", "--top-p", "0.9", "--seed", "5", "--length", "8"]
    by_predict = _json_lines(["predict", "--model", run, "--json", "--signature", "generate",
                              *sampling, "Jo"], capsys)
    by_generate = _json_lines(["generate", "--model", run, "--json", *sampling, "Jo"], capsys)
    assert by_predict == by_generate and by_predict[0]["text"].startswith("Jo")
    assert _json_lines(["predict", "--model", run, "--json", "--signature", "generate",
                        *sampling, "Jo"], capsys) == by_predict  # seeded


def test_signature_flags_are_checked(run, capsys):
    assert cli.main(cg.CharGenerationTask(), ["predict", "--model", run, "--signature",
                                              "generate", "--seed", "1", "Jo"]) == 2
    assert "needs --top-k, --top-p" in capsys.readouterr().err
    assert cli.main(cg.CharGenerationTask(), ["predict", "--model", run, "--top-k", "2",
                                              "Jo"]) == 2
    assert "--top-k: not inputs of --signature 'serving_default'" in capsys.readouterr().err
