"""Shared reader helpers: DataError messages, strict UTF-8, seeded and grouped splits.

Reader-specific tests: test_readers_ner.py, test_readers_text.py, test_readers_music.py.
"""

import pytest

from pipelines.errors import DataError
from pipelines.readers import _common


def test_data_error_message_names_file_line_and_value():
    err = DataError("bad tag", "data/train.txt", 12, "B_PER")
    assert str(err) == "data/train.txt:12: bad tag (got 'B_PER')"
    assert isinstance(err, ValueError)
    assert (err.path, err.line, err.value) == ("data/train.txt", 12, "B_PER")
    assert str(DataError("empty", "x.csv")) == "x.csv: empty"
    assert str(DataError("oops", line=3)) == "line 3: oops"


def test_read_text_strips_bom_and_crlf(tmp_path):
    path = tmp_path / "win.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb\r\n")
    assert _common.read_text(path) == "a\nb\n"


def test_read_text_reports_the_line_of_bad_bytes(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"ok\nfine\nbad \xff byte\n")
    with pytest.raises(DataError, match=r"bad.txt:3: not valid UTF-8"):
        _common.read_text(path)


def test_package_file_errors_name_the_package():
    with pytest.raises(FileNotFoundError, match="'no-such-package' is not installed"):
        _common.package_file("no-such-package", "x")
    with pytest.raises(FileNotFoundError, match="missing from package 'names'"):
        _common.package_file("names", "names", "no.such.file")


@pytest.mark.parametrize("n,sizes", [(2, (1, 1, 0)), (3, (1, 1, 1)), (5, (3, 1, 1)),
                                     (10, (8, 1, 1)), (25000, (20000, 2500, 2500))])
def test_split_sizes(n, sizes):
    assert _common.split_sizes(n) == sizes


def test_split_sizes_too_few():
    with pytest.raises(DataError, match="need at least 2 examples"):
        _common.split_sizes(1, source="tiny.txt")


def test_seeded_split_is_a_deterministic_partition():
    items = list(range(100))
    train, validation, test = _common.seeded_split(items, seed=1)
    assert sorted(train + validation + test) == items
    assert (len(train), len(validation), len(test)) == (80, 10, 10)
    assert _common.seeded_split(items, seed=1) == (train, validation, test)
    assert _common.seeded_split(items, seed=2)[0] != train
    assert _common.seeded_split(items, 1, (0.8, 0.2, 0.0))[2] is None


def test_grouped_split_keeps_groups_together():
    items = [(i // 3, i) for i in range(60)]  # 20 groups of 3
    train, validation, test = _common.grouped_split(items, lambda x: x[0], seed=3)
    groups = [{g for g, _ in part} for part in (train, validation, test)]
    assert not groups[0] & groups[1] and not groups[0] & groups[2] and not groups[1] & groups[2]
    assert (len(groups[0]), len(groups[1]), len(groups[2])) == (16, 2, 2)
    assert len(train) == 48


def test_check_options_rejects_unknown_names():
    _common.check_options({"a": 1}, ("a", "b"), "src")
    with pytest.raises(ValueError, match=r"'src' does not take option\(s\) \['c'\]"):
        _common.check_options({"a": 1, "c": 2}, ("a", "b"), "src")
