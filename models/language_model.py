"""Character language model: training model, weight-sharing step model, in-graph generation.

The training model reads a whole sequence at once (teacher forcing). Generation instead runs a
*step model* built from the very same layer objects (so it shares the weights, also after a
checkpoint reload) that consumes one token and the recurrent state of every layer and returns
the next-token logits and the new states. :func:`generate` drives that step model inside one
``keras.ops.while_loop``, so under ``tf.function`` (optionally ``jit_compile=True``) the whole
prompt + sampling loop is a single compiled graph: each new character costs one RNN step, never a
re-read of the prefix.

Example::

    model = build_char_language_model(vocab_size=60, units=256, num_layers=2)
    step = build_step_model(model)
    ids, lengths = generate(step, prompt_ids, length=200, temperature=0.8,
                            seed=keras.random.SeedGenerator(1), end_id=3)
"""

from __future__ import annotations

import keras
from keras import ops

from models.decoding.sampling import DEFAULT_FORBIDDEN_IDS, sample_logits
from models.layers.stacked import StackedBidirectional

CELLS = ("lstm", "peephole_lstm", "gru", "simple_rnn")
# Layer names the step model looks up in a (possibly reloaded) training model.
EMBEDDING, RNN, LOGITS = "embedding", "rnn", "logits"


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_rnn_args(units, num_layers, cell, dropout, recurrent_dropout=0.0):
    """Validates the recurrent-stack arguments shared by the char and music models."""
    _check_positive_int("units", units)
    _check_positive_int("num_layers", num_layers)
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    for name, value in (("dropout", dropout), ("recurrent_dropout", recurrent_dropout)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value!r}")


def make_rnn(units, num_layers, cell, dropout, recurrent_dropout=0.0):
    """The unidirectional stack both language models use; returns outputs and all states."""
    return StackedBidirectional(
        units, num_layers=num_layers, cell=cell, dropout=dropout,
        recurrent_dropout=recurrent_dropout, return_sequences=True, return_state="all",
        bidirectional=False, name=RNN)


def build_char_language_model(vocab_size, embedding_dim=64, units=256, num_layers=2, cell="lstm",
                              dropout=0.0, recurrent_dropout=0.0, name="char_language_model"):
    """Embedding(mask_zero) -> stacked unidirectional RNN -> Dense logits.

    Args:
        vocab_size: number of ids including padding 0 and OOV 1.
        embedding_dim: character embedding size.
        units: hidden units of every recurrent layer.
        num_layers: recurrent layers in the stack.
        cell: ``"lstm"``, ``"peephole_lstm"``, ``"gru"`` or ``"simple_rnn"``.
        dropout: input dropout of the recurrent layers.
        recurrent_dropout: dropout on the recurrent state.
        name: model name.

    Returns:
        ``keras.Model``: ids int32 [batch, time] -> logits float32 [batch, time, vocab_size]
        (float32 also under mixed precision, so the softmax cross-entropy is stable).
    """
    _check_positive_int("vocab_size", vocab_size)
    _check_positive_int("embedding_dim", embedding_dim)
    check_rnn_args(units, num_layers, cell, dropout, recurrent_dropout)
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name=EMBEDDING)(ids)
    x = make_rnn(units, num_layers, cell, dropout, recurrent_dropout)(x)[0]
    logits = keras.layers.Dense(vocab_size, dtype="float32", name=LOGITS)(x)
    return keras.Model(ids, logits, name=name)


