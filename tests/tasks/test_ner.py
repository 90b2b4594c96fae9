"""NER task on tiny CoNLL fixtures: reader -> pipeline -> BiRNN-CRF -> Viterbi -> seqeval,
overfitting 20 sentences to entity F1 1.0, CLI evaluate/predict, export + fresh-process serving.
"""

import argparse
import importlib.util
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.layers.crf import CRFModel
from pipelines.ner_features import replace_singletons
from tasks import ner
from tasks.runner import cli, training
from tasks.runner import config as config_lib
from tasks.runner import export as export_lib
from tests.tasks.export_checks import assert_loaders_agree
from tests.tasks.serving_fuzz import (
    assert_survives,
    run_fuzz,
    skip_export_revalidation,
    text_cases,
)

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ner", "tiny_conll")
# F1 1.0 on the training sentences after ~7 epochs; early stopping ends the run 3 later.
TINY = {"embedding_dim": 16, "units": 32, "num_layers": 1, "char_encoder": "cnn",
        "char_units": 8, "char_dim": 8, "casing_dim": 4, "dropout": 0.0, "batch_size": 8,
        "learning_rate": 0.03, "epochs": 16, "patience": 3, "mixed_precision": "off",
        "singleton_unk": 0.0, "lowercase": False}
SENTENCE = "Angela Merkel met Emmanuel Macron in Paris on Monday ."


@pytest.fixture(scope="module")
def task():
    return ner.NerTask()


@pytest.fixture(scope="module")
def overfit_data(tmp_path_factory):
    """The 20 training sentences also serve as validation: selection then measures overfit."""
    root = tmp_path_factory.mktemp("ner_data")
    shutil.copy(os.path.join(FIXTURE, "train.txt"), root / "train.txt")
    shutil.copy(os.path.join(FIXTURE, "train.txt"), root / "valid.txt")
    shutil.copy(os.path.join(FIXTURE, "test.txt"), root / "test.txt")
    return str(root)


def tiny_config(data, **changes):
    return config_lib.override(ner.NerConfig(), {**TINY, "data": data, **changes})


