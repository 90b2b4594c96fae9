"""The sampling signatures the text generators share (char_generation, language_model).

``serving_default(prompt, length, temperature)`` samples with the config's ``top_k``/``top_p``;
``generate`` takes those plus ``seed`` (>= 0 restarts the sampler's stream, so a request is
reproducible; -1 continues it). A subclass sets up its model and preprocessor, calls
:meth:`TextSamplingServing.init_sampling` and implements ``_generate``.
"""

from __future__ import annotations

import keras
import tensorflow as tf

PROMPT = tf.TensorSpec([None], tf.string, name="prompt")
LENGTH = tf.TensorSpec([], tf.int32, name="length")
TEMPERATURE = tf.TensorSpec([], tf.float32, name="temperature")


class TextSamplingServing(tf.Module):
    """Base of a text generator's serving module: ``serving_default`` and ``generate``."""

    def init_sampling(self, config) -> None:
        """The config's default top-k/top-p and the seeded sampler state."""
        self.top_k, self.top_p = int(config.top_k), float(config.top_p)
        self.seed_generator = keras.random.SeedGenerator(config.seed)
        # The tf.Variable under the Keras variable: tracked, so it is saved with the module.
        self.seed_state = self.seed_generator.state.value

    def _generate(self, prompt, length, temperature, top_k, top_p) -> dict:
        """prompt string [batch], scalars -> the task's generation outputs."""
        raise NotImplementedError

    @tf.function(input_signature=[PROMPT, LENGTH, TEMPERATURE])
    def serving_default(self, prompt, length, temperature):
        return self._generate(prompt, length, temperature, self.top_k, self.top_p)

    @tf.function(input_signature=[PROMPT, LENGTH, TEMPERATURE,
                                  tf.TensorSpec([], tf.int32, name="top_k"),
                                  tf.TensorSpec([], tf.float32, name="top_p"),
                                  tf.TensorSpec([], tf.int32, name="seed")])
    def generate(self, prompt, length, temperature, top_k, top_p, seed):
        # seed >= 0 restarts the sampler's stream (reproducible); -1 continues it.
        state = tf.cast(tf.stack([seed, 0]), self.seed_state.dtype)
        self.seed_state.assign(tf.where(seed >= 0, state, self.seed_state))
        return self._generate(prompt, length, temperature, top_k, top_p)