@keras.saving.register_keras_serializable(package="recurrent_suite")
class SqueezeTime(keras.layers.Layer):
    """[batch, 1, features] -> [batch, features]; drops the (all-true) one-step mask.

    A plain ``Reshape`` would warn that it destroys the embedding's mask on every step model.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.squeeze(inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *input_shape[2:])


def state_inputs(rnn, features):
    """Symbolic ``keras.Input`` s matching every state ``rnn`` returns (all layers, in order).

    Args:
        rnn: the stacked RNN (``return_state="all"``).
        features: KerasTensor [batch, 1, features] the step model feeds it.
    """
    probe = rnn(features)[1:]
    return [keras.Input(tuple(s.shape[1:]), dtype=s.dtype, name=f"state_{i}")
            for i, s in enumerate(probe)]


def build_step_model(model):
    """One-token step model sharing ``model``'s layers (and therefore its weights).

    Args:
        model: a model from :func:`build_char_language_model` (fresh or reloaded).

    Returns:
        ``keras.Model``: ``[token int32 [batch, 1], *states]`` ->
        ``[logits float32 [batch, vocab], *new_states]``; states are those of every layer in
        order (h, c per LSTM layer; h per GRU / simple RNN layer), each [batch, units].
    """
    embedding, rnn, head = (model.get_layer(n) for n in (EMBEDDING, RNN, LOGITS))
    token = keras.Input((1,), dtype="int32", name="token")
    features = embedding(token)
    states = state_inputs(rnn, features)
    out = rnn(features, initial_state=states)
    logits = SqueezeTime(dtype="float32", name="step_logits")(head(out[0]))
    return keras.Model([token, *states], [logits, *out[1:]], name=f"{model.name}_step")


def zero_states(step_model, batch_size):
    """Zero initial states for ``step_model`` (inputs after the first)."""
    return [ops.zeros((batch_size, *s.shape[1:]), dtype=s.dtype) for s in step_model.inputs[1:]]


def generation_loop(step_fn, buffer, prompt_lengths, states, pad_value=None, is_end=None):
    """Teacher-forces each row's prompt, then samples, one step per position, in one while loop.

    Position ``t + 1`` of ``buffer`` is written after feeding position ``t``: with the prompt's
    own value while ``t + 1 < prompt_lengths[row]``, otherwise with ``step_fn``'s sample. Prompts
    of different lengths in one batch are handled exactly (no masking involved), and the loop
    ends early once every row has produced an end value.

    Args:
        step_fn: ``(inputs [batch, 1, ...], states) -> (sample [batch, ...], new_states)``.
        buffer: [batch, total, ...] prompts, right-padded; ``total`` = longest prompt + length.
        prompt_lengths: int32 [batch], each >= 1.
        states: list of initial state tensors.
        pad_value: written after a row has ended (needed with ``is_end``).
        is_end: optional ``sample -> bool [batch]``; a sampled end value is replaced by
            ``pad_value`` and the row stops.

    Returns:
        The filled buffer [batch, total, ...].
    """
    batch, total = ops.shape(buffer)[0], ops.shape(buffer)[1]
    trailing = tuple(buffer.shape[2:])
    zeros = (0,) * len(trailing)
    prompt_lengths = ops.cast(prompt_lengths, "int32")

    def cond(t, buf, states, done):
        return ops.logical_and(t < total - 1, ops.logical_not(ops.all(done)))

    def body(t, buf, states, done):
        inputs = ops.slice(buf, (0, t, *zeros), (batch, 1, *trailing))
        sample, states = step_fn(inputs, list(states))
        sample = ops.cast(sample, buf.dtype)
        nxt = ops.squeeze(ops.slice(buf, (0, t + 1, *zeros), (batch, 1, *trailing)), axis=1)
        forced = (t + 1) < prompt_lengths
        if is_end is not None:
            ended = ops.logical_and(ops.logical_not(forced), is_end(sample))
            sample = ops.where(_expand(ops.logical_or(done, ended), sample), pad_value, sample)
            done = ops.logical_or(done, ended)
        value = ops.where(_expand(forced, sample), nxt, sample)
        buf = ops.slice_update(buf, (0, t + 1, *zeros), ops.expand_dims(value, 1))
        return t + 1, buf, tuple(states), done

    done = ops.zeros((batch,), dtype="bool")
    _, buffer, _, _ = ops.while_loop(cond, body, (ops.convert_to_tensor(0, "int32"), buffer,
                                                  tuple(states), done))
    return buffer


def _expand(mask, like):
    """bool [batch] -> broadcastable against ``like`` [batch, ...]."""
    return ops.reshape(mask, (-1,) + (1,) * (len(like.shape) - 1))


def prompt_lengths_of(prompt_ids):
    """Number of non-padding ids per row of a right-padded int [batch, time] prompt."""
    return ops.sum(ops.cast(ops.not_equal(prompt_ids, 0), "int32"), axis=1)


def generate(step_model, prompt_ids, length, temperature=1.0, top_k=0, top_p=1.0, seed=None,
             forbidden_ids=DEFAULT_FORBIDDEN_IDS, end_id=None):
    """Samples ``length`` ids after each prompt, carrying the RNN state step by step.

    Wrap the call in ``tf.function`` (``jit_compile=True`` works with a Python ``length``) to get
    one compiled graph; eagerly it also works, only slowly.

    Args:
        step_model: from :func:`build_step_model`.
        prompt_ids: int [batch, time] right-padded with 0; every row needs >= 1 id (e.g. the
            start id for an empty prompt).
        length: int or scalar int tensor, the number of ids to sample per row.
        temperature, top_k, top_p: see :func:`models.decoding.sampling.sample_logits`.
        seed: None, int or ``keras.random.SeedGenerator`` (an int seed is turned into a
            generator here, so each step draws fresh noise reproducibly; inside a
            ``tf.function`` create the generator outside and pass it in).
        forbidden_ids: ids never sampled (padding, OOV, start...).
        end_id: optional end-of-sequence id: generation of a row stops there; the end id and
            everything after it come back as 0.

    Returns:
        ``(ids, lengths)``: int32 [batch, length] sampled continuation (0-padded after an end
        id) and int32 [batch] the number of ids before the end (== length when none).
    """
    if isinstance(length, int) and not isinstance(length, bool) and length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    if len(prompt_ids.shape) != 2:
        raise ValueError(f"prompt_ids must be [batch, time], got shape {prompt_ids.shape}")
    if isinstance(seed, int) and not isinstance(seed, bool):
        seed = keras.random.SeedGenerator(seed)
    prompt_ids = ops.cast(prompt_ids, "int32")
    batch = ops.shape(prompt_ids)[0]
    lengths = prompt_lengths_of(prompt_ids)
    if not isinstance(length, int):  # keep a Python int static (XLA needs static shapes)
        length = ops.cast(length, "int32")
    buffer = ops.concatenate([prompt_ids, ops.zeros((batch, length), "int32")], axis=1)

    def step_fn(inputs, states):
        out = step_model([inputs, *states], training=False)
        token = sample_logits(out[0], temperature, top_k, top_p, seed, forbidden_ids)
        return token, list(out[1:])

    is_end = None if end_id is None else (lambda token: ops.equal(token, end_id))
    buffer = generation_loop(step_fn, buffer, lengths, zero_states(step_model, batch),
                             pad_value=0, is_end=is_end)
    positions = ops.expand_dims(lengths, 1) + ops.expand_dims(ops.arange(length, dtype="int32"), 0)
    ids = ops.take_along_axis(buffer, positions, axis=1)
    return ids, prompt_lengths_of(ids)


def sequence_log_probs(model, ids):
    """Log-probability of each sequence under the training model, for ranking candidates.

    Args:
        model: a :func:`build_char_language_model` model.
        ids: int [batch, time] right-padded with 0; position 0 is the context (e.g. the start
            id) and is not scored, every later non-padding id is.

    Returns:
        ``(total, count)``: float32 [batch] sum of log p(id_t | ids_<t) in nats and int32
        [batch] the number of scored ids (divide for the per-character figure).
    """
    ids = ops.cast(ids, "int32")
    logits = model(ids[:, :-1], training=False)
    targets = ids[:, 1:]
    log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    picked = ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(targets, -1), -1), -1)
    scored = ops.not_equal(targets, 0)
    total = ops.sum(ops.where(scored, picked, 0.0), axis=1)
    return total, ops.sum(ops.cast(scored, "int32"), axis=1)
