"""sentiment --set pretrained=LM_RUN (ULMFiT): a tiny word LM trained by the CLI on the tiny
reviews' texts, LM fine-tuning, weights copied, gradual unfreezing top-down, a self-contained
run dir, an export that serves raw strings, and one-line errors for bad pretrained runs."""

import csv
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.discriminative import DiscriminativeAdam, group_scales
from models.pretrained_encoder import ConcatPooling, build_pretrained_classifier
from tasks import __main__ as tasks_main
from tasks import sentiment as sentiment_task
from tasks.runner import export as export_lib
from tests.tasks.export_checks import assert_loaders_agree

REVIEWS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "sentiment",
                       "tiny_reviews.csv")
FAST = ["--mixed-precision", "off", "--set", "jit_compile=off", "--quiet"]
LM_TINY = ["--set", "units=16", "--set", "embedding_dim=16", "--set", "num_layers=2",
           "--set", "bptt=10", "--set", "batch_size=4", "--set", "max_tokens=200",
           "--set", "learning_rate=0.01", *FAST]
CLF_TINY = ["--data", REVIEWS, "--set", "batch_size=8", "--set", "patience=10",
            "--set", "learning_rate=0.01", *FAST]
ENCODER = {"embedding": "embeddings", "lstm_1": "kernel", "lstm_2": "kernel"}


def _main(argv, capsys, code=0):
    result = tasks_main.main(argv)
    captured = capsys.readouterr()
    assert result == code, (captured.out[-2000:], captured.err[-2000:])
    return captured.out, captured.err


def _weights(model) -> dict:
    """{"embedding": ..., "lstm_1": ..., "lstm_2": ..., "head": ...}: one array per layer."""
    out = {}
    for layer, name in {**ENCODER, "head": "kernel"}.items():
        if any(x.name == layer for x in model.layers):
            (var,) = [v for v in model.get_layer(layer).weights if v.path.split("/")[-1] == name]
            out[layer] = np.array(var.numpy())
    return out


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A 2-layer word LM trained by the CLI on the reviews' texts (labels dropped)."""
    folder = tmp_path_factory.mktemp("lm")
    with open(REVIEWS, encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    (folder / "texts.txt").write_text("\n".join(texts * 5) + "\n", encoding="utf-8")
    run_dir = str(folder / "lm")
    assert tasks_main.main(["language_model", "train", "--data", str(folder / "texts.txt"),
                            "--output", run_dir, "--epochs", "2", *LM_TINY]) == 0
    return run_dir


class Probe(keras.callbacks.Callback):
    """The encoder/head weights at the start and after each epoch."""

    def __init__(self):
        super().__init__()
        self.snapshots = []

    def on_train_begin(self, logs=None):
        self.snapshots.append(_weights(self.model))

    def on_epoch_end(self, epoch, logs=None):
        self.snapshots.append(_weights(self.model))


@pytest.fixture(scope="module")
def finetuned(lm_run, tmp_path_factory):
    """``sentiment train --set pretrained=LM --set lm_finetune_epochs=1 --epochs 4`` through
    the CLI, with a weight probe and the task instance caught on the way."""
    run_dir = str(tmp_path_factory.mktemp("clf") / "sentiment")
    probe, tasks = Probe(), []
    original = sentiment_task.SentimentTask.training_callbacks

    def with_probe(self, config, out_dir):
        tasks.append(self)
        return [*original(self, config, out_dir), probe]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sentiment_task.SentimentTask, "training_callbacks", with_probe)
        assert tasks_main.main(["sentiment", "train", "--output", run_dir, "--epochs", "4",
                                "--set", f"pretrained={lm_run}", "--set",
                                "lm_finetune_epochs=1", *CLF_TINY]) == 0
    lm_after = _weights(tasks[0]._pretrained.run.model)
    return {"run": run_dir, "probe": probe, "lm_finetuned": lm_after}


