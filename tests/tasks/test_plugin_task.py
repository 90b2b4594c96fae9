"""Issue 18's proof: a sixth task added without editing tasks/ or pipelines/.

A temporary directory on ``sys.path`` holds an "installed" package: ``pos_plugin`` (the
tagger of tests/fixtures/plugins/pos_tagger.py and a tiny CoNLL corpus) and its
``pos_plugin-0.1.dist-info`` naming the module in the entry-point group
``recurrent_suite.tasks``. The registry finds it; the shared command line then trains,
evaluates, predicts with, tunes and exports it, and ``make demo`` lists it.
"""

import json
import os
import shutil
import sys

import pytest

from pipelines import sources
from tasks import __main__ as tasks_main
from tasks import demo
from tasks.runner import export as export_lib
from tasks.runner import loading, registry

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The plugin installed into a temporary site directory; uninstalled after."""
    site = tmp_path_factory.mktemp("site")
    package = site / "pos_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(os.path.join(FIXTURES, "plugins", "pos_tagger.py"), package / "tagger.py")
    shutil.copytree(os.path.join(FIXTURES, "conll", "conll2003"), package / "pos_data")
    info = site / "pos_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pos-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[recurrent_suite.tasks]\npos = pos_plugin.tagger\n")
    sys.path.insert(0, str(site))
    registry.rescan()
    yield site
    sys.path.remove(str(site))
    for name in [m for m in sys.modules if m == "pos_plugin" or m.startswith("pos_plugin.")]:
        del sys.modules[name]
    # Only the plug-in leaves: the built-in tasks registered meanwhile stay (their modules
    # are imported once and would not register again).
    registry._TASKS.pop("pos", None)
    sources._REGISTRY.pop("pos", None)
    registry.rescan()


def _main(argv, capsys):
    code = tasks_main.main(argv)
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0, out[-5:]
    return out


def test_the_registry_and_the_demo_find_the_plugin(plugin, capsys):
    assert "pos" in registry.names()
    assert registry.names()[:5] == ["sentiment", "ner", "char_generation", "music_generation",
                                    "seq2seq"]
    task = registry.get("pos")
    assert type(task).__module__ == "pos_plugin.tagger"
    assert demo.main(["--list"]) == 0
    assert "pos" in capsys.readouterr().out.split()
    splits = sources.load("pos", max_examples=2)
    assert splits.info["source"] == "tiny" and "NNP" in splits.info["tag_names"]
    assert [t.decode() for t in next(iter(splits.train))["tags"].numpy()][:2] == ["NNP", "VBZ"]


def test_train_evaluate_predict_tune_export(plugin, tmp_path, capsys):
    run = str(tmp_path / "run")
    _main(["pos", "train", "--output", run, "--epochs", "1", "--set", "units=8", "--quiet"],
          capsys)
    assert os.path.exists(os.path.join(run, "model.keras"))
    metrics = json.loads(_main(["pos", "evaluate", "--model", run], capsys)[-1])
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["examples"] >= 1

    lines = _main(["pos", "predict", "--model", run, "--json", "EU rejects German call",
                   "Peter Blackburn"], capsys)
    results = [json.loads(line) for line in lines]
    assert [len(r["tags"]) for r in results] == [4, 2]
    names = set(registry.get("pos").load_preprocessor(None, os.path.join(run, "assets"))
                .tags.get_vocabulary())
    assert all(t in names for r in results for t in r["tags"])

    tune_dir = str(tmp_path / "tune")
    _main(["pos", "tune", "--output", tune_dir, "--max-trials", "1", "--epochs", "1",
           "--quiet"], capsys)
    with open(os.path.join(tune_dir, "best.json"), encoding="utf-8") as f:
        assert "units" in json.dumps(json.load(f))

    base = str(tmp_path / "saved_models" / "pos")
    out = _main(["pos", "export", "--model", run, "--export-dir", base], capsys)
    assert "validated in a fresh process" in out[-1]
    serve = export_lib.load_serving_function(os.path.join(base, "1"))
    answer = serve(text=["EU rejects German call"])
    assert answer["length"].numpy().tolist() == [4]
    assert [t.decode() for t in answer["tags"].numpy()[0]] == results[0]["tags"]

    # One load path: the export carries the config it was trained with, and names its task.
    loaded = loading.load(base)
    assert (loaded.kind, loaded.task.name, loaded.config.units) == ("export", "pos", 8)
    assert loading.load(run, model=False).config == loaded.config
    assert loaded.signature_names() == ["serving_default"]


@pytest.mark.slow  # ~30 s; the default run keeps the plug-in train..export test
def test_the_demo_runs_the_plugin(plugin, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the demo exports into ./saved_models/<task>
    assert demo.main(["--tasks", "pos", "--runs-dir", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "demo finished: 1 task(s) ok ['pos']" in out
    assert "EU rejects German call" in out.split("prediction made by the export:")[1]
    assert os.path.isdir(tmp_path / "saved_models" / "pos" / "1")


def test_unknown_task_is_one_line(capsys):
    assert tasks_main.main(["no_such_task", "train"]) == 2
    assert "unknown task 'no_such_task'" in capsys.readouterr().err
