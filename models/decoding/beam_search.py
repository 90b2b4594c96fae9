"""Batched greedy decoding and beam search in ``keras.ops``.

Both decoders drive a *step function*::

    step_fn(ids [n] int32, states: list of [n, ...], context) ->
        (log_probs [n, vocab], new_states: list of [n, ...], attention [n, src_time])

where ``context`` is any nested structure of [n, ...] tensors that stays constant during
decoding (encoder outputs and source mask). The loop is a ``keras.ops.while_loop`` whose
buffers all have fixed shapes, so under ``tf.function`` (or ``jax.jit``) the whole search is
one compiled graph: no Python runs per step.

Conventions: hypotheses begin after ``start_token`` (which is not returned); a hypothesis is
finished once it emits ``end_token``, which *is* included in ``tokens`` and ``lengths``;
positions after the end (or all of them past ``max_length``) hold 0. ``scores`` are sums of
log-probabilities of the emitted tokens; ``normalized_scores`` divide by the GNMT length
penalty ``((5 + length) / 6) ** alpha`` (``alpha = length_penalty``; 0 leaves scores as is), or
with ``average=True`` by ``length ** alpha`` (alpha 1: the average log-probability per token).
``length_penalty`` and ``average`` may be scalar tensors, so a serving signature can take them
as inputs; ``max_length`` may be a scalar int tensor (e.g. derived from the source length).
``max_lengths`` (optional int [batch], each <= ``max_length``) caps every example on its own:
at the step where example i's hypotheses reach ``max_lengths[i]`` tokens, END is the only
token they may emit (with its own log-probability), so they end there at the latest.
Beam search can add the GNMT coverage penalty ``beta * sum_i log(min(coverage_i, 1))`` over the
unpadded source positions, coverage_i being the attention a hypothesis has paid to position i.
"""

from __future__ import annotations

import keras
from keras import ops

# Score of impossible candidates. Finite rather than -inf so sums and divisions stay NaN-free.
IMPOSSIBLE = -1e9
_NEG = IMPOSSIBLE


def _is_python_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_args(start_token, end_token, max_length, length_penalty, beam_width=1,
                coverage_penalty=0.0):
    for name, value, minimum in (("start_token", start_token, 0), ("end_token", end_token, 0),
                                 ("max_length", max_length, 1), ("beam_width", beam_width, 1)):
        if name == "max_length" and not _is_python_number(value) and ops.is_tensor(value):
            continue  # a scalar tensor (source-derived): checked by the caller
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    for name, value in (("length_penalty", length_penalty),
                        ("coverage_penalty", coverage_penalty)):
        if _is_python_number(value) and value < 0:
            raise ValueError(f"{name} must be a number >= 0; got {value!r}")
        if not _is_python_number(value) and not ops.is_tensor(value):
            raise ValueError(f"{name} must be a number >= 0 or a scalar tensor; got {value!r}")


def length_penalty_factor(lengths, alpha, average=False):
    """Length normalisation divisor, float32, same shape as ``lengths``.

    Args:
        lengths: int [...] hypothesis lengths (END included).
        alpha: float or scalar float tensor.
        average: False: GNMT ``((5 + lengths) / 6) ** alpha``; True: ``max(lengths, 1) **
            alpha`` (alpha 1 = average log-probability); may be a scalar bool tensor.
    """
    lengths = ops.cast(lengths, "float32")
    alpha = ops.cast(alpha, "float32")
    gnmt = ops.power((5.0 + lengths) / 6.0, alpha)
    if average is False:
        return gnmt
    mean = ops.power(ops.maximum(lengths, 1.0), alpha)
    return mean if average is True else ops.where(average, mean, gnmt)


def _batch_size(states):
    return ops.shape(keras.tree.flatten(states)[0])[0]


def _write(buffer, t, values, where=None):
    """``buffer[:, t] = values`` for rows where ``where`` (default all), by broadcasting.

    buffer: [n, T, ...]; values: [n, ...]; where: [n] bool.
    """
    steps = ops.shape(buffer)[1]
    hit = ops.equal(ops.arange(steps), t)                         # [T]
    hit = ops.reshape(hit, (1, -1) + (1,) * (len(buffer.shape) - 2))
    if where is not None:
        hit = ops.logical_and(hit, ops.reshape(where, (-1, 1) + (1,) * (len(buffer.shape) - 2)))
    return ops.where(hit, ops.expand_dims(ops.cast(values, buffer.dtype), 1), buffer)


