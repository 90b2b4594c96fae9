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

    All rows of the batch are ONE document. The cost is O(N^2) in N = B * T, fine for a news
    story (CoNLL-2003's longest is ~1,500 tokens); split longer texts into documents.

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
    same = ops.logical_and(ops.equal(keys[:, None], keys[None, :]), mask[None, :])
    same = ops.cast(same, "float32")                                        # [N, N]
    counts = ops.maximum(ops.sum(same, axis=1, keepdims=True), 1.0)
    mean = ops.matmul(same, flat) / counts
    mixed = (1.0 - weight) * flat + weight * mean
    out = ops.where(apply[:, None], mixed, flat)
    return ops.reshape(out, shape)
