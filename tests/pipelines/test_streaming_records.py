"""Streamed NER CoNLL and seq2seq pairs sources: the same examples, splits and vocabularies as
the in-memory path, lazily read, and bad input still one error naming file and line."""

import collections
import warnings

import numpy as np
import pytest
import tensorflow as tf

from pipelines import sources, streaming
from pipelines import tags as tagging
from pipelines.errors import DataError
from pipelines.readers import conll, conll_stream, pairs
from pipelines.vocab import CharVocabulary, TokenVocabulary, WordVectorizer

SPLITS = ("train", "validation", "test")
TYPES = ("PER", "LOC", "ORG")


def _rows(ds):
    if ds is None:
        return None
    return [tuple(np.asarray(v.numpy()).tolist() for v in tf.nest.flatten(e)) for e in ds]


def _write_conll(path, n, seed=0, docstart_every=7, prefix="I"):
    """Sentences (``token POS tag``) of one-token entities (``prefix="I"``: IOB1 tags, "B":
    IOB2), a -DOCSTART- line every few sentences."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            if i % docstart_every == 0:
                f.write("-DOCSTART- -X- O\n\n")
            for _ in range(int(rng.integers(1, 9))):
                tag = "O" if rng.random() < 0.5 else f"{prefix}-{TYPES[int(rng.integers(0, 3))]}"
                f.write(f"w{int(rng.integers(0, 50))}_{i} NN {tag}\n")
            f.write("\n")


@pytest.fixture
def conll_file(tmp_path):
    path = tmp_path / "corpus.conll"
    _write_conll(path, 80)
    return str(path)


def test_streamed_and_in_memory_conll_agree(conll_file):
    runs = [conll_stream.ner_conll_splits(conll_file, seed=3, options={"scheme": "BIOES"},
                                          stream=s) for s in (True, False)]
    assert runs[0].info["streamed"] and not runs[1].info["streamed"]
    assert runs[0].train.cardinality() < 0 <= runs[1].train.cardinality()
    for name in SPLITS:
        assert _rows(getattr(runs[0], name)) == _rows(getattr(runs[1], name))
    assert {k: v for k, v in runs[0].info.items() if k != "streamed"} == \
        {k: v for k, v in runs[1].info.items() if k != "streamed"}
    assert runs[0].info["scheme"] == "IOB1" and runs[0].info["examples"] == {
        "train": 64, "validation": 8, "test": 8}
    spec = runs[0].train.element_spec
    assert spec["tokens"] == tf.TensorSpec([None], tf.string) and spec["document"].shape == []
    # The splits partition the file's sentences, tags converted to the target scheme.
    expected = collections.Counter(
        (tuple(s.tokens), tuple(tagging.convert(s.tags, "IOB1", "BIOES")))
        for s in conll.iter_conll(conll_file))
    got = collections.Counter((tuple(t.decode() for t in tokens), tuple(x.decode() for x in tags))
                              for name in SPLITS for _, tags, tokens in _rows(
                                  getattr(runs[0], name)))
    assert got == expected
    vocabularies = [TokenVocabulary(max_tokens=100).adapt(r.train.map(lambda e: e["tokens"]))
                    .get_vocabulary() for r in runs]
    assert vocabularies[0] == vocabularies[1] and len(vocabularies[0]) > 10
    chars = [CharVocabulary().adapt(r.train.map(lambda e: e["tokens"])).get_vocabulary()
             for r in runs]
    assert chars[0] == chars[1]
    other = conll_stream.ner_conll_splits(conll_file, seed=4, options={}, stream=True)
    assert [r[2] for r in _rows(other.train)] != [r[2] for r in _rows(runs[0].train)]


def test_load_streams_a_conll_file_over_the_size_limit(conll_file, monkeypatch):
    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 0)
    splits = sources.load("ner", conll_file, seed=3, max_examples=20)
    assert splits.info["streamed"] and splits.info["examples"] == {
        "train": 20, "validation": 5, "test": 5}
    full = sources.load("ner", conll_file, seed=3)
    assert _rows(splits.train) == _rows(full.train)[:20]  # a cap is a prefix
    bigger = conll_file + ".big"
    _write_conll(bigger, 800, seed=1)
    ten_times = sources.load("ner", bigger, seed=3)
    for part in SPLITS:  # no sentence text in the graph: the same ops whatever the file
        sizes = [len(getattr(s, part)._as_serialized_graph().numpy())
                 for s in (splits, ten_times)]
        assert abs(sizes[1] - sizes[0]) < 200, sizes
    documents = [r[0] for r in _rows(full.train)]
    assert min(documents) >= 0  # every sentence is inside a -DOCSTART- document here


def test_conll_directory_streams_each_split_file_in_order(tmp_path, monkeypatch):
    for name, n in (("train.txt", 30), ("dev.txt", 6), ("test.txt", 5)):
        _write_conll(tmp_path / name, n, seed=n)
    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 0)
    splits = sources.load("ner", str(tmp_path))
    assert splits.info["streamed"] and splits.info["split_policy"] == "files by name"
    for name, file in (("train", "train.txt"), ("validation", "dev.txt"), ("test", "test.txt")):
        tokens = [[t.decode() for t in r[2]] for r in _rows(getattr(splits, name))]
        assert tokens == [s.tokens for s in conll.iter_conll(tmp_path / file)]
    evaluation = sources.load("ner", str(tmp_path / "dev.txt"), evaluation=True)
    assert evaluation.info["whole_file"] and evaluation.info["streamed"]
    assert _rows(evaluation.test) == _rows(evaluation.validation) == _rows(splits.validation)
    assert evaluation.info["examples"] == {"train": 0, "validation": 6, "test": 6}


@pytest.mark.parametrize("bad,message", [
    ("w1 NN\n", "expected 3 columns"),
    ("w1 NN B-PER\nw2 NN B_LOC\n", "malformed"),
    ("w1 NN B-PER\nw2 NN I-LOC\n", "does not continue"),
])
def test_bad_conll_line_deep_in_a_streamed_file(tmp_path, monkeypatch, bad, message):
    path = tmp_path / "bad.conll"
    _write_conll(path, 40, prefix="B")
    good = path.read_text(encoding="utf-8")
    path.write_text(good + bad + "\n", encoding="utf-8")
    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 0)
    line = good.count("\n") + bad.count("\n")
    with pytest.raises(DataError, match=message) as err:
        sources.load("ner", str(path), scheme="IOB2", input_scheme="IOB2")
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_repair_warns_once_at_load_not_every_epoch(tmp_path, monkeypatch):
    path = tmp_path / "stray.conll"
    path.write_text("".join(f"a{i} B-PER\nb{i} O\n\n" for i in range(9))
                    + "John B-PER\nsaid O\nhi I-LOC\n\n", encoding="utf-8")
    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 0)
    with pytest.raises(DataError, match=r"stray.conll:30: .*I-LOC does not continue"):
        sources.load("ner", str(path))
    with pytest.warns(UserWarning, match=r"line\(s\) 30: repaired"):
        splits = sources.load("ner", str(path), repair=True, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = [r for name in SPLITS for r in _rows(getattr(splits, name))]
    by_first = {r[2][0]: r[1] for r in rows}
    assert by_first[b"John"] == [b"B-PER", b"O", b"B-LOC"]


# ----------------------------------------------------------------------------- pairs

def _write_pairs(path, n, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            source = f"Go {int(rng.integers(0, n // 3))} now."  # repeats: several translations
            f.write(f"{source}\tVe {i} ya.\tCC-BY attribution #{i}\n")
            if i % 10 == 0:
                f.write("\n")


def test_streamed_and_in_memory_pairs_agree(tmp_path):
    path = tmp_path / "pairs.tsv"
    _write_pairs(path, 90)
    runs = [pairs.pairs_file_splits(str(path), seed=1, options={"lowercase": True}, stream=s)
            for s in (True, False)]
    for name in SPLITS:
        assert _rows(getattr(runs[0], name)) == _rows(getattr(runs[1], name))
    assert {k: v for k, v in runs[0].info.items() if k != "streamed"} == \
        {k: v for k, v in runs[1].info.items() if k != "streamed"}
    by_split = [{r[0] for r in _rows(getattr(runs[0], name))} for name in SPLITS]
    assert not (by_split[0] & by_split[1] or by_split[0] & by_split[2]
                or by_split[1] & by_split[2])  # translations of a sentence stay together
    everything = collections.Counter(
        (s.encode(), t.encode()) for s, t in pairs.read_pairs(path, lowercase=True))
    assert collections.Counter(r for name in SPLITS
                               for r in _rows(getattr(runs[0], name))) == everything
    vocabularies = [WordVectorizer(max_tokens=200).adapt(r.train.map(lambda e: e["target"]))
                    .get_vocabulary() for r in runs]
    assert vocabularies[0] == vocabularies[1] and len(vocabularies[0]) > 20
    assert runs[0].info["tokens"]["train"] == sum(
        len(s.split()) + len(t.split()) for s, t in _rows(runs[0].train))


def test_pairs_through_load_stream_cap_and_evaluate(tmp_path, monkeypatch):
    path = tmp_path / "pairs.tsv"
    _write_pairs(path, 60)
    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 0)
    full = sources.load("seq2seq", "pairs:" + str(path), seed=2)
    capped = sources.load("seq2seq", "pairs:" + str(path), seed=2, max_examples=8)
    assert full.info["streamed"] and capped.info["examples"]["train"] == 8
    assert _rows(capped.train) == _rows(full.train)[:8]
    whole = sources.load("seq2seq", "pairs:" + str(path), evaluation=True)
    assert whole.info["whole_file"] and whole.info["streamed"]
    assert [r[0].decode() for r in _rows(whole.test)] == [s for s, _ in pairs.read_pairs(path)]


def test_bad_pairs_line_deep_in_a_streamed_file(tmp_path):
    path = tmp_path / "pairs.tsv"
    _write_pairs(path, 50)
    lines = path.read_text(encoding="utf-8").count("\n")
    with open(path, "a", encoding="utf-8") as f:
        f.write("no tab on this line\n")
    with pytest.raises(DataError, match="expected 'source<TAB>target'") as err:
        pairs.pairs_file_splits(str(path), seed=0, options={}, stream=True)
    assert str(err.value).startswith(f"{path}:{lines + 1}: ")
    path.write_bytes(b"a\tb\n" * 5 + b"K\xf6ln\tCologne\n")
    with pytest.raises(DataError, match=f"{path}:6: not valid UTF-8"):
        pairs.pairs_file_splits(str(path), seed=0, options={}, stream=True)


# ----------------------------------------------------------------------------- TFDS mapping

def test_tfds_train_is_cut_by_the_seeded_hash_without_draining():
    from pipelines.readers import tfds_sources

    n = 50
    stand_in = tf.data.Dataset.range(n).map(lambda i: {"id": i})  # a TFDS split's stand-in
    train, validation, sizes = tfds_sources.seeded_cut(stand_in, n, 7, (0.8, 0.2, 0.0))
    expected = streaming.split_records(n, 7, (0.8, 0.2, 0.0))
    got = [[int(e["id"]) for e in part] for part in (train, validation)]
    assert sorted(got[0]) == sorted(expected[0].tolist()) and got[0] == sorted(got[0])
    assert sorted(got[1]) == sorted(expected[1].tolist()) and sizes == (40, 10)
    assert train.cardinality() == tf.data.UNKNOWN_CARDINALITY  # filtered lazily, not sliced


def test_clean_text_in_graph_ops_matches_python():
    from pipelines.readers import text_label, tfds_sources

    texts = ["a<br /><br />b <BR>c  d", "  tabs\tand\nnewlines  ", "nbsp\u00a0here\u2003em",
             "<br/>lead and trail<br>", "plain"]
    got = [t.decode() for t in tfds_sources.clean_text_tf(tf.constant(texts)).numpy()]
    assert got == [text_label.clean_text(t) for t in texts]


def test_evaluate_data_file_streams_for_sentiment_and_char(tmp_path, monkeypatch):
    from pipelines.readers import plain_text, text_label

    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 0)
    reviews = tmp_path / "reviews.csv"
    reviews.write_text("text,label\n" + "".join(f"review {i} <br />here,{i % 2}\n"
                                                 for i in range(9)), encoding="utf-8")
    splits = sources.load("sentiment", str(reviews), evaluation=True)
    assert splits.info["streamed"] and splits.info["whole_file"]
    examples, _ = text_label.read_text_label(reviews)
    assert _rows(splits.test) == _rows(splits.validation) == [(y, t.encode())
                                                              for t, y in examples]
    assert splits.info["examples"] == {"train": 0, "validation": 9, "test": 9}
    story = tmp_path / "story.txt"
    story.write_text("\n\n".join(f"Paragraph {i}.\nIts second line." for i in range(5)),
                     encoding="utf-8")
    for mode, expected in (("continuous", plain_text.chunk_text(story.read_text())),
                           ("lines", plain_text.read_lines(story))):
        splits = sources.load("char_generation", str(story), evaluation=True, mode=mode)
        assert splits.info["streamed"] and splits.info["whole_file"]
        assert [r[0].decode() for r in _rows(splits.test)] == expected
