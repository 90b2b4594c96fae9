"""Config dataclass overrides: types, precedence, unknown keys, files."""

import dataclasses
import json

import pytest

from tasks.runner import cli
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
