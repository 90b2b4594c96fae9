"""``pipelines.sources.load``: element specs, determinism, caps, named and shared sources."""

import sys
import types

import numpy as np
import pytest
import tensorflow as tf

from pipelines import sources
from pipelines.errors import DataError
from pipelines.readers import text_label

STRING = tf.TensorSpec([], tf.string)


def _rows(dataset, key):
    values = [e[key].numpy() for e in dataset]
    return [v.tolist() if hasattr(v, "tolist") else v for v in values]


def test_errors_for_unknown_task_source_and_option(fixtures_dir):
    with pytest.raises(ValueError, match="unknown task 'poetry'"):
        sources.load("poetry")
    with pytest.raises(ValueError, match=r"unknown sentiment source 'yelp'.*no file"):
        sources.load("sentiment", "yelp")
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['colour'\]"):
        sources.load("char_generation", "names", colour="red")
    with pytest.raises(ValueError, match="max_examples"):
        sources.load("sentiment", str(fixtures_dir / "text/reviews.jsonl"), max_examples=-1)


def test_sentiment_file_spec_split_and_determinism(fixtures_dir):
    path = str(fixtures_dir / "text/reviews.tsv")
    splits = sources.load("sentiment", path, text_column="review", label_column="sentiment")
    assert splits.train.element_spec == {"text": STRING, "label": tf.TensorSpec([], tf.int32)}
    assert splits.info["examples"] == {"train": 8, "validation": 1, "test": 1}
    assert splits.info["class_names"] == ["negative", "positive"]
    texts = {s: _rows(getattr(splits, s), "text") for s in ("train", "validation", "test")}
    assert len(set(sum(texts.values(), []))) == 10  # a partition of the file
    again = sources.load("sentiment", path, text_column="review", label_column="sentiment")
    assert _rows(again.train, "text") == texts["train"]
    others = [_rows(sources.load("sentiment", path, seed=s, text_column="review",
                                 label_column="sentiment").train, "text") for s in (1, 2, 3)]
    assert any(o != texts["train"] for o in others)


def test_max_examples_caps_are_prefixes(fixtures_dir):
    path = str(fixtures_dir / "pairs/spa_tiny.tsv")
    full = sources.load("seq2seq", path, seed=4)
    capped = sources.load("seq2seq", path, seed=4, max_examples=3)
    assert capped.info["examples"]["train"] == 3 and capped.info["examples"]["validation"] == 1
    assert _rows(capped.train, "source") == _rows(full.train, "source")[:3]


def test_aclimdb_directory(fixtures_dir):
    splits = sources.load("sentiment", str(fixtures_dir / "text/acl"))
    assert splits.info["examples"] == {"train": 5, "validation": 1, "test": 2}
    assert sorted(_rows(splits.test, "label")) == [0, 1]


def test_pairs_split_by_source_sentence(fixtures_dir):
    splits = sources.load("seq2seq", "pairs:" + str(fixtures_dir / "pairs/spa_tiny.tsv"),
                          seed=2)
    assert splits.train.element_spec == {"source": STRING, "target": STRING}
    by_split = [set(_rows(d, "source")) for d in (splits.train, splits.validation, splits.test)]
    assert not (by_split[0] & by_split[1]) and not (by_split[0] & by_split[2])
    assert sum(splits.info["examples"].values()) == 12
    assert splits.info["synthetic"] is False


def test_char_file_continuous_and_lines(fixtures_dir):
    story = sources.load("char_generation", str(fixtures_dir / "text/story.txt"))
    assert story.info["mode"] == "continuous"
    assert story.train.element_spec == {"text": STRING}
    # continuous text keeps document order: train is the beginning, test the end
    assert _rows(story.train, "text")[0].startswith(b"FIRST CITIZEN:\nBefore")
    assert _rows(story.test, "text") == [b"SECOND CITIZEN:\nOne word, good citizens."]
    lines = sources.load("char_generation", str(fixtures_dir / "text/names.txt"), mode="lines")
    assert lines.info["mode"] == "lines"
    assert lines.info["examples"] == {"train": 8, "validation": 1, "test": 1}
    with pytest.raises(ValueError, match="mode must be"):
        sources.load("char_generation", str(fixtures_dir / "text/names.txt"), mode="words")


