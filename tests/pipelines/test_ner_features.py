"""In-graph NER features: casing classes, tag-scheme conversion of padded batches, document
keys."""

import pytest
import tensorflow as tf

from models.tagger import CASING_CLASSES
from pipelines import tags as tagging
from pipelines.ner_features import casing_ids, convert_tags_graph, document_keys


def test_casing_classes_in_graph():
    tokens = ["", "3.5", "1,000", "EU", "U.S", "Paris", "said", "iPhone", "A380", ",", "中国"]
    want = ["<pad>", "numeric", "numeric", "upper", "upper", "title", "lower", "mixed",
            "has_digit", "punct", "other"]
    got = casing_ids(tf.constant([tokens])).numpy()[0]
    assert [CASING_CLASSES[i] for i in got] == want


@pytest.mark.parametrize("target", ["IOB1", "IOB2", "BIOES"])
def test_in_graph_tag_conversion_matches_pipelines_tags(target):
    sequences = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "B-ORG", "I-ORG", "O"],
                 ["O", "O", "O", "O"], ["B-MISC", "I-MISC", "I-MISC", "B-PER"]]
    for source in ("IOB2", "BIOES"):
        rows = [tagging.convert(s, "IOB2", source) + [""] for s in sequences]  # padded column
        got = convert_tags_graph(tf.constant(rows), source, target).numpy().astype(str)
        for row, seq in zip(got.tolist(), sequences):
            assert row[:-1] == tagging.convert(seq, "IOB2", target), (source, target, seq)
            assert row[-1] == ""


def test_document_keys_ignore_case_and_flag_capitalised_tokens():
    tokens = tf.constant([["JAPAN", "Japan", "japan", "Éire", "ÉIRE", "Paris", "", "said"]])
    keys, capital = document_keys(tokens)
    keys = keys.numpy()[0].tolist()
    assert len(set(keys[:3])) == 1 and keys[3] == keys[4]
    assert len({keys[0], keys[3], keys[5], keys[7]}) == 4
    assert capital.numpy()[0].tolist() == [True, True, False, True, True, True, False, False]
