"""tasks.seq2seq with issue #20's model options (tie_embeddings, encoder_residual) and the
per-sentence output cap of the serving signatures."""

import os

import numpy as np
import pytest
import tensorflow as tf

from pipelines.vocab import END_ID
from tasks import seq2seq as s2s
from tasks.runner import config as config_lib
from tasks.runner import export as export_lib
from tasks.runner import training

PAIRS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pairs", "spa_tiny.tsv")
OPTIONS = {"data": PAIRS, "units": 8, "embedding_dim": 6, "batch_size": 8, "dropout": 0.0,
           "beam_width": 3, "epochs": 1, "tie_embeddings": True, "encoder_residual": True,
           "num_layers": 2}
SHORT, LONG = "Hi.", "Who? Go. Run! Hi. Who? Go. Run! Hi. Who? Go. Run! Hi."


@pytest.fixture(scope="module")
def task():
    return s2s.Seq2SeqTask()


def test_options_are_config_fields_checked_before_any_data_loads():
    config = config_lib.override(s2s.Seq2SeqConfig(), config_lib.parse_set_arguments(
        ["tie_embeddings=true", "encoder_residual=true", "num_layers=2"]), validate=True)
    assert config.tie_embeddings is True and config.encoder_residual is True
    assert s2s.Seq2SeqConfig().tie_embeddings is False
    assert s2s.Seq2SeqConfig().encoder_residual is False
    with pytest.raises(config_lib.ConfigError, match="encoder_residual=True .*num_layers >= 2"):
        config_lib.override(s2s.Seq2SeqConfig(), {"encoder_residual": True}, validate=True)
    with pytest.raises(config_lib.ConfigError, match="share_embeddings=True .*shared_vocab=true"):
        config_lib.override(s2s.Seq2SeqConfig(), {"unit": "subword", "share_embeddings": True},
                            validate=True)


def test_shared_subword_vocabulary_shares_one_embedding_matrix(task, tmp_path):
    pytest.importorskip("tensorflow_text")
    pytest.importorskip("sentencepiece")
    from tests.tasks.test_seq2seq_subword import write_pairs

    config = config_lib.override(s2s.Seq2SeqConfig(), {
        **OPTIONS, "data": write_pairs(tmp_path / "pairs.tsv"), "unit": "subword",
        "vocab_size": 320, "shared_vocab": True, "share_embeddings": True}, validate=True)
    pre = task.fit_preprocessor(config, task.load_splits(config))
    model = task.build_model(config, pre)
    names = {layer.name for layer in model.layers}
    assert "source_embedding" not in names and "output_projection" in names
    size = pre.target_vocab.vocabulary_size
    assert len([w for w in model.weights if tuple(w.shape) == (size, 6)]) == 1


def test_untrained_model_ends_each_sentence_by_its_own_cap(task):
    config = config_lib.override(s2s.Seq2SeqConfig(), OPTIONS)
    splits = task.load_splits(config)
    pre = task.fit_preprocessor(config, splits)
    model = task.build_model(config, pre)
    assert model.get_layer("encoder").residual and "logits" not in {ly.name for ly in
                                                                    model.layers}
    # Pushed away from END, so nothing but the caps stops a hypothesis.
    embedding = model.get_layer("target_embedding")
    embedding.output_bias.assign(-20.0 * np.eye(embedding.vocab_size, dtype="float32")[END_ID])
    module = task.serving_module(config, model, pre)
    lengths = pre.source_ids(tf.constant([SHORT, LONG]), ragged=True).row_lengths().numpy()
    caps = np.minimum(2 * lengths + 10, s2s.max_decode_length(config, pre))
    assert caps[1] > caps[0]
    texts = tf.constant([SHORT, LONG])
    out = module.greedy(texts)  # beam search's caps: tests/models/test_seq2seq_options.py
    assert out["length"].numpy().tolist() == caps.tolist()
    assert out["output_tokens"].shape[1] == caps[1]
    tokens = out["output_tokens"].numpy()
    assert tokens[0, caps[0] - 1] == b"[END]" and set(tokens[0, caps[0]:]) == {b""}
    nbest = module.translate_nbest(texts, tf.constant(0.6), tf.constant(False),
                                   tf.constant(0.2))
    assert np.all(nbest["lengths"].numpy() <= caps[:, None])


@pytest.mark.slow  # ~2-3 minutes on 2 cores: training, export, both loaders in fresh processes
def test_tied_residual_run_trains_and_exports_through_both_loaders(task, tmp_path):
    from tests.tasks.export_checks import assert_loaders_agree

    run_dir = str(tmp_path / "run")
    metrics = training.train(task, config_lib.override(s2s.Seq2SeqConfig(), OPTIONS), run_dir,
                             verbose=0)
    assert np.isfinite(metrics["loss"])
    target = export_lib.export(task, run_dir, str(tmp_path / "export"))  # validates fresh
    text = np.array([SHORT, LONG], dtype=object)
    agreed = assert_loaders_agree(target, {"serving_default": {"text": text},
                                           "greedy": {"text": text}})
    beam, greedy = agreed["serving_default"], agreed["greedy"]
    assert beam["translation"].shape == (2,) and beam["score"].dtype == np.float32
    assert np.all(beam["log_prob"] >= greedy["log_prob"] - 1e-4)
