"""Batching: quantile buckets, LM windows, teacher forcing, finalize, padding statistics."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import batching as B


def _sequences(lengths, dtype=np.int32):
    """Unbatched dataset of 1..n id sequences (never 0, so every 0 in a batch is padding)."""
    return tf.data.Dataset.from_generator(
        lambda: (np.arange(1, n + 1, dtype=dtype) for n in lengths),
        output_signature=tf.TensorSpec([None], tf.as_dtype(dtype)))


def _length(x, *rest):
    return tf.shape(x)[0]


def test_bucketing_pads_far_less_than_pad_to_max_on_skewed_lengths():
    rng = np.random.default_rng(0)
    lengths = np.where(rng.random(400) < 0.9, rng.integers(2, 10, 400), rng.integers(80, 120, 400))
    ds = _sequences(lengths)
    bucketed, boundaries = B.bucket_batch(ds, 16, _length)
    assert boundaries and boundaries == sorted(set(boundaries))
    fraction_bucketed = B.padding_stats(bucketed)
    fraction_max = B.padding_stats(ds.padded_batch(16))
    assert fraction_bucketed < 0.5 * fraction_max, (fraction_bucketed, fraction_max)
    # nothing lost or duplicated: the same multiset of lengths comes out
    seen = [int(n) for batch in bucketed for n in np.count_nonzero(batch.numpy(), axis=1)]
    assert sorted(seen) == sorted(lengths.tolist())
    assert bucketed.element_spec == tf.TensorSpec([None, None], tf.int32)


def test_boundaries_come_from_length_quantiles():
    ds = _sequences(range(1, 101))                       # lengths 1..100, uniform
    assert B.length_boundaries(ds, _length, num_buckets=4) == [26, 51, 76]
    assert B.length_boundaries(ds, _length, num_buckets=4, sample=10) == [4, 6, 8]
    # one length only: no boundary, bucket_batch falls back to padded_batch
    same, boundaries = B.bucket_batch(_sequences([5] * 20), 8, _length)
    assert boundaries == [] and [b.shape[0] for b in same] == [8, 8, 4]


def test_bucket_batch_tuple_elements_explicit_boundaries_and_drop_remainder():
    ds = _sequences([3, 4, 3, 20, 21, 3]).map(lambda x: (x, tf.size(x)))
    batched, boundaries = B.bucket_batch(ds, 2, _length, boundaries=[10], drop_remainder=True)
    assert boundaries == [10]
    assert batched.element_spec == (tf.TensorSpec([None, None], tf.int32),
                                    tf.TensorSpec([None], tf.int32))
    assert {int(x.shape[0]) for x, _ in batched} == {2}
    widths = sorted(int(x.shape[1]) for x, _ in batched)
    assert widths == [3, 4, 21]           # short ones are never padded to 21


def test_bucket_batch_accepts_rows_of_an_unbatched_ragged_batch():
    # vectorise in batches with ragged output, unbatch, bucket: what the task pipelines do
    rows = tf.data.Dataset.from_tensors((tf.ragged.constant([[1, 2], [3], [4, 5, 6]]),
                                         tf.constant([0, 1, 0]))).unbatch()
    assert isinstance(rows.element_spec[0], tf.RaggedTensorSpec)
    padded, _ = B.bucket_batch(rows, 2, _length, boundaries=[])
    assert [x.numpy().tolist() for x, _ in padded] == [[[1, 2], [3, 0]], [[4, 5, 6]]]
    bucketed, _ = B.bucket_batch(rows, 2, _length, boundaries=[3])
    assert sorted(x.shape[1] for x, _ in bucketed) == [2, 3]
    windows = B.lm_windows(rows.map(lambda x, y: x), 2)
    assert [y.tolist() for _, y in windows.as_numpy_iterator()] == [[2, 3], [4, 5]]


def test_lm_windows_continuous_stream_shift_and_stride():
    ds = _sequences([5, 3, 7])                       # stream 1..5, 1..3, 1..7 (15 tokens)
    stream = np.concatenate([np.arange(1, 6), np.arange(1, 4), np.arange(1, 8)])
    pairs = list(B.lm_windows(ds, 4).as_numpy_iterator())
    assert len(pairs) == (15 - 1) // 4               # windows of 5 sharing one token
    for k, (x, y) in enumerate(pairs):
        np.testing.assert_array_equal(x, stream[4 * k: 4 * k + 4])
        np.testing.assert_array_equal(y, stream[4 * k + 1: 4 * k + 5])
    assert len(list(B.lm_windows(ds, 4, stride=2))) == (15 - 5) // 2 + 1
    assert len(list(B.lm_windows(ds, 4, stride=5))) == 3
    spec = B.lm_windows(ds, 4).element_spec
    assert spec == (tf.TensorSpec([4], tf.int32), tf.TensorSpec([4], tf.int32))


def test_lm_windows_per_example_pads_and_never_mixes_examples():
    names = tf.data.Dataset.from_tensor_slices(
        tf.ragged.constant([[2, 7, 8, 3], [2, 9, 9, 9, 9, 9, 9, 3], [2]], dtype=tf.int64))
    pairs = list(B.lm_windows(names, 5, per_example=True).as_numpy_iterator())
    assert len(pairs) == 2                            # the 1-step example has no target: skipped
    np.testing.assert_array_equal(pairs[0][0], [2, 7, 8, 3, 0])
    np.testing.assert_array_equal(pairs[0][1], [7, 8, 3, 0, 0])
    np.testing.assert_array_equal(pairs[1][1], [9, 9, 9, 9, 9])   # truncated to 5 + 1
    covered = list(B.lm_windows(names, 5, stride=3, per_example=True).as_numpy_iterator())
    assert len(covered) == 3 and covered[2][1].tolist() == [9, 9, 9, 3, 0]
    assert covered[0][0].dtype == np.int64


def test_lm_windows_note_frames():
    notes = tf.data.Dataset.from_tensor_slices(np.arange(2 * 6 * 3, dtype=np.float32)
                                               .reshape(2, 6, 3))
    ds = B.lm_windows(notes, 3)
    assert ds.element_spec == (tf.TensorSpec([3, 3], tf.float32),) * 2
    frames = np.arange(36, dtype=np.float32).reshape(12, 3)
    pairs = list(ds.as_numpy_iterator())
    assert len(pairs) == 3                            # (12 - 1) // 3
    np.testing.assert_array_equal(pairs[1][0], frames[3:6])
    np.testing.assert_array_equal(pairs[1][1], frames[4:7])


def test_teacher_forcing_layout_single_dense_and_ragged():
    (enc, dec_in), dec_out = B.teacher_forcing(tf.constant([4, 5]), tf.constant([7, 8]), 2, 3)
    assert enc.numpy().tolist() == [4, 5]
    assert dec_in.numpy().tolist() == [2, 7, 8] and dec_out.numpy().tolist() == [7, 8, 3]
    dense = tf.constant([[7, 8, 9], [7, 0, 0]])
    (_, dec_in), dec_out = B.teacher_forcing(tf.constant([[4], [5]]), dense, 2, 3)
    assert dec_in.numpy().tolist() == [[2, 7, 8, 9], [2, 7, 0, 0]]
    assert dec_out.numpy().tolist() == [[7, 8, 9, 3], [7, 3, 0, 0]]
    (_, dec_in), dec_out = B.teacher_forcing(None, tf.ragged.constant([[7, 8], [9]]), 2, 3)
    assert dec_out.to_list() == [[7, 8, 3], [9, 3]]
    mapped = _sequences([2, 3]).map(lambda t: B.teacher_forcing(t, t, 2, 3))
    assert mapped.element_spec == ((tf.TensorSpec([None], tf.int32),) * 2,
                                   tf.TensorSpec([None], tf.int32))


def test_finalize_seeded_reshuffle_cache_and_options():
    base = tf.data.Dataset.range(50)

    def epochs(ds):
        return [list(ds.as_numpy_iterator()) for _ in range(2)]

    first = epochs(B.finalize(base, shuffle_buffer=50, seed=7, cache=True))
    again = epochs(B.finalize(base, shuffle_buffer=50, seed=7, cache=True))
    assert first == again                              # reproducible with the seed
    assert first[0] != first[1]                        # a new order every epoch
    assert sorted(first[0]) == list(range(50))
    assert list(B.finalize(base).as_numpy_iterator()) == list(range(50))
    assert B.finalize(base, deterministic=False).options().deterministic is False


def test_padding_stats_counts_zero_ids():
    batches = tf.data.Dataset.from_tensors((tf.constant([[1, 2, 0, 0], [3, 0, 0, 0]]),
                                            tf.constant([1, 0])))
    assert B.padding_stats(batches) == pytest.approx(5 / 8)
    assert B.padding_stats(batches, select=lambda x, y: y) == pytest.approx(0.5)


@pytest.mark.parametrize("call, message", [
    (lambda ds: B.lm_windows(ds, 0), "sequence_length.*0"),
    (lambda ds: B.lm_windows(ds, -3), "sequence_length.*-3"),
    (lambda ds: B.lm_windows(ds, 4, stride=6), "stride.*<= sequence_length \\+ 1 = 5.*6"),
    (lambda ds: B.lm_windows(ds, 4, stride=0), "stride.*0"),
    (lambda ds: B.lm_windows(ds.map(tf.strings.as_string), 4), "numeric.*string"),
    (lambda ds: B.bucket_batch(ds, 0, _length), "batch_size.*0"),
    (lambda ds: B.bucket_batch(ds, 4, _length, boundaries=[5, 5]), "increasing.*\\[5, 5\\]"),
    (lambda ds: B.bucket_batch(ds, 4, _length, num_buckets=0), "num_buckets.*0"),
    (lambda ds: B.finalize(ds, shuffle_buffer=-1), "shuffle_buffer.*-1"),
    (lambda ds: B.teacher_forcing(None, tf.constant([1]), -1, 3), "start_id.*-1"),
    (lambda ds: B.padding_stats(ds.take(0).batch(2)), "no tokens"),
    (lambda ds: B.padding_stats(ds.map(lambda x: tf.cast(x, tf.float32)).padded_batch(2)),
     "int ids"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(_sequences([3, 4]))
