"""Tag schemes: conversions, round trips, validation errors, repair, detection."""

import itertools
import random

import pytest

from pipelines import tags
from pipelines.errors import DataError

IOB1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG"]
IOB2 = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "O", "B-ORG"]
BIOES = ["B-PER", "E-PER", "O", "S-LOC", "S-LOC", "O", "S-ORG"]


@pytest.mark.parametrize("source,target", itertools.permutations(
    [("IOB1", IOB1), ("IOB2", IOB2), ("BIOES", BIOES)], 2))
def test_known_conversions(source, target):
    assert tags.convert(source[1], source[0], target[0]) == target[1]


def _random_spans(rng, length):
    spans, i = [], 0
    while i < length:
        if rng.random() < 0.4:
            end = min(length, i + rng.randint(1, 4))
            spans.append((rng.choice(["PER", "LOC", "ORG", "MISC"]), i, end))
            i = end
        else:
            i += 1
    return spans


def test_round_trip_all_scheme_pairs_on_random_sequences():
    rng = random.Random(0)
    checked = 0
    for _ in range(300):
        length = rng.randint(0, 12)
        spans = _random_spans(rng, length)
        for a, b in itertools.permutations(tags.SCHEMES, 2):
            seq_a = tags.from_spans(spans, length, a)
            seq_b = tags.convert(seq_a, a, b)
            assert tags.convert(seq_b, b, a) == seq_a
            assert tags.to_spans(seq_b, b) == spans
            checked += 1
    assert checked == 300 * 6


def test_adjacent_same_type_entities_in_iob1_use_b():
    spans = [("LOC", 0, 1), ("LOC", 1, 3), ("PER", 3, 4)]
    assert tags.from_spans(spans, 4, "IOB1") == ["I-LOC", "B-LOC", "I-LOC", "I-PER"]


@pytest.mark.parametrize("sequence,scheme,position", [
    (["O", "I-PER"], "IOB2", 2),
    (["B-PER", "I-LOC"], "IOB2", 2),
    (["B-PER", "O"], "BIOES", 2),
    (["B-PER"], "BIOES", 1),
    (["O", "E-PER"], "BIOES", 2),
    (["S-PER", "I-PER", "E-PER"], "BIOES", 2),
])
def test_invalid_sequences_name_the_position(sequence, scheme, position):
    with pytest.raises(tags.TagError, match=f"token {position}"):
        tags.validate(sequence, scheme)


def test_invalid_sequence_names_file_and_line():
    with pytest.raises(DataError) as err:
        tags.validate(["B-PER", "O", "I-PER"], "IOB2", path="x.conll", lines=[4, 5, 6])
    assert str(err.value).startswith("x.conll:6: ")
    assert "'I-PER'" in str(err.value)
    assert err.value.line == 6


@pytest.mark.parametrize("bad", ["B_PER", "X-PER", "B-", "per", "E-PER"])
def test_malformed_tags_are_rejected(bad):
    with pytest.raises(tags.TagError, match="malformed IOB2 tag"):
        tags.validate(["O", bad], "IOB2")


def test_repair_opens_a_new_entity_and_warns():
    with pytest.warns(UserWarning, match="repaired invalid IOB2"):
        fixed = tags.convert(["O", "I-PER", "I-PER", "B-LOC", "I-ORG"], "IOB2", "IOB2",
                             repair=True)
    assert fixed == ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]
    with pytest.warns(UserWarning):
        assert tags.convert(["B-PER", "O"], "BIOES", "IOB2", repair=True) == ["B-PER", "O"]


def test_detect_scheme():
    assert tags.detect_scheme([IOB1]) == "IOB1"
    assert tags.detect_scheme([IOB2]) == "IOB2"
    assert tags.detect_scheme([BIOES]) == "BIOES"
    assert tags.detect_scheme([["O", "O"]]) == "IOB2"
    # B- starts and I- starts together: IOB2 with a stray I-, not IOB1
    assert tags.detect_scheme([["B-PER", "O", "I-LOC"]]) == "IOB2"


def test_tag_names_and_scheme_aliases():
    assert tags.tag_names(["PER", "LOC"], "bio") == ["O", "B-LOC", "B-PER", "I-LOC", "I-PER"]
    assert tags.tag_names(["X"], "iobes") == ["O", "B-X", "E-X", "I-X", "S-X"]
    with pytest.raises(ValueError, match="unknown tag scheme"):
        tags.normalize_scheme("BILOU")
