"""The seq2seq serving module: raw text -> translation, attention and scores in one graph.

Request limits (:mod:`tasks.serving_limits`, values from the task config): at most
``max_batch`` texts (else ``InvalidArgumentError`` naming ``text``); the encoder reads a text's
first ``max_source_length`` tokens (characters or words; ``truncated`` says it was cut, and
``attention`` is at most that wide; a word-level text is first cut to ``CHARS_PER_WORD`` (32)
characters per allowed word); each text's output is at most ``2 * L + 10`` tokens, ``L`` *that
text's* source length in tokens (END is forced there, in greedy and beam search alike), and never
more than :func:`max_decode_length` (the config's ``max_decode_length``, else 2 x the longest
training target + 10); the output tensors are as long as the batch's longest cap.
"""

from __future__ import annotations

import tensorflow as tf

from models.seq2seq import build_inference_models, decode
from pipelines.vocab import END_ID, OOV_ID, PAD_ID, START_ID
from tasks.serving_limits import CHARS_PER_WORD, check_batch, keep_chars, keep_tokens, valid_utf8


def max_decode_length(config, preprocessor) -> int:
    """The cap on generated tokens (the source-derived limit ``2 * L + 10`` is below it)."""
    return config.max_decode_length or 2 * int(preprocessor.max_target_length) + 10


def source_decode_length(source_lengths, cap: int):
    """``min(cap, 2 * longest + 10)`` as an int32 scalar tensor: the batch's output limit.

    Args:
        source_lengths: int [batch] source lengths in tokens (after truncation).
        cap: the config's limit (:func:`max_decode_length`).
    """
    longest = tf.cast(tf.reduce_max(tf.concat([[0], tf.cast(source_lengths, tf.int64)], 0)),
                      tf.int32)
    return tf.minimum(tf.constant(cap, tf.int32), 2 * longest + 10)


def source_decode_lengths(source_ids, cap: int):
    """Per-text output limits ``min(cap, 2 * L_i + 10)``, int32 [batch].

    Args:
        source_ids: int [batch, time] 0-padded source ids (after truncation; 0 is never a
            real token, so the nonzero count is the length).
        cap: the config's limit (:func:`max_decode_length`).
    """
    lengths = tf.reduce_sum(tf.cast(tf.not_equal(source_ids, 0), tf.int32), axis=1)
    return tf.minimum(tf.constant(cap, tf.int32), 2 * lengths + 10)


