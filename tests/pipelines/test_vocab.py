"""Vocabularies: reserved ids, caps, save/load round trip, eager == ds.map == batched, serving."""

import json

import numpy as np
import pytest
import tensorflow as tf

from pipelines import vocab as V

TRAIN = ["The cat sat on the mat.", "The dog ate the cat!", "A bird, a cat and the dog.",
         "Ünïcode café\nnew line", "tab\tand\\backslash"]


def _strings(ds_or_tensor):
    return [s.decode("utf-8") for s in np.asarray(ds_or_tensor).reshape(-1)]


def test_tokenize_splits_words_and_punctuation_identically_everywhere():
    text = "It's 3.5\u00a0km!\tÜber_alles  "
    expected = ["It", "'", "s", "3", ".", "5", "km", "!", "Über", "_", "alles"]
    assert _strings(V.tokenize(text)) == expected
    batched = V.tokenize(tf.constant([text, "a,b"]))
    assert isinstance(batched, tf.RaggedTensor)
    assert _strings(batched[0]) == expected and _strings(batched[1]) == ["a", ",", "b"]
    mapped = next(iter(tf.data.Dataset.from_tensors(text).map(V.tokenize)))
    assert _strings(mapped) == expected


def test_word_vectorizer_reserved_ids_cap_and_frequency_order():
    vec = V.WordVectorizer(max_tokens=6).adapt(TRAIN)
    vocab = vec.get_vocabulary()
    assert vec.vocabulary_size == 6 == len(vocab)
    assert vocab[:2] == [V.PAD_TOKEN, V.OOV_TOKEN]
    # by count (the 5, cat 3, dog 2, a 2), ties in reverse token order; "sat" (1) is cut
    assert vocab[2:] == ["the", "cat", "dog", "a"]
    ids = vec(tf.constant(["the cat", "the zebra cat dog"])).numpy()
    assert ids.dtype == np.int32
    np.testing.assert_array_equal(ids[0], [2, 3, 0, 0])          # padded with 0
    assert ids[1][1] == V.OOV_ID                                  # unseen word -> 1
    assert vec.decode(ids).numpy().tolist() == [b"the cat", b"the [UNK] cat dog"]