def forbid_tokens(step_fn, token_ids):
    """Wraps ``step_fn`` so ``token_ids`` (e.g. padding) get log-probability ``IMPOSSIBLE``.

    Args:
        step_fn: see the module docstring.
        token_ids: iterable of int ids that must never be generated.
    """
    token_ids = [int(t) for t in token_ids]

    def wrapped(ids, states, context):
        log_probs, new_states, attention = step_fn(ids, states, context)
        log_probs = ops.cast(log_probs, "float32")
        banned = ops.zeros((ops.shape(log_probs)[-1],), "bool")
        for token in token_ids:
            banned = ops.logical_or(banned, ops.equal(ops.arange(ops.shape(log_probs)[-1]),
                                                      token))
        return ops.where(banned, IMPOSSIBLE, log_probs), new_states, attention

    return wrapped


def _forced_end(t, max_lengths):
    """bool [batch]: example i must emit END at step ``t`` (its ``t + 1``-th token)."""
    return ops.greater_equal(ops.cast(t, "int32") + 1, ops.cast(max_lengths, "int32"))


def greedy_decode(step_fn, initial_states, context, *, start_token: int, end_token: int,
                  max_length: int, length_penalty: float = 0.0, average=False,
                  max_lengths=None) -> dict:
    """Greedy (arg-max) decoding of a batch.

    Args:
        step_fn: see the module docstring.
        initial_states: list of [batch, ...] decoder states.
        context: constant nested structure of [batch, ...] tensors given to ``step_fn``.
        start_token, end_token, max_length, length_penalty, average: see the module docstring.
        max_lengths: optional int [batch] per-example caps (module docstring).

    Returns:
        dict: ``tokens`` [batch, max_length] int32, ``lengths`` [batch] int32, ``scores`` and
        ``normalized_scores`` [batch] float32, ``attention`` [batch, max_length, src_time]
        float32 (zero after the end), ``finished`` [batch] bool.
    """
    _check_args(start_token, end_token, max_length, length_penalty)
    states = list(initial_states)
    batch = _batch_size(states)
    ids = ops.full((batch,), start_token, dtype="int32")
    # Step 0 outside the loop: its attention tells the buffer's source length.
    log_probs, states, attention = step_fn(ids, states, context)
    zeros_att = ops.zeros((batch, max_length, ops.shape(attention)[-1]), "float32")
    carry = dict(ids=ids, states=list(states), finished=ops.zeros((batch,), "bool"),
                 lengths=ops.zeros((batch,), "int32"), scores=ops.zeros((batch,), "float32"),
                 tokens=ops.zeros((batch, max_length), "int32"), attention=zeros_att)

    def select(t, carry, log_probs, new_states, attention):
        log_probs = ops.cast(log_probs, "float32")
        token = ops.cast(ops.argmax(log_probs, axis=-1), "int32")
        if max_lengths is not None:
            token = ops.where(_forced_end(t, max_lengths), end_token, token)
        token_lp = ops.take_along_axis(log_probs, ops.expand_dims(token, 1), axis=1)[:, 0]
        alive = ops.logical_not(carry["finished"])
        return dict(
            ids=ops.where(alive, token, end_token),
            states=list(new_states),
            finished=ops.logical_or(carry["finished"], ops.equal(token, end_token)),
            lengths=carry["lengths"] + ops.cast(alive, "int32"),
            scores=carry["scores"] + ops.where(alive, token_lp, 0.0),
            tokens=_write(carry["tokens"], t, ops.where(alive, token, 0)),
            attention=_write(carry["attention"], t, attention, alive),
        )

    carry = select(0, carry, log_probs, states, attention)

    def cond(t, carry):
        return ops.logical_and(t < max_length, ops.logical_not(ops.all(carry["finished"])))

    def body(t, carry):
        log_probs, new_states, attention = step_fn(carry["ids"], carry["states"], context)
        return t + 1, select(t, carry, log_probs, new_states, attention)

    _, carry = ops.while_loop(cond, body, (ops.convert_to_tensor(1, "int32"), carry))
    return dict(tokens=carry["tokens"], lengths=carry["lengths"], scores=carry["scores"],
                normalized_scores=carry["scores"] / length_penalty_factor(
                    carry["lengths"], length_penalty, average),
                attention=carry["attention"], finished=carry["finished"])


