"""Exact log-likelihood of whole texts under a character LM run, and its per-word perplexity.

A character LM and a word LM can be compared on the same text when both are charged for the
same events: the text itself and where it ends. :func:`text_log_likelihood` scores each text
as the char LM reads a line of a continuous-mode file: context ``"\\n"`` (the separator the
text follows), then every character of the text AND the closing ``"\\n"``: the end of the
line, the event the word LM scores as ``<eos>``. :func:`per_word_perplexity` divides that
total by the number of tokens the word LM counts for the same texts (words and punctuation of
its tokenizer, plus one ``<eos>`` a line), so
``exp(-log p_char(text) / word_tokens)`` is the char LM's perplexity per word token.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from pipelines.vocab import PAD_ID


def text_log_likelihood(model, preprocessor, texts: list[str],
                        batch_size: int = 32) -> tuple[float, int]:
    """Total natural-log probability of ``texts`` (each read from a fresh state after its
    ``"\\n"`` context, its characters and its closing ``"\\n"`` scored).

    Args:
        model: a ``char_generation`` model: int32 ids [batch, time] -> logits [batch, time,
            vocab] (causal, masked on padding id 0).
        preprocessor: that run's ``CharPreprocessor`` (its vocabulary, case and direction;
            a backward LM reads each text right to left).
        texts: the texts, one line each (no ``"\\n"`` inside).
        batch_size: texts per model call (sorted by length, so little padding).

    Returns:
        ``(log_prob, events)``: float total log-probability in nats (<= 0), int characters
        scored (each text's length + 1).
    """
    if preprocessor.mode != "continuous":
        raise ValueError("text_log_likelihood needs a continuous-mode char_generation run "
                         f"(this one is {preprocessor.mode!r}): a lines-mode run is trained on "
                         "names cut to sequence_length")
    if any("\n" in t for t in texts):
        raise ValueError("a text holds a line break; give one line per text")

    @tf.function(reduce_retracing=True)
    def batch_log_prob(ids):  # ids: int [batch, 1 + time + 1]
        logits = tf.cast(model(ids[:, :-1], training=False), tf.float32)
        picked = tf.gather(tf.nn.log_softmax(logits), ids[:, 1:], batch_dims=2)
        scored = tf.not_equal(ids[:, 1:], PAD_ID)
        return (tf.reduce_sum(tf.where(scored, picked, 0.0)),
                tf.reduce_sum(tf.cast(scored, tf.int32)))

    order = np.argsort([len(t) for t in texts])
    total, events = 0.0, 0
    for start in range(0, len(texts), batch_size):
        chunk = [texts[i] for i in order[start:start + batch_size]]
        lines = tf.strings.join(["\n", preprocessor.oriented(tf.constant(chunk)), "\n"])
        ids = preprocessor.vocab(lines, add_start_end=False)
        ids = ids.to_tensor(PAD_ID) if isinstance(ids, tf.RaggedTensor) else ids
        log_prob, count = batch_log_prob(tf.cast(ids, tf.int32))
        total += float(log_prob)
        events += int(count)
    return total, events


def per_word_perplexity(log_prob: float, word_tokens: int) -> float:
    """``exp(-log_prob / word_tokens)``: a total log-probability (nats) of some texts as a
    perplexity per token of a word LM's tokenization of the same texts (``<eos>`` included).

    Raises:
        ValueError: ``word_tokens`` < 1 or ``log_prob`` > 0.
    """
    if word_tokens < 1:
        raise ValueError(f"word_tokens must be >= 1, got {word_tokens}")
    if log_prob > 0:
        raise ValueError(f"log_prob must be <= 0 (a log-probability), got {log_prob}")
    return math.exp(-log_prob / word_tokens)