def test_the_classifier_starts_from_the_finetuned_lm_and_unfreezes_top_down(lm_run, finetuned):
    lm_before = _weights(keras.saving.load_model(os.path.join(lm_run, "model.keras"),
                                                 compile=False))
    start, *epochs = finetuned["probe"].snapshots
    assert len(epochs) == 4
    # LM fine-tuning moved the LM; the classifier starts from the moved weights.
    assert not np.allclose(finetuned["lm_finetuned"]["lstm_1"], lm_before["lstm_1"])
    for layer in ENCODER:
        np.testing.assert_array_equal(start[layer], finetuned["lm_finetuned"][layer])
    # Groups: head, lstm_2, lstm_1, embedding; epoch k trains the top k of them.
    before = start
    for k, after in enumerate(epochs, start=1):
        trained = ["head", "lstm_2", "lstm_1", "embedding"][:k]
        for layer in ("head", *ENCODER):
            same = np.array_equal(before[layer], after[layer])
            assert same == (layer not in trained), (k, layer)
        before = after
    with open(os.path.join(finetuned["run"], "unfreezing.json"), encoding="utf-8") as f:
        log = json.load(f)
    assert [e["unfrozen"] for e in log] == [1, 2, 3, 4]
    assert log[0]["groups"] == [["pooling", "head"], ["lstm_2"], ["lstm_1"], ["embedding"]]
    assert log[-1]["scales"] == pytest.approx([1.0, 1 / 2.6, 1 / 2.6 ** 2, 1 / 2.6 ** 3])


def test_the_run_is_self_contained_evaluates_and_exports_raw_strings(lm_run, finetuned,
                                                                     tmp_path, capsys):
    run = finetuned["run"]
    assets = sorted(os.listdir(os.path.join(run, "assets")))
    assert {"words.vocab.txt", "language_model.json", "class_names.json"} <= set(assets)
    with open(os.path.join(run, "assets", "words.vocab.txt"), encoding="utf-8") as f, \
            open(os.path.join(lm_run, "assets", "words.vocab.txt"), encoding="utf-8") as g:
        assert f.read() == g.read()  # the LM's ids
    moved = lm_run + ".moved"
    os.rename(lm_run, moved)  # the LM run is not needed any more
    try:
        out, _ = _main(["sentiment", "evaluate", "--model", run, "--split", "test"], capsys)
        metrics = json.loads(out.strip().splitlines()[-1])
        assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["examples"] == 5
        task = sentiment_task.SentimentTask()
        target = export_lib.export(task, run, str(tmp_path / "saved"))
        texts = np.array(["The ending was superb and the script felt charming.",
                          "THE DIRECTION WAS CLUMSY", "zzz qqq", ""], dtype=object)
        outputs = assert_loaders_agree(target, {"serving_default": {"text": texts}})
    finally:
        os.rename(moved, lm_run)
    served = outputs["serving_default"]
    assert served["probabilities"].shape == (4, 2)
    np.testing.assert_allclose(served["probabilities"].sum(-1), 1.0, rtol=1e-5)
    assert {x.decode() for x in served["label"]} <= {"negative", "positive"}
    assert "language_model.json" in os.listdir(os.path.join(target, "assets"))


def test_unfreeze_none_trains_only_the_head_from_the_lm_weights(lm_run, tmp_path, capsys):
    run = str(tmp_path / "frozen")
    _main(["sentiment", "train", "--output", run, "--epochs", "2", "--set",
           f"pretrained={lm_run}", "--set", "unfreeze=none", *CLF_TINY], capsys)
    lm = _weights(keras.saving.load_model(os.path.join(lm_run, "model.keras"), compile=False))
    clf = _weights(keras.saving.load_model(os.path.join(run, "model.keras"), compile=False))
    for layer in ENCODER:
        np.testing.assert_array_equal(clf[layer], lm[layer])


def _damaged_copy(lm_run, tmp_path, missing):
    copy = str(tmp_path / f"lm-without-{os.path.basename(missing)}")
    shutil.copytree(lm_run, copy)
    os.remove(os.path.join(copy, missing))
    return copy


