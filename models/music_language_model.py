"""Music language model over notes ``(pitch, step, duration)`` with in-graph generation.

A note is ``pitch`` (MIDI number 0..127), ``step`` (time from the previous note's start) and
``duration``, in the data's time unit (quarter lengths for music21 chorales, seconds for MIDI
files). The model reads notes ``[batch, time, 3]`` and predicts the *next* note with three heads:
a softmax over the 128 pitches and a softmax over time bins for each of step and duration.

Why quantised classes and not regression for step and duration:

* Rhythm is discrete. Chorale steps and durations are almost all multiples of an eighth note; a
  categorical head puts probability on exactly those values and can be multi-modal ("an eighth
  or a half note, never in between"). A regression head trained with MSE predicts the conditional
  *mean* - e.g. 0.75 between an eighth and a whole beat - a rhythm that never occurs, and it
  cannot be sampled, so every generated rhythm would be the deterministic mean.
* Non-negativity holds by construction (every bin is >= 0), with no penalty weight to tune and no
  negative or zero-length note to clip after the fact: zero-duration bins are simply forbidden
  when sampling, so every generated note survives the MIDI round trip.
* All three heads get the same treatment: sparse cross-entropy (NLL in nats), top-1 accuracy,
  temperature / top-k / top-p sampling through :func:`models.decoding.sampling.sample_logits`.

The cost is quantisation error for performed (unquantised) MIDI timing; the seconds grid is
log-spaced (ratio ~1.25 between bins) so the relative error stays within about +-12%.

Example::

    bins = time_bins_for("quarter")
    model = build_music_language_model(num_time_bins=len(bins))
    step = build_music_step_model(model)
    notes = generate_notes(step, prompt [1, P, 3], num_notes=64, time_bins=bins, seed=3)
"""

from __future__ import annotations

import math

import keras
from keras import ops

from models.decoding.sampling import sample_logits
from models.language_model import (
    SqueezeTime,
    _check_positive_int,
    check_rnn_args,
    generation_loop,
    make_rnn,
    state_inputs,
    zero_states,
)

NUM_PITCHES = 128
#: Quarter-length grid: 32nd .. whole notes, dotted values and triplets; 0 = chord (same onset).
QUARTER_BINS = (0.0, 0.125, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)
#: Seconds grid: 0 plus 28 log-spaced values from 20 ms to ~10 s (ratio 1.25).
SECONDS_BINS = (0.0,) + tuple(round(0.02 * 1.25 ** i, 6) for i in range(28))
PITCH, STEP, DURATION = "pitch", "step", "duration"


def time_bins_for(unit):
    """The step/duration grid for a time unit: ``"quarter"`` (music21) or ``"seconds"`` (MIDI)."""
    unit = str(unit).lower()
    if unit in ("quarter", "quarters", "quarter_length", "quarterlength", "beats"):
        return QUARTER_BINS
    if unit in ("seconds", "second", "s", "sec"):
        return SECONDS_BINS
    raise ValueError(f"unknown time unit {unit!r}; expected 'quarter' or 'seconds'")


def _check_bins(time_bins):
    bins = [float(b) for b in time_bins]
    if len(bins) < 2 or any(b < 0 for b in bins) or bins != sorted(set(bins)):
        raise ValueError(
            f"time_bins must be >= 2 distinct non-negative values in increasing order, "
            f"got {tuple(time_bins)}")
    return bins


def quantize_times(values, time_bins):
    """Index of the nearest bin, nearest in log space (relative error matters for rhythm).

    Args:
        values: float [...] non-negative times (negative values count as 0).
        time_bins: increasing non-negative bin values.

    Returns:
        int32 [...] bin indices.
    """
    bins = _check_bins(time_bins)
    eps = min(b for b in bins if b > 0) / 2  # makes log(0 + eps) a finite, distinct anchor
    warped_bins = ops.convert_to_tensor([math.log(b + eps) for b in bins], "float32")
    warped = ops.log(ops.maximum(ops.cast(values, "float32"), 0.0) + eps)
    distance = ops.abs(ops.expand_dims(warped, -1) - warped_bins)
    return ops.cast(ops.argmin(distance, axis=-1), "int32")


