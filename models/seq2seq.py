"""Attention encoder-decoder: training model, encoder model and one-step decoder.

:func:`build_seq2seq_model` returns the functional *training* model (teacher forcing)::

    (source_ids [batch, src_time] int, target_ids [batch, tgt_time] int)
        -> logits [batch, tgt_time, target_vocab] float32

* encoder: Embedding(mask_zero) -> StackedBidirectional(return_sequences, return_state), with
  ``encoder_residual`` each layer after the first adding its input (both ``2 * units`` wide);
  ``share_embeddings`` embeds the source with the target's embedding layer (one vocabulary);
* bridge: one ``Dense(units, tanh)`` per decoder state and decoder layer, from the
  concatenation of the encoder's final forward/backward states;
* decoder: ``decoder_layers`` recurrent layers (lstm | peephole_lstm | gru | simple_rnn) whose
  initial states come from the bridge;
* attention (``bahdanau`` additive or ``luong`` multiplicative) with the top decoder output as
  query, over the encoder outputs with padded source positions masked;
* output: Dense(vocab, float32) on ``[h; context]``; with ``tie_embeddings`` a
  ``Dense(embedding_dim)`` (``output_projection``) on ``[h; context]``, then the transposed target
  embedding matrix plus a bias (Press & Wolf, 2017), through the one
  :class:`~models.word_language_model.WordEmbedding` that also embeds the decoder input, so the
  tie survives ``.keras`` round trips by construction. Luong's extra ``tanh(W_c [h; context])``
  layer was dropped: with it, word-level models sat on the unigram plateau (always "[END]") for
  ~1,000 steps (loss 4.93 vs 4.09 after 500 steps on English->Spanish, same seed).

Token id 0 is padding in both vocabularies. :func:`build_inference_models` rebuilds, from a
training model (fresh or loaded from ``.keras``), an encoder model and a one-step decoder that
call the very same layer objects, so they share weights and match the training logits.
:func:`decode` runs greedy or beam search (``models.decoding.beam_search``) with them, each
sentence optionally capped at its own length (``max_lengths``).
"""

from __future__ import annotations

import keras
from keras import ops

from models.decoding import beam_search as search
from models.layers.attention import get_attention
from models.layers.peephole_lstm import PeepholeLSTM
from models.layers.stacked import StackedBidirectional
from models.word_language_model import WordEmbedding

CELLS = ("lstm", "peephole_lstm", "gru", "simple_rnn")
OUTPUT_PROJECTION = "output_projection"
ATTENTIONS = ("bahdanau", "luong", "luong_dot")