@pytest.mark.parametrize("case, needle", [
    ("missing", "no such run directory"),
    ("sentiment_run", "is not a language_model run"),
    ("no_model", "lacks model.keras"),
    ("no_vocab", "lacks assets/words.vocab.txt"),
    ("units", "units=48 (the language model has 16)"),
    ("max_tokens", "max_tokens=50 (the language model's vocabulary has"),
    ("unfreeze", "unfreeze"),
    ("lr_schedule", "lr_schedule='cosine' (must be one of 'constant', 'slanted_triangular')"),
    ("lr_patience", "lr_patience=2 (must be 0 with lr_schedule='slanted_triangular')"),
])
def test_bad_pretrained_runs_give_one_clear_error(lm_run, finetuned, tmp_path, capsys, case,
                                                  needle):
    extra = []
    pretrained = {"missing": str(tmp_path / "nowhere"), "sentiment_run": finetuned["run"],
                  "no_model": lambda: _damaged_copy(lm_run, tmp_path, "model.keras"),
                  "no_vocab": lambda: _damaged_copy(lm_run, tmp_path,
                                                    "assets/words.vocab.txt")}.get(case, lm_run)
    pretrained = pretrained() if callable(pretrained) else pretrained
    if case in ("units", "max_tokens"):
        extra = ["--set", {"units": "units=48", "max_tokens": "max_tokens=50"}[case]]
    if case == "unfreeze":
        extra = ["--set", "unfreeze=sometimes"]
    if case == "lr_schedule":
        extra = ["--set", "lr_schedule=cosine"]
    if case == "lr_patience":
        extra = ["--set", "lr_schedule=slanted_triangular", "--set", "lr_patience=2"]
    out_dir = str(tmp_path / "out")
    _, err = _main(["sentiment", "train", "--output", out_dir, "--epochs", "1", "--set",
                    f"pretrained={pretrained}", *extra, *CLF_TINY], capsys, code=2)
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and needle in lines[0], err[-1500:]
    assert not os.path.exists(out_dir)


def test_a_zero_group_scale_freezes_exactly_and_the_optimizer_round_trips():
    kernel = keras.Variable(np.ones((2, 2), np.float32), name="kernel")
    optimizer = DiscriminativeAdam([["head"], ["lstm_1"]], learning_rate=0.1)
    optimizer.build([kernel])
    optimizer.set_group_scales([1.0, 0.0])  # an unnamed layer is in group 0: trains
    optimizer.apply([np.ones((2, 2), np.float32)], [kernel])
    assert np.all(kernel.numpy() < 1.0)
    optimizer.set_group_scales([0.0, 1.0])
    before = kernel.numpy().copy()
    optimizer.apply([np.ones((2, 2), np.float32)], [kernel])
    np.testing.assert_array_equal(kernel.numpy(), before)
    again = DiscriminativeAdam.from_config(optimizer.get_config())
    assert again.layer_groups == [["head"], ["lstm_1"]]
    assert group_scales(3, 2, 2.0) == [1.0, 0.5, 0.0]


def test_concat_pooling_ignores_padding_and_the_model_round_trips(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(1, 4, 3)
    mask = np.array([[True, True, False, False]])
    pooled = keras.ops.convert_to_numpy(ConcatPooling()(x, mask=mask))
    np.testing.assert_allclose(pooled[0], [3, 4, 5, 3, 4, 5, 1.5, 2.5, 3.5])
    model = build_pretrained_classifier(20, 2, embedding_dim=4, units=5, num_layers=2,
                                        dropout=0.1, seed=1)
    ids = np.array([[3, 4, 5, 0], [6, 0, 0, 0]], np.int32)
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again(ids), model(ids), rtol=1e-6)
    assert model(ids).dtype == "float32"


def _tiny_classifier_and_data():
    """A one-layer classifier over 20 ids compiled with DiscriminativeAdam, and 16 random
    examples (ids [16, 5] int32, labels [16]) to fit it on."""
    model = build_pretrained_classifier(20, 2, embedding_dim=4, units=4, num_layers=1,
                                        dropout=0.0, seed=1)
    model.compile(optimizer=DiscriminativeAdam(None, learning_rate=0.01),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    return model, rng.integers(1, 20, (16, 5)).astype("int32"), rng.integers(0, 2, 16)


@pytest.mark.parametrize("policy", ["mixed_float16", "float32"])
def test_gradual_unfreezing_holds_under_loss_scaling(policy, tmp_path):
    """Keras builds the optimizer at the first step (a loss-scaling wrapper builds it again):
    the scales the callback sets before that must still be the ones the step reads."""
    from tasks.sentiment_pretrained import GradualUnfreezing

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model, x, y = _tiny_classifier_and_data()
        before = {n: model.get_layer(n).weights[0].numpy().copy() for n in ("embedding",
                                                                             "lstm_1", "head")}
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[
            GradualUnfreezing("gradual", 2.6, str(tmp_path / "unfreezing.json"))])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    changed = {n: not np.array_equal(model.get_layer(n).weights[0].numpy(), w)
               for n, w in before.items()}
    assert changed == {"embedding": False, "lstm_1": True, "head": True}
    assert model(x).dtype == "float32"