def test_word_vectorizer_save_load_round_trip(tmp_path):
    vec = V.WordVectorizer(max_tokens=30, output_sequence_length=7, split="punctuation",
                           standardize="lower", add_start_end=True).adapt(TRAIN)
    vec.save(str(tmp_path), "source")
    meta = json.loads((tmp_path / "source.json").read_text(encoding="utf-8"))
    assert meta["class"] == "WordVectorizer" and meta["vocabulary_size"] == vec.vocabulary_size
    assert meta["reserved"] == {"<pad>": 0, "[UNK]": 1, "[START]": 2, "[END]": 3}
    lines = (tmp_path / "source.vocab.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:4] == ["", "[UNK]", "[START]", "[END]"] and "," in lines
    again = V.WordVectorizer.load(str(tmp_path), "source")
    assert again.get_vocabulary() == vec.get_vocabulary()
    probe = tf.constant(TRAIN + ["unknown words, here!"])
    np.testing.assert_array_equal(again(probe).numpy(), vec(probe).numpy())
    assert again(probe).shape == (len(TRAIN) + 1, 7)


def test_char_vocabulary_escapes_line_breaks_and_round_trips(tmp_path):
    chars = V.CharVocabulary(max_chars=200).adapt(TRAIN + ["x\u2028y\r"])
    assert {"\n", "\\", "\u2028", "\r", "\t"} <= set(chars.get_vocabulary())
    chars.save(str(tmp_path))
    text = (tmp_path / "chars.vocab.txt").read_text(encoding="utf-8")
    assert len(text.splitlines()) == chars.vocabulary_size      # one token per line, always
    again = V.CharVocabulary.load(str(tmp_path))
    assert again.get_vocabulary() == chars.get_vocabulary()
    np.testing.assert_array_equal(again(tf.constant(TRAIN)).numpy(),
                                  chars(tf.constant(TRAIN)).numpy())


def test_char_vocabulary_start_end_decode_and_cap():
    chars = V.CharVocabulary(max_chars=10, lowercase=True).adapt(TRAIN)
    assert chars.vocabulary_size == 10 and chars.start_id == 2 and chars.end_id == 3
    ids = chars("the").numpy()
    assert ids[0] == V.START_ID and ids[-1] == V.END_ID and len(ids) == 5
    full = V.CharVocabulary().adapt(TRAIN)
    texts = tf.constant(["the cat", "dog"])
    batch = full(texts)
    assert batch.shape == (2, 9) and batch.numpy()[1, 5:].tolist() == [0, 0, 0, 0]
    assert full.decode(batch).numpy().tolist() == [b"the cat", b"dog"]
    # decoding stops at the first END (what a sampler produces after it is ignored)
    tail = tf.concat([batch[:1], tf.constant([[7, 8]], tf.int32)], axis=1)
    assert full.decode(tail).numpy().tolist() == [b"the cat"]
    assert full.decode(tf.ragged.constant([[2, 5], []])).shape == (2,)
    with pytest.raises(tf.errors.InvalidArgumentError, match="id >= vocabulary size"):
        full.decode(tf.constant([[2, full.vocabulary_size]]))


def test_token_chars_for_ner_are_batch_words_chars():
    chars = V.CharVocabulary(add_start_end=False).adapt(tf.data.Dataset.from_tensor_slices(
        tf.ragged.constant([["EU", "rejects"], ["Peter", "Blackburn", "."]])))
    assert chars.start_id is None
    assert chars.vocabulary_size == 2 + len(set("EUrejectsPeterBlackburn."))
    tokens = tf.constant([["EU", "rejects", ""], ["Peter", "Blackburn", "."]])
    ids = chars.token_chars(tokens)
    assert ids.shape == (2, 3, 9) and ids.dtype == tf.int32
    assert not ids.numpy()[0, 2].any()                            # padding word -> zeros
    assert (ids.numpy()[1, 1] > 1).all()                           # "Blackburn": 9 known chars
    ragged = chars.token_chars(tf.ragged.constant([["EU", "rejects"], ["Peter", "Blackburn", "."]]))
    np.testing.assert_array_equal(ragged.numpy(), ids.numpy())
    assert chars.token_chars(tokens, max_word_length=4).shape == (2, 3, 4)
    ds = tf.data.Dataset.from_tensor_slices(tokens).map(chars.token_chars)
    assert ds.element_spec == tf.TensorSpec([3, None], tf.int32)
    np.testing.assert_array_equal(next(iter(ds)).numpy(), ids.numpy()[0, :, :7])


def test_token_vocabulary_padding_oov_lowercase_and_decode():
    sents = tf.ragged.constant([["EU", "rejects", "German", "call"], ["Peter", "EU"]])
    vocab = V.TokenVocabulary(max_tokens=5, lowercase=True).adapt(
        tf.data.Dataset.from_tensor_slices(sents))
    assert vocab.get_vocabulary()[:3] == ["", "[UNK]", "eu"] and vocab.vocabulary_size == 5
    dense = vocab(tf.constant([["eu", "UNSEEN", ""]])).numpy()
    np.testing.assert_array_equal(dense, [[2, 1, 0]])
    ids = vocab(sents)
    assert isinstance(ids, tf.RaggedTensor) and ids.dtype == tf.int32
    assert vocab.decode(ids)[1].numpy().tolist() == [b"peter", b"eu"]
    assert vocab.decode(dense, separator=" ").numpy().tolist() == [b"eu [UNK]"]


@pytest.mark.parametrize("kind", ["words", "chars", "tokens"])
def test_eager_map_and_batched_give_identical_ids(kind):
    if kind == "words":
        vocab = V.WordVectorizer(max_tokens=40).adapt(TRAIN)
        inputs, call = TRAIN, vocab
    elif kind == "chars":
        vocab = V.CharVocabulary().adapt(TRAIN)
        inputs, call = TRAIN, vocab
    else:
        vocab = V.TokenVocabulary().adapt(tf.data.Dataset.from_tensor_slices(TRAIN).map(V.tokenize))
        inputs, call = TRAIN, lambda t: vocab(V.tokenize(t))
    eager = [call(tf.constant(t)).numpy() for t in inputs]
    mapped = [x.numpy() for x in tf.data.Dataset.from_tensor_slices(inputs).map(call)]
    batched = call(tf.constant(inputs))
    batched = batched.to_tensor() if isinstance(batched, tf.RaggedTensor) else batched
    padded = next(iter(tf.data.Dataset.from_tensor_slices(inputs).map(call).padded_batch(8)))
    np.testing.assert_array_equal(padded.numpy(), batched.numpy())
    for i, ids in enumerate(eager):
        np.testing.assert_array_equal(ids, mapped[i])
        np.testing.assert_array_equal(batched.numpy()[i, : len(ids)], ids)
        assert not batched.numpy()[i, len(ids):].any()


def test_ragged_output_keeps_exact_lengths_for_batch_then_unbatch():
    words = V.WordVectorizer().adapt(TRAIN)
    chars = V.CharVocabulary().adapt(TRAIN)
    for vocab in (words, chars):
        ds = tf.data.Dataset.from_tensor_slices(TRAIN).batch(2)
        ds = ds.map(lambda t, v=vocab: v(t, ragged=True)).unbatch()
        lengths = [int(x.shape[0]) for x in ds]
        assert lengths == [len(vocab(t).numpy()) for t in TRAIN]    # no batch padding left
    assert words(tf.constant(["", "the"]), ragged=True).to_list() == [[], [2]]


def test_label_lookup_both_directions_and_errors(tmp_path):
    labels = V.LabelLookup(["O", "B-PER", "I-PER"])
    ids = labels(tf.constant([["B-PER", "I-PER", "O"]]))
    assert ids.dtype == tf.int32 and ids.numpy().tolist() == [[1, 2, 0]]
    assert labels.decode(ids).numpy().tolist() == [[b"B-PER", b"I-PER", b"O"]]
    with pytest.raises(tf.errors.InvalidArgumentError, match="B-LOC"):
        labels(tf.constant(["B-LOC"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="id >= vocabulary size 3"):
        labels.decode(tf.constant([3]))
    with pytest.raises(ValueError, match="unique"):
        V.LabelLookup(["O", "O"])
    labels.save(str(tmp_path))
    again = V.LabelLookup.load(str(tmp_path))
    assert again.get_vocabulary() == ["O", "B-PER", "I-PER"] and again.vocabulary_size == 3


def test_exported_serving_function_reproduces_outputs(tmp_path):
    words = V.WordVectorizer(max_tokens=40).adapt(TRAIN)
    chars = V.CharVocabulary().adapt(TRAIN)
    labels = V.LabelLookup(["neg", "pos"])
    module = tf.Module()
    module.words, module.chars, module.labels = words, chars, labels

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(text):
        ids = words(text)
        return {"ids": ids, "echo": chars.decode(chars(text)),
                "label": labels.decode(tf.cast(ids[:, 0] > 3, tf.int32))}

    module.serve = serve
    tf.saved_model.save(module, str(tmp_path / "export"), signatures={"serving_default": serve})
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    probe = tf.constant(["the cat sat", "Ünïcode dog"])
    expected = serve(probe)
    got = loaded.signatures["serving_default"](text=probe)
    for key in expected:
        np.testing.assert_array_equal(got[key].numpy(), expected[key].numpy())
    assert got["echo"].numpy().tolist() == [b"the cat sat", "Ünïcode dog".encode()]


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="max_tokens.*0"):
        V.WordVectorizer(max_tokens=0)
    with pytest.raises(ValueError, match="max_chars.*4"):
        V.CharVocabulary(max_chars=4)                    # 4 reserved ids leave no room
    with pytest.raises(ValueError, match="standardize.*'upper'"):
        V.WordVectorizer(standardize="upper")
    with pytest.raises(ValueError, match="output_sequence_length.*-1"):
        V.WordVectorizer(output_sequence_length=-1)
    with pytest.raises(TypeError, match="map it to the text field"):
        V.WordVectorizer().adapt(tf.data.Dataset.from_tensors({"text": "a", "label": 1}))
    with pytest.raises(RuntimeError, match="adapt"):
        V.TokenVocabulary()(tf.constant(["a"]))
    with pytest.raises(ValueError, match=r"\[\] or \[batch\]"):
        V.CharVocabulary().adapt(TRAIN)(tf.constant([["a"]]))
    V.TokenVocabulary().adapt([["a", "b"]]).save(str(tmp_path), "x")
    with pytest.raises(ValueError, match="'TokenVocabulary'.*expected 'CharVocabulary'"):
        V.CharVocabulary.load(str(tmp_path), "x")
    with pytest.raises(FileNotFoundError, match="missing.json"):
        V.TokenVocabulary.load(str(tmp_path), "missing")
