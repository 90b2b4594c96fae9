"""One trackable preprocessor: fitted, saved in the run dir, loaded back and exported.

Each task's preprocessor is fitted on tiny data and written into a run directory beside an
untrained model (no training needed: the weights only have to be the same everywhere); the
loaded preprocessor gives the same ids, the export (validated by ``export`` itself in a fresh
process through both TensorFlow loaders, TF Serving's session loader included) answers as the
fitted one's serving module, its ``assets/`` folder holds the run directory's files, and the
serving module holds no lookup table of its own: every table it tracks is the preprocessor's.
"""

import os

import pytest
import tensorflow as tf

from tasks import language_model, ner, sentiment, seq2seq
from tasks.runner import config as config_lib
from tasks.runner import export as export_lib
from tasks.runner import run_dir as rd
from tasks.runner import serving_check
from tasks.runner.task import Preprocessor

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")
CASES = {
    "sentiment": (sentiment.SentimentTask, {
        "data": os.path.join(FIXTURES, "sentiment", "tiny_reviews.csv"), "max_tokens": 100,
        "max_length": 12, "embedding_dim": 4, "units": 4}),
    "ner": (ner.NerTask, {
        "data": os.path.join(FIXTURES, "ner", "tiny_conll"), "embedding_dim": 4, "units": 4,
        "num_layers": 1, "char_encoder": "cnn", "char_dim": 4, "char_units": 4,
        "casing_dim": 2}),
    "language_model": (language_model.LanguageModelTask, {
        "data": os.path.join(FIXTURES, "text", "story.txt"), "units": 4, "embedding_dim": 4,
        "num_layers": 1, "bptt": 5, "batch_size": 2}),
    "seq2seq": (seq2seq.Seq2SeqTask, {
        "max_examples": 48, "units": 8, "embedding_dim": 4, "beam_width": 2}),
}


def lookup_tables(root, skip=None) -> dict:
    """``{id: table}`` of every lookup table a SavedModel of ``root`` would hold (its
    trackable children, walked as ``tf.saved_model.save`` walks them), not entering ``skip``."""
    found, seen, stack = {}, {id(skip)}, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, tf.lookup.experimental.DenseHashTable | tf.lookup.StaticHashTable):
            found[id(obj)] = obj
        children = getattr(obj, "_trackable_children", None)
        if children is not None:
            stack.extend(v for v in children(save_type="checkpoint").values()
                         if not isinstance(v, tf.types.experimental.GenericFunction))
    return found


def write_run(task, config, preprocessor, run_dir: str) -> None:
    """A finished run directory as ``train`` leaves it, with an untrained model."""
    os.makedirs(run_dir)
    rd.write_marker(run_dir, task.name, "finished")
    rd.write_text_atomic(rd.path(run_dir, rd.CONFIG), config_lib.to_json(config))
    preprocessor.save(rd.path(run_dir, rd.ASSETS))
    preprocessor.track_assets(rd.path(run_dir, rd.ASSETS))
    task.build_model(config, preprocessor).save(rd.path(run_dir, rd.MODEL))


def answers(module, requests: dict) -> dict:
    return {name: {k: serving_check.as_numpy(v) for k, v in getattr(module, name)(
        **{k: tf.constant(v) for k, v in inputs.items()}).items()}
        for name, inputs in requests.items()}


# sentiment and ner in the default run; the seq2seq and word-LM exports (~45 s / ~25 s on 2
# cores) with `make test-slow`.
SLOW = {"seq2seq", "language_model"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                  for n in sorted(CASES)])
def test_one_preprocessor_is_fitted_saved_loaded_and_exported(name, tmp_path):
    task_class, overrides = CASES[name]
    task = task_class()
    config = config_lib.override(task.config_class(), overrides)
    splits = task.load_splits(config)
    fitted = task.fit_preprocessor(config, splits)
    assert isinstance(fitted, Preprocessor) and isinstance(fitted, tf.Module)
    run_dir = str(tmp_path / "run")
    write_run(task, config, fitted, run_dir)
    assets = rd.path(run_dir, rd.ASSETS)
    # The object the runner saved tracks its own files; loading gives the same object back.
    assert sorted(fitted.asset_paths()) == sorted(
        os.path.abspath(os.path.join(folder, f)) for folder, _, files in os.walk(assets)
        for f in files)
    loaded = task.load_preprocessor(config, assets)
    assert type(loaded) is type(fitted) and loaded.asset_paths() == fitted.asset_paths()
    for module in (fitted, loaded):
        vocabularies = [v for v in module.submodules if hasattr(v, "get_vocabulary")]
        assert vocabularies, f"{name}: no vocabulary tracked by the preprocessor"
    assert [v.get_vocabulary() for v in fitted.submodules if hasattr(v, "get_vocabulary")] == \
        [v.get_vocabulary() for v in loaded.submodules if hasattr(v, "get_vocabulary")]
    # The same ids: the first batch the model would train on, from either object.
    batches = [next(iter(task.make_dataset(config, p, splits.validation, training=False)))
               for p in (fitted, loaded)]
    for a, b in zip(tf.nest.flatten(batches[0]), tf.nest.flatten(batches[1]), strict=True):
        assert a.dtype == b.dtype and a.numpy().tolist() == b.numpy().tolist()

    # The serving module keeps the ONE preprocessor and no table of its own.
    model = rd.load_run(task, run_dir)[2]  # the run's weights, as the export will use
    module = task.serving_module(config, model, fitted)
    assert module.preprocessor is fitted
    tables = lookup_tables(module)
    assert tables, f"{name}: the serving module tracks no lookup table"
    assert set(tables) == set(lookup_tables(fitted)), \
        f"{name}: the serving module tracks tables the preprocessor does not hold"
    assert not lookup_tables(module, skip=fitted), \
        f"{name}: the serving module reaches a table other than through its preprocessor"

    requests = {k: export_lib.to_numpy_inputs(v) for k, v in task.warmup_requests(config).items()}
    want = answers(module, requests)
    version = export_lib.export(task, run_dir, str(tmp_path / "saved"))
    # The export carries the run's preprocessor files as SavedModel assets.
    exported = set(os.listdir(os.path.join(version, "assets")))
    vocab_files = {os.path.basename(p) for p in fitted.asset_paths()}
    assert {f for f in vocab_files if f.endswith(".vocab.txt")}, vocab_files
    assert vocab_files <= exported, (vocab_files, exported)
    # Fitted (in memory) == exported and reloaded (the export itself was also checked in a
    # fresh process through both loaders against the run's loaded preprocessor).
    got = serving_check.object_loader_outputs(version, requests)
    for signature in want:
        export_lib.compare_outputs(got[signature], want[signature], f"{name} {signature}")