def test_slanted_triangular_schedule_trains_with_unfreezing_by_steps(lm_run, tmp_path, capsys):
    """lr_schedule=slanted_triangular over epochs x steps, with unfreeze_steps=1: a new group
    every step, logged with its step; the LM fine-tuning stage takes the schedule too."""
    from tasks.sentiment_pretrained import LanguageModelRun, finetune_language_model

    lm = LanguageModelRun(lm_run)
    with open(REVIEWS, encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    finetune_language_model(lm, tf.data.Dataset.from_tensor_slices({"text": texts}), 2,
                            "slanted_triangular")
    assert type(lm.model.optimizer._learning_rate).__name__ == "SlantedTriangular"
    assert lm.model.optimizer._learning_rate.total_steps % 2 == 0
    run = str(tmp_path / "stlr")
    _main(["sentiment", "train", "--output", run, "--epochs", "2", "--set",
           f"pretrained={lm_run}", "--set",
           "lr_schedule=slanted_triangular", "--set", "unfreeze_steps=1", *CLF_TINY], capsys)
    model = keras.saving.load_model(os.path.join(run, "model.keras"))
    schedule = model.optimizer._learning_rate
    with open(os.path.join(run, "steps.json"), encoding="utf-8") as f:
        steps = json.load(f)["counts"]["train"]
    assert type(schedule).__name__ == "SlantedTriangular"
    assert schedule.total_steps == 2 * steps and schedule.max_lr == pytest.approx(0.01)
    with open(os.path.join(run, "unfreezing.json"), encoding="utf-8") as f:
        log = json.load(f)
    assert [(e["step"], e["unfrozen"]) for e in log] == [(0, 1), (1, 2), (2, 3), (3, 4)]
    lm = _weights(keras.saving.load_model(os.path.join(lm_run, "model.keras"), compile=False))
    trained = _weights(model)
    assert not np.allclose(trained["embedding"], lm["embedding"])  # unfrozen by step 3
    with open(os.path.join(run, "history.json"), encoding="utf-8") as f:
        assert len(json.load(f)) == 2


@pytest.mark.slow  # ~20 s on 2 shared cores: two tuning trials and one train
def test_tune_searches_the_finetuning_settings_only(lm_run, tmp_path, capsys):
    """``tune --set pretrained=LM``: the LM fixes the sizes, so the search is over dropout,
    learning rate and the discriminative factor; every trial unfreezes as ``train`` does."""
    tune_dir = str(tmp_path / "tune")
    out, _ = _main(["sentiment", "tune", "--output", tune_dir, "--max-trials", "2",
                    "--epochs", "2", "--set", f"pretrained={lm_run}", *CLF_TINY], capsys)
    with open(os.path.join(tune_dir, "best.json"), encoding="utf-8") as f:
        best = json.load(f)
    assert set(best["hparams"]) == {"dropout", "learning_rate", "discriminative_lr"}
    logs = [os.path.join(folder, name) for folder, _, names in os.walk(tune_dir)
            for name in names if name == "unfreezing.json"]
    assert len(logs) == 2, logs
    with open(logs[0], encoding="utf-8") as f:
        assert [e["unfrozen"] for e in json.load(f)] == [1, 2]
    run = str(tmp_path / "best")
    _main(["sentiment", "train", "--output", run, "--epochs", "1", "--hparams",
           os.path.join(tune_dir, "best.json"), "--set", f"pretrained={lm_run}", *CLF_TINY],
          capsys)
    assert os.path.exists(os.path.join(run, "model.keras"))


def test_unfreezing_by_steps_counts_across_epochs_of_unknown_length(tmp_path):
    """every_steps counts the run's steps (not batches of an epoch, whose count a plain
    ``fit`` on arrays or an unsized dataset may not know): 3 epochs of 2 steps, one more group
    every 3 steps -> changes at steps 0 and 3 only."""
    from tasks.sentiment_pretrained import GradualUnfreezing

    model, x, y = _tiny_classifier_and_data()
    log = tmp_path / "unfreezing.json"
    model.fit(x, y, epochs=3, batch_size=8, verbose=0,
              callbacks=[GradualUnfreezing("gradual", 2.6, str(log), every_steps=3)])
    entries = json.loads(log.read_text(encoding="utf-8"))
    assert [(e["step"], e["epoch"], e["unfrozen"]) for e in entries] == [(0, 1, 1), (3, 2, 2)]
