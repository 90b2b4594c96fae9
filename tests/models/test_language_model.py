"""Char and music language models: step model == full model, in-graph generation, saving."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.language_model import (
    SqueezeTime,
    build_char_language_model,
    build_step_model,
    generate,
    sequence_log_probs,
    zero_states,
)
from models.music_language_model import (
    QUARTER_BINS,
    SECONDS_BINS,
    NoteFeatures,
    build_music_language_model,
    build_music_step_model,
    generate_notes,
    note_targets,
    quantize_times,
    time_bins_for,
)
from tests.layer_test import run_layer_test
from tests.testing import assert_allclose, keras_roundtrip

VOCAB = 13


def _char_model(cell="lstm", num_layers=2):
    return build_char_language_model(VOCAB, embedding_dim=6, units=8, num_layers=num_layers,
                                     cell=cell)


def _ids(batch=3, time=7, seed=0):
    return np.random.default_rng(seed).integers(2, VOCAB, (batch, time)).astype("int32")


def _step_through(step, prefix):
    """Feeds ``prefix`` [batch, time, ...] one step at a time; returns per-step outputs."""
    states = zero_states(step, prefix.shape[0])
    per_step = []
    for t in range(prefix.shape[1]):
        out = step([tf.constant(prefix[:, t:t + 1]), *states], training=False)
        num_heads = len(out) - len(states)
        per_step.append([np.asarray(o) for o in out[:num_heads]])
        states = out[num_heads:]
    return per_step


@pytest.mark.parametrize("cell", ["lstm", "peephole_lstm", "gru", "simple_rnn"])
def test_char_step_model_equals_full_model_on_the_same_prefix(cell):
    model = _char_model(cell)
    step = build_step_model(model)
    ids = _ids()
    full = np.asarray(model(ids, training=False))
    assert full.shape == (3, 7, VOCAB) and full.dtype == np.float32
    for t, (logits,) in enumerate(_step_through(step, ids)):
        np.testing.assert_allclose(logits, full[:, t], atol=1e-5, rtol=1e-5)
    per_layer = 2 if "lstm" in cell else 1
    assert len(step.inputs) == 1 + 2 * per_layer
    assert {id(w) for w in step.weights} == {id(w) for w in model.weights}


def test_step_model_shares_weights_after_reload(tmp_path):
    model = _char_model()
    reloaded = keras_roundtrip(model, tmp_path)
    ids = _ids(seed=1)
    assert_allclose(reloaded(ids), model(ids), atol=0, rtol=0, msg=".keras round trip")
    step = build_step_model(reloaded)
    # Changing the training model's weights must change the step model's answers too.
    reloaded.get_layer("logits").bias.assign(np.arange(VOCAB, dtype="float32"))
    full = np.asarray(reloaded(ids))
    for t, (logits,) in enumerate(_step_through(step, ids)):
        np.testing.assert_allclose(logits, full[:, t], atol=1e-5)


def _greedy_reference(model, prompt, length):
    """The keras-io pattern: re-read the whole growing prefix each step (slow but obvious)."""
    seq = list(prompt)
    for _ in range(length):
        logits = np.array(model(np.array([seq], "int32"), training=False))[0, -1]
        logits[:2] = -np.inf
        seq.append(int(logits.argmax()))
    return seq[len(prompt):]


def test_greedy_generation_in_xla_graph_matches_rereading_the_prefix():
    model = _char_model(num_layers=1)
    step = build_step_model(model)
    prompts = np.array([[2, 5, 6], [2, 9, 0], [4, 0, 0]], "int32")  # ragged

    @tf.function(jit_compile=True)
    def run(prompt_ids):
        return generate(step, prompt_ids, 4, temperature=0.0)

    ids, lengths = run(tf.constant(prompts))
    np.testing.assert_array_equal(lengths, [4, 4, 4])
    for row, prompt in zip(np.asarray(ids), prompts, strict=True):
        assert row.tolist() == _greedy_reference(model, prompt[prompt > 0].tolist(), 4)


def test_sampled_generation_is_seeded_and_respects_forbidden_ids():
    step = build_step_model(_char_model(num_layers=1))
    prompts = tf.constant([[2]] * 16, tf.int32)
    gen = keras.random.SeedGenerator(0)
    fn = tf.function(lambda p, n, t: generate(step, p, n, temperature=t, top_k=5,
                                              seed=gen, forbidden_ids=(0, 1, 2)))

    def run(seed):
        gen.state.assign(np.array([seed, 0], gen.state.dtype))  # reseed the traced graph
        return np.asarray(fn(prompts, tf.constant(20), tf.constant(1.5))[0])

    first, again, other = run(7), run(7), run(8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.shape == (16, 20) and first.min() >= 3
    assert len({tuple(r) for r in first}) > 1, "rows of one batch must differ"


def test_generation_stops_at_the_end_id():
    model = _char_model(num_layers=1)
    bias = np.zeros(VOCAB, "float32")
    bias[3] = 50.0  # end id 3 overwhelmingly likely after the prompt
    model.get_layer("logits").bias.assign(bias)
    ids, lengths = generate(build_step_model(model), np.array([[2, 4]], "int32"), 5,
                            temperature=1.0, seed=3, end_id=3)
    np.testing.assert_array_equal(ids, np.zeros((1, 5)))
    np.testing.assert_array_equal(lengths, [0])


def test_sequence_log_probs_sum_the_next_char_log_probs():
    model = _char_model(num_layers=1)
    ids = np.array([[2, 5, 6, 3], [2, 7, 0, 0]], "int32")
    total, count = sequence_log_probs(model, ids)
    logp = np.asarray(keras.ops.log_softmax(model(ids[:, :-1])))
    expected = [logp[0, 0, 5] + logp[0, 1, 6] + logp[0, 2, 3], logp[1, 0, 7]]
    np.testing.assert_allclose(total, expected, rtol=1e-5)
    np.testing.assert_array_equal(count, [3, 1])


def test_logits_float32_under_mixed_precision():
    keras.config.set_dtype_policy("mixed_float16")
    model = _char_model()
    assert model(_ids()).dtype == "float32"
    assert all(w.dtype == "float32" for w in model.weights)
    ids, _ = generate(build_step_model(model), np.array([[2, 5]], "int32"), 3, temperature=0.0)
    assert np.asarray(ids).shape == (1, 3) and np.asarray(ids).min() >= 2
    music = build_music_language_model(len(QUARTER_BINS), 4, 8, 1)
    out = music(np.ones((1, 3, 3), "float32"))
    assert all(v.dtype == "float32" for v in out.values())
    assert all(w.dtype == "float32" for w in music.weights)


@pytest.mark.parametrize("kwargs, message", [
    ({"cell": "lstmm"}, "lstmm"), ({"units": 0}, "units"), ({"dropout": 1.0}, "dropout"),
    ({"vocab_size": -3}, "-3"),
])
def test_char_model_bad_arguments(kwargs, message):
    args = {"vocab_size": VOCAB, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_char_language_model(**args)


def test_generate_bad_arguments():
    step = build_step_model(_char_model(num_layers=1))
    with pytest.raises(ValueError, match="-1"):
        generate(step, np.array([[2]], "int32"), -1)
    with pytest.raises(ValueError, match="batch, time"):
        generate(step, np.array([2], "int32"), 3)


# ----------------------------------------------------------------------------- music

def _notes(batch=2, time=6, seed=0):
    rng = np.random.default_rng(seed)
    notes = rng.choice(QUARTER_BINS[1:], (batch, time, 3)).astype("float32")
    notes[..., 0] = rng.integers(50, 80, (batch, time))
    return notes


@pytest.mark.parametrize("cell", ["peephole_lstm", "gru"])
def test_music_step_model_equals_full_model(cell):
    model = build_music_language_model(len(QUARTER_BINS), 4, 8, 2, cell)
    full = model(_notes(), training=False)
    assert full["pitch"].shape == (2, 6, 128) and full["step"].shape == (2, 6, 14)
    step = build_music_step_model(model)
    for t, outs in enumerate(_step_through(step, _notes())):
        for got, key in zip(outs, ("pitch", "step", "duration"), strict=True):
            np.testing.assert_allclose(got, np.asarray(full[key])[:, t], atol=1e-5)


def test_generate_notes_compiled_gives_valid_notes_on_the_grid():
    model = build_music_language_model(len(QUARTER_BINS), 4, 8, 1)
    step = build_music_step_model(model)
    gen = keras.random.SeedGenerator(1)

    @tf.function
    def run(prompt, num_notes, temperature):
        return generate_notes(step, prompt, num_notes, QUARTER_BINS, temperature, seed=gen)

    notes = np.asarray(run(tf.constant(_notes(batch=3, time=2)), tf.constant(12),
                           tf.constant(1.0)))
    assert notes.shape == (3, 12, 3) and notes.dtype == np.float32
    assert np.all((notes[..., 0] >= 0) & (notes[..., 0] <= 127))
    assert np.all(notes[..., 0] == np.round(notes[..., 0]))
    assert np.isin(notes[..., 1], np.float32(QUARTER_BINS)).all()
    assert np.isin(notes[..., 2], np.float32(QUARTER_BINS)).all() and notes[..., 2].min() > 0
    greedy = generate_notes(step, _notes(1, 2), 5, QUARTER_BINS, temperature=0.0)
    assert_allclose(greedy, generate_notes(step, _notes(1, 2), 5, QUARTER_BINS, 0.0))


def test_quantize_times_picks_the_nearest_bin_in_log_space():
    values = np.array([0.0, 0.01, 0.26, 0.45, 0.9, 1.2, 100.0, -1.0], "float32")
    got = np.asarray(quantize_times(values, QUARTER_BINS))
    np.testing.assert_array_equal(np.array(QUARTER_BINS)[got],
                                  [0, 0, 0.25, 0.5, 1.0, 1.0, 8.0, 0])
    targets = note_targets(np.array([[[60.4, 0.5, 2.1]]], "float32"), QUARTER_BINS)
    assert [int(np.asarray(targets[k])[0, 0]) for k in ("pitch", "step", "duration")] == [
        60, QUARTER_BINS.index(0.5), QUARTER_BINS.index(2.0)]
    assert time_bins_for("beats") == QUARTER_BINS and time_bins_for("seconds") == SECONDS_BINS
    with pytest.raises(ValueError, match="furlongs"):
        time_bins_for("furlongs")
    with pytest.raises(ValueError, match="time_bins"):
        quantize_times(values, (1.0, 0.5))


def test_music_generate_bad_prompt():
    step = build_music_step_model(build_music_language_model(4, 4, 8, 1))
    with pytest.raises(ValueError, match="at least one note"):
        generate_notes(step, np.zeros((1, 0, 3), "float32"), 3, (0.0, 0.5, 1.0, 2.0))


def test_music_model_round_trip(tmp_path):
    model = build_music_language_model(len(SECONDS_BINS), 4, 8, 1, time_scale=0.5)
    reloaded = keras_roundtrip(model, tmp_path)
    assert_allclose(reloaded(_notes()), model(_notes()), atol=0, rtol=0)


def test_note_features_layer():
    notes = _notes(2, 5)
    run_layer_test(NoteFeatures, init_kwargs={"pitch_embedding_dim": 4, "time_scale": 0.5},
                   input_data=notes, expected_output_shape=(2, 5, 6),
                   expected_num_trainable_weights=1, run_mixed_precision_check=False)
    with pytest.raises(ValueError, match="time_scale"):
        NoteFeatures(time_scale=0)


def test_squeeze_time_layer():
    run_layer_test(SqueezeTime, input_shape=(2, 1, 4), expected_output_shape=(2, 4),
                   run_training_check=False, run_mixed_precision_check=False)
