"""Token sampling for the language models: temperature, top-k, nucleus (top-p) and greedy.

Everything here is ``keras.ops`` so it runs inside a compiled generation loop
(``keras.ops.while_loop`` under ``tf.function``/XLA on TensorFlow) and in a served SavedModel.
``temperature``, ``top_k`` and ``top_p`` may be Python numbers (validated eagerly, unused filters
skipped at trace time) or scalar tensors (e.g. inputs of an export signature; then every filter
is built and switched in-graph).

Example::

    seed = keras.random.SeedGenerator(7)
    ids = sample_logits(logits, temperature=0.8, top_k=20, top_p=0.95, seed=seed)  # [batch]
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

#: Logit given to tokens that must never be drawn. Finite (not -inf) so a softmax over a row
#: stays NaN-free; exp(-1e9 - max) underflows to exactly 0 in float32, so it is never drawn.
NEG_LOGIT = -1e9

#: Default forbidden ids: 0 = padding (mask_zero embeddings) and 1 = out-of-vocabulary (the
#: ``StringLookup`` convention used by ``pipelines.vocab.CharVocabulary``).
DEFAULT_FORBIDDEN_IDS = (0, 1)


def _is_number(x) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _validate(logits, temperature, top_k, top_p, forbidden_ids) -> int:
    """Eager argument checks; returns the (static) vocabulary size."""
    if len(logits.shape) != 2:
        raise ValueError(
            f"sample_logits expects logits of shape [batch, vocab], got shape {logits.shape}")
    vocab = logits.shape[-1]
    if vocab is None:
        raise ValueError("sample_logits needs a static vocabulary size (last logits dimension)")
    if _is_number(temperature) and temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if isinstance(top_k, bool) or (_is_number(top_k) and (top_k < 0 or top_k != int(top_k))):
        raise ValueError(f"top_k must be an integer >= 0 (0 = no top-k filter), got {top_k}")
    if _is_number(top_p) and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] (1 = no nucleus filter), got {top_p}")
    ids = [int(i) for i in forbidden_ids]
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise ValueError(f"forbidden_ids {bad} outside the vocabulary [0, {vocab})")
    if len(set(ids)) >= vocab:
        raise ValueError(f"forbidden_ids {tuple(ids)} forbid the whole vocabulary of {vocab}")
    return vocab


def _kth_largest(values, k):
    """values [batch, vocab], k int or scalar tensor in [1, vocab] -> [batch, 1]."""
    sorted_desc = ops.flip(ops.sort(values, axis=-1), axis=-1)
    index = ops.cast(ops.reshape(k, (1, 1)), "int32") - 1
    index = ops.broadcast_to(index, (ops.shape(values)[0], 1))
    return ops.take_along_axis(sorted_desc, index, axis=-1)


def filter_logits(logits, temperature=1.0, top_k=0, top_p=1.0,
                  forbidden_ids=DEFAULT_FORBIDDEN_IDS):
    """Temperature-scaled logits with every token outside the candidate set set to NEG_LOGIT.

    Order: forbidden ids are removed first (so top-k/top-p choose among allowed tokens), then
    logits are divided by the temperature, then top-k, then top-p on the renormalised top-k
    distribution (the usual Hugging Face / Holtzman et al. order).

    Args:
        logits: [batch, vocab] float logits (any float dtype; computed in float32).
        temperature: float >= 0 or scalar tensor. 0 is handled by :func:`sample_logits` as
            greedy; here it is clamped to 1e-6 so the scaled logits stay finite.
        top_k: int >= 0 or scalar int tensor; 0 disables it, values above vocab mean vocab.
            Ties with the k-th value are kept (with continuous logits ties do not occur).
        top_p: float in (0, 1] or scalar tensor; 1 disables it. Keeps the smallest set of most
            probable tokens whose total probability is >= top_p (always at least one token).
        forbidden_ids: token ids that can never be drawn (padding, OOV).

    Returns:
        [batch, vocab] float32 filtered logits.
    """
    vocab = _validate(logits, temperature, top_k, top_p, forbidden_ids)
    logits = ops.cast(logits, "float32")
    if len(forbidden_ids):
        forbidden = ops.any(
            ops.one_hot(ops.convert_to_tensor(list(forbidden_ids), "int32"), vocab) > 0, axis=0)
        logits = ops.where(forbidden[None, :], NEG_LOGIT, logits)
    temp = ops.maximum(ops.cast(temperature, "float32"), 1e-6)
    # Forbidden rows stay hugely negative after the division (NEG_LOGIT / t <= NEG_LOGIT).
    scaled = logits / temp
    if not _is_number(top_k) or top_k > 0:
        k = ops.clip(ops.cast(top_k, "int32"), 1, vocab)
        kth = _kth_largest(scaled, k)
        keep = scaled >= kth
        if not _is_number(top_k):  # tensor: top_k == 0 switches the filter off in-graph
            keep = ops.logical_or(keep, ops.equal(ops.cast(top_k, "int32"), 0))
        scaled = ops.where(keep, scaled, NEG_LOGIT)
    if not _is_number(top_p) or top_p < 1.0:
        p = ops.cast(top_p, "float32")
        probs = ops.softmax(scaled, axis=-1)
        sorted_probs = ops.flip(ops.sort(probs, axis=-1), axis=-1)
        # A token stays if the mass strictly before it is still below p: this keeps the
        # smallest prefix whose mass reaches p, and always the most probable token.
        mass_before = ops.cumsum(sorted_probs, axis=-1) - sorted_probs
        num_kept = ops.sum(ops.cast(mass_before < p, "int32"), axis=-1, keepdims=True)
        num_kept = ops.maximum(num_kept, 1)
        threshold = ops.take_along_axis(sorted_probs, num_kept - 1, axis=-1)
        keep = ops.logical_or(probs >= threshold, p >= 1.0)
        scaled = ops.where(keep, scaled, NEG_LOGIT)
    return scaled


def sample_logits(logits, temperature=1.0, top_k=0, top_p=1.0, seed=None,
                  forbidden_ids=DEFAULT_FORBIDDEN_IDS):
    """Draws one token per row; greedy (argmax) when ``temperature == 0``.

    Args:
        logits: [batch, vocab] float logits.
        temperature: float >= 0 or scalar tensor (0 = greedy argmax over allowed tokens).
        top_k: int >= 0 or scalar tensor (0 = off).
        top_p: float in (0, 1] or scalar tensor (1 = off).
        seed: None (global Keras seed stream), an int (stateless: the same logits always give
            the same draw - use for one-off calls) or a ``keras.random.SeedGenerator`` (advances
            each call - use inside generation loops for reproducible, varying draws).
        forbidden_ids: ids never returned (default padding 0 and OOV 1). Pass ``()`` for heads
            where every id is valid (e.g. the 128 MIDI pitches).

    Returns:
        [batch] int32 token ids, never in ``forbidden_ids``.

    Raises:
        ValueError: bad shapes or arguments, naming the offending value.
    """
    filtered = filter_logits(logits, temperature, top_k, top_p, forbidden_ids)
    greedy = ops.cast(ops.argmax(filtered, axis=-1), "int32")
    if _is_number(temperature) and temperature == 0:
        return greedy
    sampled = keras.random.categorical(filtered, 1, seed=seed, dtype="int32")[:, 0]
    if _is_number(temperature):
        return sampled
    return ops.where(ops.cast(temperature, "float32") <= 0.0, greedy, sampled)
