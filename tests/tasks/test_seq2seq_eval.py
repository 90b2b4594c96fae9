"""tasks.seq2seq_eval: held-out filtering against training sources, sacreBLEU signatures."""

import tensorflow as tf

from tasks import seq2seq as s2s
from tasks import seq2seq_eval
from tasks.runner import config as config_lib


def test_held_out_drops_pairs_whose_source_is_a_training_source(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"Sentence number {i}.\tFrase número {i}.\n" for i in range(40)),
                    encoding="utf-8")
    task = s2s.Seq2SeqTask()
    config = config_lib.override(s2s.Seq2SeqConfig(), {"data": str(path)})
    train = [e["source"].decode() for e in task.load_splits(config).train.as_numpy_iterator()]
    fresh = "A sentence never seen."
    # Case and spacing variants of training sources count as the same sentence.
    sources = [train[0].upper(), "  " + train[1].replace(" ", "   "), fresh, train[2]]
    split = tf.data.Dataset.from_tensor_slices(
        {"source": tf.constant(sources), "target": tf.constant(["t"] * 4)})
    kept, removed = seq2seq_eval.held_out(task, config, split)
    assert removed == 3
    assert [e["source"].decode() for e in kept.as_numpy_iterator()] == [fresh]
    dates = config_lib.override(s2s.Seq2SeqConfig(), {"max_examples": 8})
    assert seq2seq_eval.held_out(task, dates, split) == (split, None)


def test_bleu_and_chrf_come_with_their_sacrebleu_signatures():
    got = s2s.sequence_metrics(["el gato negro duerme"], ["el gato negro duerme"], bleu=True)
    assert abs(got["bleu"] - 100.0) < 1e-6 and abs(got["chrf"] - 100.0) < 1e-6
    assert "tok:13a" in got["bleu_signature"] and "version:" in got["bleu_signature"]
    assert "nc:6" in got["chrf_signature"]


def test_batch_tokens_caps_rows_times_padded_length(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{'word ' * (1 + i % 9)}end.\t{'palabra ' * (1 + i % 7)}fin.\n"
                            for i in range(120)), encoding="utf-8")
    task = s2s.Seq2SeqTask()
    config = config_lib.override(s2s.Seq2SeqConfig(), {"data": str(path), "batch_tokens": 48})
    splits = task.load_splits(config)
    pre = task.fit_preprocessor(config, splits)
    batches = list(task.make_dataset(config, pre, splits.train, training=True))
    assert sum(int(labels.shape[0]) for _, labels in batches) == len(list(splits.train))
    for (source, _), labels in batches:
        assert source.shape[0] * max(source.shape[1], labels.shape[1]) <= 48