def beam_search(step_fn, initial_states, context, *, start_token: int, end_token: int,
                max_length: int, beam_width: int = 4, length_penalty: float = 0.0,
                keep_greedy: bool = True, greedy_result: dict | None = None, average=False,
                coverage_penalty=0.0, source_mask=None, max_lengths=None) -> dict:
    """Batched beam search ranking hypotheses by length-normalised score.

    Every step expands the ``beam_width`` hypotheses of each example by the whole vocabulary
    and keeps the best ``beam_width`` candidates by ``score / penalty(length)``. A finished
    hypothesis stays in the beam with its score frozen (its only continuation is a free end
    token), so the search stops once all ``beam_width`` hypotheses of every example are
    finished, or after ``max_length`` tokens.

    Args:
        step_fn: see the module docstring.
        initial_states: list of [batch, ...] decoder states (tiled to the beam internally).
        context: constant nested [batch, ...] tensors (tiled likewise).
        start_token, end_token, max_length, length_penalty: see the module docstring.
        beam_width: hypotheses kept per example (1 = greedy).
        keep_greedy: also decode greedily and return the greedy hypothesis where its
            normalised score is strictly higher. Plain beam search can prune the greedy path
            and end below it; this makes "beam never scores below greedy" hold by
            construction for ``1/beam_width`` more compute.
        greedy_result: :func:`greedy_decode`'s result for the same inputs, when the caller has
            it already (``keep_greedy`` then reuses it instead of decoding again).
        average: length normalisation by ``length ** alpha`` instead of GNMT's (module
            docstring); a bool or scalar bool tensor.
        coverage_penalty: GNMT beta (>= 0; float or scalar tensor), added to the ranking score
            at every step; needs ``source_mask``. A python 0 leaves the search as without it.
        source_mask: [batch, src_time] bool, True on real source positions (coverage only).
        max_lengths: optional int [batch] per-example caps (module docstring); the greedy
            result of ``keep_greedy`` must have been decoded with the same caps.

    Returns:
        dict: the best hypothesis per example as in :func:`greedy_decode` (``tokens``,
        ``lengths``, ``scores``, ``normalized_scores``, ``attention``, ``finished``), plus the
        final beam: ``beam_tokens`` [batch, beam, max_length], ``beam_scores`` and
        ``beam_normalized_scores`` [batch, beam], ``beam_lengths`` [batch, beam] and
        ``beam_ranking_scores`` [batch, beam] (normalised score plus coverage penalty: the
        order of the beam, best first; all before ``keep_greedy``).
    """
    _check_args(start_token, end_token, max_length, length_penalty, beam_width,
                coverage_penalty)
    coverage = not (_is_python_number(coverage_penalty) and coverage_penalty == 0)
    if coverage and source_mask is None:
        raise ValueError("coverage_penalty needs source_mask ([batch, src_time] bool)")
    k = beam_width
    batch = _batch_size(initial_states)

    def tile(x):  # [batch, ...] -> [batch * k, ...], row b * k + j = beam j of example b
        return ops.repeat(x, k, axis=0)

    states = [tile(s) for s in initial_states]
    beam_context = keras.tree.map_structure(tile, context)
    ids = ops.full((batch * k,), start_token, dtype="int32")
    log_probs, states, attention = step_fn(ids, states, beam_context)
    vocab = ops.shape(log_probs)[-1]
    src_time = ops.shape(attention)[-1]
    # Only beam 0 is live at the start, else the k copies would fill the beam with duplicates.
    first = ops.concatenate([ops.zeros((1,), "float32"), ops.full((k - 1,), _NEG, "float32")])
    extra = {}
    if coverage:
        mask = ops.cast(tile(source_mask), "bool")                           # [b * k, src]
        extra = dict(coverage=ops.zeros((batch * k, src_time), "float32"),
                     ranking=ops.zeros((batch, k), "float32"))
    carry = dict(**extra,
        ids=ids, states=list(states), finished=ops.zeros((batch, k), "bool"),
        lengths=ops.zeros((batch, k), "int32"),
        scores=ops.tile(ops.expand_dims(first, 0), (batch, 1)),
        tokens=ops.zeros((batch * k, max_length), "int32"),
        attention=ops.zeros((batch * k, max_length, src_time), "float32"))
    row_offset = ops.expand_dims(ops.arange(batch, dtype="int32") * k, 1)   # [batch, 1]

    def select(t, carry, log_probs, new_states, attention):
        log_probs = ops.reshape(ops.cast(log_probs, "float32"), (batch, k, vocab))
        finished = carry["finished"]
        end_only = ops.where(ops.equal(ops.arange(vocab), end_token), 0.0, _NEG)  # [V]
        log_probs = ops.where(ops.expand_dims(finished, -1), end_only, log_probs)
        if max_lengths is not None:  # at its cap, an example's beams may only end
            is_end = ops.equal(ops.arange(vocab), end_token)
            forced = ops.reshape(_forced_end(t, max_lengths), (batch, 1, 1))
            log_probs = ops.where(ops.logical_and(forced, ops.logical_not(is_end)), _NEG,
                                  log_probs)
        total = ops.expand_dims(carry["scores"], -1) + log_probs             # [b, k, V]
        new_lengths = carry["lengths"] + ops.cast(ops.logical_not(finished), "int32")
        normalized = total / ops.expand_dims(
            length_penalty_factor(new_lengths, length_penalty, average), -1)
        if coverage:
            # This step's attention belongs to the parent row (all its candidates share it);
            # a finished hypothesis keeps its coverage.
            live = ops.reshape(ops.logical_not(finished), (-1, 1))
            covered = carry["coverage"] + ops.where(live, ops.cast(attention, "float32"), 0.0)
            penalty = ops.sum(ops.where(mask, ops.log(ops.clip(covered, 1e-6, 1.0)), 0.0), -1)
            normalized = normalized + ops.cast(coverage_penalty, "float32") * ops.reshape(
                penalty, (batch, k, 1))
        top, index = ops.top_k(ops.reshape(normalized, (batch, k * vocab)), k)  # [b, k]
        index = ops.cast(index, "int32")
        parent, token = index // vocab, index % vocab
        parent_finished = ops.take_along_axis(finished, parent, axis=1)
        rows = ops.reshape(row_offset + parent, (-1,))                       # [b * k]
        alive = ops.reshape(ops.logical_not(parent_finished), (-1,))
        flat_token = ops.reshape(token, (-1,))

        def gather(x):
            return ops.take(x, rows, axis=0)

        extra = dict(coverage=gather(covered), ranking=top) if coverage else {}
        return dict(
            **extra,
            ids=ops.where(alive, flat_token, end_token),
            states=[gather(s) for s in new_states],
            finished=ops.logical_or(parent_finished, ops.equal(token, end_token)),
            lengths=ops.take_along_axis(new_lengths, parent, axis=1),
            scores=ops.take_along_axis(ops.reshape(total, (batch, k * vocab)), index, axis=1),
            tokens=_write(gather(carry["tokens"]), t, ops.where(alive, flat_token, 0)),
            attention=_write(gather(carry["attention"]), t, gather(attention), alive),
        )

    carry = select(0, carry, log_probs, states, attention)

    def cond(t, carry):
        return ops.logical_and(t < max_length, ops.logical_not(ops.all(carry["finished"])))

    def body(t, carry):
        log_probs, new_states, attention = step_fn(carry["ids"], carry["states"], beam_context)
        return t + 1, select(t, carry, log_probs, new_states, attention)

    _, carry = ops.while_loop(cond, body, (ops.convert_to_tensor(1, "int32"), carry))
    beam_tokens = ops.reshape(carry["tokens"], (batch, k, max_length))
    beam_attention = ops.reshape(carry["attention"], (batch, k, max_length, src_time))
    beam_normalized = carry["scores"] / length_penalty_factor(carry["lengths"], length_penalty,
                                                              average)
    result = dict(tokens=beam_tokens[:, 0], lengths=carry["lengths"][:, 0],
                  scores=carry["scores"][:, 0], normalized_scores=beam_normalized[:, 0],
                  attention=beam_attention[:, 0], finished=carry["finished"][:, 0],
                  beam_tokens=beam_tokens, beam_scores=carry["scores"],
                  beam_normalized_scores=beam_normalized, beam_lengths=carry["lengths"],
                  beam_ranking_scores=carry["ranking"] if coverage else beam_normalized)
    if keep_greedy and k > 1:
        greedy = greedy_result or greedy_decode(
            step_fn, initial_states, context, start_token=start_token, end_token=end_token,
            max_length=max_length, length_penalty=length_penalty, average=average,
            max_lengths=max_lengths)
        use = ops.greater(greedy["normalized_scores"], result["normalized_scores"])
        for key in ("tokens", "lengths", "scores", "normalized_scores", "attention",
                    "finished"):
            mask = ops.reshape(use, (-1,) + (1,) * (len(result[key].shape) - 1))
            result[key] = ops.where(mask, greedy[key], result[key])
    return result
