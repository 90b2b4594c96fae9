"""NER serving on requests that used to crash or exhaust it (issue #16 item 9): blank and empty
batches, one-token sentences, over-long sentences and tokens, oversized batches. Untrained tiny
taggers: only shapes, limits and errors are checked here, not tags."""

import pytest
import tensorflow as tf

from tasks import ner
from tasks.runner import config as config_lib

FIXTURE = "tests/fixtures/ner/tiny_conll"
TINY = {"embedding_dim": 8, "units": 8, "num_layers": 1, "char_units": 4, "char_dim": 4,
        "casing_dim": 2, "data": FIXTURE, "max_text_tokens": 6, "max_batch": 4,
        "max_word_length": 5}


@pytest.fixture(scope="module")
def preprocessor():
    config = config_lib.override(ner.NerConfig(), TINY)
    return ner.NerTask().fit_preprocessor(config, ner.NerTask().load_splits(config))


@pytest.fixture(scope="module", params=["cnn", "lstm"])
def module(request, preprocessor):
    task = ner.NerTask()
    config = config_lib.override(ner.NerConfig(), {**TINY, "char_encoder": request.param})
    return task.serving_module(config, task.build_model(config, preprocessor), preprocessor)


def _run(module, texts):
    text = tf.constant(texts, tf.string, shape=[len(texts)])
    return [{k: v.numpy() for k, v in signature(text).items()}
            for signature in (module.serving_default, module.tag_document)]


@pytest.mark.parametrize("texts", [["", "  \t\n "], [""], [], ["\x00 \u2028"]])
def test_blank_and_empty_batches_give_empty_results(module, texts):
    for out in _run(module, texts):
        assert out["tokens"].shape == out["tags"].shape == (len(texts), 0)
        assert out["lengths"].tolist() == [0] * len(texts)
        assert out["truncated"].tolist() == [False] * len(texts)


def test_one_token_sentences_are_tagged(module):
    # The CRF's Viterbi scan over T - 1 = 0 steps used to fail for a batch of one-word texts.
    for out in _run(module, ["Paris", ""]):
        assert out["tokens"].astype(str).tolist() == [["Paris"], [""]]
        assert out["tags"][0, 0] != b"" and out["tags"][1, 0] == b""


def test_long_sentences_are_cut_and_flagged(module):
    texts = ["a b c d e f g h", "Paris ."]
    for out in _run(module, texts):
        assert out["lengths"].tolist() == [6, 2]
        assert out["truncated"].tolist() == [True, False]
        assert out["tokens"][0].astype(str).tolist() == list("abcdef")


def test_char_tensor_is_cut_per_token_before_it_is_built(preprocessor):
    # A 100,000-character word used to widen [batch, tokens, C] to C = 100,000 first.
    tokens = tf.constant([["x" * 100_000, "ab", ""]])
    chars = preprocessor.features(tokens)["char_ids"]
    assert chars.shape == (1, 3, 5)
    assert chars.numpy()[0, 1, 2:].tolist() == [0, 0, 0] and not chars.numpy()[0, 2].any()
    # Short tokens keep the longest token's width, as before (the CNN encoder sees it).
    assert preprocessor.features(tf.constant([["ab", "c"]]))["char_ids"].shape == (1, 2, 2)


def test_a_batch_above_max_batch_is_one_clear_error(module):
    for signature in (module.serving_default, module.tag_document):
        with pytest.raises(tf.errors.InvalidArgumentError, match="text: .*max_batch=4"):
            signature(tf.constant(["a"] * 5))


def test_invalid_utf8_and_control_bytes_give_valid_tokens(module):
    for out in _run(module, [b"\xff\xfeParis\x00Berlin"]):
        tokens = out["tokens"][0, : out["lengths"][0]].tolist()
        assert [t.decode("utf-8") for t in tokens] == ["\ufffd", "\ufffd", "Paris", "Berlin"]


def test_limits_must_be_positive(preprocessor):
    with pytest.raises(ValueError, match="max_text_tokens"):
        ner.NerServing(None, preprocessor, 0.5, max_text_tokens=0)
