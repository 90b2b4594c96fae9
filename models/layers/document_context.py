"""Document context for a sentence tagger: pool the potentials of repeated words.

A name is usually written the same way, and means the same thing, everywhere in one news story;
a sentence-level tagger still types "Japan" as LOC in one sentence and ORG in the next, and has
little to go on in an ALL-CAPS headline. Mixing each capitalised token's potentials with their
mean over every occurrence of the same (lowercased) word in the document lets the clear
mentions decide for the ambiguous ones. It is applied at prediction time, on a model trained on
sentences, so it needs no document batches in training.

keras.ops only (the same function runs in the TF serving graph and on numpy arrays).
"""

from __future__ import annotations

from keras import ops


def pool_repeated_tokens(potentials, keys, mask, apply, weight: float = 0.5):
    """Mixes potentials with their mean over the document's tokens that share a key.

    All rows of the batch are ONE document. Equal keys are grouped by sorting, so the cost is
    O(N log N) time and O(N * K) memory in N = B * T tokens (no N x N comparison).

    Args:
        potentials: float ``[B, T, K]``: per-token tag scores (CRF potentials or
            probabilities).
        keys: int ``[B, T]``: a word identity (e.g. a hash of the lowercased token); tokens with
            equal keys are occurrences of the same word.
        mask: bool ``[B, T]``: real tokens (False at padding); only these contribute.
        apply: bool ``[B, T]``: the tokens whose potentials are replaced (e.g. capitalised).
        weight: In [0, 1]: the mean's share; 0 returns ``potentials`` unchanged.

    Returns:
        float32 ``[B, T, K]``: ``(1 - weight) * p + weight * mean_same_key(p)`` where ``apply``
        and ``mask``, else ``p``.
    """
    if not 0.0 <= float(weight) <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight!r}")
    potentials = ops.cast(potentials, "float32")
    shape = ops.shape(potentials)
    flat = ops.reshape(potentials, (-1, shape[-1]))                         # [N, K]
    keys = ops.reshape(keys, (-1,))
    mask = ops.reshape(ops.cast(mask, "bool"), (-1,))
    apply = ops.logical_and(ops.reshape(ops.cast(apply, "bool"), (-1,)), mask)
    mean = _mean_over_equal_keys(flat, keys, mask)
    mixed = (1.0 - weight) * flat + weight * mean
    out = ops.where(apply[:, None], mixed, flat)
    return ops.reshape(out, shape)


def _mean_over_equal_keys(values, keys, mask):
    """values float32 ``[N, K]``, keys ``[N]``, mask bool ``[N]`` -> float32 ``[N, K]``: row i
    is the mean of the masked rows whose key equals ``keys[i]`` (0 where there is none).

    Sorting groups equal keys; a running count of key changes numbers the groups densely, so
    one ``segment_sum`` adds each group up: O(N log N) time, O(N * K) memory.
    """
    n = ops.shape(keys)[0]
    order = ops.argsort(keys)                                               # [N]
    sorted_keys = ops.take(keys, order)
    first = ops.equal(ops.arange(n), 0)
    starts = ops.logical_or(first, ops.not_equal(sorted_keys, ops.roll(sorted_keys, 1)))
    group = ops.take(ops.cumsum(ops.cast(starts, "int32")) - 1, ops.argsort(order))  # [N]
    weights = ops.cast(mask, "float32")[:, None]
    sums = ops.segment_sum(values * weights, group, num_segments=n)         # [N, K]
    counts = ops.segment_sum(weights, group, num_segments=n)                # [N, 1]
    return ops.take(sums, group, axis=0) / ops.maximum(ops.take(counts, group, axis=0), 1.0)