def _check_positive(name, value, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")


def num_cell_states(cell: str) -> int:
    """States per recurrent layer: 2 (h, c) for LSTM-type cells, else 1."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}; got {cell!r}")
    return 2 if cell in ("lstm", "peephole_lstm") else 1


def _encoder_layer(cell, units, num_layers, dropout, residual=False):
    # return_state=True: the TOP layer's final [fw_h, (fw_c,) bw_h, (bw_c)] after the outputs.
    # residual: layers 1.. add their input (2 * units wide, like their concat output).
    return StackedBidirectional(
        units, num_layers=num_layers, cell=cell, merge_mode="concat", dropout=dropout,
        residual=residual, return_sequences=True, return_state=True, name="encoder")


def _decoder_rnn(cell, units, name):
    """One decoder layer returning ``[sequence, *states]``."""
    common = dict(return_sequences=True, return_state=True, name=name)
    if cell == "lstm":
        return keras.layers.LSTM(units, **common)
    if cell == "gru":
        return keras.layers.GRU(units, **common)
    if cell == "simple_rnn":
        return keras.layers.SimpleRNN(units, **common)
    return PeepholeLSTM(units, **common)


def build_seq2seq_model(
    source_vocab_size: int,
    target_vocab_size: int,
    *,
    embedding_dim: int = 64,
    units: int = 64,
    encoder_layers: int = 1,
    decoder_layers: int = 1,
    cell: str = "lstm",
    attention: str = "luong",
    attention_units: int | None = None,
    dropout: float = 0.0,
    tie_embeddings: bool = False,
    encoder_residual: bool = False,
    share_embeddings: bool = False,
    name: str = "seq2seq",
) -> keras.Model:
    """Builds the teacher-forced training model.

    Args:
        source_vocab_size: source ids are in ``[0, source_vocab_size)``; 0 is padding.
        target_vocab_size: target ids likewise; logits have this many classes.
        embedding_dim: size of both embeddings.
        units: recurrent units per direction in the encoder and in each decoder layer.
        encoder_layers: stacked bidirectional encoder layers.
        decoder_layers: stacked decoder layers (each initialised through the bridge).
        cell: ``lstm`` | ``peephole_lstm`` | ``gru`` | ``simple_rnn`` (encoder and decoder).
        attention: ``bahdanau`` (additive), ``luong`` (general) or ``luong_dot`` (needs the
            decoder size to equal the encoder output size, i.e. never with concat: rejected).
        attention_units: hidden size of the additive score; default ``units``.
        dropout: rate on embeddings, between decoder layers and on ``[h; context]``.
        tie_embeddings: the output layer reuses the target embedding matrix (transposed, plus
            an output bias) after a ``Dense(embedding_dim)`` projection of ``[h; context]``;
            the target embedding is then a ``WordEmbedding`` (layer ``target_embedding``) and
            there is no ``logits`` layer.
        encoder_residual: every encoder layer after the first adds its input sequence to its
            output (GNMT-style residual; needs ``encoder_layers >= 2`` to matter).
        share_embeddings: the source ids are embedded by the target embedding layer (one
            vocabulary for both sides, e.g. a shared subword model: the vocabulary sizes must
            be equal); there is no ``source_embedding`` layer. With ``tie_embeddings`` the
            one matrix embeds both sides and makes the output layer.
        name: model name.

    Returns:
        ``keras.Model`` with inputs ``[source_ids, target_ids]`` ([batch, time] int32) and
        output logits [batch, target_time, target_vocab_size] float32 (carrying the target
        padding mask, so Keras losses ignore padded steps).
    """
    _check_positive("source_vocab_size", source_vocab_size, 2)
    _check_positive("target_vocab_size", target_vocab_size, 2)
    for key, value in (("embedding_dim", embedding_dim), ("units", units),
                       ("encoder_layers", encoder_layers), ("decoder_layers", decoder_layers)):
        _check_positive(key, value)
    n_states = num_cell_states(cell)
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}; got {attention!r}")
    if attention == "luong_dot":
        raise ValueError(
            "attention='luong_dot' needs decoder units == encoder output size (2 * units with "
            "the concatenating bidirectional encoder); use 'luong' (general) instead")
    if attention_units is not None:
        _check_positive("attention_units", attention_units)
    if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
    for key, value in (("tie_embeddings", tie_embeddings), ("encoder_residual", encoder_residual),
                       ("share_embeddings", share_embeddings)):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be a bool; got {value!r}")
    if share_embeddings and source_vocab_size != target_vocab_size:
        raise ValueError(
            "share_embeddings needs one vocabulary for both sides; got source_vocab_size="
            f"{source_vocab_size} != target_vocab_size={target_vocab_size}")

    source = keras.Input(shape=(None,), dtype="int32", name="source_ids")
    target = keras.Input(shape=(None,), dtype="int32", name="target_ids")
    source_mask = ops.not_equal(source, 0)

    # share_embeddings: one vocabulary (a shared subword model), one matrix for both sides.
    target_embedding = (_target_embedding(target_vocab_size, embedding_dim, tie_embeddings)
                        if share_embeddings else None)
    x = target_embedding(source) if share_embeddings else keras.layers.Embedding(
        source_vocab_size, embedding_dim, mask_zero=True, name="source_embedding")(source)
    x = keras.layers.Dropout(dropout, name="source_dropout")(x)
    encoded = _encoder_layer(cell, units, encoder_layers, dropout, encoder_residual)(x)
    encoder_outputs, final_states = encoded[0], list(encoded[1:])
    bridge_input = keras.layers.Concatenate(name="bridge_input")(final_states)
    initial_states = [
        [keras.layers.Dense(units, activation="tanh", name=f"bridge_{layer}_{s}")(bridge_input)
         for s in range(n_states)]
        for layer in range(decoder_layers)
    ]

    # Tied: one layer, the lookup here and the transposed matrix in the output head.
    if target_embedding is None:
        target_embedding = _target_embedding(target_vocab_size, embedding_dim, tie_embeddings)
    y = target_embedding(target)
    y = keras.layers.Dropout(dropout, name="target_dropout")(y)
    for layer in range(decoder_layers):
        y = _decoder_rnn(cell, units, f"decoder_rnn_{layer}")(
            y, initial_state=initial_states[layer])[0]
        if layer + 1 < decoder_layers:
            y = keras.layers.Dropout(dropout, name=f"decoder_dropout_{layer}")(y)
    attention_layer = get_attention(attention, attention_units or units, name="attention")
    context = attention_layer([y, encoder_outputs], value_mask=source_mask)[0]
    logits = _output_head(y, context, target_vocab_size, dropout,
                          target_embedding if tie_embeddings else None)
    return keras.Model([source, target], logits, name=name)


def _target_embedding(vocab_size, embedding_dim, tied):
    if tied:  # also the output layer (reverse call): WordEmbedding holds the output bias
        return WordEmbedding(vocab_size, embedding_dim, tie_weights=True, name="target_embedding")
    return keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True,
                                  name="target_embedding")


def _output_head(decoder_outputs, context, vocab_size, dropout, tied=None):
    """float32 logits from ``[h; context]`` (through ``tied``'s matrix when given)."""
    h = keras.layers.Concatenate(name="attention_concat")([decoder_outputs, context])
    h = keras.layers.Dropout(dropout, name="output_dropout")(h)
    if tied is not None:
        # [h; context] is units + 2 * units wide: projected to embedding_dim, then the
        # reverse call reads the float32 matrix unrounded and returns float32 logits.
        h = keras.layers.Dense(tied.embedding_dim, name=OUTPUT_PROJECTION)(h)
        return tied(h, reverse=True)
    # float32 logits under mixed precision: the softmax / loss / beam scores need the range.
    return keras.layers.Dense(vocab_size, dtype="float32", name="logits")(h)


def output_layer(model: keras.Model):
    """``[h; context]`` [..., units + 2 * units] -> float32 logits [..., vocab], with
    ``model``'s own layers (``logits``, or ``output_projection`` + the tied embedding)."""
    names = {layer.name for layer in model.layers}
    if OUTPUT_PROJECTION not in names:
        return model.get_layer("logits")
    projection, embedding = model.get_layer(OUTPUT_PROJECTION), model.get_layer(
        "target_embedding")
    return lambda h: embedding(projection(h), reverse=True)


def _decoder_layer_count(model):
    names = {layer.name for layer in model.layers}
    count = 0
    while f"decoder_rnn_{count}" in names:
        count += 1
    if count == 0:
        raise ValueError(f"model {model.name!r} has no decoder_rnn_0 layer: not a seq2seq model")
    return count


def build_inference_models(model: keras.Model):
    """Encoder model and one-step decoder sharing ``model``'s layers (hence its weights).

    Args:
        model: a model from :func:`build_seq2seq_model`, possibly reloaded from ``.keras``.

    Returns:
        ``(encoder, step_decoder)``:

        * ``encoder``: ``keras.Model`` source_ids [batch, src_time] -> ``[encoder_outputs
          [batch, src_time, 2*units], source_mask [batch, src_time] bool, *initial_states]``
          (each [batch, units]; per decoder layer: h (, c)).
        * ``step_decoder(previous_ids [batch] int, states, (encoder_outputs, source_mask))``
          -> ``(log_probs [batch, vocab] float32, new_states, attention [batch, src_time]
          float32)``: the ``step_fn`` contract of ``models.decoding.beam_search``. A plain function
          over the shared layers rather than a functional model: it traces faster inside the
          decoding loop, and Keras names both decoder cells ``lstm_cell``, which a functional
          graph would reject.
    """
    n_layers = _decoder_layer_count(model)
    names = {ly.name for ly in model.layers}
    n_states = 0
    while f"bridge_0_{n_states}" in names:
        n_states += 1
    layer = model.get_layer
    source = model.inputs[0]
    initial_states = [layer(f"bridge_{i}_{s}").output
                      for i in range(n_layers) for s in range(n_states)]
    encoder = keras.Model(
        source, [layer("encoder").output[0], ops.not_equal(source, 0), *initial_states],
        name=f"{model.name}_encoder")

    embedding = layer("target_embedding")
    cells = [layer(f"decoder_rnn_{i}").cell for i in range(n_layers)]
    attention, concat = layer("attention"), layer("attention_concat")
    project = output_layer(model)

    def step_decoder(previous_ids, states, context):
        memory, memory_mask = context
        # Embedding.call, not __call__: the lookup without attaching a padding mask that the
        # cells (which take no mask) would warn about.
        y = embedding.call(ops.convert_to_tensor(previous_ids, "int32"))        # [b, emb]
        new_states = []
        for i, cell in enumerate(cells):
            # The recurrent layers' cells: the same kernels and step math as the layers' time
            # loop, without tracing a one-step loop per call.
            y, out = cell(y, list(states[i * n_states:(i + 1) * n_states]), training=False)
            new_states += list(out) if isinstance(out, (list, tuple)) else [out]
        context_vector, weights = attention([y, memory], value_mask=memory_mask)  # 2-D query
        logits = project(concat([y, context_vector]))                            # [b, vocab]
        return ops.log_softmax(ops.cast(logits, "float32"), axis=-1), new_states, weights

    return encoder, step_decoder


def decode(encoder: keras.Model, step_decoder, source_ids, *, start_token: int,
           end_token: int, max_length: int, method: str = "beam", beam_width: int = 4,
           length_penalty: float = 0.0, keep_greedy: bool = True,
           forbidden_tokens=(0,), average=False, coverage_penalty=0.0,
           max_lengths=None) -> dict:
    """Greedy or beam decoding (or both) of a batch of source id sequences.

    Args:
        encoder, step_decoder: from :func:`build_inference_models`.
        source_ids: [batch, src_time] int (0 = padding).
        start_token: id fed at the first step; end_token: id that finishes a hypothesis.
        max_length: most tokens generated per hypothesis (end token included); an int or a
            scalar int tensor (e.g. derived from the source length).
        method: ``"greedy"``, ``"beam"`` or ``"both"`` (one encoder pass, and the greedy
            result reused by ``keep_greedy``).
        beam_width: hypotheses kept per example (``beam`` only).
        length_penalty: GNMT alpha; 0 ranks by the plain sum of log-probabilities.
        keep_greedy: see :func:`models.decoding.beam_search.beam_search`.
        forbidden_tokens: ids never generated (default padding; subword units add [UNK]).
        average, coverage_penalty: length normalisation and GNMT coverage penalty of
            :func:`models.decoding.beam_search.beam_search` (python values or scalar tensors).
        max_lengths: optional int [batch]: example i's output ends by ``max_lengths[i]``
            tokens (END forced there; each <= ``max_length``, which sizes the buffers).

    Returns:
        The dict of :func:`models.decoding.beam_search.greedy_decode` / ``beam_search``: ``tokens``
        [batch, max_length], ``lengths``, ``scores``, ``normalized_scores`` [batch] and
        ``attention`` [batch, max_length, src_time]; for ``both``: ``{"greedy": ...,
        "beam": ...}``.
    """
    if method not in ("greedy", "beam", "both"):
        raise ValueError(f"method must be 'greedy', 'beam' or 'both'; got {method!r}")
    encoded = encoder(source_ids, training=False)
    context, states = (encoded[0], encoded[1]), list(encoded[2:])
    common = dict(start_token=start_token, end_token=end_token, max_length=max_length,
                  length_penalty=length_penalty, average=average, max_lengths=max_lengths)
    # Padding is never a real output token (the loss masks it), yet an under-trained model
    # may give it mass: forbid it during the search.
    step_fn = search.forbid_tokens(step_decoder, forbidden_tokens)
    greedy = None
    if method in ("greedy", "both"):
        greedy = search.greedy_decode(step_fn, states, context, **common)
        if method == "greedy":
            return greedy
    beam = search.beam_search(step_fn, states, context, beam_width=beam_width,
                              keep_greedy=keep_greedy, greedy_result=greedy,
                              coverage_penalty=coverage_penalty, source_mask=encoded[1],
                              **common)
    return beam if method == "beam" else {"greedy": greedy, "beam": beam}
