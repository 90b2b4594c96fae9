"""``sources.load(..., evaluation=True)``: a named file is evaluated whole and in order; a
CoNLL directory needs no training file (issue #16, item 6)."""

import os
import shutil

import numpy as np
import pytest

from pipelines import sources
from pipelines.errors import DataError
from pipelines.readers import conll, music, pairs, plain_text, text_label

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
CONLL = os.path.join(FIXTURES, "ner", "tiny_conll")


def texts(dataset, key):
    return [x.decode() for x in dataset.map(lambda e: e[key]).as_numpy_iterator()]


def test_a_conll_file_is_scored_whole_not_a_seeded_slice():
    path = os.path.join(CONLL, "train.txt")
    file_tokens = [" ".join(s.tokens) for s in conll.iter_conll(path)]
    split = sources.load("ner", path, evaluation=False)
    assert split.info["examples"]["test"] < len(file_tokens)  # the training-time split
    whole = sources.load("ner", path, evaluation=True, max_examples=4)  # no cap either
    assert whole.info["whole_file"] and whole.info["examples"]["test"] == len(file_tokens)
    for part in (whole.test, whole.validation):
        got = [" ".join(t.decode() for t in tokens)
               for tokens in part.map(lambda e: e["tokens"]).as_numpy_iterator()]
        assert got == file_tokens  # every sentence, in file order
    assert whole.info["examples"]["train"] == 0


def test_a_conll_directory_with_only_a_test_file(tmp_path):
    shutil.copy(os.path.join(CONLL, "test.txt"), tmp_path / "test.txt")
    with pytest.raises(DataError, match="no training file"):
        sources.load("ner", str(tmp_path))  # training still needs one
    splits = sources.load("ner", str(tmp_path), evaluation=True)
    assert splits.validation is None and splits.info["examples"]["test"] == 3
    assert not splits.info.get("whole_file")
    (tmp_path / "test.txt").rename(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="no train/valid/dev/test file"):
        sources.load("ner", str(tmp_path), evaluation=True)


def test_other_tasks_files_are_scored_whole():
    csv = os.path.join(FIXTURES, "sentiment", "tiny_reviews.csv")
    examples, _ = text_label.read_text_label(csv)
    splits = sources.load("sentiment", csv, evaluation=True)
    assert texts(splits.test, "text") == [t for t, _ in examples]
    names = os.path.join(FIXTURES, "text", "names.txt")
    splits = sources.load("char_generation", names, evaluation=True, mode="lines")
    assert texts(splits.test, "text") == plain_text.read_lines(names)
    tsv = os.path.join(FIXTURES, "pairs", "spa_tiny.tsv")
    splits = sources.load("seq2seq", "pairs:" + tsv, evaluation=True)
    assert texts(splits.test, "source") == [s for s, _ in pairs.read_pairs(tsv)]


def test_a_midi_directory_is_scored_whole(tmp_path):
    melody = np.array([[60, 0, 0.5], [62, 0.5, 0.5], [64, 0.5, 1.0]], np.float32)
    for i in range(3):
        music.write_midi(melody + [i, 0, 0], tmp_path / f"{i}.mid")
    assert sources.load("music_generation", str(tmp_path)).info["examples"]["test"] == 1
    splits = sources.load("music_generation", str(tmp_path), evaluation=True)
    pitches = [p[0, 0] for p in splits.test.map(lambda e: e["notes"]).as_numpy_iterator()]
    assert pitches == [60, 61, 62]
