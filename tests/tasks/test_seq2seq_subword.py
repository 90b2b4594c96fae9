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
# Two epochs: the final model is their average (average_last), trained with label smoothing.
TINY = {"unit": "subword", "vocab_size": 320, "max_examples": 0, "epochs": 2, "units": 16,
        "embedding_dim": 8, "batch_size": 32, "dropout": 0.0, "beam_width": 3,
        "eval_batch_size": 64, "average_last": 2, "label_smoothing": 0.1}
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
    assert config.average_last == 2 and config.label_smoothing == 0.1
    assert sorted(os.listdir(os.path.join(run_dir, "averaging"))) == [
        "epoch-0001.weights.h5", "epoch-0002.weights.h5"]
    # Targets round-trip through the target vocabulary exactly (no lowercasing here).
    texts = ["¡La casa!", "Mi mamá dibujo una crepa…"]
    ids = pre.target_ids(tf.constant(texts))
    assert [t.decode("utf-8") for t in pre.decode(ids.to_tensor(0)).numpy()] == texts


@pytest.mark.slow  # ~90 s: export + both loaders in fresh processes (make test-slow)
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


def test_translate_nbest_returns_k_sorted_hypotheses_with_serving_time_settings(task,
                                                                                 subword_run):
    config, pre, model = rd.load_run(task, subword_run[0])
    module = task.serving_module(config, model, pre)
    k = config.beam_width
    texts = tf.constant(list(ACCENTED))
    for alpha, average, beta in ((0.0, False, 0.0), (0.6, False, 0.2), (1.0, True, 0.0)):
        out = module.translate_nbest(texts, tf.constant(alpha), tf.constant(average),
                                     tf.constant(beta))
        assert out["translations"].shape == (3, k) and out["scores"].shape == (3, k)
        scores = out["scores"].numpy()
        assert np.all(np.diff(scores, axis=1) <= 1e-6), scores
        assert not any(b"[UNK]" in t for t in out["translations"].numpy().ravel())
        if beta == 0.0:  # without coverage the score is the normalised log-probability
            lengths = out["lengths"].numpy().astype("float32")
            divisor = lengths ** alpha if average else ((5 + lengths) / 6) ** alpha
            np.testing.assert_allclose(scores, out["log_probs"].numpy() / divisor, rtol=1e-5)
    # serving_default's best hypothesis is the n-best list's first at the config's settings.
    best = module.serving_default(texts)
    first = module.translate_nbest(texts, tf.constant(float(config.length_penalty)),
                                   tf.constant(False), tf.constant(0.0))
    np.testing.assert_allclose(best["log_prob"].numpy(), first["log_probs"].numpy()[:, 0],
                               atol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match="length_penalty < 0"):
        module.translate_nbest(texts, tf.constant(-1.0), tf.constant(False), tf.constant(0.0))


def test_decode_length_follows_the_source_length(task, subword_run):
    config, pre, model = rd.load_run(task, subword_run[0])
    module = task.serving_module(config, model, pre)
    short = module.greedy(tf.constant(["Hi."]))
    longer = module.greedy(tf.constant(["The teacher wants the song… " * 3]))
    n_short = int(pre.source_ids(tf.constant(["Hi."]), ragged=True).row_lengths()[0])
    assert short["output_tokens"].shape[1] <= 2 * n_short + 10
    assert longer["output_tokens"].shape[1] <= s2s.max_decode_length(config, pre)


def test_predict_nbest_through_the_command_line(task, subword_run, capsys):
    from tasks.runner import cli

    assert cli.main(task, ["predict", "--model", subword_run[0], "--signature",
                           "translate_nbest", "--length-penalty", "0.6", "--average", "false",
                           "--coverage-penalty", "0.2", "--json", "¿Dónde está Ángel?"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["text"] == "¿Dónde está Ángel?"
    assert len(result["translations"]) == len(result["scores"]) == TINY["beam_width"]
    assert result["scores"] == sorted(result["scores"], reverse=True)
