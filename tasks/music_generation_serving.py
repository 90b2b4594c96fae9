"""The music_generation serving module: prompt notes -> generated notes in one graph.

Request limits (:mod:`tasks.serving_limits`, values from the task config): ``prompt_notes``
must be finite (NaN/inf: ``InvalidArgumentError`` naming it; pitches are rounded and clipped
to 0..127 and negative times read as 0 by the model); its last ``max_prompt_notes`` notes
condition the model (``truncated`` says it was cut); ``num_notes`` is clipped to
``[0, max_notes]``; ``temperature`` must be finite in [0, 100], ``top_k`` in [0, 2^31) and
``top_p`` finite in (0, 1].
"""

from __future__ import annotations

import keras
import tensorflow as tf

from models.music_language_model import build_music_step_model, generate_notes
from tasks.serving_limits import check_finite, check_sampling

_PROMPT = tf.TensorSpec([None, 3], tf.float32, name="prompt_notes")
_NUM_NOTES = tf.TensorSpec([], tf.int32, name="num_notes")
_TEMPERATURE = tf.TensorSpec([], tf.float32, name="temperature")


class MusicGenerationServing(tf.Module):
    """``serving_default(prompt_notes [n, 3], num_notes, temperature)`` -> ``notes`` float32
    [num_notes, 3] (pitch, step, duration), ``unit`` string [] and ``truncated`` bool [] (the
    prompt had more than ``max_prompt_notes`` notes); ``generate`` also takes top_k, top_p (for
    the pitch) and seed. An empty prompt starts from the most common first note of the
    training pieces."""

    signature_names = ("serving_default", "generate")

    def __init__(self, model, preprocessor, config):
        super().__init__()
        self.model = model
        self.step_model = build_music_step_model(model)
        self.model_variables = [v.value for v in model.variables]  # all tracked for saving
        self.preprocessor = preprocessor  # time grid, default first note, unit
        self.max_prompt = int(config.max_prompt_notes)
        self.max_notes = int(config.max_notes)
        if self.max_prompt < 1:
            raise ValueError(f"max_prompt_notes must be >= 1, got {self.max_prompt}")
        self.seed_generator = keras.random.SeedGenerator(config.seed)
        self.seed_state = self.seed_generator.state.value

    def _generate(self, prompt, num_notes, temperature, top_k, top_p):
        prompt = check_finite(prompt, "prompt_notes")
        temperature, top_k, top_p = check_sampling(temperature, top_k, top_p)
        truncated = tf.shape(prompt)[0] > self.max_prompt
        prompt = tf.cond(tf.shape(prompt)[0] > 0, lambda: prompt,
                         self.preprocessor.default_prompt)
        prompt = prompt[-self.max_prompt:]
        num_notes = tf.clip_by_value(num_notes, 0, self.max_notes)
        notes = generate_notes(self.step_model, prompt[tf.newaxis], num_notes,
                               self.preprocessor.time_bins, temperature, top_k, top_p,
                               seed=self.seed_generator)
        return {"notes": notes[0], "unit": self.preprocessor.unit_name(),
                "truncated": truncated}

    @tf.function(input_signature=[_PROMPT, _NUM_NOTES, _TEMPERATURE])
    def serving_default(self, prompt_notes, num_notes, temperature):
        return self._generate(prompt_notes, num_notes, temperature, 0, 1.0)

    @tf.function(input_signature=[_PROMPT, _NUM_NOTES, _TEMPERATURE,
                                  tf.TensorSpec([], tf.int32, name="top_k"),
                                  tf.TensorSpec([], tf.float32, name="top_p"),
                                  tf.TensorSpec([], tf.int32, name="seed")])
    def generate(self, prompt_notes, num_notes, temperature, top_k, top_p, seed):
        # seed >= 0 restarts the sampler's stream (reproducible); -1 continues it.
        state = tf.cast(tf.stack([seed, 0]), self.seed_state.dtype)
        self.seed_state.assign(tf.where(seed >= 0, state, self.seed_state))
        return self._generate(prompt_notes, num_notes, temperature, top_k, top_p)
