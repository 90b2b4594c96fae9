"""Contextual string embeddings (Flair, Akbik et al. 2018): a char LM's state at word boundaries.

A character language model reads a whole sentence (its words joined by spaces); a word's
feature is the LM's top-layer output at the word's boundary: for a forward LM the space after
the word's last character (the LM has read the word and everything left of it), for a backward
LM (trained on reversed text) the space before its first character. The char ids and the
boundary positions are built in-graph from the tokens by
:func:`pipelines.char_lm.sentence_char_inputs`; this layer holds the LM's embedding and
recurrent stack (their weights copied from a trained ``models.language_model`` model with
:meth:`CharLMFeatures.from_layers`) and gathers. The layer is frozen by default
(``trainable=False``): the LM's weights are saved with the model that holds the layer, so that
model needs the LM's own run no longer.

Shapes: ``B`` batch, ``L`` characters (padded with 0), ``T`` words, ``U`` the LM's units.
"""

from __future__ import annotations

import keras
from keras import ops

from models.layers.stacked import StackedBidirectional


@keras.saving.register_keras_serializable(package="recurrent_suite")
class CharLMFeatures(keras.layers.Layer):
    """A char LM's embedding + unidirectional stacked RNN, read at word boundaries.

    Args:
        vocab_size: the LM's char vocabulary size (id 0 = padding, masked).
        embedding_dim: its char embedding size.
        units: units of each of its recurrent layers (one int, or one per layer).
        num_layers: its recurrent layers.
        cell: its cell (``lstm``, ``peephole_lstm``, ``gru``, ``simple_rnn``).
        rnn_kwargs: its recurrent layers' extra arguments (as ``StackedBidirectional``).
        trainable: fine-tune the LM with the model around it (default frozen).

    Call args:
        inputs: ``[char_ids, positions]``: int [B, L] the sentence's char ids and int [B, T]
            the index into L of every word's boundary (anything in [0, L) for padding words).

    Returns:
        float32 [B, T, U]: the top recurrent layer's output at each position. No mask of its
        own (the word mask comes from the word embedding beside it).
    """

    def __init__(self, vocab_size, embedding_dim, units, num_layers=1, cell="lstm",
                 rnn_kwargs=None, trainable=False, **kwargs):
        super().__init__(trainable=trainable, **kwargs)
        for key, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim),
                           ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CharLMFeatures {key} must be a positive int, got {value!r}")
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.units, self.num_layers, self.cell = units, num_layers, cell
        self.rnn_kwargs = dict(rnn_kwargs or {})
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True,
                                                name="embedding")
        # No dropout: the LM is read as a feature extractor (Flair does the same).
        self.rnn = StackedBidirectional(units, num_layers=num_layers, cell=cell,
                                        return_sequences=True, bidirectional=False,
                                        rnn_kwargs=self.rnn_kwargs, name="rnn")
        self.output_dim = self.rnn.layer_units[-1]

    @classmethod
    def from_layers(cls, embedding, rnn, trainable=False, **kwargs):
        """A layer with the weights of a trained LM's ``embedding`` (``keras.layers.Embedding``)
        and unidirectional ``rnn`` (``StackedBidirectional``), copied (the LM is not kept)."""
        if rnn.bidirectional:
            raise ValueError("CharLMFeatures needs a unidirectional language model's RNN")
        layer = cls(int(embedding.input_dim), int(embedding.output_dim), rnn.units,
                    num_layers=rnn.num_layers, cell=rnn.cell, rnn_kwargs=rnn.rnn_kwargs,
                    trainable=trainable, **kwargs)
        layer.build([(None, None), (None, None)])
        layer.embedding.set_weights(embedding.get_weights())
        layer.rnn.set_weights(rnn.get_weights())
        return layer

    def build(self, input_shape):
        self.embedding.build(tuple(input_shape[0]))
        self.rnn.build((None, None, self.embedding_dim))
        self.built = True
        # `trainable=False` given to the constructor does not reach the sublayers (and setting
        # an unchanged value is a no-op in Keras), so hand it down explicitly.
        for layer in (self.embedding, self.rnn):
            layer.trainable = self.trainable

    def call(self, inputs, training=None):
        char_ids, positions = inputs
        char_ids = ops.cast(char_ids, "int32")
        mask = ops.not_equal(char_ids, 0)
        # Masked steps keep their state, so right padding never changes a real position.
        h = self.rnn(self.embedding(char_ids), mask=mask, training=training)       # [B, L, U]
        positions = ops.clip(ops.cast(positions, "int32"), 0, ops.shape(h)[1] - 1)
        picked = ops.take_along_axis(h, ops.expand_dims(positions, -1), axis=1)  # [B, T, U]
        return ops.cast(picked, "float32")

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[1][0], input_shape[1][1], self.output_dim)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units,
                "num_layers": self.num_layers, "cell": self.cell, "rnn_kwargs": self.rnn_kwargs}
