"""The char_generation serving module: sampling and scoring in one graph, within limits.

Request limits (:mod:`tasks.serving_limits`, values from the task config): at most
``max_batch`` prompts or texts (else ``InvalidArgumentError`` naming the input); a prompt's
last ``max_prompt_length`` characters condition the model (the whole prompt is still echoed in
``text``; ``truncated`` says it was cut); ``score`` reads a text's first ``max_score_length``
characters (``truncated``, and ``num_scored`` counts what was scored); ``length`` is clipped to
``[0, max_generate_length]``; ``temperature`` must be finite in [0, 100], ``top_k`` in
[0, 2^31) and ``top_p`` finite in (0, 1] (NaN/inf: ``InvalidArgumentError`` naming it).
"""

from __future__ import annotations

import tensorflow as tf

from models.language_model import build_step_model, generate, sequence_log_probs
from tasks.serving_limits import check_batch, check_sampling, keep_chars, valid_utf8
from tasks.text_sampling_serving import TextSamplingServing


class CharGenerationServing(TextSamplingServing):
    """Signatures ``serving_default`` (prompt, length, temperature -> text), ``generate`` (also
    top_k, top_p, seed) and ``score`` (text -> log-probabilities).

    Generation outputs: ``text`` and ``generated`` string [batch], ``num_chars`` int32 [batch],
    ``seen_in_training`` int32 [batch] (1/0 for lines, -1 for continuous text), ``truncated``
    bool [batch]. ``score`` outputs: ``log_prob``, ``log_prob_per_char`` float32 [batch],
    ``num_scored`` int32 [batch], ``truncated`` bool [batch].
    """

    signature_names = ("serving_default", "generate", "score")

    def __init__(self, model, preprocessor, config):
        super().__init__()
        self.model = model
        self.step_model = build_step_model(model)
        # Every model variable (seed-generator states of dropout layers included) reachable
        # from the module, so no traced function captures an untracked resource.
        self.model_variables = [v.value for v in model.variables]
        self.preprocessor = preprocessor  # its vocabulary and seen-names tables, tracked once
        self.max_length = int(config.max_generate_length)
        self.max_prompt_length = int(config.max_prompt_length)
        self.max_score_length = int(config.max_score_length)
        self.max_batch = int(config.max_batch)
        for name in ("max_prompt_length", "max_score_length", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        self.init_sampling(config)

    def _generate(self, prompt, length, temperature, top_k, top_p):
        prompt = valid_utf8(check_batch(prompt, self.max_batch, "prompt"))
        # A backward model continues to the left: its context is the prompt's beginning.
        context, truncated = keep_chars(prompt, self.max_prompt_length,
                                        last=not self.preprocessor.reverse)
        temperature, top_k, top_p = check_sampling(temperature, top_k, top_p)
        length = tf.clip_by_value(length, 0, self.max_length)
        ids, num_chars = generate(
            self.step_model, self.preprocessor.context_ids(context), length, temperature,
            top_k, top_p, seed=self.seed_generator,
            forbidden_ids=self.preprocessor.forbidden_ids,
            end_id=self.preprocessor.end_id)
        generated = self.preprocessor.oriented(self.preprocessor.decode(ids))
        text = tf.strings.join([generated, prompt] if self.preprocessor.reverse
                               else [prompt, generated])
        return {"text": text, "generated": generated, "num_chars": num_chars,
                "seen_in_training": self.preprocessor.seen_in_training(text),
                "truncated": truncated}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def score(self, text):
        text = valid_utf8(check_batch(text, self.max_batch, "text"))
        text, truncated = keep_chars(text, self.max_score_length)
        ids = self.preprocessor.scored_ids(text)
        batch = tf.shape(ids)[0]
        # The model reads one row and one step at least (an empty request, or continuous
        # text's bare context): padding that is neither read as context nor scored.
        ids = tf.pad(ids, [[0, tf.maximum(0, 1 - batch)], [0, tf.maximum(0, 2 - tf.shape(ids)[1])]])
        total, count = (x[:batch] for x in sequence_log_probs(self.model, ids))
        per_char = total / tf.cast(tf.maximum(count, 1), tf.float32)
        return {"log_prob": total, "log_prob_per_char": per_char, "num_scored": count,
                "truncated": truncated}
