"""pipelines.token_batching: batches sized in tokens, not rows."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines.token_batching import bucket_sizes, token_bucket_batch


def test_every_batch_stays_within_the_token_budget_and_nothing_is_lost():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=500)
    ds = tf.data.Dataset.from_generator(
        lambda: (np.full(n, n, np.int32) for n in lengths),
        output_signature=tf.TensorSpec([None], tf.int32))
    batches = list(token_bucket_batch(ds, 200, lambda x: tf.shape(x)[0], sample=500))
    assert all(b.shape[0] * b.shape[1] <= 200 for b in batches)
    assert sum(b.shape[0] for b in batches) == 500
    # Short batches hold more rows than long ones.
    rows = {b.shape[1]: b.shape[0] for b in batches}
    assert rows[min(rows)] > rows[max(rows)]


def test_bucket_sizes_and_bad_budget():
    assert bucket_sizes([5, 11], longest=30, batch_tokens=100) == [25, 10, 3]
    assert bucket_sizes([], longest=500, batch_tokens=100) == [1]
    with pytest.raises(ValueError, match="batch_tokens must be an int >= 1"):
        token_bucket_batch(tf.data.Dataset.range(3), 0, len)
