"""Word-level LSTM language model with AWD-LSTM-style regularisation (Merity et al., 2017).

What Keras allows of AWD-LSTM: *embedding dropout* (whole word rows of the embedding matrix
dropped per batch), *locked* (variational) dropout with one mask per sequence on the
embeddings, between recurrent layers and on the top output, variational recurrent dropout on
``h`` (Keras' ``recurrent_dropout``, instead of DropConnect on the hidden-to-hidden weights),
and *weight tying*: the output layer reuses the embedding matrix transposed plus a bias (with a
``projection`` Dense when the top layer's width differs from ``embedding_dim``). Cells: Keras'
LSTM or the project's peephole LSTM (:mod:`models.layers.peephole_lstm`).

Truncated BPTT: with ``carry_batch_size = B`` every recurrent layer keeps its final states of
one training batch in (non-trainable) variables and starts the next training batch of ``B``
rows from them, so consecutive windows of ``B`` contiguous token streams continue each other;
:func:`reset_carried_states` zeroes them (each epoch). Inference calls (``training=False``)
always start from zeros or from explicit ``initial_state`` s and never touch the carried ones.

Stable layer names in the saved model (what a fine-tuning step reads from ``model.keras``):
``embedding`` (:class:`WordEmbedding`: ``embeddings`` [vocab, embedding_dim] and, tied,
``output_bias`` [vocab]), ``lstm_1`` ... ``lstm_N`` (the recurrent layers, whatever the cell),
``projection`` (tied, ``units != embedding_dim``) or ``logits`` (untied), and the dropout layers
``input_dropout``, ``hidden_dropout_1`` ... ``hidden_dropout_{N-1}``, ``output_dropout``.

Example::

    model = build_word_language_model(vocab_size=10_000, embedding_dim=64, units=128)
    step = build_state_model(model, step=True)   # for models.language_model.generate
"""

from __future__ import annotations

import keras
from keras import ops

from models.language_model import SqueezeTime
from models.layers.peephole_lstm import PeepholeLSTM

PACKAGE = "recurrent_suite"
CELLS = ("lstm", "peephole_lstm")
EMBEDDING, PROJECTION, LOGITS = "embedding", "projection", "logits"


def recurrent_name(i: int) -> str:
    """Name of the ``i``-th recurrent layer (1-based): ``lstm_1``, ``lstm_2``..."""
    return f"lstm_{i}"