def test_too_small_input_is_an_error(tmp_path):
    path = tmp_path / "one.tsv"
    path.write_text("Hi.\tHola.\n", encoding="utf-8")
    with pytest.raises(DataError, match="need at least 2 examples"):
        sources.load("seq2seq", str(path))


# ---------------------------------------------------------------- named offline sources

def test_imdb_and_rotten_tomatoes_split_sizes():
    imdb = text_label.sentiment_splits("imdb", seed=1337, options={})
    assert (len(imdb.train), len(imdb.validation), imdb.test) == (20000, 5000, None)
    rt = text_label.sentiment_splits("rotten_tomatoes", seed=1337, options={})
    assert (len(rt.train), len(rt.validation), len(rt.test)) == (6824, 853, 853)
    assert "<br" not in " ".join(t for t, _ in imdb.train[:500]).lower()


@pytest.mark.parametrize("task,source,spec", [
    ("sentiment", "imdb", {"text": STRING, "label": tf.TensorSpec([], tf.int32)}),
    ("sentiment", "rotten_tomatoes", {"text": STRING, "label": tf.TensorSpec([], tf.int32)}),
    ("char_generation", "names", {"text": STRING}),
    ("char_generation", "shakespeare", {"text": STRING}),
    ("ner", "synthetic", {"tokens": tf.TensorSpec([None], tf.string),
                          "tags": tf.TensorSpec([None], tf.string),
                          "document": tf.TensorSpec([], tf.int64)}),
    ("seq2seq", "dates", {"source": STRING, "target": STRING}),
])
def test_named_sources_load_offline(task, source, spec):
    splits = sources.load(task, source, max_examples=8, seed=3)
    assert splits.train.element_spec == spec
    assert splits.info["examples"]["train"] == 8
    assert splits.info["examples"]["validation"] == 2
    assert len(list(splits.train)) == 8 and len(list(splits.validation)) == 2
    assert splits.info["source"] == source
    report = sources.describe(splits)
    assert len(report.splitlines()) == 4 and "train: 8 examples" in report
    assert ("SYNTHETIC" in report) == (source in ("synthetic", "dates"))
    assert splits.info["synthetic"] == (source in ("synthetic", "dates"))
    again = sources.load(task, source, max_examples=8, seed=3)
    key = next(iter(spec))
    assert _rows(again.train, key) == _rows(splits.train, key)
    assert _rows(sources.load(task, source, max_examples=8, seed=4).train, key) != \
        _rows(splits.train, key)


def test_defaults_and_task_info():
    assert sources.load("char_generation", max_examples=4).info["source"] == "names"
    assert sources.load("char_generation", "names", max_examples=4, mode="lines").info["mode"] \
        == "lines"
    with pytest.raises(ValueError, match="'names' comes in mode 'lines' only"):
        sources.load("char_generation", "names", mode="continuous")
    ner = sources.load("ner", max_examples=8, scheme="BIOES")
    assert ner.info["tag_names"][0] == "O" and "S-PER" in ner.info["tag_names"]
    assert set(ner.info["entities"]["train"]) <= {"PER", "ORG", "LOC", "MISC"}
    dates = sources.load("seq2seq", max_examples=8, locales=["fr_FR"])
    targets = _rows(dates.train, "target")
    assert all(len(t) == 10 and t[4:5] == b"-" for t in targets)
    shakespeare = sources.load("char_generation", "shakespeare", max_examples=4)
    assert shakespeare.info["mode"] == "continuous"
    assert b":\n" in _rows(shakespeare.train, "text")[0]
    plays = shakespeare.info["plays"]
    assert not set(plays["train"]) & set(plays["validation"] + plays["test"])


# ---------------------------------------------------------------- TFDS plumbing (faked)

