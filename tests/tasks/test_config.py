"""Config dataclass overrides: types, precedence, unknown keys, files."""

import dataclasses
import json

import pytest

from tasks.runner import cli, errors
from tasks.runner import config as config_lib
from tasks.runner.task import Task


@dataclasses.dataclass(frozen=True)
class ToyConfig(config_lib.TaskConfig):
    units: int = 8
    crf: bool = True
    locales: tuple[str, ...] = ("en_US",)
    threshold: float | None = None


class ToyTask(Task):
    name = "toy"
    config_class = ToyConfig


def parse(argv):
    args = cli.build_parser(ToyTask()).parse_args(argv)
    return cli.config_from_args(ToyTask(), args)


def test_set_coerces_types():
    config = parse(["train", "--set", "units=128", "--set", "crf=false",
                    "--set", "locales=de_DE,fr_FR", "--set", "threshold=0.25"])
    assert config.units == 128 and config.crf is False
    assert config.locales == ("de_DE", "fr_FR") and config.threshold == 0.25


def test_optional_field_accepts_none():
    assert parse(["train", "--set", "threshold=none"]).threshold is None


def test_precedence_file_then_hparams_then_set_then_flags(tmp_path):
    (tmp_path / "c.yaml").write_text("units: 16\nepochs: 3\nlearning_rate: 0.01\n")
    (tmp_path / "best.json").write_text(json.dumps({"hparams": {"units": 32, "epochs": 4}}))
    config = parse(["train", "--config", str(tmp_path / "c.yaml"),
                    "--hparams", str(tmp_path / "best.json"),
                    "--set", "epochs=5", "--epochs", "6"])
    assert (config.units, config.epochs, config.learning_rate) == (32, 6, 0.01)


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="unknown config key.*'unitz'"):
        parse(["train", "--set", "unitz=3"])


def test_bad_value_is_named():
    with pytest.raises(ValueError, match="units='many' is not a valid int"):
        parse(["train", "--set", "units=many"])
    with pytest.raises(ValueError, match="crf='maybe' is not a boolean"):
        parse(["train", "--set", "crf=maybe"])


def test_set_without_equals_sign():
    with pytest.raises(ValueError, match="key=value"):
        parse(["train", "--set", "units"])


def test_invalid_json_file_names_line(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "units": 3,\n}\n')
    with pytest.raises(ValueError, match=r"bad.json: line 3"):
        parse(["train", "--config", str(path)])


def test_config_json_round_trip(tmp_path):
    config = parse(["train", "--set", "locales=a,b", "--set", "units=7"])
    path = tmp_path / "config.json"
    path.write_text(config_lib.to_json(config))
    assert config_lib.from_json_file(ToyConfig, str(path)) == config


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ToyConfig().units = 3


# ---- validation (issue #16, item 5) ------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "epochs=0 (must be >= 1) from --epochs"),
    (["--epochs", "-3"], "epochs=-3 (must be >= 1) from --epochs"),
    (["--set", "learning_rate=-1"], "learning_rate=-1.0 (must be > 0) from --set"),
    (["--set", "learning_rate=nan"], "learning_rate=nan (must be finite)"),
    (["--set", "dropout=1"], "dropout=1.0 (must be in [0, 1))"),
    (["--set", "cell=lstmx"], "cell='lstmx' (must be one of 'lstm'"),
    (["--set", "batch_size=0"], "batch_size=0 (must be >= 1)"),
    (["--max-examples", "-1"], "max_examples=-1 (must be >= 0) from --max-examples"),
    (["--seed", "-1"], "seed=-1 (must be an int in [0, 2**32))"),
])
def test_invalid_values_are_named_with_their_origin(argv, message):
    with pytest.raises(errors.ConfigError) as err:
        parse(["train", *argv])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_every_invalid_value_is_listed_once(tmp_path):
    (tmp_path / "c.yaml").write_text("units: 0\n")
    with pytest.raises(errors.ConfigError) as err:
        parse(["train", "--config", str(tmp_path / "c.yaml"), "--set", "ema_momentum=1"])
    assert "units=0 (must be >= 1) from " + str(tmp_path / "c.yaml") in str(err.value)
    assert "ema_momentum=1.0 (must be in [0, 1)) from --set" in str(err.value)


def test_a_later_layer_may_fix_an_earlier_one(tmp_path):
    (tmp_path / "c.yaml").write_text("units: 0\n")  # invalid alone, fixed by --set
    assert parse(["train", "--config", str(tmp_path / "c.yaml"), "--set", "units=4"]).units == 4


def test_task_configs_add_their_own_checks():
    from tasks import ner, sentiment

    with pytest.raises(errors.ConfigError, match=r"max_length=0 \(must be >= 1\) from x"):
        config_lib.override(sentiment.SentimentConfig(), {"max_length": 0}, "x", validate=True)
    with pytest.raises(errors.ConfigError, match="pooling='sum'"):
        sentiment.SentimentConfig(pooling="sum").validate()
    with pytest.raises(errors.ConfigError, match="char_encoder='gru'.*embeddings='/nope.txt'"):
        ner.NerConfig(char_encoder="gru", embeddings="/nope.txt").validate()
    with pytest.raises(errors.ConfigError, match=r"singleton_unk=1.5 \(must be in \[0, 1\]\)"):
        ner.NerConfig(singleton_unk=1.5)  # at construction


def test_every_task_default_config_is_valid():
    from tasks import char_generation, music_generation, ner, sentiment, seq2seq

    for module in (sentiment, ner, char_generation, music_generation, seq2seq):
        for cls in vars(module).values():
            if isinstance(cls, type) and issubclass(cls, config_lib.TaskConfig):
                assert cls().validate() == cls()


def test_booleans_are_not_numbers(tmp_path):
    (tmp_path / "c.yaml").write_text("epochs: true\n")
    with pytest.raises(errors.ConfigError, match="epochs=True is not a valid int"):
        parse(["train", "--config", str(tmp_path / "c.yaml")])


def test_broken_yaml_is_one_line_with_file_and_position(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("units: 3\nepochs: [1\n")
    with pytest.raises(errors.ConfigError) as err:
        parse(["train", "--config", str(path)])
    assert str(err.value).startswith(f"{path}: line 3, column 1: invalid YAML (")
    assert "\n" not in str(err.value)


def test_config_file_that_is_missing_or_not_a_mapping(tmp_path):
    with pytest.raises(errors.ConfigError, match="config file not found"):
        parse(["train", "--config", str(tmp_path / "none.yaml")])
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(errors.ConfigError, match="expected a mapping"):
        parse(["train", "--config", str(tmp_path / "list.json")])
    (tmp_path / "bad.json").write_text('{"hparams": 3}')
    with pytest.raises(errors.ConfigError, match="'hparams' must be a mapping"):
        parse(["train", "--hparams", str(tmp_path / "bad.json")])
