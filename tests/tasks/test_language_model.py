"""tasks.language_model on a tiny repetitive corpus: train, perplexity, score, generate,
export served in a fresh process, bad input, data sources and BPTT batches."""

import json
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from pipelines import sources
from pipelines.readers import plain_text
from tasks import __main__ as tasks_main
from tasks import demo
from tasks import language_model as lm_task
from tasks import language_model_text as text_lib
from tasks.runner import registry
from tests.tasks.serving_fuzz import assert_survives, run_fuzz, text_cases

SENTENCES = ["the cat sat on the mat .", "a dog ate the old bone .",
             "my friend reads a long book .", "the king rode his white horse ."]
TINY = ["--set", "units=32", "--set", "embedding_dim=32", "--set", "num_layers=1",
        "--set", "bptt=12", "--set", "batch_size=8", "--set", "learning_rate=0.02",
        "--set", "dropout=0.0", "--set", "hidden_dropout=0.0", "--set", "output_dropout=0.0",
        "--set", "embedding_dropout=0.0", "--mixed-precision", "off", "--set",
        "jit_compile=off"]


def _main(argv, capsys, code=0):
    result = tasks_main.main(["language_model", *argv])
    captured = capsys.readouterr()
    assert result == code, (captured.out[-2000:], captured.err[-2000:])
    return captured.out.strip().splitlines(), captured.err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("data") / "tiny.txt"
    path.write_text("\n".join(rng.choice(SENTENCES) for _ in range(700)) + "\n",
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run") / "lm")
    code = tasks_main.main(["language_model", "train", "--data", corpus, "--output", run_dir,
                            "--epochs", "3", "--quiet", *TINY])
    assert code == 0
    return run_dir


def test_the_registry_and_the_demo_find_it(capsys):
    assert "language_model" in registry.names()
    assert type(registry.get("language_model")).__name__ == "LanguageModelTask"
    assert demo.main(["--list"]) == 0
    assert "language_model" in capsys.readouterr().out.split()


def test_evaluate_prints_perplexity_below_the_unigram_baseline(run, capsys):
    out, _ = _main(["evaluate", "--model", run, "--split", "test"], capsys)
    metrics = json.loads(out[-1])
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["loss"]))
    assert metrics["tokens"] > 100 and metrics["oov_rate"] == 0.0
    # 4 sentences: far more predictable than their words' frequencies alone
    assert metrics["perplexity"] < 0.5 * metrics["unigram_perplexity"], metrics
    assert any(line.strip().startswith("perplexity") for line in out)


def test_score_is_a_product_of_conditionals_and_prefers_real_sentences(run, capsys):
    shuffled = "mat the on . sat the cat"
    out, _ = _main(["score", "--model", run, "--json", SENTENCES[0], shuffled,
                    "the zebra sat"], capsys)
    rows = {row["text"]: row for row in map(json.loads, out)}
    real = rows[SENTENCES[0]]
    assert real["tokens"] == SENTENCES[0].split() + ["<eos>"]
    assert real["log_prob"] == pytest.approx(sum(real["token_log_probs"]), abs=1e-4)
    assert real["perplexity"] == pytest.approx(
        math.exp(-real["log_prob"] / len(real["tokens"])), rel=1e-4)
    assert real["log_prob"] > rows[shuffled]["log_prob"] + 5  # P(sentence) >> P(shuffled)
    assert rows["the zebra sat"]["tokens"] == ["the", "<unk>", "sat", "<eos>"]


def test_generate_is_reproducible_with_a_seed(run, capsys):
    args = ["generate", "--model", run, "--json", "--prompt", "the", "--seed", "3",
            "--top-k", "5", "--num-samples", "3", "--length", "10"]
    first, _ = _main(args, capsys)
    second, _ = _main(args, capsys)
    assert first == second and len(first) == 3
    vocabulary = {w for s in SENTENCES for w in s.split()}
    for row in map(json.loads, first):
        words = row["text"].split()
        assert words[0] == "the" and set(words) <= vocabulary
        assert 0 < row["num_words"] <= 10
    greedy, _ = _main(["predict", "--model", run, "--temperature", "0", "my"], capsys)
    assert greedy[-1] == "my friend reads a long book ."  # stops at <eos>


FRESH = """
import json, sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
score = loaded.signatures["score"](text=tf.constant(["the cat sat on the mat ."]))
gen = loaded.signatures["generate"](prompt=tf.constant(["the king", ""]),
    length=tf.constant(8), temperature=tf.constant(1.0), top_k=tf.constant(0),
    top_p=tf.constant(0.9), seed=tf.constant(5))
print(json.dumps({"log_prob": float(score["log_prob"][0]),
                  "perplexity": float(score["perplexity"][0]),
                  "tokens": [t.decode() for t in score["tokens"][0].numpy()],
                  "text": [t.decode() for t in gen["text"].numpy()]}))
"""


