"""Streamed sources: same data as the in-memory path, interleaved files, disk cache, no
whole-corpus graph constants, seeded hash-ranked splits."""

import collections
import os

import numpy as np
import pytest
import tensorflow as tf

from pipelines import batching, sources, streaming
from pipelines.readers import plain_text, text_label, text_stream
from pipelines.vocab import CharVocabulary, WordVectorizer

SPLITS = ("train", "validation", "test")


def _rows(ds):
    return [tuple(v.numpy().item() if hasattr(v.numpy(), "item") else v.numpy()
                  for v in tf.nest.flatten(e)) for e in ds]


def _write_reviews(path, n, seed=0):
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "film", "plot", "slow", "great", "dull", "actor", "\"quoted, word\""]
    with open(path, "w", encoding="utf-8") as f:
        f.write("text,label\n")
        for i in range(n):
            text = " ".join(rng.choice(words, size=int(rng.integers(3, 12))))
            f.write(f"\"{text.replace(chr(34), chr(34) * 2)} #{i}\",{'pos' if i % 3 else 'neg'}\n")


@pytest.fixture
def reviews(tmp_path):
    path = tmp_path / "reviews.csv"
    _write_reviews(path, 60)
    return str(path)


def test_seeded_order_is_a_stable_permutation():
    order = streaming.seeded_order(1000, 7)
    assert sorted(order.tolist()) == list(range(1000))
    assert np.array_equal(order, streaming.seeded_order(1000, 7))
    assert not np.array_equal(order, streaming.seeded_order(1000, 8))
    train, val, test = streaming.split_records(10, 3, (0.8, 0.1, 0.1))
    assert (len(train), len(val), len(test)) == (8, 1, 1)
    assert sorted(np.concatenate([train, val, test]).tolist()) == list(range(10))
    capped = streaming.split_records(10, 3, (0.8, 0.1, 0.1), caps=(3, 1, 1))
    assert capped[0].tolist() == train[:3].tolist()


def test_streamed_and_in_memory_sentiment_agree(reviews):
    streamed = text_stream.sentiment_file_splits(reviews, seed=5, options={}, stream=True)
    memory = text_stream.sentiment_file_splits(reviews, seed=5, options={}, stream=False)
    assert streamed.info["streamed"] and not memory.info["streamed"]
    assert streamed.train.cardinality() < 0 <= memory.train.cardinality()
    for name in SPLITS:
        assert _rows(getattr(streamed, name)) == _rows(getattr(memory, name))
    assert {k: v for k, v in streamed.info.items() if k != "streamed"} == \
        {k: v for k, v in memory.info.items() if k != "streamed"}
    # The streamed splits partition exactly what the whole-file reader reads.
    examples, names = text_label.read_text_label(reviews)
    assert names == streamed.info["class_names"] == ["negative", "positive"]
    everything = sum((_rows(getattr(streamed, s)) for s in SPLITS), [])
    assert collections.Counter(everything) == collections.Counter(
        (y, t.encode()) for t, y in examples)  # flatten sorts the keys: label, text
    assert streamed.info["examples"] == {"train": 48, "validation": 6, "test": 6}
    vocabularies = [WordVectorizer(max_tokens=50).adapt(s.train.map(lambda e: e["text"]))
                    .get_vocabulary() for s in (streamed, memory)]
    assert vocabularies[0] == vocabularies[1] and len(vocabularies[0]) > 5
    again = text_stream.sentiment_file_splits(reviews, seed=5, options={}, stream=True)
    assert _rows(again.train) == _rows(streamed.train)
    other = text_stream.sentiment_file_splits(reviews, seed=6, options={}, stream=True)
    assert _rows(other.train) != _rows(streamed.train)


@pytest.mark.parametrize("mode", ["lines", "continuous"])
def test_streamed_and_in_memory_char_text_agree(tmp_path, mode):
    path = tmp_path / "story.txt"
    paragraphs = [f"Line {i} of part {p}.\nAnd more {p}." for p in range(30) for i in range(1)]
    path.write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    runs = [text_stream.char_file_splits(str(path), seed=2, options={"mode": mode}, stream=s)
            for s in (True, False)]
    for name in SPLITS:
        assert _rows(getattr(runs[0], name)) == _rows(getattr(runs[1], name))
    vocabularies = [CharVocabulary().adapt(r.train.map(lambda e: e["text"])).get_vocabulary()
                    for r in runs]
    assert vocabularies[0] == vocabularies[1]
    old = plain_text.char_splits(str(path), seed=2, options={"mode": mode})
    if mode == "continuous":  # the same chunks as the whole-text reader, in the same order
        assert [r[0].decode() for r in _rows(runs[0].train)] == old.train
    else:
        assert sorted(r[0].decode() for name in SPLITS for r in _rows(getattr(runs[0], name))) \
            == sorted(old.train + old.validation + old.test)


def test_a_corpus_in_several_files_is_read_by_interleave(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for k in range(3):
        paragraphs = [f"file {k} paragraph {i}" for i in range(40)]
        (corpus / f"part{k}.txt").write_text("\n\n".join(paragraphs), encoding="utf-8")
    splits = sources.load("char_generation", str(corpus))
    assert splits.info["streamed"] and splits.info["files"] == 3
    assert "Interleave" in str(splits.train._variant_tensor)  # ParallelInterleaveDatasetV4
    texts = [r[0].decode() for r in _rows(splits.train)]
    # round-robin over the files, each file's chunks in text order
    assert [t.split()[1] for t in texts[:3]] == ["0", "1", "2"]
    assert len(texts) == splits.info["examples"]["train"] == 108
    for k in range(3):
        mine = [t for t in texts if t.startswith(f"file {k} ")]
        assert mine == [f"file {k} paragraph {i}" for i in range(len(mine))]
    held_out = [r[0].decode() for s in ("validation", "test") for r in _rows(getattr(splits, s))]
    assert held_out == [f"file 2 paragraph {i}" for i in range(28, 40)]


def test_large_file_streams_without_graph_constants(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    _write_reviews(path, 30_000)  # ~1.5 MB
    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 2 ** 20)
    splits = sources.load("sentiment", str(path), seed=1)
    assert splits.info["streamed"] is True
    size = os.path.getsize(path)
    assert size > 2 ** 20
    for name in SPLITS:
        graph = getattr(splits, name)._as_serialized_graph().numpy()
        assert len(graph) < 20_000, f"{name}: {len(graph)} bytes of graph for a {size} B file"
    assert sum(splits.info["examples"].values()) == 30_000
    first = next(iter(splits.validation))
    assert first["text"].dtype == tf.string and first["label"].dtype == tf.int32


def test_disk_cache_is_written_then_read_on_the_next_epoch(reviews, tmp_path):
    splits = text_stream.sentiment_file_splits(reviews, seed=5, options={}, stream=True)
    cache_dir = str(tmp_path / "cache")
    target = batching.cache_target(splits.train, cache_dir, "key")
    assert target.startswith(cache_dir) and batching.cache_target(splits.train, "", "k") is False
    assert batching.cache_target(splits.train, cache_dir, "other") != target
    ds = splits.train.map(lambda e: (e["text"], e["label"])).cache(target)
    first = _rows(ds)
    assert any(name.startswith(os.path.basename(target)) for name in os.listdir(cache_dir))
    os.rename(reviews, reviews + ".gone")  # the second epoch must not need the source
    assert _rows(ds) == first
    memory = text_stream.sentiment_file_splits(reviews + ".gone", seed=5, options={},
                                               stream=False)
    assert batching.cache_target(memory.train) is True  # in memory: cached in memory
