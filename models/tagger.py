"""Sequence tagger (NER): word + character + casing features -> BiRNN -> CRF or softmax.

Shapes: ``B`` batch, ``T`` tokens, ``C`` characters per token (padded), ``K`` tags.

Inputs (a dict, all int32, 0 = padding)::

    word_ids   [B, T]      TokenVocabulary ids; 0 masks the position everywhere downstream
    char_ids   [B, T, C]   CharVocabulary ids of each token's characters
    casing_ids [B, T]      index into CASING_CLASSES (computed in-graph by the task pipeline)

With ``char_lm_layers`` (Flair-style char-LM features), per layer ``<prefix>``::

    <prefix>_ids       [B, L]  a char LM's ids of the whole sentence (L characters)
    <prefix>_positions [B, T]  index into L of each token's boundary

Output: potentials [B, T, K] float32 (CRF head, decode with ``CRF.decode``) or tag
probabilities [B, T, K] float32 (softmax head, decode with argmax). The Keras mask is the
word mask.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from models.layers.crf import CRF, CRFModel
from models.layers.stacked import StackedBidirectional

# Casing classes of a token (Reimers & Gurevych 2017 style). Id 0 is padding. Decided in this
# order: numeric (only digits and . , - / :), upper (every letter upper, >1 letter or 1 letter),
# title (first upper, rest lower), lower, mixed (other letter mixes), has_digit (letters or
# symbols with a digit), punct (only punctuation/symbols), other.
CASING_CLASSES = ("<pad>", "numeric", "upper", "title", "lower", "mixed", "has_digit",
                  "punct", "other")
CHAR_ENCODERS = ("lstm", "cnn", "none")


def _birnn(units, *, num_layers, cell, dropout, recurrent_dropout, return_sequences, name):
    return StackedBidirectional(units, num_layers=num_layers, cell=cell, dropout=dropout,
                                recurrent_dropout=recurrent_dropout,
                                return_sequences=return_sequences, name=name)


@keras.saving.register_keras_serializable(package="recurrent_suite")
class CharEncoder(keras.layers.Layer):
    """Encodes each token from its characters.

    ``lstm``: char embedding -> one bidirectional RNN layer over the characters of each token
    (``[B*T, C]`` sequences), final states concatenated -> ``2 * units`` features.
    ``cnn``: char embedding -> Conv1D(``units``, ``kernel_size``, relu) -> max over the real
    characters -> ``units`` features. Padding tokens (no characters) give zeros.

    Args:
        num_chars: char vocabulary size (id 0 = padding).
        char_dim: char embedding size.
        encoder: ``"lstm"`` or ``"cnn"``.
        units: RNN units per direction, or CNN filters.
        cell: RNN cell for ``lstm`` (``lstm``, ``peephole_lstm``, ``gru``, ``simple_rnn``).
        kernel_size: CNN window.
        dropout: on the char embeddings (training only).

    Call args:
        char_ids: int [B, T, C].

    Returns:
        float [B, T, D], D = ``2 * units`` (lstm) or ``units`` (cnn). No mask of its own.
    """

    def __init__(self, num_chars, char_dim=25, encoder="lstm", units=25, cell="lstm",
                 kernel_size=3, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if encoder not in ("lstm", "cnn"):
            raise ValueError(f"char encoder must be 'lstm' or 'cnn', got {encoder!r}")
        for key, value in (("num_chars", num_chars), ("char_dim", char_dim), ("units", units),
                           ("kernel_size", kernel_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"CharEncoder {key} must be a positive int, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"CharEncoder dropout must be in [0, 1), got {dropout!r}")
        self.num_chars, self.char_dim, self.encoder = int(num_chars), int(char_dim), encoder
        self.units, self.cell, self.kernel_size = int(units), cell, int(kernel_size)
        self.dropout = float(dropout)
        # No mask_zero: the char mask is computed in call and handed to the RNN explicitly, so
        # the conv path never receives (and warns about) a Keras mask it cannot use.
        self.embedding = keras.layers.Embedding(self.num_chars, self.char_dim,
                                                name="char_embedding")
        self.embedding_dropout = keras.layers.Dropout(self.dropout)
        if encoder == "lstm":
            self.rnn = _birnn(self.units, num_layers=1, cell=cell, dropout=0.0,
                              recurrent_dropout=0.0, return_sequences=False, name="char_rnn")
        else:
            self.conv = keras.layers.Conv1D(self.units, self.kernel_size, padding="same",
                                            activation="relu", name="char_conv")
        self.output_dim = 2 * self.units if encoder == "lstm" else self.units

    def build(self, input_shape):
        flat = (None, input_shape[-1])
        self.embedding.build(flat)
        inner = (None, input_shape[-1], self.char_dim)
        (self.rnn if self.encoder == "lstm" else self.conv).build(inner)

    def call(self, char_ids, training=None):
        shape = ops.shape(char_ids)
        flat = ops.reshape(char_ids, (-1, shape[-1]))  # every token is one char sequence
        mask = ops.not_equal(flat, 0)
        x = self.embedding_dropout(self.embedding(flat), training=training)
        if self.encoder == "lstm":
            h = self.rnn(x, mask=mask, training=training)
        else:
            # relu outputs are >= 0, so zeroing the padded characters leaves the max intact.
            h = self.conv(x) * ops.cast(mask[..., None], x.dtype)
            h = ops.max(h, axis=1)
        # Tokens without characters (padding) -> zeros, whatever the encoder does with them.
        has_chars = ops.any(mask, axis=1, keepdims=True)
        h = ops.where(has_chars, h, ops.zeros_like(h))
        return ops.reshape(h, (shape[0], shape[1], self.output_dim))

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "num_chars": self.num_chars, "char_dim": self.char_dim,
                "encoder": self.encoder, "units": self.units, "cell": self.cell,
                "kernel_size": self.kernel_size, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="recurrent_suite")
class MaskedConcatenate(keras.layers.Concatenate):
    """``Concatenate`` whose mask is the AND of its inputs' masks (unmasked inputs ignored).

    Keras' ``Concatenate`` ORs the masks and counts an unmasked input as all-True, so the
    word mask would vanish next to the (unmasked) char and casing features.
    """

    def compute_mask(self, inputs, mask=None):
        masks = [m for m in (mask or []) if m is not None]
        if not masks:
            return None
        out = masks[0]
        for m in masks[1:]:
            out = ops.logical_and(out, m)
        return out


def build_tagger_model(num_words: int, num_chars: int, num_tags: int, *, word_dim: int = 100,
                       char_dim: int = 25, char_encoder: str = "lstm", char_units: int = 25,
                       casing_dim: int = 8, cell: str = "lstm", units: int = 100,
                       num_layers: int = 2, dropout: float = 0.5,
                       recurrent_dropout: float = 0.0, crf: bool = True,
                       tag_names=None, scheme: str | None = None,
                       pretrained_embeddings=None, train_embeddings: bool = True,
                       char_lm_layers=None, name: str = "tagger") -> keras.Model:
    """Builds the BiRNN-CRF (or softmax) tagger.

    Args:
        num_words / num_chars: vocabulary sizes (id 0 = padding, masked).
        num_tags: K.
        word_dim: word embedding size (must equal the pretrained matrix's width).
        char_dim, char_encoder (``lstm``/``cnn``/``none``), char_units: see :class:`CharEncoder`.
        casing_dim: embedding size of the ``len(CASING_CLASSES)`` casing classes.
        cell, units, num_layers, recurrent_dropout: the word-level StackedBidirectional.
        dropout: after the input features, between the word-level RNN layers and after them.
        crf: CRF head (:class:`models.layers.crf.CRFModel`, compile without a loss) or softmax head
            (plain ``keras.Model``, sparse categorical cross-entropy).
        tag_names / scheme: K tag strings to forbid invalid IOB2/BIOES transitions (CRF only).
        pretrained_embeddings: optional [num_words, word_dim] matrix (e.g. from
            :func:`models.layers.embeddings.load_word_vectors`) copied into the word embedding.
        train_embeddings: fine-tune the word embedding.
        char_lm_layers: optional ``{prefix: layer}``, e.g.
            :class:`models.layers.char_lm_features.CharLMFeatures` per char LM direction: each
            reads inputs ``<prefix>_ids`` [B, L] and ``<prefix>_positions`` [B, T] and gives
            [B, T, D] features, concatenated with the word/char/casing features.

    Returns:
        Uncompiled model: dict inputs ``word_ids``/``char_ids``/``casing_ids`` -> float32
        [B, T, K].
    """
    for key, value in (("num_words", num_words), ("num_chars", num_chars),
                       ("num_tags", num_tags)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 2:
            raise ValueError(f"{key} must be an int >= 2, got {value!r}")
    if char_encoder not in CHAR_ENCODERS:
        raise ValueError(f"char_encoder must be one of {CHAR_ENCODERS}, got {char_encoder!r}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if tag_names is not None and len(tag_names) != num_tags:
        raise ValueError(f"tag_names has {len(tag_names)} names but num_tags={num_tags}")
    if pretrained_embeddings is not None:
        pretrained_embeddings = np.asarray(pretrained_embeddings, dtype="float32")
        if pretrained_embeddings.shape != (num_words, word_dim):
            raise ValueError(
                f"pretrained_embeddings has shape {pretrained_embeddings.shape}, expected "
                f"(num_words, word_dim) = {(num_words, word_dim)}")
    inputs = {
        "word_ids": keras.Input((None,), dtype="int32", name="word_ids"),
        "char_ids": keras.Input((None, None), dtype="int32", name="char_ids"),
        "casing_ids": keras.Input((None,), dtype="int32", name="casing_ids"),
    }
    word_embedding = keras.layers.Embedding(num_words, word_dim, mask_zero=True,
                                            trainable=train_embeddings, name="word_embedding")
    features = [word_embedding(inputs["word_ids"])]
    if char_encoder != "none":
        features.append(CharEncoder(num_chars, char_dim, encoder=char_encoder,
                                    units=char_units, cell=cell, dropout=0.0,
                                    name="char_encoder")(inputs["char_ids"]))
    features.append(keras.layers.Embedding(len(CASING_CLASSES), casing_dim,
                                           name="casing_embedding")(inputs["casing_ids"]))
    for prefix, layer in (char_lm_layers or {}).items():
        keys = (f"{prefix}_ids", f"{prefix}_positions")
        inputs.update({key: keras.Input((None,), dtype="int32", name=key) for key in keys})
        features.append(layer([inputs[key] for key in keys]))
    # Only the word embedding carries a mask, so the features' mask is the word mask.
    x = MaskedConcatenate(name="features")(features)
    x = keras.layers.Dropout(dropout, name="feature_dropout")(x)
    x = _birnn(units, num_layers=num_layers, cell=cell, dropout=dropout,
               recurrent_dropout=recurrent_dropout, return_sequences=True, name="encoder")(x)
    x = keras.layers.Dropout(dropout, name="encoder_dropout")(x)
    # Float32 head: tag scores feed a softmax or the CRF's log-space sums.
    if crf:
        potentials = keras.layers.Dense(num_tags, dtype="float32", name="potentials")(x)
        outputs = CRF(num_tags, tag_names=tag_names, scheme=scheme, name="crf")(potentials)
        model = CRFModel(inputs=inputs, outputs=outputs, name=name)
    else:
        outputs = keras.layers.Dense(num_tags, activation="softmax", dtype="float32",
                                     name="tag_probabilities")(x)
        model = keras.Model(inputs=inputs, outputs=outputs, name=name)
    if pretrained_embeddings is not None:
        word_embedding.embeddings.assign(pretrained_embeddings)  # not via config: stays small
    return model


def decode_tags(model, outputs, mask):
    """Tag ids [B, T] int32 from the model's output: Viterbi for a CRF model, else argmax.
    Padded positions are 0."""
    crf = [layer for layer in model.layers if isinstance(layer, CRF)]
    if crf:
        return crf[0].decode(outputs, mask)[0]
    return ops.cast(ops.argmax(outputs, axis=-1), "int32") * ops.cast(mask, "int32")