@pytest.fixture(scope="module")
def export(run, tmp_path_factory):
    base = str(tmp_path_factory.mktemp("saved_models") / "language_model")
    # export() validates in a fresh interpreter that cannot import the project: both
    # TensorFlow loaders answer every signature's warm-up request (score, generate) as the
    # in-memory module does.
    code = tasks_main.main(["language_model", "export", "--model", run, "--export-dir", base])
    assert code == 0
    return os.path.join(base, "1")


def test_export_serves_score_and_generate(run, export, capsys):
    import tensorflow as tf

    loaded = tf.saved_model.load(export)
    assert set(loaded.signatures) == {"serving_default", "generate", "score"}
    scored = loaded.signatures["score"](text=tf.constant([SENTENCES[0]]))
    assert [t.decode() for t in scored["tokens"][0].numpy()] == SENTENCES[0].split() + ["<eos>"]
    here, _ = _main(["score", "--model", run, "--json", SENTENCES[0]], capsys)
    assert float(scored["log_prob"][0]) == pytest.approx(json.loads(here[0])["log_prob"],
                                                         abs=1e-4)
    gen = loaded.signatures["generate"](
        prompt=tf.constant(["the king", ""]), length=tf.constant(8),
        temperature=tf.constant(1.0), top_k=tf.constant(0), top_p=tf.constant(0.9),
        seed=tf.constant(5))
    texts = [t.decode() for t in gen["text"].numpy()]
    assert texts[0].startswith("the king ") and len(texts) == 2


