"""Music generation: a note language model (pitch, step, duration) over a stacked RNN.

    python -m tasks.music_generation train --epochs 20
    python -m tasks.music_generation predict --output out.mid --num-notes 64 --temperature 0.9
    python -m tasks.music_generation predict --prompt-midi theme.mid --output out.mid
    python -m tasks.music_generation generate --output out.mid --top-k 8 --seed 3
    python -m tasks.music_generation export

Data: ``bach`` (music21 chorales; soprano line by default, ``--set voices=all`` for all four
parts merged) or a directory of MIDI files. The model predicts the next note's pitch (softmax
over 128) and its step and duration as quantised classes - see
``models/music_language_model.py`` for why classes rather than regression. Metrics: pitch NLL
and top-1 accuracy on held-out pieces beside a bigram pitch baseline fitted on the same
training split (``nll_ratio`` = model / bigram; lower is better, < 1 beats the baseline).
The serving module and its request limits: :mod:`tasks.music_generation_serving`.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from models.music_language_model import (
    DURATION,
    NUM_PITCHES,
    PITCH,
    STEP,
    build_music_language_model,
    note_targets,
    time_bins_for,
)
from pipelines import batching, sources
from pipelines.readers.music import UNITS, VOICES, read_midi, write_midi
from tasks import music_generation_data  # noqa: F401 (registers the task's data sources)
from tasks.generative import GenerativeTask
from tasks.music_generation_serving import MusicGenerationServing
from tasks.runner import registry
from tasks.runner.cli import main
from tasks.runner.config import TaskConfig
from tasks.runner.errors import DataError, InputError
from tasks.runner.plots import piano_roll
from tasks.runner.task import Preprocessor

HEADS = (PITCH, STEP, DURATION)


# ---- config -----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class MusicGenerationConfig(TaskConfig):
    data: str = "bach"
    voices: str = "soprano"        # bach only: soprano|all
    unit: str = ""                 # beats|seconds ("" = the source's own: bach beats, MIDI seconds)
    sequence_length: int = 64      # notes per training window
    stride: int = 32               # notes between window starts within a piece
    embedding_dim: int = 32        # pitch embedding
    units: int = 128
    num_layers: int = 1
    dropout: float = 0.0           # transposition (below) regularises better on chorales
    learning_rate: float = 0.01
    epochs: int = 80
    patience: int = 10
    batch_size: int = 32
    max_prompt_notes: int = 64     # a longer prompt keeps its last notes
    max_notes: int = 2000          # served `num_notes` is clipped to this
    tempo: float = 100.0           # quarter notes per minute when writing beats to MIDI
    transpose: int = 3             # training windows shift by up to +-transpose semitones
    bigram_alpha: float = 1.0      # baseline smoothing: (count + alpha * unigram) / (n + alpha)

    def check(self, checks):
        super().check(checks)
        checks.one_of(voices=VOICES, unit=("",) + UNITS)
        checks.at_least(1, "sequence_length", "stride", "max_notes")
        checks.at_least(0, "max_prompt_notes", "transpose")
        checks.positive("tempo", "bigram_alpha")
        checks.require("stride", self.stride <= self.sequence_length + 1,
                       "must be <= sequence_length + 1: windows may not skip notes")


def source_unit(config) -> str:
    return config.unit or ("beats" if (config.data or "bach") == "bach" else "seconds")


# ---- preprocessing ------------------------------------------------------------------------
class MusicPreprocessor(Preprocessor):
    """Time unit, step/duration grid, default seed note and the training pitch counts."""

    def __init__(self, unit: str, time_bins, first_note, bigram, unigram):
        super().__init__()
        self.unit = unit
        self.time_bins = self._no_dependency(tuple(float(b) for b in time_bins))
        self.first_note = np.asarray(first_note, np.float32)
        self.bigram = np.asarray(bigram, np.float64)      # [128, 128] counts prev -> next
        self.unigram = np.asarray(unigram, np.float64)    # [128] counts

    @property
    def time_scale(self) -> float:
        return 1.0 if self.unit == "beats" else 0.5

    def save(self, assets_dir: str) -> None:
        os.makedirs(assets_dir, exist_ok=True)
        with open(os.path.join(assets_dir, "music.json"), "w", encoding="utf-8") as f:
            json.dump({"unit": self.unit, "time_bins": self.time_bins,
                       "first_note": self.first_note.tolist()}, f, indent=2)
        np.savez(os.path.join(assets_dir, "pitch_counts.npz"), bigram=self.bigram,
                 unigram=self.unigram)

    @classmethod
    def load(cls, assets_dir: str, config=None) -> "MusicPreprocessor":
        with open(os.path.join(assets_dir, "music.json"), encoding="utf-8") as f:
            meta = json.load(f)
        counts = np.load(os.path.join(assets_dir, "pitch_counts.npz"))
        return cls(meta["unit"], meta["time_bins"], meta["first_note"], counts["bigram"],
                   counts["unigram"])

    def default_prompt(self):
        """float32 [1, 3]: the note an empty prompt starts from (in-graph)."""
        return tf.constant(self.first_note[None])

    def unit_name(self):
        """string []: the time unit of steps and durations (in-graph)."""
        return tf.constant(self.unit)

    def bigram_log_probs(self, alpha: float) -> np.ndarray:
        """[128 prev, 128 next] log p(next | prev), interpolated with an add-one unigram."""
        unigram = (self.unigram + 1.0) / (self.unigram.sum() + NUM_PITCHES)
        probs = (self.bigram + alpha * unigram) / (self.bigram.sum(1, keepdims=True) + alpha)
        return np.log(probs)


def pitch_counts(pieces) -> tuple[np.ndarray, np.ndarray]:
    """Bigram [128, 128] and unigram [128] pitch counts over a list of [n, 3] pieces."""
    bigram, unigram = np.zeros((NUM_PITCHES, NUM_PITCHES)), np.zeros(NUM_PITCHES)
    for notes in pieces:
        pitch = np.clip(np.round(notes[:, 0]), 0, NUM_PITCHES - 1).astype(int)
        np.add.at(unigram, pitch, 1)
        np.add.at(bigram, (pitch[:-1], pitch[1:]), 1)
    return bigram, unigram




# ---- the task -------------------------------------------------------------------------------
@registry.register
class MusicGenerationTask(GenerativeTask):
    """Note language model and MIDI generator."""

    name = "music_generation"
    order = 40  # position in task listings and `make demo`
    config_class = MusicGenerationConfig
    sampled_unit = "pitch"
    preprocessor_class = MusicPreprocessor
    serving_class = MusicGenerationServing
    demo_overrides = {"epochs": 4, "units": 64, "num_layers": 1, "max_examples": 120}
    demo_inputs = {"prompt_notes": np.array([[67, 0, 1], [69, 1, 1], [71, 1, 2]], np.float32),
                   "num_notes": 32, "temperature": 0.9}

    def load_splits(self, config, evaluation=False):
        options = {"unit": config.unit} if config.unit else {}
        if (config.data or "bach") == "bach":
            options["voices"] = config.voices
        return sources.load("music_generation", config.data or "bach", seed=config.seed,
                            max_examples=config.max_examples, evaluation=evaluation, **options)

    def fit_preprocessor(self, config, splits):
        # vocab_max_examples (0 = all; take(-1) takes everything) bounds the fitting pass.
        pieces = [e["notes"] for e in splits.train.take(config.vocab_max_examples or -1)
                  .as_numpy_iterator()]
        if not pieces:
            raise DataError("no training pieces", config.data)
        bigram, unigram = pitch_counts(pieces)
        firsts = np.round([p[0, 0] for p in pieces]).astype(int)
        first = float(np.bincount(firsts).argmax())
        durations = np.concatenate([p[:, 2] for p in pieces])
        unit = splits.info.get("unit", source_unit(config))
        return MusicPreprocessor(unit, time_bins_for(unit),
                                 [first, 0.0, float(np.median(durations))], bigram, unigram)

    def make_dataset(self, config, preprocessor, split, training):
        bins = preprocessor.time_bins

        def transpose(window, random):
            # Training only: shift the whole window by -r..+r semitones (a new draw every
            # epoch), so the model learns intervals rather than the keys of the training set.
            shift = tf.cast(random % (2 * config.transpose + 1) - config.transpose, tf.float32)
            inputs, targets = window
            return tuple(tf.concat([tf.where(
                x[:, 2:] > 0, tf.clip_by_value(x[:, :1] + shift, 0, NUM_PITCHES - 1), x[:, :1]),
                x[:, 1:]], axis=1) for x in (inputs, targets))

        def to_example(inputs, targets):
            # lm_windows pads short windows with all-zero notes; real notes have duration > 0.
            valid = tf.cast(targets[:, 2] > 0, tf.float32)
            return inputs, note_targets(targets, bins), {h: valid for h in HEADS}

        ds = batching.lm_windows(split.map(lambda e: e["notes"]), config.sequence_length,
                                 stride=config.stride, per_example=True)
        ds = batching.finalize(ds, shuffle_buffer=5000 if training else 0, seed=config.seed,
                               cache=batching.cache_target(split, config.cache, config),
                               prefetch=False)
        if training and config.transpose:
            randoms = tf.data.Dataset.random(seed=config.seed, rerandomize_each_iteration=True)
            ds = tf.data.Dataset.zip((ds, randoms)).map(transpose)
        return ds.map(to_example).batch(config.batch_size).prefetch(tf.data.AUTOTUNE)

    def build_model(self, config, preprocessor):
        return build_music_language_model(
            len(preprocessor.time_bins), pitch_embedding_dim=config.embedding_dim,
            units=config.units, num_layers=config.num_layers, cell=config.cell,
            dropout=config.dropout, recurrent_dropout=config.recurrent_dropout,
            time_scale=preprocessor.time_scale)

    def compile_kwargs(self, config):
        loss = {h: keras.losses.SparseCategoricalCrossentropy(from_logits=True) for h in HEADS}
        return {"loss": loss, "weighted_metrics": {
            h: [keras.metrics.SparseCategoricalAccuracy(name="accuracy")] for h in HEADS}}

    def evaluate(self, config, model, preprocessor, split, plots_dir=None):
        """NLL (nats/note) and top-1 accuracy per head on whole pieces, and the bigram baseline."""
        bigram = preprocessor.bigram_log_probs(config.bigram_alpha)
        sums = {k: 0.0 for k in ("pitch_nll", "step_nll", "duration_nll", "pitch_acc",
                                 "step_acc", "duration_acc", "bigram_nll", "bigram_acc")}
        count, pieces = 0, 0
        for (notes,) in split.map(lambda e: (e["notes"],)).padded_batch(16):
            valid = notes[:, 1:, 2] > 0
            targets = note_targets(notes[:, 1:], preprocessor.time_bins)
            outputs = model(notes[:, :-1], training=False)
            for head in HEADS:
                logp = tf.nn.log_softmax(tf.cast(outputs[head], tf.float32))
                picked = tf.gather(logp, targets[head], batch_dims=2)
                hit = tf.equal(tf.argmax(logp, -1, output_type=tf.int32), targets[head])
                sums[f"{head}_nll"] -= float(tf.reduce_sum(tf.boolean_mask(picked, valid)))
                sums[f"{head}_acc"] += float(tf.reduce_sum(tf.cast(hit & valid, tf.float32)))
            prev = np.asarray(note_targets(notes[:, :-1], preprocessor.time_bins)[PITCH])
            nxt, mask = np.asarray(targets[PITCH]), np.asarray(valid)
            sums["bigram_nll"] -= float(bigram[prev, nxt][mask].sum())
            sums["bigram_acc"] += float((bigram[prev].argmax(-1) == nxt)[mask].sum())
            count += int(mask.sum())
            pieces += int(notes.shape[0])
        m = {k: v / max(count, 1) for k, v in sums.items()}
        return {"pitch_nll": m["pitch_nll"], "pitch_accuracy": m["pitch_acc"],
                "bigram_pitch_nll": m["bigram_nll"], "bigram_pitch_accuracy": m["bigram_acc"],
                "nll_ratio": m["pitch_nll"] / max(m["bigram_nll"], 1e-12),
                "step_nll": m["step_nll"], "step_accuracy": m["step_acc"],
                "duration_nll": m["duration_nll"], "duration_accuracy": m["duration_acc"],
                "loss": m["pitch_nll"] + m["step_nll"] + m["duration_nll"],
                "notes": count, "examples": pieces}

    def serving_module(self, config, model, preprocessor):
        self._serving = MusicGenerationServing(model, preprocessor, config)  # keep it alive
        return self._serving

    def warmup_inputs(self, config):
        # Greedy, so the fresh-process validation can compare notes exactly.
        return {"prompt_notes": self.demo_inputs["prompt_notes"], "num_notes": np.int32(8),
                "temperature": np.float32(0.0)}

    def warmup_requests(self, config):
        # generate samples, but from a fixed seed: the same draw in every process and loader.
        greedy = self.warmup_inputs(config)
        return {"serving_default": greedy,
                "generate": {**greedy, "temperature": np.float32(0.9), "top_k": np.int32(5),
                             "top_p": np.float32(0.9), "seed": np.int32(3)}}

    # ---- command line ---------------------------------------------------------------------
    def add_prompt_arguments(self, parser):
        parser.add_argument("--output", default="generated.mid", help="MIDI file to write "
                            "(a piano-roll PNG is written beside it)")
        parser.add_argument("--num-notes", type=int, default=64)
        parser.add_argument("--prompt-midi", help="MIDI file whose first track is continued")

    def empty_result(self, config, text):
        return None  # texts are refused by predict_inputs, blank or not

    def predict_inputs(self, config, request):
        texts = list(request.texts)
        if texts:
            raise InputError(f"music_generation predict takes no text inputs (got {texts[:3]}"
                             f"); continue a MIDI file with --prompt-midi FILE")
        num_notes, prompt_midi = request.option("num_notes", 64), request.option("prompt_midi")
        if num_notes < 0:
            raise InputError(f"--num-notes must be >= 0, got {num_notes}")
        temperature = self.check_temperature(request)
        prompt = np.zeros((0, 3), np.float32)
        if prompt_midi:
            if not os.path.isfile(prompt_midi):
                raise InputError(f"--prompt-midi not found: {prompt_midi}")
            tracks = read_midi(prompt_midi, unit=source_unit(config))
            if not tracks:
                raise InputError(f"--prompt-midi {prompt_midi}: no track with notes")
            prompt = tracks[0][-config.max_prompt_notes:]
        return {"prompt_notes": tf.constant(prompt, tf.float32),
                "num_notes": tf.constant(num_notes, tf.int32),
                "temperature": tf.constant(temperature, tf.float32)}

    def show_predictions(self, config, request, inputs, outputs):
        notes = outputs["notes"].numpy()
        unit = outputs["unit"].numpy().decode("utf-8")
        prompt = np.asarray(inputs["prompt_notes"])
        path = request.option("output") or "generated.mid"
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        write_midi(notes, path, unit=unit, tempo=config.tempo)
        png = piano_roll(np.concatenate([prompt, notes]), os.path.splitext(path)[0] + ".png",
                         prompt_length=len(prompt), unit=unit)
        result = {"output": path, "piano_roll": png, "notes": int(len(notes)), "unit": unit,
                  "pitch_range": [int(notes[:, 0].min()), int(notes[:, 0].max())]
                  if len(notes) else []}
        if not request.json:
            print(f"wrote {len(notes)} notes to {path}" + (f" and {png}" if png else ""))
        return [result]

    def search_space(self, hp):
        return {
            "cell": hp.Choice("cell", ["lstm", "peephole_lstm", "gru"]),
            "units": hp.Choice("units", [64, 128, 256]),
            "num_layers": hp.Int("num_layers", 1, 3),
            "dropout": hp.Float("dropout", 0.0, 0.4, step=0.1),
            "embedding_dim": hp.Choice("embedding_dim", [16, 32, 64]),
            "sequence_length": hp.Choice("sequence_length", [32, 64]),
            "learning_rate": hp.Float("learning_rate", 3e-4, 3e-3, sampling="log"),
        }


if __name__ == "__main__":
    raise SystemExit(main(MusicGenerationTask()))
