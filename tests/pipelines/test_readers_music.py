"""MIDI and music21 readers, the MIDI writer, and the music task through ``load``."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import sources
from pipelines.errors import DataError
from pipelines.readers import music

MELODY = np.array([[60, 0.0, 0.5], [62, 0.5, 0.5], [64, 0.5, 1.0], [67, 1.0, 0.25],
                   [65, 0.5, 0.5]], np.float32)


def test_notes_from_onsets_sorts_and_takes_differences():
    notes = music.notes_from_onsets([64, 60, 67], [1.0, 0.0, 1.0], [0.5, 1.0, 0.25])
    np.testing.assert_allclose(notes, [[60, 0, 1], [64, 1, 0.5], [67, 0, 0.25]])
    assert notes.dtype == np.float32
    assert music.notes_from_onsets([], [], []).shape == (0, 3)


def test_write_then_read_midi_round_trip(tmp_path):
    path = music.write_midi(MELODY, tmp_path / "m.mid")
    (notes,) = music.read_midi(path)
    np.testing.assert_allclose(notes, MELODY, atol=2e-3)


def test_beats_unit_uses_the_tempo(tmp_path):
    path = music.write_midi(MELODY, tmp_path / "slow.mid", unit="beats", tempo=60)
    (seconds,) = music.read_midi(path)
    (beats,) = music.read_midi(path, unit="beats")
    np.testing.assert_allclose(beats, MELODY, atol=2e-3)
    np.testing.assert_allclose(seconds[:, 1:], MELODY[:, 1:], atol=2e-3)  # 60 bpm: 1 beat = 1 s
    fast = music.write_midi(MELODY, tmp_path / "fast.mid", unit="beats", tempo=120)
    np.testing.assert_allclose(music.read_midi(fast)[0][:, 1:], MELODY[:, 1:] / 2, atol=2e-3)


def test_drum_tracks_are_skipped(tmp_path):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    for is_drum, pitch in ((False, 60), (True, 36), (False, 48)):
        track = pretty_midi.Instrument(program=0, is_drum=is_drum)
        track.notes += [pretty_midi.Note(90, pitch + i, i * 0.5, i * 0.5 + 0.4) for i in range(3)]
        midi.instruments.append(track)
    midi.write(str(tmp_path / "band.mid"))
    tracks = music.read_midi(tmp_path / "band.mid")
    assert [t[0, 0] for t in tracks] == [60, 48]


def test_corrupt_midi_names_the_file(tmp_path):
    path = tmp_path / "broken.mid"
    path.write_bytes(b"MThd not really midi")
    with pytest.raises(DataError, match="broken.mid: cannot parse MIDI"):
        music.read_midi(path)


def test_write_midi_rejects_wrong_shape(tmp_path):
    with pytest.raises(ValueError, match=r"shape \[n, 3\]"):
        music.write_midi(np.zeros((4, 2)), tmp_path / "x.mid")


def _midi_dir(tmp_path, count=5):
    for i in range(count):
        music.write_midi(MELODY + [i, 0, 0], tmp_path / f"piece{i}.mid")
    return tmp_path


def test_load_midi_directory_splits_by_file(tmp_path):
    splits = sources.load("music_generation", str(_midi_dir(tmp_path)), seed=1)
    assert splits.info["unit"] == "seconds"
    assert splits.info["examples"] == {"train": 3, "validation": 1, "test": 1}
    assert splits.train.element_spec == {"notes": tf.TensorSpec([None, 3], tf.float32)}
    files = splits.info["files"]
    assert not set(files["train"]) & set(files["validation"] + files["test"])
    first = next(iter(splits.train))["notes"].numpy()
    assert first.shape == (5, 3) and first[0, 0] in (60, 61, 62, 63, 64)
    again = sources.load("music_generation", str(tmp_path), seed=1)
    assert again.info["files"] == files
    other = [sources.load("music_generation", str(tmp_path), seed=s).info["files"]["train"]
             for s in range(2, 6)]
    assert any(o != files["train"] for o in other)


def test_load_empty_midi_directory_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no .mid/.midi files"):
        sources.load("music_generation", str(tmp_path))


def test_chorales_are_cached_by_music21_version(tmp_path, monkeypatch):
    monkeypatch.setenv("RECURRENT_SUITE_CACHE", str(tmp_path))
    names = music.list_chorales()
    assert len(names) == 371
    (soprano,) = music.read_music21_chorales(names[:1])
    assert soprano.shape[1] == 3 and len(soprano) > 20
    assert 55 <= soprano[:, 0].min() and soprano[:, 0].max() <= 84  # soprano range
    assert (soprano[:, 2] > 0).all() and (soprano[1:, 1] > 0).all()  # a monophonic line
    cached = list(tmp_path.glob("music21-*/soprano/*.npy"))
    assert len(cached) == 1

    def no_parsing(*args):
        raise AssertionError("cache not used")

    monkeypatch.setattr(music, "_chorale_notes", no_parsing)
    np.testing.assert_array_equal(music.read_music21_chorales(names[:1])[0], soprano)


def test_all_voices_merge_into_one_polyphonic_sequence(tmp_path, monkeypatch):
    monkeypatch.setenv("RECURRENT_SUITE_CACHE", str(tmp_path))
    name = music.list_chorales()[:1]
    (soprano,) = music.read_music21_chorales(name)
    (full,) = music.read_music21_chorales(name, voices="all")
    assert len(full) > 3 * len(soprano)
    assert (full[:, 1] == 0).sum() > len(soprano)  # chords: simultaneous onsets
    assert full[:, 0].min() < 50  # the bass is in there
    with pytest.raises(ValueError, match="voices must be one of"):
        music.read_music21_chorales(name, voices="alto")


def test_load_bach_few_chorales():
    splits = sources.load("music_generation", "bach", max_examples=2, seed=7)
    assert splits.info["examples"] == {"train": 2, "validation": 1, "test": 1}
    assert splits.info["unit"] == "beats" and splits.info["voices"] == "soprano"
    assert splits.test.element_spec == {"notes": tf.TensorSpec([None, 3], tf.float32)}
    pieces = splits.info["pieces"]
    assert not set(pieces["train"]) & set(pieces["validation"] + pieces["test"])
    seconds = sources.load("music_generation", "bach", max_examples=2, seed=7, unit="seconds",
                           tempo=120)
    beats = next(iter(splits.train))["notes"].numpy()
    np.testing.assert_allclose(next(iter(seconds.train))["notes"].numpy()[:, 1:],
                               beats[:, 1:] * 0.5)


@pytest.mark.slow
def test_load_bach_all_chorales():
    splits = sources.load("music_generation", "bach")
    assert sum(splits.info["examples"].values()) == 371
    assert splits.info["examples"]["train"] == 297
