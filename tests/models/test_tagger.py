"""Tagger: char encoder layer contract, model build/fit/overfit for both heads, saving,
pretrained word vectors."""

import gzip

import keras
import numpy as np
import pytest

from models.layers.crf import CRF, CRFModel
from models.layers.embeddings import format_coverage, load_word_vectors
from models.tagger import CASING_CLASSES, CharEncoder, build_tagger_model, decode_tags
from tests.layer_test import run_layer_test
from tests.testing import assert_allclose, mixed_precision_policy

CHAR_IDS = np.array([[[3, 4, 5, 0], [6, 0, 0, 0], [0, 0, 0, 0]],
                     [[7, 8, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], "int32")  # [B=2, T=3, C=4]


@pytest.mark.parametrize("encoder,units,dim", [("lstm", 3, 6), ("cnn", 5, 5)])
def test_char_encoder_layer_contract(encoder, units, dim):
    result = run_layer_test(
        CharEncoder,
        init_kwargs={"num_chars": 10, "char_dim": 4, "encoder": encoder, "units": units},
        input_data=CHAR_IDS,
        expected_output_shape=(2, 3, dim),
        expected_output_dtype="float32",
        # The RNN's own training / mixed-precision battery belongs to models/layers/stacked.py's
        # tests; here the LSTM path only checks config, shapes and saving (CPU time is scarce).
        run_training_check=encoder == "cnn",
        run_mixed_precision_check=encoder == "cnn",
    )
    out = result["outputs"]
    assert not out[0, 2].any() and not out[1, 1:].any(), "tokens without characters -> 0"
    assert np.abs(out[0, 0]).sum() > 0


def test_char_encoder_rejects_bad_arguments():
    with pytest.raises(ValueError, match="'rnn'"):
        CharEncoder(10, encoder="rnn")
    with pytest.raises(ValueError, match="units must be a positive int, got 0"):
        CharEncoder(10, units=0)


def _sentences(n=8, time=5, words=20, chars=12, tags=("O", "B-PER", "I-PER", "B-LOC"),
               seed=0):
    """Random sentences whose tags are a function of the word id (learnable exactly)."""
    rng = np.random.default_rng(seed)
    word_ids = rng.integers(1, words, size=(n, time))
    lengths = rng.integers(2, time + 1, size=n)
    word_ids[np.arange(time)[None] >= lengths[:, None]] = 0
    tag_of_word = rng.integers(0, len(tags), size=words)
    tag_of_word[tag_of_word == 2] = 0  # keep I-PER only where it is valid (after B-PER)
    tag_ids = tag_of_word[word_ids]
    for b in range(n):  # B-PER followed by a real token -> that token is I-PER
        for t in range(1, lengths[b]):
            if tag_ids[b, t - 1] == 1:
                tag_ids[b, t] = 2
    tag_ids[word_ids == 0] = 0
    char_ids = rng.integers(1, chars, size=(n, time, 4)) * (word_ids[..., None] > 0)
    casing = rng.integers(1, len(CASING_CLASSES), size=(n, time)) * (word_ids > 0)
    x = {"word_ids": word_ids.astype("int32"), "char_ids": char_ids.astype("int32"),
         "casing_ids": casing.astype("int32")}
    return x, tag_ids.astype("int32"), list(tags)


def _small(crf, char_encoder="cnn", **kwargs):
    args = dict(word_dim=8, char_dim=4, char_encoder=char_encoder, char_units=4, casing_dim=2,
                units=12, num_layers=1, dropout=0.0, crf=crf)
    args.update(kwargs)
    return build_tagger_model(20, 12, 4, **args)


def _compile(model, crf, lr=0.05):
    if crf:
        model.compile(optimizer=keras.optimizers.Adam(lr))
    else:
        model.compile(optimizer=keras.optimizers.Adam(lr),
                      loss="sparse_categorical_crossentropy")


def test_crf_tagger_overfits_a_handful_of_sentences():
    x, y, names = _sentences()
    model = _small(True, tag_names=names)
    assert isinstance(model, CRFModel)
    assert keras.backend.standardize_dtype(model.output.dtype) == "float32"
    _compile(model, True)
    history = model.fit(x, y, batch_size=8, epochs=20, verbose=0)  # exact after ~8 epochs
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.1 * losses[0], losses
    mask = x["word_ids"] != 0
    tags = np.asarray(decode_tags(model, model(x), mask))
    np.testing.assert_array_equal(tags[mask], y[mask])
    assert not tags[~mask].any()


def test_softmax_tagger_fits():
    x, y, _ = _sentences()
    model = _small(False, cell="gru")
    assert not isinstance(model, CRFModel)
    _compile(model, False)
    # Eager: a few steps cost less than tracing the train function on a busy 2-core box.
    model.run_eagerly = True
    losses = model.fit(x, y, batch_size=8, epochs=4, verbose=0).history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.8 * losses[0], losses
    mask = x["word_ids"] != 0
    probs = np.asarray(model(x))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    tags = np.asarray(decode_tags(model, probs, mask))
    assert tags.shape == y.shape and not tags[~mask].any()


def test_default_tagger_builds_and_round_trips(tmp_path):
    x, _, names = _sentences(n=4)
    # Defaults: char BiLSTM, 2 word-level layers, CRF; peephole cell for coverage.
    model = build_tagger_model(20, 12, 4, word_dim=8, char_dim=4, char_units=3, units=6,
                               tag_names=names, cell="peephole_lstm")
    assert model.get_layer("char_encoder").encoder == "lstm"
    assert model.get_layer("encoder").num_layers == 2
    out = model(x)
    assert tuple(out.shape) == (4, 5, 4)
    path = tmp_path / "tagger.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, CRFModel)
    assert_allclose(loaded(x), out, atol=1e-6)
    crf = loaded.get_layer("crf")
    assert isinstance(crf, CRF) and crf.tag_names == names
    mask = x["word_ids"] != 0
    assert_allclose(crf.decode(out, mask)[0], model.get_layer("crf").decode(out, mask)[0])


def test_tagger_mask_comes_from_word_ids():
    x, _, _ = _sentences(n=2)
    model = _small(True, char_encoder="none")
    changed = {k: v.copy() for k, v in x.items()}
    pad = x["word_ids"] == 0
    changed["casing_ids"][pad] = 3  # garbage at padded positions must not leak into real ones
    changed["char_ids"][pad] = 5
    result = model(x)
    keras_mask = getattr(result, "_keras_mask", None)  # what CRFModel's loss reads
    np.testing.assert_array_equal(np.asarray(keras_mask), ~pad)
    out, out2 = np.asarray(result), np.asarray(model(changed))
    np.testing.assert_allclose(out[~pad], out2[~pad], atol=1e-5)


def test_build_tagger_model_rejects_bad_arguments():
    with pytest.raises(ValueError, match="char_encoder.*'gru'"):
        build_tagger_model(20, 12, 4, char_encoder="gru")
    with pytest.raises(ValueError, match=r"\(3, 8\)"):
        build_tagger_model(20, 12, 4, word_dim=8, pretrained_embeddings=np.zeros((3, 8)))
    with pytest.raises(ValueError, match="num_tags"):
        build_tagger_model(20, 12, 1)
    with pytest.raises(ValueError, match="3 names"):
        build_tagger_model(20, 12, 4, tag_names=["O", "B-X", "I-X"])


def test_load_word_vectors_with_lowercase_fallback_and_report(tmp_path):
    glove = tmp_path / "vectors.txt"
    glove.write_text("the 1 2 3\nparis 4 5 6\nnew york 7 8 9\nthe 0 0 0\n", encoding="utf-8")
    vocab = ["", "[UNK]", "the", "Paris", "new york", "zzz"]
    matrix, report = load_word_vectors(str(glove), vocab, seed=0)
    assert matrix.shape == (6, 3) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], 0.0)
    np.testing.assert_array_equal(matrix[2], [1, 2, 3])  # first occurrence wins
    np.testing.assert_array_equal(matrix[3], [4, 5, 6])  # via lowercase
    np.testing.assert_array_equal(matrix[4], [7, 8, 9])  # word with a space
    assert report["exact"] == 2 and report["lowercase"] == 1 and report["missing"] == 1
    assert report["coverage"] == pytest.approx(0.75) and report["examples_missing"] == ["zzz"]
    assert "75.0% of 4 tokens" in format_coverage(report)
    _, strict = load_word_vectors(str(glove), vocab, lowercase_fallback=False)
    assert strict["lowercase"] == 0 and strict["missing"] == 2
    # word2vec header + gzip, and the matrix plugs into the tagger's word embedding.
    w2v = tmp_path / "vectors.w2v.txt.gz"
    with gzip.open(w2v, "wt", encoding="utf-8") as f:
        f.write("2 8\n" + "\n".join(f"w{i} " + " ".join(["0.5"] * 8) for i in range(2)))
    vocab20 = ["", "[UNK]"] + [f"w{i}" for i in range(18)]
    matrix, report = load_word_vectors(str(w2v), vocab20)
    assert report["dim"] == 8 and report["exact"] == 2
    model = _small(True, pretrained_embeddings=matrix)
    np.testing.assert_array_equal(model.get_layer("word_embedding").get_weights()[0], matrix)


def test_load_word_vectors_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_word_vectors(str(tmp_path / "nope.txt"), ["a"])
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.txt:2"):
        load_word_vectors(str(bad), ["a", "b"])


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_tagger_under_mixed_precision_keeps_float32_variables_and_outputs(policy):
    x, y, names = _sentences(n=2)
    with mixed_precision_policy(policy):
        model = build_tagger_model(20, 12, 4, word_dim=8, char_dim=4, char_units=3, units=6,
                                   num_layers=1, tag_names=names)
        out = model(x)
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        floats = [w for w in model.weights if "float" in str(w.dtype)]
        assert floats and all(keras.backend.standardize_dtype(w.dtype) == "float32"
                              for w in floats)
        assert model.get_layer("encoder").compute_dtype == policy.split("_")[1]
        crf = model.get_layer("crf")
        ll = crf.log_likelihood(out, y, x["word_ids"] != 0)
        assert keras.backend.standardize_dtype(ll.dtype) == "float32"
        assert np.isfinite(np.asarray(ll)).all()
