"""In-graph text for character language models, the same in ``tf.data`` and in serving.

* :func:`reverse_chars`: a text read right to left (code points), what a backward char LM is
  trained on (``tasks.char_generation`` with ``reverse=true``).
* :func:`sentence_char_inputs`: a tokenised sentence -> the char ids a char LM reads and the
  position of each word's boundary in them (Flair's contextual string embeddings,
  Akbik et al. 2018), for :class:`models.layers.char_lm_features.CharLMFeatures`.
"""

from __future__ import annotations

import tensorflow as tf

from pipelines.vocab import START_ID

#: The context a ``continuous`` char LM starts a sentence from (its texts' own separator).
LINE_BREAK = "\n"


def reverse_chars(text):
    """string ``[]`` or ``[batch]`` -> the same texts with their code points in reverse order
    (valid UTF-8 expected): ``"héllo"`` -> ``"olléh"``."""
    text = tf.convert_to_tensor(text, tf.string)
    if text.shape.rank == 0:
        return reverse_chars(text[tf.newaxis])[0]
    return tf.strings.reduce_join(tf.strings.unicode_split(text, "UTF-8")[:, ::-1], axis=-1)


def sentence_char_inputs(tokens, vocab, *, lines: bool, reverse: bool,
                         max_token_chars: int, max_chars: int | None = None):
    """Tokens -> a char LM's input ids and the word-boundary position of every token.

    The sentence is the tokens joined by single spaces (each cut to its first
    ``max_token_chars`` characters, so a request's character count stays bounded), read after
    the LM's own context id (``[START]`` for a ``lines`` LM, a line break for a ``continuous``
    one) and followed by one space. Forward (``reverse=False``): a token's position is the
    space AFTER its last character, so the LM's output there has read the token and its left
    context. Backward (``reverse=True``): the ids are the reversed sentence and a token's
    position is the space BEFORE its first character (in the original order), so the backward
    LM has read the token and everything right of it. Padding tokens get position 0. With
    ``max_chars``, the LM reads at most that many ids (its memory grows with them); a word
    whose boundary lies beyond gets the state at the last id read (the forward LM cuts a long
    sentence's end, the backward LM its beginning).

    Args:
        tokens: string ``[T]`` or ``[B, T]``; "" = padding, at the end of a row only.
        vocab: the char LM's ``pipelines.vocab.CharVocabulary`` (its lowercasing applies).
        lines: the LM was trained on ``[START]``-prefixed lines (else continuous text).
        reverse: the LM reads right to left.
        max_token_chars: characters of a token the LM reads (>= 1).
        max_chars: ids the LM reads per sentence, context included (None: all; >= 2).

    Returns:
        ``(ids, positions)``: int32 ``[(B,) L]`` (0-padded on the right, L = the longest
        sentence's characters + 2) and int32 ``[(B,) T]`` indices into ``ids``' last axis.
    """
    tokens = tf.convert_to_tensor(tokens, tf.string)
    if tokens.shape.rank == 1:
        ids, positions = sentence_char_inputs(tokens[tf.newaxis], vocab, lines=lines,
                                              reverse=reverse, max_token_chars=max_token_chars,
                                              max_chars=max_chars)
        return ids[0], positions[0]
    tokens = tf.strings.substr(tokens, 0, max_token_chars, unit="UTF8_CHAR")
    if vocab.lowercase:  # the lengths the vocabulary will see (lowercasing may change them)
        tokens = tf.strings.lower(tokens, encoding="utf-8")
    text = tf.strings.reduce_join(tf.RaggedTensor.from_tensor(tokens, padding=""), axis=-1,
                                  separator=" ")                             # [B]
    if reverse:
        text = reverse_chars(text)
    text = tf.strings.join([text, " "]) if lines else tf.strings.join([LINE_BREAK, text, " "])
    ids = vocab(text, add_start_end=False)                                   # [B, L]
    if lines:
        ids = tf.concat([tf.fill([tf.shape(ids)[0], 1], START_ID), ids], axis=1)
    real = tf.not_equal(tokens, "")
    lengths = tf.strings.length(tokens, unit="UTF8_CHAR")                    # [B, T]
    starts = tf.cumsum(lengths + 1, axis=1, exclusive=True)  # offsets in the joined sentence
    if reverse:
        count = tf.reduce_sum(tf.cast(real, tf.int32), axis=1, keepdims=True)
        total = tf.reduce_sum(lengths, axis=1, keepdims=True) + count - 1   # sentence length
        positions = 1 + total - starts
    else:
        positions = 1 + starts + lengths
    if max_chars is not None:
        ids, positions = ids[:, :max_chars], tf.minimum(positions, max_chars - 1)
    return ids, tf.where(real, positions, 0)
