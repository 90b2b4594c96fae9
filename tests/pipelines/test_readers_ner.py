"""CoNLL readers and the NER task through ``load``."""

import pytest
import tensorflow as tf

from pipelines import sources
from pipelines.errors import DataError
from pipelines.readers import conll


def test_read_conll2003_layout(fixtures_dir):
    sentences = conll.read_conll(fixtures_dir / "conll/conll2003/train.txt")
    assert len(sentences) == 4  # -DOCSTART- dropped
    tokens, tags = sentences[0]
    assert tokens[:3] == ["EU", "rejects", "German"]
    assert tags[:3] == ["B-ORG", "O", "B-MISC"]
    assert sentences[1] == (["Peter", "Blackburn"], ["B-PER", "I-PER"])


def test_iter_conll_keeps_line_numbers(fixtures_dir):
    first = next(conll.iter_conll(fixtures_dir / "conll/conll2003/train.txt"))
    assert first.lines[0] == 3 and first.lines[-1] == 11
    assert first.path.endswith("train.txt")


def test_docstart_lines_number_the_documents(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("Lone O\n\n-DOCSTART- -X- O\n\nA B-PER\n\nB O\n-DOCSTART- -X- O\nC O\n",
                    encoding="utf-8")
    sentences = list(conll.iter_conll(path))
    assert [(s.tokens, s.document) for s in sentences] == [
        (["Lone"], -1), (["A"], 0), (["B"], 0), (["C"], 1)]
    # Through load: documents keep their index, a sentence outside any gets its own id < 0.
    splits = sources.load("ner", str(path), seed=0)
    ids = {tuple(e["tokens"].numpy().astype(str)): int(e["document"].numpy())
           for part in (splits.train, splits.validation, splits.test) if part is not None
           for e in part}
    assert ids[("A",)] == ids[("B",)] == 0 and ids[("C",)] == 1 and ids[("Lone",)] < 0


def test_read_wnut_tab_layout(fixtures_dir):
    sentences = conll.read_conll(fixtures_dir / "conll/wnut/wnut17train.conll")
    assert [len(t) for t, _ in sentences] == [17, 4]
    assert sentences[0][0][-3:] == ["Empire", "State", "Building"]
    assert sentences[1][1] == ["O", "B-group", "I-group", "O"]


@pytest.mark.parametrize("body,line,message", [
    ("EU B-ORG\nrejects\n", 2, "at least 2 columns"),
    ("EU NNP B-NP B-ORG\nrejects VBZ O\n", 2, "expected 4 columns"),
    ("EU B-ORG\nsaid I-PER\n", 2, "does not continue"),
    ("EU B_ORG\n", 1, "malformed"),
])
def test_bad_conll_names_file_and_line(tmp_path, body, line, message):
    path = tmp_path / "bad.conll"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        conll.read_conll(path, scheme="IOB2")
    assert str(err.value).startswith(f"{path}:{line}: ")


def test_bad_utf8_names_the_line(tmp_path):
    path = tmp_path / "latin1.conll"
    path.write_bytes("EU B-ORG\n\nK\u00f6ln B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match=f"{path}:3: not valid UTF-8"):
        conll.read_conll(path)


def test_stray_i_tag_is_an_error_or_repaired(fixtures_dir):
    path = fixtures_dir / "conll/stray_i.txt"
    with pytest.raises(DataError, match=r"stray_i.txt:4: .*I-PER does not continue"):
        sources.load("ner", str(path))
    with pytest.warns(UserWarning, match=r"stray_i.txt: line\(s\) 4: repaired"):
        splits = sources.load("ner", str(path), repair=True, seed=0)
    everything = [x for d in (splits.train, splits.validation, splits.test) if d is not None
                  for x in _all(d)]
    by_first = {tokens[0]: tags for tokens, tags in everything}
    assert by_first[b"John"] == [b"B-PER", b"I-PER", b"O", b"B-PER", b"O", b"B-LOC"]


def _all(dataset):
    return [(e["tokens"].numpy().tolist(), e["tags"].numpy().tolist()) for e in dataset]


def test_load_conll_directory_splits_by_file_name(fixtures_dir):
    splits = sources.load("ner", str(fixtures_dir / "conll/conll2003"))
    assert splits.info["examples"] == {"train": 4, "validation": 2, "test": 1}
    assert splits.info["scheme"] == "IOB2" and splits.info["target_scheme"] == "IOB2"
    assert splits.info["tag_names"] == ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER",
                                        "I-LOC", "I-MISC", "I-ORG", "I-PER"]
    assert splits.info["entities"]["train"] == {"LOC": 1, "MISC": 2, "ORG": 2, "PER": 1}
    spec = splits.train.element_spec
    assert spec["tokens"] == tf.TensorSpec([None], tf.string)
    assert spec["tags"] == tf.TensorSpec([None], tf.string)
    test = _all(splits.test)
    assert test[0][0][2] == b"JAPAN" and test[0][1][2] == b"B-LOC"


def test_load_wnut_without_test_file_and_bioes_target(fixtures_dir):
    splits = sources.load("ner", str(fixtures_dir / "conll/wnut"), scheme="BIOES")
    assert splits.test is None
    train = _all(splits.train)
    assert train[0][1][-3:] == [b"B-location", b"I-location", b"E-location"]
    assert "S-person" in splits.info["tag_names"]


def test_load_iob1_file_is_detected_and_converted(fixtures_dir):
    splits = sources.load("ner", str(fixtures_dir / "conll/iob1.txt"), seed=3)
    assert splits.info["scheme"] == "IOB1"
    everything = [x for d in (splits.train, splits.validation) for x in _all(d)]
    by_first = {tokens[0]: tags for tokens, tags in everything}
    assert by_first[b"Germany"] == [b"B-LOC", b"B-LOC", b"O", b"B-PER", b"I-PER"]
    assert by_first[b"U.N."][:3] == [b"B-ORG", b"O", b"B-PER"]


def test_load_bioes_file_to_iob2(fixtures_dir):
    splits = sources.load("ner", str(fixtures_dir / "conll/bioes.txt"))
    assert splits.info["scheme"] == "BIOES"
    everything = [x for d in (splits.train, splits.validation) for x in _all(d)]
    assert [b"S-PER"] not in [t for _, t in everything]
    assert all(not tag.startswith((b"S-", b"E-")) for _, t in everything for tag in t)


def test_two_candidate_files_for_a_split_is_an_error(tmp_path):
    for name in ("train.txt", "dev.txt", "valid.txt"):
        (tmp_path / name).write_text("a O\n", encoding="utf-8")
    with pytest.raises(DataError, match="two files look like the validation split"):
        conll.find_split_files(tmp_path)
