"""Plain-Python readers: text/label files, aclImdb dirs, text, names, plays, pairs, dates."""

import datetime
import re

import pytest

from pipelines.errors import DataError
from pipelines.readers import (
    chunk_text,
    clean_text,
    generate_dates,
    parse_play,
    read_aclimdb,
    read_lines,
    read_names,
    read_pairs,
    read_text_label,
)


def test_read_tsv_with_string_labels_and_br_cleaning(fixtures_dir):
    examples, names = read_text_label(fixtures_dir / "text/reviews.tsv", text_column="review",
                                      label_column="sentiment")
    assert names == ["negative", "positive"]
    assert len(examples) == 10
    assert examples[0] == ("A warm and funny film.", 1)
    assert examples[2] == ("The best thing I saw this year. Loved it.", 1)
    assert [y for _, y in examples] == [1, 0] * 5


def test_read_jsonl_with_int_labels(fixtures_dir):
    examples, names = read_text_label(fixtures_dir / "text/reviews.jsonl")
    assert names == ["negative", "positive"] and len(examples) == 10
    assert examples[1] == ("Tedious, overlong and dull.", 0)


def test_other_string_labels_are_sorted_or_fixed(tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("text,label\ngood,joy\nbad,anger\nmeh,neutral\n", encoding="utf-8")
    assert read_text_label(path)[1] == ["anger", "joy", "neutral"]
    examples, names = read_text_label(path, class_names=["neutral", "joy", "anger"])
    assert examples == [("good", 1), ("bad", 2), ("meh", 0)]


@pytest.mark.parametrize("name,body,line,message", [
    ("a.csv", "text,label\nfine,1\n,0\n", 3, "empty text"),
    ("b.csv", "text,label\nfine,1\nok,\n", 3, "empty label"),
    ("c.csv", "text,label\nfine,1\nok,1,extra\n", 3, "expected 2 fields"),
    ("d.csv", "review,label\nfine,1\n", 1, "no column 'text'"),
    ("e.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0\n', 2, "invalid JSON"),
    ("f.jsonl", '{"text": "a", "label": 1}\n{"txt": "b", "label": 0}\n', 2, "no field 'text'"),
    ("g.csv", "text,label\nfine,pos\nbad,neg\nhmm,maybe\n", 4, "not one of the classes"),
    ("h.csv", "text,label\nfine,1\nbad,0\nhmm,l\n", 4, "mixed numeric and non-numeric"),
])
def test_bad_text_label_names_file_and_line(tmp_path, name, body, line, message):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    kwargs = {"class_names": ["negative", "positive"]} if name == "g.csv" else {}
    with pytest.raises(DataError, match=message) as err:
        read_text_label(path, **kwargs)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_a_label_seen_once_in_a_big_file_warns(tmp_path):
    path = tmp_path / "typo.csv"
    rows = [f"text {i},{'positive' if i % 2 else 'negative'}" for i in range(24)]
    rows[7] = "text 7,postive"
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=f"{path}:9: label 'postive' occurs only once"):
        _, names = read_text_label(path)
    assert names == ["negative", "positive", "postive"]


def test_read_aclimdb_train_and_test(fixtures_dir):
    parts = read_aclimdb(fixtures_dir / "text/acl")
    assert sorted(parts) == ["test", "train"]
    assert [y for _, y in parts["train"]] == [0, 0, 0, 1, 1, 1]
    assert parts["train"][3] == ("Great fun. Recommended.", 1)
    assert parts["test"] == [("Hated it.", 0), ("Loved it.", 1)]


def test_aclimdb_without_pos_neg_is_an_error(tmp_path):
    (tmp_path / "pos").mkdir()
    with pytest.raises(DataError, match="expected pos/ and neg/"):
        read_aclimdb(tmp_path)


def test_clean_text():
    assert clean_text("a<br /><br />b <BR>c  d") == "a b c d"


def test_read_lines_and_chunks(fixtures_dir):
    assert read_lines(fixtures_dir / "text/names.txt")[:3] == ["Anna", "Bertil", "Carla"]
    assert len(read_lines(fixtures_dir / "text/names.txt")) == 10
    chunks = chunk_text((fixtures_dir / "text/story.txt").read_text(encoding="utf-8"))
    assert len(chunks) == 6
    assert chunks[1] == "ALL:\nSpeak, speak."
    assert chunk_text("a\nbb\nccc", max_chars=5) == ["a\nbb", "ccc"]


def test_read_names_package():
    first = read_names()
    assert 5000 < len(first) < 5300
    assert first[:3] == ["James", "John", "Robert"]
    assert len(set(first)) == len(first)
    assert all(re.fullmatch(r"[A-Z][a-z]+", n) for n in first)


def test_parse_play_strips_markup():
    markdown = ("# Play\n\n## ACT I\n\n### SCENE I. A room.\n\n_Enter HAMLET_\n\n"
                "**HAMLET**  \nTo be, or not to be:  \n_\\[Aside]_ that is the question.\n\n"
                "_Exit_\n\nWhether 'tis nobler\n\n**OPHELIA**  \nGood my lord\\--\n")
    assert parse_play(markdown) == [
        "HAMLET:\nTo be, or not to be:\nthat is the question.",
        "HAMLET:\nWhether 'tis nobler",
        "OPHELIA:\nGood my lord--",
    ]


def test_read_pairs(fixtures_dir):
    path = fixtures_dir / "pairs/spa_tiny.tsv"
    pairs = read_pairs(path)
    assert len(pairs) == 12 and pairs[0] == ("Go.", "Ve.")
    assert pairs[4] == ("Who?", "¿Quién?")  # attribution column ignored
    assert read_pairs(path, reverse=True, lowercase=True)[3] == ("¡corre!", "run!")
    assert len(read_pairs(path, max_length=1)) == 11


@pytest.mark.parametrize("body,line,message", [
    ("Go.\tVe.\nHi. Hola.\n", 2, "expected 'source<TAB>target'"),
    ("Go.\tVe.\na\tb\tc\td\n", 2, "expected 2 or 3"),
    ("Go.\tVe.\n\t\tx\n", 2, "empty source or target"),
])
def test_bad_pairs_name_file_and_line(tmp_path, body, line, message):
    path = tmp_path / "pairs.tsv"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        read_pairs(path)
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_generate_dates_is_deterministic_and_correct():
    first = generate_dates(300, seed=5)
    assert first == generate_dates(300, seed=5)
    assert first != generate_dates(300, seed=6)
    assert len({s for s, _ in first}) == 300
    for _, target in first:
        date = datetime.date.fromisoformat(target)
        assert 1950 <= date.year <= 2049
    # Every locale-specific rendering of a known date is paired with its ISO form.
    german = generate_dates(200, seed=1, locales=["de_DE"])
    assert any("März" in s or "Mär" in s for s, _ in german)
    assert all(not re.search("[\u200e\u200f\u00a0]", s) for s, _ in first)


def test_generate_dates_locales_and_exclusion():
    with pytest.raises(ValueError, match="unknown babel locale"):
        generate_dates(3, locales=["xx_YY"])
    seen = set()
    a = generate_dates(50, seed=1, exclude=seen, stream="a")
    b = generate_dates(50, seed=1, exclude=seen, stream="b")
    assert not {s for s, _ in a} & {s for s, _ in b}