def note_targets(next_notes, time_bins):
    """Training targets from the notes to predict.

    Args:
        next_notes: float [batch, time, 3] notes shifted by one (``notes[:, 1:]``).
        time_bins: the model's step/duration grid.

    Returns:
        dict of int32 [batch, time]: ``pitch`` (0..127), ``step`` and ``duration`` (bin ids).
    """
    pitch = ops.clip(ops.cast(ops.round(next_notes[..., 0]), "int32"), 0, NUM_PITCHES - 1)
    return {PITCH: pitch, STEP: quantize_times(next_notes[..., 1], time_bins),
            DURATION: quantize_times(next_notes[..., 2], time_bins)}


@keras.saving.register_keras_serializable(package="recurrent_suite")
class NoteFeatures(keras.layers.Layer):
    """Notes -> per-step features: a learned pitch embedding beside log-scaled step/duration.

    ``log1p(t / time_scale)`` keeps long rests from dominating while staying monotonic and 0 at
    0; the pitch is embedded (not fed as a number) because pitch classes and octave jumps are
    not linear in the MIDI number.

    Args:
        pitch_embedding_dim: size of the pitch embedding.
        time_scale: the time unit's typical beat (1.0 for quarter lengths, 0.5 for seconds).
        num_pitches: pitch vocabulary (128 MIDI pitches).

    Call arguments:
        inputs: float [batch, time, 3] (pitch, step, duration); pitches are rounded and clipped.

    Returns:
        [batch, time, pitch_embedding_dim + 2] in the layer's compute dtype.
    """

    def __init__(self, pitch_embedding_dim=32, time_scale=1.0, num_pitches=NUM_PITCHES,
                 **kwargs):
        super().__init__(**kwargs)
        _check_positive_int("pitch_embedding_dim", pitch_embedding_dim)
        _check_positive_int("num_pitches", num_pitches)
        if not time_scale > 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.pitch_embedding_dim = pitch_embedding_dim
        self.time_scale = float(time_scale)
        self.num_pitches = num_pitches
        self.embedding = keras.layers.Embedding(num_pitches, pitch_embedding_dim,
                                                dtype=self.dtype_policy, name="pitch_embedding")

    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(f"NoteFeatures expects notes [batch, time, 3], got {input_shape}")
        self.embedding.build(input_shape[:-1])

    def call(self, inputs):
        inputs = ops.cast(inputs, "float32")
        pitch = ops.clip(ops.cast(ops.round(inputs[..., 0]), "int32"), 0, self.num_pitches - 1)
        times = ops.log1p(ops.maximum(inputs[..., 1:], 0.0) / self.time_scale)
        return ops.concatenate(
            [self.embedding(pitch), ops.cast(times, self.compute_dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.pitch_embedding_dim + 2)

    def get_config(self):
        return {**super().get_config(), "pitch_embedding_dim": self.pitch_embedding_dim,
                "time_scale": self.time_scale, "num_pitches": self.num_pitches}


def build_music_language_model(num_time_bins, pitch_embedding_dim=32, units=128, num_layers=2,
                               cell="lstm", dropout=0.0, recurrent_dropout=0.0, time_scale=1.0,
                               name="music_language_model"):
    """NoteFeatures -> stacked unidirectional RNN -> pitch / step / duration logits.

    Args:
        num_time_bins: classes of the step and duration heads (``len(time_bins)``).
        pitch_embedding_dim: pitch embedding size.
        units, num_layers, cell, dropout, recurrent_dropout: the recurrent stack.
        time_scale: see :class:`NoteFeatures`.
        name: model name.

    Returns:
        ``keras.Model``: notes float32 [batch, time, 3] -> dict of float32 logits ``pitch``
        [batch, time, 128], ``step`` and ``duration`` [batch, time, num_time_bins].
    """
    _check_positive_int("num_time_bins", num_time_bins)
    check_rnn_args(units, num_layers, cell, dropout, recurrent_dropout)
    notes = keras.Input((None, 3), dtype="float32", name="notes")
    x = NoteFeatures(pitch_embedding_dim, time_scale, name="note_features")(notes)
    x = make_rnn(units, num_layers, cell, dropout, recurrent_dropout)(x)[0]
    outputs = {
        PITCH: keras.layers.Dense(NUM_PITCHES, dtype="float32", name=PITCH)(x),
        STEP: keras.layers.Dense(num_time_bins, dtype="float32", name=STEP)(x),
        DURATION: keras.layers.Dense(num_time_bins, dtype="float32", name=DURATION)(x),
    }
    return keras.Model(notes, outputs, name=name)


def build_music_step_model(model):
    """One-note step model sharing ``model``'s layers (and weights).

    Returns:
        ``keras.Model``: ``[note float32 [batch, 1, 3], *states]`` -> ``[pitch [batch, 128],
        step [batch, bins], duration [batch, bins], *new_states]`` (float32 logits).
    """
    features_layer, rnn = model.get_layer("note_features"), model.get_layer("rnn")
    heads = [model.get_layer(n) for n in (PITCH, STEP, DURATION)]
    note = keras.Input((1, 3), dtype="float32", name="note")
    features = features_layer(note)
    states = state_inputs(rnn, features)
    out = rnn(features, initial_state=states)
    logits = [SqueezeTime(dtype="float32", name=f"step_{h.name}")(h(out[0])) for h in heads]
    return keras.Model([note, *states], [*logits, *out[1:]], name=f"{model.name}_step")


def generate_notes(step_model, prompt_notes, num_notes, time_bins, temperature=1.0, top_k=0,
                   top_p=1.0, seed=None):
    """Samples ``num_notes`` notes after a prompt, carrying the RNN state step by step.

    Runs as one ``keras.ops.while_loop`` (wrap in ``tf.function`` to compile it). Pitch uses
    temperature, top-k and top-p; step and duration use the temperature only (their grids are
    small), and zero-valued duration bins are never drawn.

    Args:
        step_model: from :func:`build_music_step_model`.
        prompt_notes: float [batch, prompt, 3] with prompt >= 1 (e.g. one seed note).
        num_notes: int or scalar int tensor.
        time_bins: the grid the model was trained with.
        temperature, top_k, top_p: see :func:`models.decoding.sampling.sample_logits`.
        seed: None, int or ``keras.random.SeedGenerator``.

    Returns:
        float32 [batch, num_notes, 3] notes (pitch, step, duration) on the grid.
    """
    bins = _check_bins(time_bins)
    if len(prompt_notes.shape) != 3 or prompt_notes.shape[-1] != 3:
        raise ValueError(f"prompt_notes must be [batch, prompt, 3], got {prompt_notes.shape}")
    if prompt_notes.shape[1] == 0:
        raise ValueError("prompt_notes needs at least one note to condition on")
    if isinstance(num_notes, int) and not isinstance(num_notes, bool) and num_notes < 0:
        raise ValueError(f"num_notes must be >= 0, got {num_notes}")
    if isinstance(seed, int) and not isinstance(seed, bool):
        seed = keras.random.SeedGenerator(seed)
    if not isinstance(num_notes, int):
        num_notes = ops.cast(num_notes, "int32")
    prompt_notes = ops.cast(prompt_notes, "float32")
    batch, prompt_len = ops.shape(prompt_notes)[0], ops.shape(prompt_notes)[1]
    buffer = ops.concatenate([prompt_notes, ops.zeros((batch, num_notes, 3), "float32")], 1)
    bin_values = ops.convert_to_tensor(bins, "float32")
    no_zero_duration = tuple(i for i, b in enumerate(bins) if b == 0)

    def step_fn(inputs, states):
        out = step_model([inputs, *states], training=False)
        pitch = sample_logits(out[0], temperature, top_k, top_p, seed, forbidden_ids=())
        step = sample_logits(out[1], temperature, seed=seed, forbidden_ids=())
        duration = sample_logits(out[2], temperature, seed=seed, forbidden_ids=no_zero_duration)
        note = ops.stack([ops.cast(pitch, "float32"), ops.take(bin_values, step),
                          ops.take(bin_values, duration)], axis=-1)
        return note, list(out[3:])

    lengths = ops.full((batch,), prompt_len, "int32")
    buffer = generation_loop(step_fn, buffer, lengths, zero_states(step_model, batch))
    return buffer[:, prompt_len:]
