"""tasks.music_generation on tiny synthetic MIDI: train, metrics, MIDI out, export, search space."""

import json
import math

import numpy as np
import pretty_midi
import pytest
import tensorflow as tf

from models.music_language_model import QUARTER_BINS
from pipelines.readers.music import read_midi, write_midi
from tasks import music_generation as mg
from tasks.runner import cli, training, tuning
from tasks.runner import config as config_lib
from tasks.runner import export as export_lib
from tasks.runner import run_dir as rd
from tests.tasks.export_checks import assert_loaders_agree
from tests.tasks.serving_fuzz import (
    MEGABYTE,
    assert_survives,
    run_fuzz,
    skip_export_revalidation,
)

TINY = {"unit": "beats", "embedding_dim": 8, "units": 16, "num_layers": 1, "batch_size": 16,
        "epochs": 1, "patience": 5, "dropout": 0.0, "learning_rate": 0.01,
        "sequence_length": 16, "stride": 8}
SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("midi")
    rng = np.random.default_rng(0)
    for f in range(20):
        idx, notes = int(rng.integers(0, 8)), []
        for i in range(30):
            idx = int(np.clip(idx + rng.choice([-1, 1, 2]), 0, 7))
            notes.append([SCALE[idx], rng.choice([0.5, 1.0]) if i else 0.0,
                          rng.choice([0.5, 1.0])])
        write_midi(np.array(notes, np.float32), folder / f"piece{f:02d}.mid", unit="beats")
    return str(folder)