class Seq2SeqServing(tf.Module):
    """``serving_default(text)``: beam search; ``greedy(text)``: greedy decoding.

    Both return ``translation`` (string [batch]), ``score`` (length-normalised log-prob),
    ``log_prob`` and ``length`` [batch], ``attention`` [batch, out_time, src_time] and the
    ``source_tokens`` / ``output_tokens`` labelling its axes, for the heatmap, and
    ``truncated`` bool [batch] (the text had more than ``max_source_length`` tokens).

    ``translate_nbest(text, length_penalty, average, coverage_penalty)``: the whole beam,
    ``beam_width`` hypotheses per text, best first, ranked with the request's settings:
    ``length_penalty`` (float [], alpha >= 0), ``average`` (bool []: divide by ``length **
    alpha`` instead of GNMT's ``((5 + length) / 6) ** alpha``), ``coverage_penalty`` (float [],
    GNMT beta >= 0). Returns ``translations`` string [batch, k], ``scores`` (ranking score,
    sorted descending), ``log_probs`` float32 [batch, k], ``lengths`` int32 [batch, k] and
    ``truncated`` bool [batch].
    """

    signature_names = ("serving_default", "greedy", "translate_nbest")

    def __init__(self, model, preprocessor, config):
        super().__init__()
        self.model = model
        self.preprocessor = preprocessor  # both vocabularies, tracked once
        self.encoder, self._step = build_inference_models(model)
        self.options = dict(start_token=START_ID, end_token=END_ID,
                            max_length=max_decode_length(config, preprocessor),
                            length_penalty=float(config.length_penalty),
                            # Subword byte fallback spells any text: [UNK] is never needed.
                            forbidden_tokens=(PAD_ID, OOV_ID) if preprocessor.unit == "subword"
                            else (PAD_ID,))
        self.beam_width = int(config.beam_width)
        self.max_source_length = int(config.max_source_length)
        self.max_batch = int(config.max_batch)
        for name in ("max_source_length", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    def _source(self, text):
        """string [batch] -> (source ids int32 [max(batch, 1), >= 1] 0-padded, truncated bool
        [batch], batch, the batch's output limit, per-row limits int32 [max(batch, 1)])."""
        text = valid_utf8(check_batch(text, self.max_batch, "text"))
        # Characters first (the vectorizer of words pads a dense [batch, longest] tensor).
        per_token = 1 if self.preprocessor.unit == "char" else CHARS_PER_WORD
        text, cut = keep_chars(text, self.max_source_length * per_token)
        ragged, more = keep_tokens(self.preprocessor.source_ids(text, ragged=True),
                                   self.max_source_length)
        truncated = tf.logical_or(cut, more)
        source = ragged.to_tensor(0)
        batch = tf.shape(source)[0]
        # One row and one timestep at least: an empty source is then fully masked, and an
        # empty request runs on one padding row that is dropped again.
        source = tf.pad(source, [[0, tf.maximum(0, 1 - batch)],
                                 [0, tf.maximum(0, 1 - tf.shape(source)[1])]])
        limit = source_decode_length(ragged.row_lengths(), self.options["max_length"])
        return source, truncated, batch, limit, source_decode_lengths(
            source, self.options["max_length"])

    def decode_text(self, text, method):
        """string [batch] -> the output dict (``method`` "both": {"greedy": .., "beam": ..})."""
        source, truncated, batch, limit, row_limits = self._source(text)
        result = decode(self.encoder, self._step, source, method=method,
                        beam_width=self.beam_width, max_lengths=row_limits,
                        **{**self.options, "max_length": limit})
        if method == "both":
            return {k: self._outputs(source, v, truncated, batch) for k, v in result.items()}
        return self._outputs(source, result, truncated, batch)

    def _outputs(self, source, result, truncated, batch):
        out = {"translation": self.preprocessor.decode(result["tokens"]),
               "score": result["normalized_scores"], "log_prob": result["scores"],
               "length": result["lengths"], "attention": result["attention"],
               "source_tokens": self.preprocessor.source_tokens(source),
               "output_tokens": self.preprocessor.target_tokens(result["tokens"])}
        return {**{k: v[:batch] for k, v in out.items()}, "truncated": truncated}

    # autograph=False: nothing here branches on tensors (the search is an explicit while
    # loop), and converting Keras' code for autograph made tracing ~2.5x slower.
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")],
                 autograph=False)
    def serving_default(self, text):
        return self.decode_text(text, "beam")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")],
                 autograph=False)
    def greedy(self, text):
        return self.decode_text(text, "greedy")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                  tf.TensorSpec([], tf.float32, name="length_penalty"),
                                  tf.TensorSpec([], tf.bool, name="average"),
                                  tf.TensorSpec([], tf.float32, name="coverage_penalty")],
                 autograph=False)
    def translate_nbest(self, text, length_penalty, average, coverage_penalty):
        return nbest(self, text, length_penalty, average, coverage_penalty)


def nbest(module: Seq2SeqServing, text, length_penalty, average, coverage_penalty) -> dict:
    """``translate_nbest``'s body: the whole beam, ranked with the request's settings.

    Args:
        module: the serving module (its encoder, step decoder, vocabularies and limits).
        text: string [batch]; length_penalty, coverage_penalty: float32 [] (>= 0, else
            ``InvalidArgumentError`` naming the input); average: bool [].

    Returns:
        ``translations`` string [batch, k], ``scores`` float32 [batch, k] (normalised score plus
        coverage penalty, sorted descending), ``log_probs`` float32 [batch, k], ``lengths``
        int32 [batch, k], ``truncated`` bool [batch]; ``k = beam_width``.
    """
    with tf.control_dependencies([
            tf.debugging.assert_non_negative(length_penalty, message="length_penalty < 0"),
            tf.debugging.assert_non_negative(coverage_penalty, message="coverage_penalty < 0")]):
        length_penalty, coverage_penalty = tf.identity(length_penalty), tf.identity(
            coverage_penalty)
    source, truncated, batch, limit, row_limits = module._source(text)
    result = decode(module.encoder, module._step, source, method="beam",
                    beam_width=module.beam_width, keep_greedy=False, average=average,
                    coverage_penalty=coverage_penalty, max_lengths=row_limits,
                    **{**module.options, "max_length": limit, "length_penalty": length_penalty})
    ranking = result["beam_ranking_scores"]                                      # [b, k]
    # The search keeps its beam sorted; sorting again makes the contract hold by construction.
    order = tf.argsort(ranking, axis=1, direction="DESCENDING", stable=True)

    def take(x):
        return tf.gather(x, order, batch_dims=1)

    tokens = take(result["beam_tokens"])                                         # [b, k, T]
    flat = module.preprocessor.decode(tf.reshape(tokens, [-1, tf.shape(tokens)[2]]))
    out = {"translations": tf.reshape(flat, [-1, module.beam_width]), "scores": take(ranking),
           "log_probs": take(result["beam_scores"]), "lengths": take(result["beam_lengths"])}
    return {**{k: v[:batch] for k, v in out.items()}, "truncated": truncated}
