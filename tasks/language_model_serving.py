"""The language_model serving module: word sampling and sentence scoring in one graph.

Tokenisation (``pipelines.vocab.tokenize``, lower-casing when trained so), the vocabulary
lookup, the model and the decoding all run in-graph from raw strings, so the export needs no
project code. A text is a sentence: it is read after an ``<eos>`` (the start of a sentence)
and its own ``<eos>`` is scored, so ``score`` gives P(sentence) as the product of the
conditionals of its words and its end.

Request limits (:mod:`tasks.serving_limits`, values from the task config): at most
``max_batch`` rows (else ``InvalidArgumentError`` naming the input); a prompt's last
``max_prompt_tokens`` words condition the model (``truncated`` says it was cut; the whole
prompt is still echoed in ``text``); ``score`` reads a text's first ``max_score_tokens`` words
(``truncated``); ``length`` is clipped to ``[0, max_generate_length]``; ``temperature``,
``top_k`` and ``top_p`` are checked as by the other generators.
"""

from __future__ import annotations

import tensorflow as tf

from models.language_model import generate
from models.word_language_model import build_state_model, token_log_probs
from pipelines.vocab import OOV_ID, PAD_ID
from tasks.serving_limits import (
    CHARS_PER_WORD,
    check_batch,
    check_sampling,
    keep_chars,
    keep_tokens,
    valid_utf8,
)
from tasks.text_sampling_serving import TextSamplingServing

#: How an out-of-vocabulary word is shown in ``score``'s ``tokens``.
UNK = "<unk>"


class LanguageModelServing(TextSamplingServing):
    """Signatures ``serving_default`` (prompt, length, temperature -> text), ``generate``
    (also top_k, top_p, seed) and ``score`` (text -> log_prob, perplexity, tokens).

    Generation outputs: ``text`` (prompt + sampled words) and ``generated`` string [batch],
    ``num_words`` int32 [batch] (sampled words before ``<eos>``; generation stops there),
    ``truncated`` bool [batch]. ``score`` outputs: ``log_prob`` float32 [batch] (nats, the
    sum of ``token_log_probs``), ``perplexity`` float32 [batch] = exp(-log_prob /
    num_tokens), ``tokens`` string [batch, n] (the scored words as the model sees them,
    ``<unk>`` for unknown ones, then ``<eos>``; "" past a row's end), ``token_log_probs``
    float32 [batch, n], ``num_tokens`` int32 [batch], ``truncated`` bool [batch].
    """

    signature_names = ("serving_default", "generate", "score")

    def __init__(self, model, preprocessor, config):
        super().__init__()
        self.model = model
        self.step_model = build_state_model(model, step=True)
        # Every model variable (dropout seed states, carried BPTT states) reachable from the
        # module, so no traced function captures an untracked resource.
        self.model_variables = [v.value for v in model.variables]
        # The one preprocessor (a tf.Module): its tables and asset files are tracked through it.
        self.preprocessor = preprocessor
        self.max_length = int(config.max_generate_length)
        self.max_prompt_tokens = int(config.max_prompt_tokens)
        self.max_score_tokens = int(config.max_score_tokens)
        self.max_batch = int(config.max_batch)
        self.init_sampling(config)

    def _sentence_ids(self, text, limit, last=False):
        """string [batch] -> (ragged word ids [batch, None] of at most ``limit`` words,
        truncated bool [batch])."""
        text = valid_utf8(text)
        # Bound the characters read first: a huge text must not become a huge token tensor.
        text, cut = keep_chars(text, limit * CHARS_PER_WORD, last=last)
        tokens = self.preprocessor.tokens(text)
        if last:
            kept = tokens[:, -limit:] if limit else tokens[:, :0]
            more = tokens.row_lengths() > limit
        else:
            kept, more = keep_tokens(tokens, limit)
        return self.preprocessor.ids(kept), cut | more

    def _with_eos(self, ids, before=True, after=False):
        edge = tf.fill([ids.nrows(), 1], self.preprocessor.eos_id)
        parts = ([edge] if before else []) + [ids] + ([edge] if after else [])
        return tf.concat(parts, axis=1)

    def _generate(self, prompt, length, temperature, top_k, top_p):
        prompt = valid_utf8(check_batch(prompt, self.max_batch, "prompt"))
        temperature, top_k, top_p = check_sampling(temperature, top_k, top_p)
        words, truncated = self._sentence_ids(prompt, self.max_prompt_tokens, last=True)
        context = self._with_eos(words).to_tensor(PAD_ID)  # a prompt starts a sentence
        length = tf.clip_by_value(length, 0, self.max_length)
        ids, num_words = generate(
            self.step_model, context, length, temperature, top_k, top_p,
            seed=self.seed_generator, forbidden_ids=(PAD_ID, OOV_ID),
            end_id=self.preprocessor.eos_id)
        generated = self.preprocessor.vocab.decode(ids, separator=" ")
        spaced = tf.logical_and(tf.strings.length(tf.strings.strip(prompt)) > 0,
                                num_words > 0)
        text = tf.strings.join([tf.strings.strip(prompt),
                                tf.where(spaced, " ", ""), generated])
        return {"text": text, "generated": generated, "num_words": num_words,
                "truncated": truncated}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def score(self, text):
        text = check_batch(text, self.max_batch, "text")
        words, truncated = self._sentence_ids(text, self.max_score_tokens)
        ids = self._with_eos(words, before=True, after=True).to_tensor(PAD_ID)
        batch = tf.shape(ids)[0]
        # The model reads one row and one step at least (an empty request has neither).
        ids = tf.pad(ids, [[0, tf.maximum(0, 1 - batch)],
                           [0, tf.maximum(0, 2 - tf.shape(ids)[1])]])
        log_probs, scored = (x[:batch] for x in token_log_probs(self.model, ids))
        count = tf.reduce_sum(tf.cast(scored, tf.int32), axis=1)
        total = tf.reduce_sum(log_probs, axis=1)
        targets = ids[:batch, 1:]
        tokens = self.preprocessor.vocab.decode(targets)
        tokens = tf.where(tf.equal(targets, OOV_ID), UNK, tokens)
        return {"log_prob": total,
                "perplexity": tf.exp(-total / tf.cast(tf.maximum(count, 1), tf.float32)),
                "tokens": tokens, "token_log_probs": log_probs, "num_tokens": count,
                "truncated": truncated}
