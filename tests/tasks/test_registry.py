"""The task registry: registration rules, discovery, ``python -m tasks NAME`` and the data
sources the tasks register with ``pipelines.sources``."""

import dataclasses

import pytest

from pipelines import sources
from tasks import __main__ as tasks_main
from tasks import sentiment
from tasks.runner import registry
from tasks.runner.config import TaskConfig
from tasks.runner.errors import ConfigError
from tasks.runner.task import Task


@dataclasses.dataclass(frozen=True)
class _Config(TaskConfig):
    pass


def test_builtin_tasks_are_found_in_order_with_their_data_sources():
    names = registry.names()
    assert names[:5] == ["sentiment", "ner", "char_generation", "music_generation", "seq2seq"]
    for name in names[:5]:
        task = registry.get(name)
        assert task.name == name and type(task).__module__ == f"tasks.{name}"
        data = sources.task_data(name)
        assert data.default in data.named
    assert registry.task_class("sentiment") is sentiment.SentimentTask


def test_register_refuses_what_is_not_a_task_and_taken_names(monkeypatch):
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    with pytest.raises(TypeError, match="Task subclass"):
        registry.register(object)

    class Nameless(Task):
        config_class = _Config

    with pytest.raises(TypeError, match="needs a name"):
        registry.register(Nameless)

    class Impostor(Task):
        name, config_class = "sentiment", _Config

    with pytest.raises(ValueError, match="'sentiment'.*taken by tasks.sentiment.SentimentTask"):
        registry.register(Impostor)
    # `python -m tasks.sentiment` defines the class again in __main__: not a second task.
    twin = type("SentimentTask", (Task,), {"name": "sentiment", "config_class": _Config,
                                           "__module__": "__main__"})
    assert registry.register(twin) is twin
    assert registry.task_class("sentiment") is sentiment.SentimentTask


def test_unknown_names_are_one_clear_error(capsys):
    with pytest.raises(ConfigError, match="unknown task 'poetry'; known tasks: sentiment, ner"):
        registry.get("poetry")
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        sources.load("poetry")
    assert tasks_main.main(["poetry", "train"]) == 2
    assert "unknown task 'poetry'" in capsys.readouterr().err
    assert tasks_main.main(["--list"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["sentiment", "ner"]
    assert tasks_main.main([]) == 2


def test_generic_entry_runs_a_builtin_task(capsys):
    with pytest.raises(SystemExit) as info:
        tasks_main.main(["seq2seq", "--help"])
    assert info.value.code == 0
    assert "python -m tasks.seq2seq" in capsys.readouterr().out
