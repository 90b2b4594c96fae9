"""Batches measured in tokens: bucket by length, and size each bucket's batches so that
``rows x padded length <= batch_tokens`` (translation pairs vary from 2 to 60 tokens: a fixed row
count wastes most of a short batch or overflows memory on a long one).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from pipelines import batching


def bucket_sizes(boundaries: list[int], longest: int, batch_tokens: int) -> list[int]:
    """Rows per bucket: ``batch_tokens // (the bucket's longest length)``, at least 1.

    Bucket ``i`` holds lengths ``< boundaries[i]`` (so at most ``boundaries[i] - 1``); the last
    bucket is sized for ``longest`` (the longest length seen when sampling).
    """
    upper = [b - 1 for b in boundaries] + [max(longest, boundaries[-1] if boundaries else 1)]
    return [max(1, batch_tokens // max(1, u)) for u in upper]


def token_bucket_batch(ds: tf.data.Dataset, batch_tokens: int, length_fn: Callable,
                       num_buckets: int = 8, sample: int = 2000) -> tf.data.Dataset:
    """Length-bucketed batches of at most ``batch_tokens`` tokens (padding included).

    Args:
        ds: unbatched, shuffled dataset (elements padded to their batch's longest).
        batch_tokens: token budget per batch (rows x padded length).
        length_fn: element -> scalar int length (tuple elements unpacked); the padded length
            that counts, e.g. ``max(source, target)`` for pairs.
        num_buckets, sample: for :func:`pipelines.batching.length_boundaries`.

    Returns:
        The batched dataset. Lengths beyond the longest of the first ``sample`` elements land in
        the last bucket and may exceed the budget (its size comes from the sample).

    Raises:
        ValueError: ``batch_tokens`` < 1.
    """
    if isinstance(batch_tokens, bool) or not isinstance(batch_tokens, int) or batch_tokens < 1:
        raise ValueError(f"batch_tokens must be an int >= 1; got {batch_tokens!r}")
    ds = batching._plain_tensors(ds)
    boundaries = batching.length_boundaries(ds, length_fn, num_buckets, sample)
    lengths = ds.take(sample).map(lambda *x: tf.cast(length_fn(*x), tf.int64))
    longest = int(np.max(np.fromiter(lengths.as_numpy_iterator(), dtype=np.int64)))
    sizes = bucket_sizes(boundaries, longest, batch_tokens)
    if not boundaries:
        return ds.padded_batch(sizes[0])
    return ds.bucket_by_sequence_length(
        lambda *x: tf.cast(length_fn(*x), tf.int32), boundaries, sizes)