@pytest.fixture(scope="module")
def run(midi_dir, tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run") / "music")
    config = config_lib.override(mg.MusicGenerationConfig(), {**TINY, "data": midi_dir})
    metrics = training.train(mg.MusicGenerationTask(), config, run_dir, verbose=0)
    return run_dir, metrics


@pytest.fixture(scope="module")
def module(run):
    task = mg.MusicGenerationTask()
    config, preprocessor, model = rd.load_run(task, run[0])
    return task.serving_module(config, model, preprocessor)


def test_metrics_beside_the_bigram_baseline(run):
    _, m = run
    for key in ("pitch_nll", "pitch_accuracy", "bigram_pitch_nll", "bigram_pitch_accuracy",
                "nll_ratio", "step_nll", "duration_accuracy", "notes", "examples"):
        assert key in m and math.isfinite(m[key]), key
    assert m["nll_ratio"] == pytest.approx(m["pitch_nll"] / m["bigram_pitch_nll"])
    assert m["pitch_nll"] < math.log(128)  # better than uniform over the pitches after 1 epoch
    # The synthetic melodies move by -1/+1/+2 scale steps: a bigram finds that.
    assert m["bigram_pitch_accuracy"] > 0.25 and m["bigram_pitch_nll"] < math.log(8)


def test_bigram_baseline_is_normalised_and_learns_transitions():
    pieces = [np.array([[60, 0, 1], [62, 1, 1], [60, 1, 1], [62, 1, 1]], np.float32)] * 3
    bigram, unigram = mg.pitch_counts(pieces)
    assert bigram[60, 62] == 6 and bigram[62, 60] == 3 and unigram.sum() == 12
    pre = mg.MusicPreprocessor("beats", QUARTER_BINS, [60, 0, 1], bigram, unigram)
    logp = pre.bigram_log_probs(alpha=1.0)
    np.testing.assert_allclose(np.exp(logp).sum(-1), 1.0, rtol=1e-9)
    assert logp[60].argmax() == 62 and logp[62].argmax() == 60
    assert np.exp(logp[60, 62]) > 0.8


def test_dataset_weights_mask_the_padding(run, midi_dir):
    task = mg.MusicGenerationTask()
    config, pre, _ = rd.load_run(task, run[0])
    splits = task.load_splits(config)
    inputs, targets, weights = next(iter(task.make_dataset(config, pre, splits.validation,
                                                           training=False)))
    assert inputs.shape[1:] == (16, 3) and set(targets) == set(weights) == set(mg.HEADS)
    assert targets["pitch"].dtype == tf.int32
    # 30-note pieces in windows of 17 with stride 8: some windows end in padding.
    w = weights["pitch"].numpy()
    assert 0 < w.mean() < 1 and set(np.unique(w)) <= {0.0, 1.0}
    # Training windows are transposed by up to +-3 semitones; padding notes stay all-zero.
    seen = set()
    for inputs, _, _ in task.make_dataset(config, pre, splits.train, training=True):
        x = inputs.numpy()
        real = x[..., 2] > 0
        seen |= set(np.unique(x[..., 0][real]).tolist())
        assert (x[~real] == 0).all()
    assert min(seen) >= min(SCALE) - 3 and max(seen) <= max(SCALE) + 3
    assert seen - set(SCALE), "no window was transposed"


def test_predict_writes_midi_with_the_requested_notes(run, tmp_path, midi_dir, capsys):
    run_dir, _ = run
    out = tmp_path / "out.mid"
    assert cli.main(mg.MusicGenerationTask(), [
        "predict", "--model", run_dir, "--output", str(out), "--num-notes", "24",
        "--temperature", "0.9", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["notes"] == 24 and (tmp_path / "out.png").exists()
    midi = pretty_midi.PrettyMIDI(str(out))
    assert sum(len(i.notes) for i in midi.instruments) == 24
    prompted = tmp_path / "prompted.mid"
    assert cli.main(mg.MusicGenerationTask(), [
        "predict", "--model", run_dir, "--output", str(prompted), "--num-notes", "7",
        "--prompt-midi", f"{midi_dir}/piece00.mid"]) == 0
    assert len(pretty_midi.PrettyMIDI(str(prompted)).instruments[0].notes) == 7


def test_nan_prompts_and_temperatures_are_refused_long_prompts_flagged(module):
    # Issue #16: NaN prompt notes or temperature failed with an opaque GatherV2 error.
    notes = tf.constant([[60.0, 0.0, 1.0], [62.0, 1.0, 1.0]])
    for prompt, temperature, name in ((tf.constant([[float("nan"), 0.0, 1.0]]), 0.9,
                                       "prompt_notes"), (notes, float("nan"), "temperature")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=name):
            module.serving_default(prompt_notes=prompt, num_notes=tf.constant(4),
                                   temperature=tf.constant(temperature))
    long = tf.tile(notes, [100, 1])  # 200 notes > max_prompt_notes (64)
    for prompt, cut in ((long, True), (notes, False)):
        out = module.serving_default(prompt_notes=prompt, num_notes=tf.constant(4),
                                     temperature=tf.constant(0.0))
        assert out["notes"].shape == (4, 3) and bool(out["truncated"]) is cut


def test_generated_notes_survive_a_midi_round_trip(module, tmp_path):
    out = module.generate(prompt_notes=np.array([[64, 0, 1]], np.float32),
                          num_notes=np.int32(20), temperature=np.float32(1.0),
                          top_k=np.int32(0), top_p=np.float32(1.0), seed=np.int32(5))
    notes = out["notes"].numpy()
    assert notes.shape == (20, 3) and out["unit"].numpy() == b"beats"
    path = write_midi(notes, tmp_path / "g.mid", unit="beats", tempo=100.0)
    (back,) = read_midi(path, unit="beats")
    # read_midi sorts by (onset, pitch) and counts onsets from the first note (its step is
    # 0): compare sorted (onset - first onset, pitch, duration) triples.
    onsets = np.cumsum(notes[:, 1])
    onsets -= onsets[0]
    want = sorted(zip(np.round(onsets, 2), notes[:, 0], np.round(notes[:, 2], 2), strict=True))
    got = sorted(zip(np.round(np.cumsum(back[:, 1]), 2), back[:, 0], np.round(back[:, 2], 2),
                     strict=True))
    assert len(got) == 20
    np.testing.assert_allclose(np.array(got), np.array(want), atol=0.011)


def test_export_generates_from_an_empty_or_given_prompt(run, module, tmp_path):
    # export() validates serving_default in a fresh process that cannot import the project.
    target = export_lib.export(mg.MusicGenerationTask(), run[0], str(tmp_path / "export"))
    # TF Serving's session loader (and its warm-up replay) answer as tf.saved_model.load does.
    task = mg.MusicGenerationTask()
    agreed = assert_loaders_agree(target, task.warmup_requests(rd.load_config(task, run[0])))
    assert set(agreed) == {"serving_default", "generate"}
    loaded = tf.saved_model.load(target)
    assert set(loaded.signatures) == {"serving_default", "generate"}
    empty = loaded.signatures["serving_default"](
        prompt_notes=tf.zeros([0, 3]), num_notes=tf.constant(10),
        temperature=tf.constant(1.0))["notes"].numpy()
    assert empty.shape == (10, 3) and np.isin(empty[:, 1], np.float32(QUARTER_BINS)).all()
    args = dict(prompt_notes=tf.constant([[60, 0, 1], [62, 1, 1]], tf.float32),
                num_notes=tf.constant(9), temperature=tf.constant(1.0),
                top_k=tf.constant(4), top_p=tf.constant(0.95), seed=tf.constant(11))
    exported = loaded.signatures["generate"](**args)["notes"].numpy()
    np.testing.assert_array_equal(exported, module.generate(**args)["notes"].numpy())
    assert (exported[:, 2] > 0).all()


def test_search_space_builds_every_cell(run):
    import keras_tuner as kt

    task = mg.MusicGenerationTask()
    config, pre, _ = rd.load_run(task, run[0])
    hp = kt.HyperParameters()
    task.search_space(hp)
    cells = next(h for h in hp.space if h.name == "cell").values
    assert "peephole_lstm" in cells
    for cell in cells:
        trial = config_lib.override(config, {**task.search_space(hp), "cell": cell,
                                             "units": 8, "num_layers": 2}, origin="test")
        assert task.build_model(trial, pre).get_layer("rnn").cell == cell


@pytest.mark.slow
def test_tune_two_trials(midi_dir, tmp_path):
    config = config_lib.override(mg.MusicGenerationConfig(), {**TINY, "data": midi_dir})
    result = tuning.tune(mg.MusicGenerationTask(), config, str(tmp_path / "tune"),
                         max_trials=2, verbose=0)
    assert math.isfinite(result["score"]) and "cell" in result["hparams"]


def test_bad_flags(run, capsys):
    assert cli.main(mg.MusicGenerationTask(), ["predict", "--model", run[0],
                                               "--num-notes", "-2"]) == 2
    assert "--num-notes" in capsys.readouterr().err
    assert cli.main(mg.MusicGenerationTask(), ["predict", "--model", run[0],
                                               "--prompt-midi", "/nonexistent.mid"]) == 2
    assert "nonexistent" in capsys.readouterr().err


@pytest.mark.slow  # ~20 s; the default run fuzzes the sentiment export (test_export)
def test_export_survives_fuzzed_requests_in_a_fresh_process(run, tmp_path, monkeypatch):
    skip_export_revalidation(monkeypatch)
    target = export_lib.export(mg.MusicGenerationTask(), run[0], str(tmp_path / "export"))
    base = {"prompt_notes": np.array([[60, 0, 1], [62, 1, 1]], np.float32),
            "num_notes": np.int32(8), "temperature": np.float32(0.9)}
    knobs = {**base, "top_k": np.int32(3), "top_p": np.float32(0.9), "seed": np.int32(1)}
    one_mb = np.tile(np.array([[60, 1, 1]], np.float32), (MEGABYTE // 12, 1))
    answered = {"1 MB prompt": {"prompt_notes": one_mb}, "empty prompt": {
        "prompt_notes": np.zeros((0, 3), np.float32)},
        "negative and huge notes": {"prompt_notes": np.array([[-5, -1, 1e30]], np.float32)},
        "num_notes=-1": {"num_notes": np.int32(-1)},
        "num_notes=2^31-1": {"num_notes": np.int32(2 ** 31 - 1)}}
    refused = {"NaN note": ("prompt_notes", {"prompt_notes": np.array([[np.nan, 0, 1]],
                                                                      np.float32)}),
               "inf note": ("prompt_notes", {"prompt_notes": np.array([[60, np.inf, 1]],
                                                                      np.float32)}),
               "NaN temperature": ("temperature", {"temperature": np.float32(np.nan)}),
               "negative temperature": ("temperature", {"temperature": np.float32(-1)})}
    cases = [(case, "serving_default", {**base, **x}) for case, x in answered.items()]
    cases += [(case, "serving_default", {**base, **x}) for case, (_, x) in refused.items()]
    cases += [("NaN top_p", "generate", {**knobs, "top_p": np.float32(np.nan)}),
              ("top_k=-1", "generate", {**knobs, "top_k": np.int32(-1)})]
    must_fail = {**{case: name for case, (name, _) in refused.items()},
                 "NaN top_p": "top_p", "top_k=-1": "top_k"}
    results = run_fuzz(target, cases, tmp_path)
    assert set(results) == {case for case, _, _ in cases}
    assert_survives(results, {"serving_default": ["prompt_notes", "temperature"],
                              "generate": ["top_k", "top_p"]}, must_fail)
    assert all(results[case]["ok"] for case in answered), results
    assert results["num_notes=-1"]["shapes"]["notes"] == [0, 3]
