"""tasks.seq2seq with ``unit=subword``: trains a few steps, exports, serves raw accented text."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("tensorflow_text")
pytest.importorskip("sentencepiece")

from tasks import seq2seq as s2s  # noqa: E402
from tasks.runner import config as config_lib  # noqa: E402
from tasks.runner import export as export_lib  # noqa: E402
from tasks.runner import run_dir as rd  # noqa: E402
from tasks.runner import training  # noqa: E402
from tests.tasks.export_checks import assert_loaders_agree  # noqa: E402

SUBJECTS = [("I", "Yo"), ("You", "Tú"), ("The boy", "El niño"), ("My mother", "Mi mamá"),
            ("The teacher", "El profesor"), ("Ángel", "Ángel"), ("The girl", "La niña"),
            ("Our neighbour", "Nuestro vecino")]
VERBS = [("eat", "como"), ("see", "veo"), ("want", "quiero"), ("buy", "compro"),
         ("love", "adoro"), ("draw", "dibujo")]
OBJECTS = [("an apple.", "una manzana."), ("the house!", "¡la casa!"), ("coffee?", "¿café?"),
           ("a crêpe.", "una crepa."), ("the song…", "la canción…"),
           ("«the book»", "«el libro»")]
TINY = {"unit": "subword", "vocab_size": 320, "max_examples": 0, "epochs": 1, "units": 16,
        "embedding_dim": 8, "batch_size": 32, "dropout": 0.0, "beam_width": 3,
        "eval_batch_size": 64}
ACCENTED = np.array(["¿Dónde está Ángel?", "The girl wants a crêpe.", "Ñandú «sí»… 🙂"],
                    dtype=object)


def write_pairs(path):
    lines = [f"{s} {v} {o}\t{ts} {tv} {to}" for s, ts in SUBJECTS for v, tv in VERBS
             for o, to in OBJECTS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def task():
    return s2s.Seq2SeqTask()


def train_run(task, root, shared):
    config = config_lib.override(s2s.Seq2SeqConfig(), {
        **TINY, "data": write_pairs(root / "pairs.tsv"), "shared_vocab": shared})
    run_dir = str(root / "run")
    metrics = training.train(task, config, run_dir, verbose=0)
    return run_dir, metrics, shared


@pytest.fixture(scope="module")
def subword_run(task, tmp_path_factory):
    return train_run(task, tmp_path_factory.mktemp("subword"), shared=False)


def test_subword_run_trains_saves_and_reloads(task, subword_run):
    check_run(task, *subword_run)


@pytest.mark.slow  # another ~1 minute of training on 2 contended cores
def test_shared_vocabulary_run(task, tmp_path):
    check_run(task, *train_run(task, tmp_path, shared=True))


def check_run(task, run_dir, metrics, shared):
    assert metrics["examples"] > 0 and "beam_bleu" in metrics and "beam_chrf" in metrics
    assets = rd.path(run_dir, rd.ASSETS)
    names = ["shared"] if shared else ["source", "target"]
    for name in names:
        assert os.path.exists(os.path.join(assets, f"{name}.spm.model"))
    with open(os.path.join(assets, "seq2seq.json"), encoding="utf-8") as f:
        assert json.load(f)["unit"] == "subword"
    config, pre, model = rd.load_run(task, run_dir)
    assert pre.unit == "subword" and (pre.source_vocab is pre.target_vocab) == shared
    # Targets round-trip through the target vocabulary exactly (no lowercasing here).
    texts = ["¡La casa!", "Mi mamá dibujo una crepa…"]
    ids = pre.target_ids(tf.constant(texts))
    assert [t.decode("utf-8") for t in pre.decode(ids.to_tensor(0)).numpy()] == texts


def test_subword_export_translates_raw_accented_text_in_a_fresh_process(task, subword_run,
                                                                        tmp_path):
    run_dir = subword_run[0]
    # export() validates in a fresh interpreter that cannot import the project (object loader,
    # TF1 session loader, warm-up replay), with tensorflow_text imported as an op library.
    target = export_lib.export(task, run_dir, str(tmp_path / "export"))
    assert any(f.endswith(".spm.model") for f in os.listdir(os.path.join(target, "assets")))
    agreed = assert_loaders_agree(target, {"serving_default": {"text": ACCENTED},
                                           "greedy": {"text": ACCENTED}})
    for signature in ("serving_default", "greedy"):
        out = agreed[signature]
        assert out["translation"].shape == (3,)
        translations = [t.decode("utf-8") for t in out["translation"]]
        assert not any("[UNK]" in t or "\u2047" in t for t in translations), translations
        assert not np.any(out["output_tokens"] == b"[UNK]")
