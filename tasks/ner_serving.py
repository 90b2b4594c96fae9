"""The NER serving module: raw sentences -> tokens and entity tags, in one graph.

The exported signatures take raw text; tokenisation (:func:`pipelines.vocab.tokenize`), the
tagger, Viterbi decoding, the tag scheme conversion and (``tag_document``) the document context
of :mod:`models.layers.document_context` all run inside the graph. Request limits
(:mod:`tasks.serving_limits`): at most ``max_batch`` sentences (else ``InvalidArgumentError``
naming ``text``), at most ``max_text_tokens`` tokens per sentence (the rest is dropped and
``truncated`` is true for that row), at most ``max_word_length`` characters of a token read by
the char encoder (the token itself is returned whole).
"""

from __future__ import annotations

import tensorflow as tf

from models.layers.document_context import pool_repeated_tokens
from models.tagger import decode_tags
from pipelines.ner_features import convert_tags_graph, document_keys
from pipelines.vocab import tokenize
from tasks.serving_limits import check_batch, keep_tokens, valid_utf8

# Columns the tagger sees at least: an all-empty batch still has (fully masked) timesteps, and
# the CRF's Viterbi scan over T - 1 steps needs T >= 2 (padding columns change no tag).
_MIN_MODEL_TOKENS = 2


class NerServing(tf.Module):
    """``serving_default(text: string [batch])`` -> ``tokens`` string [batch, T], ``tags``
    string [batch, T] (the corpus's scheme; "" at padding), ``lengths`` int32 [batch] and
    ``truncated`` bool [batch] (the sentence had more than ``max_text_tokens`` tokens): every
    sentence on its own. ``tag_document(text)``: the same, the batch being the sentences of
    ONE document (in order), with the document context used in evaluation. ``T`` is the
    longest sentence's token count (0 when every text is empty or blank)."""

    signature_names = ("serving_default", "tag_document")

    def __init__(self, model, preprocessor, document_context: float, max_text_tokens: int,
                 max_batch: int):
        super().__init__()
        self.model = model
        self.words, self.chars, self.labels = (preprocessor.words, preprocessor.chars,
                                               preprocessor.labels)
        self.preprocessor = preprocessor
        # Tracked, so the char-LM vocabulary (tasks.ner_char_lm) is exported with the model.
        self.char_lm = getattr(preprocessor, "char_lm", None)
        self.document_context = float(document_context)
        self.max_text_tokens, self.max_batch = int(max_text_tokens), int(max_batch)
        for name in ("max_text_tokens", "max_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def serving_default(self, text):
        return self._tag(text, 0.0)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def tag_document(self, text):
        return self._tag(text, self.document_context)

    def _tag(self, text, document_context):
        text = valid_utf8(check_batch(text, self.max_batch, "text"))
        ragged, truncated = keep_tokens(tokenize(text), self.max_text_tokens)
        lengths = tf.cast(ragged.row_lengths(), tf.int32)
        tokens = ragged.to_tensor("")                                         # [B, T]
        batch, width = tf.shape(tokens)[0], tf.shape(tokens)[1]
        # The model sees one row at least (an empty request) and _MIN_MODEL_TOKENS columns.
        padded = tf.pad(tokens, [[0, tf.maximum(0, 1 - batch)],
                                 [0, tf.maximum(0, _MIN_MODEL_TOKENS - width)]])
        features = self.preprocessor.features(padded)
        # Blank tokens only (an all-empty batch): one all-padding character column.
        chars = features["char_ids"]
        features["char_ids"] = tf.pad(chars, [[0, 0], [0, 0],
                                              [0, tf.maximum(0, 1 - tf.shape(chars)[2])]])
        mask = tf.not_equal(features["word_ids"], 0)
        potentials = self.model(features, training=False)
        if document_context > 0:
            keys, capital = document_keys(padded)
            potentials = pool_repeated_tokens(potentials, keys, mask, capital, document_context)
        tags = self.labels.decode(decode_tags(self.model, potentials, mask))
        tags = convert_tags_graph(tf.where(tf.equal(padded, ""), "", tags),
                                  self.preprocessor.scheme,
                                  self.preprocessor.input_scheme)[:batch, :width]
        return {"tokens": tokens, "tags": tags, "lengths": lengths, "truncated": truncated}