@pytest.fixture(scope="module")
def trained(task, overfit_data, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run") / "ner")
    metrics = training.train(task, tiny_config(overfit_data), run_dir, verbose=0)
    return run_dir, metrics


def test_spans_with_character_offsets_and_highlight():
    sentence = "Angela  Merkel visited the U.S. today."
    tokens = ["Angela", "Merkel", "visited", "the", "U", ".", "S", ".", "today", "."]
    tags = ["B-PER", "E-PER", "O", "O", "B-LOC", "I-LOC", "I-LOC", "E-LOC", "O", "O"]
    spans = ner.spans_with_offsets(sentence, tokens, tags)
    assert spans == [{"text": "Angela  Merkel", "type": "PER", "start": 0, "end": 14},
                     {"text": "U.S.", "type": "LOC", "start": 27, "end": 31}]
    assert ner.highlight(sentence, spans) == "[Angela  Merkel|PER] visited the [U.S.|LOC] today."


def test_reader_to_batched_features(task):
    config = tiny_config(FIXTURE, scheme="BIOES")
    splits = task.load_splits(config)
    assert splits.info["scheme"] == "IOB2" and splits.info["examples"]["train"] == 20
    prep = task.fit_preprocessor(config, splits)
    assert prep.tag_names[0] == "O" and "S-LOC" in prep.tag_names and prep.input_scheme == "IOB2"
    padded = 0
    for x, y in task.make_dataset(config, prep, splits.train, training=False):
        word_ids, char_ids, casing = (x[k].numpy() for k in ("word_ids", "char_ids",
                                                             "casing_ids"))
        assert char_ids.shape[:2] == word_ids.shape == casing.shape == y.shape
        pad = word_ids == 0
        padded += pad.sum()
        assert not casing[pad].any() and not char_ids[pad].any() and not y.numpy()[pad].any()
        assert (casing[~pad] > 0).all() and (char_ids[~pad][:, 0] > 0).all()
    assert padded > 0, "sentences of different lengths share batches"


def test_training_overfits_twenty_sentences_to_f1_one(trained):
    run_dir, metrics = trained
    assert metrics["f1"] == 1.0 and metrics["token_accuracy"] == 1.0, metrics
    assert metrics["examples"] == 20 and metrics["scheme"] == "IOB2"
    assert set(metrics["per_type"]) == {"PER", "ORG", "LOC", "MISC"}
    model = keras.saving.load_model(os.path.join(run_dir, "model.keras"), compile=False)
    assert isinstance(model, CRFModel)
    history = json.load(open(os.path.join(run_dir, "history.json"), encoding="utf-8"))
    assert history[-1]["loss"] < 0.1 * history[0]["loss"]


def test_checkpoint_is_selected_on_epoch_entity_f1(trained):
    run_dir, metrics = trained
    history = json.load(open(os.path.join(run_dir, "history.json"), encoding="utf-8"))
    scores = [entry["val_entity_f1"] for entry in history]
    assert len(scores) >= 2 and all(0.0 <= s <= 1.0 for s in scores)
    # The kept checkpoint is the best epoch by seqeval F1, and re-evaluating it gives that F1.
    assert metrics["f1"] == pytest.approx(max(scores), abs=1e-9)


def test_epoch_evaluation_adds_val_metrics_and_survives_deepcopy():
    import copy

    from tasks.runner.callbacks import EpochEvaluation

    seen = []
    callback = EpochEvaluation(lambda model: seen.append(model) or {"entity_f1": 0.5,
                                                                   "val_bleu": 7})
    clone = copy.deepcopy([callback])[0]  # what Keras Tuner does for every trial
    assert clone is not callback and clone.evaluate is callback.evaluate
    logs = {"loss": 1.0}
    clone.on_epoch_end(0, logs)
    assert logs == {"loss": 1.0, "val_entity_f1": 0.5, "val_bleu": 7.0} and seen == [None]


def test_cli_evaluate_prints_table_and_json_last(trained, capsys):
    run_dir, _ = trained
    assert cli.main(ner.NerTask(), ["evaluate", "--model", run_dir, "--split", "test"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    metrics = json.loads(out[-1])
    assert {"f1", "precision", "recall", "token_accuracy", "examples"} <= set(metrics)
    assert metrics["examples"] == 3 and 0.0 <= metrics["f1"] <= 1.0
    assert any(line.split()[:1] == ["LOC"] for line in out), "per-type table printed"


def test_export_serves_raw_sentences_in_a_fresh_process(task, trained, tmp_path, capsys):
    run_dir, _ = trained
    # export() saves, then validates the warm-up sentences in a fresh interpreter that cannot
    # import this project, against the in-memory answers.
    target = export_lib.export(task, run_dir, str(tmp_path / "export"))
    # TF Serving's session loader (and its warm-up replay) answer as tf.saved_model.load does.
    text = np.array([SENTENCE, "", "Siemens shares rose 3 percent in Frankfurt ."], dtype=object)
    agreed = assert_loaders_agree(target, {"serving_default": {"text": text},
                                           "tag_document": {"text": text}})
    assert agreed["serving_default"]["lengths"].tolist() == [10, 0, 8]
    if importlib.util.find_spec("tensorflow_serving") is not None:
        assert os.path.exists(os.path.join(target, export_lib.WARMUP_FILE))
    serve = export_lib.load_serving_function(target)
    out = serve(text=tf.constant([SENTENCE, "", "Siemens shares rose 3 percent in Frankfurt ."]))
    assert set(out) == {"tokens", "tags", "lengths", "truncated"}
    assert out["truncated"].numpy().tolist() == [False, False, False]
    assert out["tokens"].dtype == tf.string and out["lengths"].dtype == tf.int32
    assert out["lengths"].numpy().tolist() == [10, 0, 8]
    tags = out["tags"].numpy().astype(str)
    assert tags[0].tolist() == ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC", "O",
                                "O", "O"]  # a training sentence, in the corpus's IOB2
    assert tags[1].tolist() == [""] * 10 and tags[2, 8:].tolist() == ["", ""]
    # What `predict --json` prints for an export (the runner feeds show_predictions this way).
    inputs = {"text": tf.constant([SENTENCE])}
    args = argparse.Namespace(json=True)
    result = task.show_predictions(ner.NerConfig(), args, inputs, serve(**inputs))[0]
    assert capsys.readouterr().out == "", "--json: the runner prints the dicts, not the task"
    assert result["entities"][0] == {"text": "Angela Merkel", "type": "PER", "start": 0,
                                     "end": 13}
    assert [e["type"] for e in result["entities"]] == ["PER", "PER", "LOC"]
    # No capitalised word repeats in SENTENCE: document context leaves it as it is.
    document = export_lib.load_serving_function(target, "tag_document")(
        text=tf.constant([SENTENCE]))
    assert document["tags"].numpy().tolist() == serve(text=tf.constant([SENTENCE]))[
        "tags"].numpy().tolist()


@pytest.mark.slow  # ~20 s; the default run fuzzes the sentiment export (test_export)
def test_export_survives_fuzzed_requests_in_a_fresh_process(task, trained, tmp_path, monkeypatch):
    # Empty, blank, 1 MB, NUL, invalid UTF-8, batch 0 and 1000: answered within 1.5 GB RSS.
    skip_export_revalidation(monkeypatch)
    target = export_lib.export(task, trained[0], str(tmp_path / "export"))
    cases = text_cases("serving_default") + text_cases("tag_document")
    results = run_fuzz(target, cases, tmp_path)
    assert set(results) == {case for case, _, _ in cases}
    assert_survives(results, {"serving_default": ["text"], "tag_document": ["text"]})
    assert all(r["ok"] for r in results.values()), results
    assert results["tag_document: 1 MB text"]["shapes"]["tokens"] == [1, 1000]


def _document_split(sentences, document=0):
    rows = [s.split() for s in sentences]
    spec = {"tokens": tf.TensorSpec([None], tf.string), "tags": tf.TensorSpec([None], tf.string),
            "document": tf.TensorSpec([], tf.int64)}
    return tf.data.Dataset.from_generator(
        lambda: ({"tokens": r, "tags": ["O"] * len(r), "document": document} for r in rows),
        output_signature=spec)


def test_document_context_in_evaluation_matches_the_tag_document_signature(task, trained):
    from tasks.ner_eval import SplitTagger
    from tasks.runner import run_dir as rd

    run_dir, metrics = trained
    # The fixture is one -DOCSTART- document: both levels are reported, selection used the first.
    assert metrics["document_context"] == 0.5 and metrics["sentence_f1"] == 1.0
    history = json.load(open(os.path.join(run_dir, "history.json"), encoding="utf-8"))
    assert all("val_sentence_entity_f1" in entry for entry in history)
    config, preprocessor, model = rd.load_run(task, run_dir)
    texts = [SENTENCE, "MERKEL visited PARIS and Siemens .",
             "Merkel said Paris and SIEMENS agree ."]
    gold, sentence, document = SplitTagger(preprocessor, _document_split(texts), 2, 1.0)(model)
    module = ner.NerServing(model, preprocessor, document_context=1.0,
                            max_text_tokens=config.max_text_tokens, max_batch=config.max_batch)
    for signature, tagged in ((module.serving_default, sentence), (module.tag_document, document)):
        out = signature(tf.constant(texts))
        served = {tuple(t[:n]): list(g[:n]) for t, g, n in zip(
            out["tokens"].numpy().astype(str).tolist(), out["tags"].numpy().astype(str).tolist(),
            out["lengths"].numpy())}
        assert len(tagged) == 3 and all(
            served[tuple(text.split())] in tagged for text in texts), signature
    # Sentences outside any document, or weight 0: sentence level only.
    assert SplitTagger(preprocessor, _document_split(texts, -1), 2, 1.0)(model)[2] is None
    assert SplitTagger(preprocessor, _document_split(texts), 2, 0.0)(model)[2] is None


def test_cli_predict_with_the_document_signature(trained, capsys):
    run_dir, _ = trained
    args = ["predict", "--model", run_dir, "--json", SENTENCE, "Merkel left ."]
    assert cli.main(ner.NerTask(), args + ["--signature", "tag_document"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text"] for r in rows] == [SENTENCE, "Merkel left ."]
    assert rows[0]["entities"][0]["text"] == "Angela Merkel"
    assert cli.main(ner.NerTask(), args + ["--signature", "nope"]) != 0
    assert "tag_document" in capsys.readouterr().err


def test_cli_predict_answers_blank_inputs_without_the_model(trained, capsys):
    run_dir, _ = trained
    assert cli.main(ner.NerTask(), ["predict", "--model", run_dir, "--json", ""]) == 0
    assert json.loads(capsys.readouterr().out) == {"text": "", "tokens": [], "tags": [],
                                                   "entities": [], "empty": True}
    for signature in ("serving_default", "tag_document"):
        assert cli.main(ner.NerTask(), ["predict", "--model", run_dir, "--json", SENTENCE, " ",
                                        "Merkel left .", "--signature", signature]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
        assert [r["text"] for r in rows] == [SENTENCE, " ", "Merkel left ."]
        assert rows[1]["empty"] and rows[1]["tokens"] == [] and rows[2]["tokens"][0] == "Merkel"


def test_cli_evaluate_scores_a_named_file_whole(trained, capsys):
    run_dir, _ = trained
    path = os.path.join(FIXTURE, "train.txt")  # 20 sentences
    for split in ("test", "validation"):
        assert cli.main(ner.NerTask(), ["evaluate", "--model", run_dir, "--data", path,
                                        "--split", split]) == 0
        out = capsys.readouterr().out.strip().splitlines()
        assert json.loads(out[-1])["examples"] == 20 and out[0].startswith("metrics on all of")


def test_cli_evaluate_a_directory_with_only_a_test_file(trained, tmp_path, capsys):
    run_dir, _ = trained
    shutil.copy(os.path.join(FIXTURE, "test.txt"), tmp_path / "test.txt")
    args = ["evaluate", "--model", run_dir, "--data", str(tmp_path)]
    assert cli.main(ner.NerTask(), args + ["--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["examples"] == 3
    assert cli.main(ner.NerTask(), args) == 2  # --split validation: named, not guessed
    assert "has no validation split; it has test (--split)" in capsys.readouterr().err


def test_singleton_words_become_unk_only_in_training(task):
    from pipelines.vocab import OOV_ID

    config = tiny_config(FIXTURE, singleton_unk=1.0)
    splits = task.load_splits(config)
    prep = task.fit_preprocessor(config, splits)
    singleton = ner.singleton_ids(prep, splits.train)
    counts = {}
    for tokens in splits.train.map(lambda e: e["tokens"]).as_numpy_iterator():
        for token in tokens:
            counts[token.decode()] = counts.get(token.decode(), 0) + 1
    vocab = prep.words.get_vocabulary()
    assert {vocab[i] for i in np.flatnonzero(singleton)} == {
        w for w, c in counts.items() if c == 1}
    assert counts["."] > 1 and not singleton[vocab.index(".")]

    def word_ids(ds):
        return np.concatenate([x["word_ids"].numpy().ravel() for x, _ in ds])

    train_ids = word_ids(task.make_dataset(config, prep, splits.train, training=True))
    eval_ids = word_ids(task.make_dataset(config, prep, splits.train, training=False))
    assert not singleton[train_ids].any()  # rate 1: every singleton replaced ...
    assert (train_ids == OOV_ID).sum() == singleton[eval_ids].sum() + (eval_ids == OOV_ID).sum()
    assert singleton[eval_ids].any()  # ... and evaluation sees the words themselves
    ids = tf.constant([5, 6, 0])
    kept = replace_singletons(ids, tf.constant([False] * 5 + [True, False]), 0.0, 1)
    np.testing.assert_array_equal(kept, [5, 6, 0])
    with pytest.raises(ValueError, match="singleton_unk"):
        tiny_config(FIXTURE, singleton_unk=1.5)


def test_softmax_head_and_search_space(task):
    import keras_tuner as kt

    config = tiny_config(FIXTURE, crf=False)
    splits = task.load_splits(config)
    prep = task.fit_preprocessor(config, splits)
    model = task.build_model(config, prep)
    assert not isinstance(model, CRFModel)
    assert task.compile_kwargs(config)["loss"] == "sparse_categorical_crossentropy"
    assert task.compile_kwargs(tiny_config(FIXTURE))["loss"] is None
    space = task.search_space(kt.HyperParameters())
    assert {"crf", "char_encoder", "cell"} <= set(space)
    assert config_lib.override(config, space).crf is True  # the defaults form a valid config


@pytest.mark.slow
def test_tune_two_trials(task, overfit_data, tmp_path):
    from tasks.runner import tuning

    result = tuning.tune(task, tiny_config(overfit_data, epochs=1), str(tmp_path / "tune"),
                         max_trials=2, verbose=0)
    assert {"crf", "char_encoder", "cell"} <= set(result["hparams"])
    assert np.isfinite(result["score"])


def test_pretrained_vectors_by_path_fill_the_word_embedding(task, tmp_path, capsys):
    vectors = tmp_path / "glove.txt"
    vectors.write_text("paris 1 2 3 4\nmerkel 5 6 7 8\n", encoding="utf-8")
    config = tiny_config(FIXTURE, embeddings=str(vectors))
    prep = task.fit_preprocessor(config, task.load_splits(config))
    model = task.build_model(config, prep)
    assert "word vectors glove.txt (dim 4)" in capsys.readouterr().out  # coverage report
    weights = model.get_layer("word_embedding").get_weights()[0]
    vocab = prep.words.get_vocabulary()
    assert weights.shape == (len(vocab), 4)  # the file's width wins over embedding_dim
    np.testing.assert_array_equal(weights[vocab.index("Paris")], [1, 2, 3, 4])  # lowercase
    np.testing.assert_array_equal(weights[vocab.index("Merkel")], [5, 6, 7, 8])