class _FakeBuilder:
    def __init__(self, name, data):
        self.data = data
        label = types.SimpleNamespace(names=["neg", "pos"])
        ner = types.SimpleNamespace(feature=types.SimpleNamespace(names=["O", "B-PER", "I-PER"]))
        self.info = types.SimpleNamespace(
            features={"label": label, "ner": ner},
            splits={k: types.SimpleNamespace(num_examples=len(v)) for k, v in data.items()})
        self.prepared = False

    def download_and_prepare(self):
        self.prepared = True

    def as_dataset(self, split, shuffle_files):
        # TFDS hands out tf.data datasets (mapped, never drained, by the readers).
        rows = self.data[split]
        spec = {k: tf.TensorSpec(np.shape(v), tf.string if isinstance(v, bytes) else
                                 tf.string if isinstance(v, list) else tf.int64)
                for k, v in rows[0].items()}
        spec = {k: tf.TensorSpec([None], s.dtype) if s.shape.rank else s
                for k, s in spec.items()}
        return tf.data.Dataset.from_generator(lambda: iter(rows), output_signature=spec)


def test_tfds_sources_are_wired_without_network(monkeypatch):
    calls = []
    reviews = {"train": [{"text": f"review {i}<br />".encode(), "label": i % 2}
                         for i in range(10)],
               "test": [{"text": b"held out", "label": 1}]}
    ner = {"train": [{"tokens": [b"Ann", b"Lee", b"ran"], "ner": np.array([1, 2, 0])}] * 4,
           "dev": [{"tokens": [b"Bo"], "ner": np.array([1])}]}
    fake = types.ModuleType("tensorflow_datasets")

    def builder(name, data_dir=None):
        calls.append((name, data_dir))
        return _FakeBuilder(name, reviews if name == "imdb_reviews" else ner)

    fake.builder = builder
    fake.as_numpy = lambda rows: rows
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", fake)
    splits = sources.load("sentiment", "tfds:imdb_reviews", data_dir="/prepared")
    assert calls[-1] == ("imdb_reviews", "/prepared")
    assert splits.info["examples"] == {"train": 8, "validation": 2, "test": 1}
    assert splits.info["class_names"] == ["neg", "pos"]
    assert b"<br" not in b"".join(_rows(splits.train, "text"))
    tagged = sources.load("ner", "conll2003", scheme="BIOES")
    assert calls[-1] == ("conll2003", None)
    assert _rows(tagged.train, "tags")[0] == [b"B-PER", b"E-PER", b"O"]
    assert tagged.test is None


# ---------------------------------------------------------------- shared corpora

def test_shared_conll2003_and_wnut(shared_data):
    conll = sources.load("ner", str(shared_data / "conll2003"), max_examples=40)
    assert conll.info["scheme"] == "IOB2" and conll.test is None
    assert {"PER", "LOC", "ORG", "MISC"} == {t[2:] for t in conll.info["tag_names"][1:]}
    wnut = sources.load("ner", str(shared_data / "wnut17"), max_examples=40)
    assert wnut.info["examples"] == {"train": 40, "validation": 10, "test": 10}
    assert "B-creative-work" in wnut.info["tag_names"]


def test_shared_text_pairs_and_midi(shared_data):
    tiny = sources.load("char_generation", str(shared_data / "tinyshakespeare/input.txt"),
                        max_examples=20)
    assert tiny.info["mode"] == "continuous"
    assert _rows(tiny.train, "text")[0].startswith(b"First Citizen:")
    spa = sources.load("seq2seq", str(shared_data / "anki_spa_eng/spa.txt"), max_examples=20)
    assert spa.info["examples"]["train"] == 20
    midi = sources.load("music_generation", str(shared_data / "midi_classical"),
                        max_examples=4, unit="beats")
    assert midi.info["unit"] == "beats" and midi.info["examples"]["train"] == 4


@pytest.mark.slow
def test_shared_full_counts(shared_data):
    conll = sources.load("ner", str(shared_data / "conll2003"))
    assert conll.info["examples"] == {"train": 14041, "validation": 3250}
    assert conll.info["tokens"] == {"train": 203621, "validation": 51362}
    assert sum(conll.info["entities"]["train"].values()) == 23499
    wnut = sources.load("ner", str(shared_data / "wnut17"))
    assert wnut.info["examples"] == {"train": 3394, "validation": 1009, "test": 1287}
    midi = sources.load("music_generation", str(shared_data / "midi_classical"))
    assert sum(len(f) for f in midi.info["files"].values()) == 18