@keras.saving.register_keras_serializable(package=PACKAGE)
class WordEmbedding(keras.layers.Layer):
    """Word embedding with embedding dropout, callable in reverse as the tied output layer.

    ``layer(ids)``: int [batch, time] -> [batch, time, embedding_dim] (compute dtype; mask
    ``ids != 0``). ``layer(x, reverse=True)``: [batch, time, embedding_dim] -> logits float32
    [batch, time, vocab_size] = ``x @ embeddings^T + output_bias``, float32 also under mixed
    precision (the variables are read unrounded) so the softmax stays stable.

    Args:
        vocab_size: ids incl. padding 0.
        embedding_dim: vector size.
        embedding_dropout: in training, the probability that a word's whole row is zeroed
            for the batch (the others are scaled by 1 / (1 - rate)).
        tie_weights: create ``output_bias`` for the reverse call (without it the layer only
            embeds).
        seed: dropout seed.
    """

    def __init__(self, vocab_size, embedding_dim, embedding_dropout=0.0, tie_weights=True,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("vocab_size", vocab_size), ("embedding_dim", embedding_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not 0.0 <= embedding_dropout < 1.0:
            raise ValueError(f"embedding_dropout must be in [0, 1), got {embedding_dropout!r}")
        self.vocab_size, self.embedding_dim = vocab_size, embedding_dim
        self.embedding_dropout, self.tie_weights, self.seed = embedding_dropout, tie_weights, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def build(self, input_shape=None):
        # autocast=False: the float32 master copies are read as they are (the reverse call
        # wants them unrounded); the forward call casts rows itself.
        self.embeddings = self.add_weight(
            shape=(self.vocab_size, self.embedding_dim), name="embeddings", autocast=False,
            initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=self.seed))
        if self.tie_weights:
            self.output_bias = self.add_weight(shape=(self.vocab_size,), name="output_bias",
                                               initializer="zeros", autocast=False)
        self.built = True

    def call(self, inputs, reverse=False, training=None):
        if reverse:
            if not self.tie_weights:
                raise ValueError("reverse=True needs tie_weights=True (the output bias)")
            x = ops.cast(inputs, "float32")
            return ops.matmul(x, ops.transpose(self.embeddings)) + self.output_bias
        table = self.embeddings
        if training and self.embedding_dropout > 0:
            keep = keras.random.uniform((self.vocab_size, 1), seed=self.seed_generator)
            keep = ops.cast(keep >= self.embedding_dropout, table.dtype)
            table = table * keep / (1.0 - self.embedding_dropout)
        return ops.cast(ops.take(table, ops.cast(inputs, "int32"), axis=0), self.compute_dtype)

    def compute_mask(self, inputs, mask=None):
        # Ids mask their padding; the reverse call passes the incoming mask on.
        if "int" in str(getattr(inputs, "dtype", "")):
            return ops.not_equal(inputs, 0)
        return mask

    def compute_output_spec(self, inputs, reverse=False, training=None):
        if reverse:
            return keras.KerasTensor((*inputs.shape[:-1], self.vocab_size), dtype="float32")
        return keras.KerasTensor((*inputs.shape, self.embedding_dim), dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "embedding_dropout": self.embedding_dropout,
                "tie_weights": self.tie_weights, "seed": self.seed}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LockedDropout(keras.layers.Layer):
    """Variational dropout: one mask per sequence, shared by every timestep.

    [batch, time, features] -> same; masks pass through.
    """

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        self.rate, self.seed = rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True

    def call(self, inputs, training=None):
        if not training or self.rate == 0:
            return inputs
        shape = (ops.shape(inputs)[0], 1, ops.shape(inputs)[2])
        return keras.random.dropout(inputs, self.rate, noise_shape=shape,
                                    seed=self.seed_generator)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


class _CarriedStates:
    """Mixin for a Keras RNN layer built with ``return_state=True``: truncated-BPTT state
    carrying between training batches of exactly ``carry_batch_size`` rows (0 = off)."""

    def _init_carry(self, carry_batch_size):
        if isinstance(carry_batch_size, bool) or not isinstance(carry_batch_size, int) \
                or carry_batch_size < 0:
            raise ValueError(f"carry_batch_size must be an int >= 0, got {carry_batch_size!r}")
        if carry_batch_size and not self.return_state:
            raise ValueError("carrying states needs return_state=True")
        self.carry_batch_size = carry_batch_size
        self.carried_states = []

    def build(self, sequences_shape, initial_state_shape=None):
        super().build(sequences_shape, initial_state_shape)
        if self.carry_batch_size and not self.carried_states:
            self.carried_states = [
                self.add_weight(shape=(self.carry_batch_size, self.units), initializer="zeros",
                                trainable=False, name=f"carried_{part}") for part in ("h", "c")]

    def call(self, sequences, initial_state=None, mask=None, training=False):
        carry = bool(training and self.carried_states and initial_state is None
                     and sequences.shape[0] == self.carry_batch_size)
        if carry:  # gradients stop at the window's start: truncated BPTT
            initial_state = [ops.cast(ops.stop_gradient(v.value), self.compute_dtype)
                             for v in self.carried_states]
        out = super().call(sequences, initial_state=initial_state, mask=mask, training=training)
        if carry:
            for variable, state in zip(self.carried_states, out[1:]):
                variable.assign(ops.cast(ops.stop_gradient(state), variable.dtype))
        return out

    def reset_carried_states(self):
        for variable in self.carried_states:
            variable.assign(ops.zeros(variable.shape, variable.dtype))

    def get_config(self):
        return {**super().get_config(), "carry_batch_size": self.carry_batch_size}


@keras.saving.register_keras_serializable(package=PACKAGE)
class CarriedLSTM(_CarriedStates, keras.layers.LSTM):
    """``keras.layers.LSTM`` with truncated-BPTT state carrying (see :class:`_CarriedStates`)."""

    def __init__(self, units, carry_batch_size=0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_carry(carry_batch_size)


@keras.saving.register_keras_serializable(package=PACKAGE)
class CarriedPeepholeLSTM(_CarriedStates, PeepholeLSTM):
    """:class:`~models.layers.peephole_lstm.PeepholeLSTM` with truncated-BPTT state carrying."""

    def __init__(self, units, carry_batch_size=0, **kwargs):
        super().__init__(units, **kwargs)
        self._init_carry(carry_batch_size)


def build_word_language_model(vocab_size, embedding_dim=64, units=128, num_layers=2,
                              cell="lstm", embedding_dropout=0.0, input_dropout=0.0,
                              hidden_dropout=0.0, output_dropout=0.0, recurrent_dropout=0.0,
                              tie_weights=True, carry_batch_size=0, seed=None,
                              name="word_language_model"):
    """embedding -> locked dropout -> N x (LSTM -> locked dropout) -> tied or Dense logits.

    Args:
        vocab_size: ids incl. padding 0 (and OOV 1).
        embedding_dim, units, num_layers: sizes.
        cell: ``"lstm"`` or ``"peephole_lstm"``.
        embedding_dropout: word-row dropout of the embedding matrix.
        input_dropout, hidden_dropout, output_dropout: locked dropout on the embeddings,
            between recurrent layers and on the top output.
        recurrent_dropout: variational dropout on ``h`` inside each layer.
        tie_weights: output = embedding matrix transposed (+ bias), via ``projection`` when
            ``units != embedding_dim``.
        carry_batch_size: rows of a training batch whose states carry over to the next
            (truncated BPTT); 0 = every batch starts from zeros.
        seed: dropout seed.
        name: model name.

    Returns:
        ``keras.Model``: ids int32 [batch, time] -> logits float32 [batch, time, vocab_size]
        (float32 also under mixed precision).
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    for arg, value in (("units", units), ("num_layers", num_layers)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be a positive int, got {value!r}")
    for arg, value in (("input_dropout", input_dropout), ("hidden_dropout", hidden_dropout),
                       ("output_dropout", output_dropout),
                       ("recurrent_dropout", recurrent_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{arg} must be in [0, 1), got {value!r}")
    layer_class = CarriedLSTM if cell == "lstm" else CarriedPeepholeLSTM
    ids = keras.Input((None,), dtype="int32", name="ids")
    embedding = WordEmbedding(vocab_size, embedding_dim, embedding_dropout, tie_weights,
                              seed=seed, name=EMBEDDING)
    x = LockedDropout(input_dropout, seed=seed, name="input_dropout")(embedding(ids))
    for i in range(1, num_layers + 1):
        rnn = layer_class(units, carry_batch_size=carry_batch_size, return_sequences=True,
                          return_state=True, recurrent_dropout=recurrent_dropout, seed=seed,
                          name=recurrent_name(i))
        x = rnn(x)[0]
        top = i == num_layers
        x = LockedDropout(output_dropout if top else hidden_dropout, seed=seed,
                          name="output_dropout" if top else f"hidden_dropout_{i}")(x)
    if tie_weights:
        if units != embedding_dim:
            x = keras.layers.Dense(embedding_dim, name=PROJECTION)(x)
        logits = embedding(x, reverse=True)
    else:
        logits = keras.layers.Dense(vocab_size, dtype="float32", name=LOGITS)(x)
    return keras.Model(ids, logits, name=name)


def recurrent_layers(model) -> list:
    """The recurrent layers of a :func:`build_word_language_model` model, bottom first."""
    out, i = [], 1
    while any(layer.name == recurrent_name(i) for layer in model.layers):
        out.append(model.get_layer(recurrent_name(i)))
        i += 1
    return out


def reset_carried_states(model) -> None:
    """Zeroes the carried training states of every recurrent layer (an epoch's start)."""
    for layer in recurrent_layers(model):
        layer.reset_carried_states()


def build_state_model(model, step=False):
    """An inference model sharing ``model``'s layers (weights) with explicit states in and out.

    Args:
        model: from :func:`build_word_language_model` (fresh or reloaded).
        step: one token per call, logits without the time axis (the step model that
            :func:`models.language_model.generate` drives).

    Returns:
        ``keras.Model``: ``[ids int32 [batch, time], *states]`` -> ``[logits float32 [batch,
        time, vocab], *new_states]`` (``step``: ids [batch, 1] -> logits [batch, vocab]);
        states are ``h, c`` of every layer, bottom first, each [batch, units] in the compute
        dtype. No dropout: inference only.
    """
    embedding = model.get_layer(EMBEDDING)
    rnns = recurrent_layers(model)
    ids = keras.Input((1,) if step else (None,), dtype="int32", name="ids")
    x = embedding(ids)
    # Keras does not pass an input's mask on to a layer called with initial_state tensors
    # too (masked steps would update the states), so it is passed explicitly.
    mask = ops.not_equal(ids, 0)
    states_in, states_out = [], []
    for rnn in rnns:
        pair = [keras.Input((rnn.units,), dtype=rnn.compute_dtype, name=f"{rnn.name}_{p}")
                for p in ("h", "c")]
        out = rnn(x, initial_state=pair, mask=mask)
        x, states_in, states_out = out[0], states_in + pair, states_out + list(out[1:])
    layers = {layer.name: layer for layer in model.layers}
    if LOGITS in layers:
        logits = layers[LOGITS](x)
    else:
        if PROJECTION in layers:
            x = layers[PROJECTION](x)
        logits = embedding(x, reverse=True)
    if step:
        logits = SqueezeTime(dtype="float32", name="step_logits")(logits)
    return keras.Model([ids, *states_in], [logits, *states_out],
                       name=f"{model.name}_{'step' if step else 'state'}")


def token_log_probs(model, ids):
    """Per-token log-probabilities of right-padded sequences under the training model.

    Args:
        model: a :func:`build_word_language_model` model.
        ids: int [batch, time]; position 0 is context (not scored), every later non-padding
            id is scored.

    Returns:
        ``(log_probs, scored)``: float32 [batch, time - 1] log p(id_t | ids_<t) in nats
        (0 where not scored) and bool [batch, time - 1].
    """
    ids = ops.cast(ids, "int32")
    logits = ops.cast(model(ids[:, :-1], training=False), "float32")
    targets = ids[:, 1:]
    log_probs = ops.log_softmax(logits, axis=-1)
    picked = ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(targets, -1), -1), -1)
    scored = ops.not_equal(targets, 0)
    return ops.where(scored, picked, 0.0), scored
