"""Streamed folders where a file is a record (aclImdb reviews, MIDI pieces): the same examples,
splits and vocabularies as the in-memory path, and a bad file is one error naming it."""

import collections

import numpy as np
import pytest
import tensorflow as tf

from pipelines import sources, streaming
from pipelines.errors import DataError
from pipelines.readers import file_stream, music, text_label
from pipelines.vocab import WordVectorizer

SPLITS = ("train", "validation", "test")
MELODY = np.array([[60, 0.0, 0.5], [62, 0.5, 0.5], [64, 0.5, 1.0]], np.float32)


def _rows(ds):
    return None if ds is None else [
        tuple(np.asarray(v.numpy()).tolist() for v in tf.nest.flatten(e)) for e in ds]


def _acl(root, n, with_test=True):
    words = ["good", "bad", "plot", "actor", "slow", "great"]
    for split in ("train", "test") if with_test else ("",):
        for label in ("neg", "pos"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                text = " ".join(words[(i + j) % 6] for j in range(3 + i % 5))
                (folder / f"{i}_{label}.txt").write_text(f"{text}<br />#{i} {split}",
                                                         encoding="utf-8")
    return root


@pytest.mark.parametrize("with_test", [True, False])
def test_streamed_and_in_memory_aclimdb_agree(tmp_path, with_test):
    root = str(_acl(tmp_path, 12, with_test))
    runs = [file_stream.aclimdb_splits(root, seed=3, options={}, stream=s) for s in (True, False)]
    assert runs[0].train.cardinality() < 0 <= runs[1].train.cardinality()
    for name in SPLITS:
        assert _rows(getattr(runs[0], name)) == _rows(getattr(runs[1], name))
    assert {k: v for k, v in runs[0].info.items() if k != "streamed"} == \
        {k: v for k, v in runs[1].info.items() if k != "streamed"}
    whole = text_label.read_aclimdb(root)  # the whole-folder reader: the same reviews
    everything = collections.Counter(r for name in SPLITS for r in _rows(getattr(runs[0], name)))
    assert everything == collections.Counter((y, t.encode()) for part in whole.values()
                                             for t, y in part)
    if with_test:  # test/ whole and in file order, train/ split 80/20
        assert [r[1].decode() for r in _rows(runs[0].test)] == [t for t, _ in whole["test"]]
        assert runs[0].info["examples"] == {"train": 19, "validation": 5, "test": 24}
    vocabularies = [WordVectorizer(max_tokens=50).adapt(r.train.map(lambda e: e["text"]))
                    .get_vocabulary() for r in runs]
    assert vocabularies[0] == vocabularies[1] and len(vocabularies[0]) > 6


def test_aclimdb_through_load_streams_past_the_limit(tmp_path, monkeypatch):
    root = str(_acl(tmp_path, 10))
    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 0)
    splits = sources.load("sentiment", root, seed=1, max_examples=6)
    assert splits.info["streamed"] and splits.info["examples"] == {
        "train": 6, "validation": 1, "test": 1}
    bad = tmp_path / "train" / "pos" / "5_pos.txt"
    bad.write_bytes(b"fine start \xff\xfe")
    with pytest.raises(DataError, match=f"{bad}:1: not valid UTF-8"):
        sources.load("sentiment", root)
    bad.write_text("   ", encoding="utf-8")
    with pytest.raises(DataError, match=f"{bad}:1: empty review"):
        sources.load("sentiment", root)


def _midi_folder(root, count):
    root.mkdir(exist_ok=True)
    for i in range(count):
        music.write_midi(MELODY + [i, 0, 0], root / f"piece{i:02d}.mid")
    return root


def test_streamed_and_in_memory_midi_agree(tmp_path):
    root = str(_midi_folder(tmp_path / "midi", 12))
    runs = [file_stream.midi_splits(root, seed=2, options={}, stream=s) for s in (True, False)]
    assert runs[0].info["streamed"] and not runs[1].info["streamed"]
    for name in SPLITS:
        assert _rows(getattr(runs[0], name)) == _rows(getattr(runs[1], name))
    assert {k: v for k, v in runs[0].info.items() if k != "streamed"} == \
        {k: v for k, v in runs[1].info.items() if k != "streamed"}
    firsts = sorted(round(r[0][0][0]) for name in SPLITS for r in _rows(getattr(runs[0], name)))
    assert firsts == list(range(60, 72))  # every piece once, across the splits
    assert runs[0].info["examples"] == {"train": 10, "validation": 1, "test": 1}
    files = runs[0].info["files"]
    assert not set(files["train"]) & set(files["validation"] + files["test"])
    assert runs[0].info["pitch_range"] == [min(f[0][0][0] for f in _rows(runs[0].train)),
                                           max(f[0][-1][0] for f in _rows(runs[0].train))]


def test_midi_folder_problems_keep_their_behaviour(tmp_path, monkeypatch):
    root = _midi_folder(tmp_path / "midi", 4)
    monkeypatch.setattr(streaming, "IN_MEMORY_MAX_BYTES", 0)
    import pretty_midi

    pretty_midi.PrettyMIDI().write(str(root / "silent.mid"))  # no tracks: skipped, warned
    with pytest.warns(UserWarning, match="silent.mid: no non-drum track with notes; skipped"):
        splits = sources.load("music_generation", str(root), seed=0)
    assert splits.info["streamed"] and sum(splits.info["examples"].values()) == 4
    whole = sources.load("music_generation", str(root), evaluation=True)
    assert [round(r[0][0][0]) for r in _rows(whole.test)] == [60, 61, 62, 63]
    (root / "broken.mid").write_bytes(b"MThd not really midi")
    with pytest.raises(DataError, match="broken.mid: cannot parse MIDI"):
        sources.load("music_generation", str(root))