@pytest.mark.slow  # one more TensorFlow process (~20-60 s on a contended CPU)
def test_export_loads_in_a_bare_process(run, export, tmp_path, capsys):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # A bare interpreter outside the repository: the export must need no project code.
    fresh = subprocess.run([sys.executable, "-c", FRESH, export], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    served = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert served["tokens"] == SENTENCES[0].split() + ["<eos>"]
    here, _ = _main(["score", "--model", export, "--json", SENTENCES[0]], capsys)
    assert served["log_prob"] == pytest.approx(json.loads(here[0])["log_prob"], abs=1e-4)
    assert served["text"][0].startswith("the king") and len(served["text"]) == 2


@pytest.mark.slow  # one more TensorFlow process sending 1 MB and 1000-row requests
def test_export_survives_fuzzed_requests(export, tmp_path):
    sampling = {"length": np.int32(12), "temperature": np.float32(0.8)}
    knobs = {**sampling, "top_k": np.int32(3), "top_p": np.float32(0.9), "seed": np.int32(1)}
    cases = [(c, s, {**sampling, **x}) for c, s, x in text_cases("serving_default", "prompt")]
    cases += text_cases("score")
    must_fail = {}
    for name, value in (("temperature", np.nan), ("temperature", -1.0), ("top_p", 0.0),
                        ("top_k", -1)):
        case = f"generate: {name}={value}"
        cases.append((case, "generate", {"prompt": np.array(["the"], dtype=object), **knobs,
                                         name: np.asarray(value, knobs[name].dtype)}))
        must_fail[case] = name
    cases.append(("length=2**31-1", "serving_default", {
        "prompt": np.array(["the"], dtype=object), **sampling, "length": np.int32(2 ** 31 - 1)}))
    results = run_fuzz(export, cases, tmp_path)
    assert_survives(results, {"serving_default": ["prompt", "temperature"], "score": ["text"],
                              "generate": ["prompt", "temperature", "top_k", "top_p"]},
                    must_fail)
    assert all(r["ok"] for case, r in results.items() if case not in must_fail), results
    assert results["score: 1 MB text"]["shapes"]["tokens"] == [1, 2001]  # 2000 words + <eos>
    assert results["score: batch 0"]["shapes"]["log_prob"] == [0]


def test_bad_input_is_one_clear_error(tmp_path, capsys):
    missing = str(tmp_path / "nope.txt")
    _, err = _main(["train", "--data", missing, "--output", str(tmp_path / "r1"), *TINY],
                   capsys, code=2)
    assert "no file or directory" in err and missing in err and len(err.splitlines()) == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n", encoding="utf-8")
    _, err = _main(["train", "--data", str(empty), "--output", str(tmp_path / "r2"), *TINY],
                   capsys, code=2)
    assert "no non-empty lines" in err and str(empty) in err
    short = tmp_path / "short.txt"
    short.write_text("one line\ntwo words\nthree\nfour\nfive\n", encoding="utf-8")
    _, err = _main(["train", "--data", str(short), "--output", str(tmp_path / "r3"), *TINY],
                   capsys, code=2)
    assert "too few for batch_size=8" in err
    _, err = _main(["train", "--set", "cell=gru", "--output", str(tmp_path / "r4")], capsys,
                   code=2)
    assert "cell='gru'" in err
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3", "r4"))


def test_bptt_batches_continue_each_other():
    ids = np.arange(1, 102, dtype=np.int32)  # 101 tokens, 4 streams of 25
    batches = list(text_lib.bptt_batches(ids, 4, 6).as_numpy_iterator())
    assert len(batches) == 4  # (25 - 1) // 6
    for (x0, y0), (x1, _) in zip(batches, batches[1:]):
        assert x0.shape == (4, 6)
        np.testing.assert_array_equal(y0[:, :-1], x0[:, 1:])  # targets: shifted by one
        np.testing.assert_array_equal(x1[:, 0], x0[:, -1] + 1)  # row i continues row i
    np.testing.assert_array_equal(batches[0][0][:, 0], [1, 26, 51, 76])


def test_preprocessor_eos_unk_min_count_and_lowercase(tmp_path):
    import tensorflow as tf

    texts = tf.data.Dataset.from_tensor_slices(["The cat sat.", "the cat ran", "A dog"])
    pre = text_lib.WordLMPreprocessor.fit(texts, max_tokens=50, min_count=2, lowercase=True)
    assert pre.vocab.get_vocabulary()[:5] == ["", "[UNK]", "<eos>", "cat", "the"]
    ids = pre.line_ids(tf.constant("The CAT flew\n\nthe"))
    assert ids.numpy().tolist() == [4, 3, 1, 2, 4, 2]  # <eos> per non-empty line
    pre.save(str(tmp_path))
    again = text_lib.WordLMPreprocessor.load(str(tmp_path))
    assert again.lowercase and again.line_ids(tf.constant("the cat")).numpy().tolist() \
        == [4, 3, 2]


def test_named_sources_keep_running_text_only(shared_data):
    plays = sources.load("language_model", "shakespeare", max_examples=40)
    lines = [e["text"].numpy().decode() for e in plays.train]
    speeches = plain_text.char_splits("shakespeare", seed=1337, options={}).train
    speaker, first_line = speeches[0].split("\n")[:2]
    assert len(lines) == 40 and lines[0] == first_line and speaker not in lines
    if not (shared_data / "conll2003" / "train.txt").is_file():
        pytest.skip("no CoNLL-2003 train.txt in the shared data")
    conll = sources.load("language_model", "conll", max_examples=20)
    first = next(iter(conll.train))["text"].numpy().decode()
    assert "-DOCSTART-" not in first and " " in first


def test_sentences_of_a_review():
    assert lm_task.language_model_data.split_sentences(
        'Great film. I loved it! Really? "Yes." Ok') == [
        "Great film.", "I loved it!", "Really?", '"Yes."', "Ok"]


def test_search_space_builds_every_cell(corpus):
    import keras_tuner as kt

    from tasks.runner import config as config_lib

    task = lm_task.LanguageModelTask()
    config = config_lib.override(lm_task.LanguageModelConfig(), {"data": corpus, "bptt": 12})
    pre = task.fit_preprocessor(config, task.load_splits(config))
    hp = kt.HyperParameters()
    task.search_space(hp)
    cells = next(h for h in hp.space if h.name == "cell").values
    assert cells == ["lstm", "peephole_lstm"]
    for cell in cells:
        trial = config_lib.override(config, {**task.search_space(hp), "cell": cell,
                                             "units": 8, "num_layers": 2}, origin="test")
        model = task.build_model(trial, pre)
        assert type(model.get_layer("lstm_2")).__name__ == {
            "lstm": "CarriedLSTM", "peephole_lstm": "CarriedPeepholeLSTM"}[cell]


@pytest.mark.slow  # a tuner trial: ~40 s on a contended CPU
def test_tune_one_trial(corpus, tmp_path, capsys):
    tune_dir = str(tmp_path / "tune")
    _main(["tune", "--data", corpus, "--output", tune_dir, "--max-trials", "1", "--epochs",
           "1", "--quiet", *TINY], capsys)
    with open(os.path.join(tune_dir, "best.json"), encoding="utf-8") as f:
        best = json.load(f)
    assert {"cell", "units", "num_layers", "embedding_dropout"} <= set(best["hparams"])
    assert best["objective"] == "val_perplexity" and math.isfinite(best["score"])
