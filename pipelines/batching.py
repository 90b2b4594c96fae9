"""Batching for variable-length sequences: length buckets, LM windows, teacher forcing, finalize.

Typical order for a training split::

    ds = split.map(vectorize, num_parallel_calls=tf.data.AUTOTUNE)      # per example, unbatched
    ds = finalize(ds, shuffle_buffer=10_000, seed=seed, cache=True, prefetch=False)
    ds, boundaries = bucket_batch(ds, 32, lambda x, y: tf.shape(x)[0])
    ds = ds.prefetch(tf.data.AUTOTUNE)

Padding uses id 0 (``pipelines.vocab.PAD_ID``) so ``Embedding(mask_zero=True)`` masks it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Callable

import numpy as np
import tensorflow as tf


def _positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _plain_tensors(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``unbatch()`` of a ragged batch yields plain tensors under ``RaggedTensorSpec`` s of
    ragged_rank 0, which ``padded_batch`` rejects: map them back to ``TensorSpec`` s."""
    if not any(isinstance(spec, tf.RaggedTensorSpec) and spec.ragged_rank == 0
               for spec in tf.nest.flatten(ds.element_spec)):
        return ds
    return ds.map(lambda *x: tf.nest.map_structure(tf.identity, x[0] if len(x) == 1 else x))


def length_boundaries(ds: tf.data.Dataset, length_fn: Callable, num_buckets: int = 8,
                      sample: int = 2000) -> list[int]:
    """Bucket boundaries at the length quantiles of the first ``sample`` elements.

    Boundary ``b`` separates lengths ``< b`` from ``>= b`` (as ``bucket_by_sequence_length``), so
    quantile ``q`` gives ``b = q + 1``. Duplicates (many equal lengths) are merged, so fewer than
    ``num_buckets - 1`` boundaries may come back; ``[]`` means one bucket. Shuffle first when the
    data is ordered by length, or the sample is not representative.

    Args:
        ds: Unbatched dataset.
        length_fn: Element -> scalar length (tuple elements are unpacked, as in ``Dataset.map``).
        num_buckets: Wanted number of buckets (>= 1).
        sample: How many leading elements to measure.

    Returns:
        Strictly increasing python ints.
    """
    _positive_int("num_buckets", num_buckets)
    _positive_int("sample", sample)
    lengths = np.fromiter(
        ds.take(sample).map(lambda *x: tf.cast(length_fn(*x), tf.int64)).as_numpy_iterator(),
        dtype=np.int64)
    if lengths.size == 0:
        raise ValueError("length_boundaries: the dataset is empty")
    quantiles = np.quantile(lengths, np.arange(1, num_buckets) / num_buckets, method="lower")
    return sorted({int(q) + 1 for q in quantiles if q + 1 <= lengths.max()})


def bucket_batch(ds: tf.data.Dataset, batch_size: int, length_fn: Callable,
                 boundaries: list[int] | None = None, padded_shapes=None, padding_values=None,
                 num_buckets: int = 8, sample: int = 2000,
                 drop_remainder: bool = False) -> tuple[tf.data.Dataset, list[int]]:
    """Batches similar lengths together (``Dataset.bucket_by_sequence_length``) to pad less.

    Every batch is padded to its own longest element (or ``padded_shapes``). With ``boundaries``
    None they come from :func:`length_boundaries`; with no boundary at all this is a plain
    ``padded_batch``. Batches come out in bucket-fill order, so shuffle BEFORE this call.

    Args:
        ds: Unbatched dataset of tensors / tuples / dicts with a variable leading dimension.
        batch_size: Elements per batch (every bucket).
        length_fn: Element -> scalar int length (tuple elements are unpacked).
        boundaries: Strictly increasing positive ints, None to compute them, ``[]`` for one
            bucket (plain ``padded_batch``: the pad-to-longest baseline).
        padded_shapes, padding_values: As ``Dataset.padded_batch`` (None: longest, 0 / "").
        num_buckets, sample: For :func:`length_boundaries` when ``boundaries`` is None.
        drop_remainder: Drop each bucket's last incomplete batch.

    Returns:
        ``(batched_dataset, boundaries_used)``.
    """
    _positive_int("batch_size", batch_size)
    ds = _plain_tensors(ds)
    if not callable(length_fn):
        raise TypeError(f"length_fn must be callable, got {length_fn!r}")
    if boundaries is None:
        boundaries = length_boundaries(ds, length_fn, num_buckets, sample)
    else:
        boundaries = list(boundaries)
        if any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b <= 0
               for b in boundaries) or any(a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise ValueError(f"boundaries must be strictly increasing positive ints, "
                             f"got {boundaries!r}")
        boundaries = [int(b) for b in boundaries]
    if not boundaries:
        return ds.padded_batch(batch_size, padded_shapes, padding_values,
                               drop_remainder=drop_remainder), []
    batched = ds.bucket_by_sequence_length(
        lambda *x: tf.cast(length_fn(*x), tf.int32), boundaries,
        [batch_size] * (len(boundaries) + 1), padded_shapes=padded_shapes,
        padding_values=padding_values, drop_remainder=drop_remainder)
    return batched, boundaries


def finalize(ds: tf.data.Dataset, shuffle_buffer: int = 0, seed: int | None = None,
             cache: bool | str = False, prefetch: bool = True,
             deterministic: bool | None = None) -> tf.data.Dataset:
    """Cache, then shuffle (new order each epoch, reproducible with ``seed``), then prefetch.

    Caching comes first so that the expensive upstream work runs once while every epoch still
    gets a fresh order.

    Args:
        ds: Any dataset.
        shuffle_buffer: 0 = keep the order; else the shuffle buffer size.
        seed: Shuffle seed (None: a different order every run).
        cache: False, True (memory) or a file path prefix.
        prefetch: Add ``prefetch(AUTOTUNE)``.
        deterministic: None keeps tf.data's default (deterministic); False lets parallel maps
            return elements out of order (faster); True forces the order.
    """
    if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, (int, np.integer)) \
            or shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be an int >= 0, got {shuffle_buffer!r}")
    if not isinstance(cache, (bool, str)):
        raise TypeError(f"cache must be a bool or a file path, got {cache!r}")
    if cache is True:
        ds = ds.cache()
    elif isinstance(cache, str):
        ds = ds.cache(cache)
    if shuffle_buffer:
        ds = ds.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    if deterministic is not None:
        options = tf.data.Options()
        options.deterministic = bool(deterministic)
        ds = ds.with_options(options)
    return ds.prefetch(tf.data.AUTOTUNE) if prefetch else ds


# Settings that change how a model trains, not what the encoded data is.
_NOT_DATA = ("epochs", "patience", "lr_patience", "learning_rate", "clipnorm", "ema_momentum",
             "mixed_precision", "strategy", "logical_devices", "steps_per_epoch", "cache")


def cache_target(split: tf.data.Dataset, cache_dir: str = "", key=None) -> bool | str:
    """What :func:`finalize` (or ``Dataset.cache``) should cache an encoded split to.

    * ``cache_dir`` given: a file prefix in it, named by ``key`` and a fingerprint of the
      split's first elements, so another split, source or setting never reads a stale cache,
      and a later run (or a resume) with the same data reuses it;
    * else an in-memory split (known cardinality: built from tensors) is cached in memory;
    * else (a streamed split) nothing: an in-memory cache would grow with the corpus (17x the
      input for char windows), so the stream is read again each epoch.

    Args:
        split: The raw split, before encoding.
        cache_dir: Directory for cache files ("" = none); created when missing.
        key: What else the encoded data depends on: a string, or a config dataclass (its
            fields that can change the data, e.g. vocabulary and length settings).
    """
    if cache_dir:
        if dataclasses.is_dataclass(key):
            key = type(key).__name__ + json.dumps(
                {k: v for k, v in dataclasses.asdict(key).items() if k not in _NOT_DATA},
                sort_keys=True, default=str)
        digest = hashlib.sha1(str(key or "").encode("utf-8"))
        for element in split.take(8):
            for value in tf.nest.flatten(element):
                value = value.numpy()
                if isinstance(value, bytes):
                    digest.update(value)
                elif value.dtype == object:
                    digest.update(b"\0".join(np.ravel(value).tolist()))
                else:
                    digest.update(value.tobytes())
                digest.update(str(np.shape(value)).encode())
        os.makedirs(cache_dir, exist_ok=True)
        return os.path.join(cache_dir, f"encoded-{digest.hexdigest()[:16]}")
    return bool(split.cardinality() >= 0)


def cached(ds: tf.data.Dataset, target: bool | str) -> tf.data.Dataset:
    """``ds`` cached as :func:`cache_target` said: in memory (True), in files (a path) or not."""
    if target is True:
        return ds.cache()
    return ds.cache(target) if target else ds


def _window_indices(starts, width):
    return starts[:, tf.newaxis] + tf.range(width)[tf.newaxis, :]


def lm_windows(token_ids_ds: tf.data.Dataset, sequence_length: int, stride: int | None = None,
               per_example: bool = False) -> tf.data.Dataset:
    """Language-model pairs ``(inputs, targets)``, targets = inputs shifted by one step.

    Works for int ids ``[time]`` and feature frames ``[time, F]`` (music notes: inputs are
    ``notes[:-1]``, targets ``notes[1:]`` of each window).

    * ``per_example=False`` (continuous text, a stream of notes): elements are concatenated and
      cut into windows of ``sequence_length + 1`` starting every ``stride`` steps (default
      ``sequence_length``: consecutive windows share one token, none is lost); the tail that does
      not fill a window is dropped.
    * ``per_example=True`` (names: START + chars + END): each element on its own, never mixed
      with the next. ``stride=None``: its first ``sequence_length + 1`` steps; else windows every
      ``stride`` steps until the element is covered. Short windows are zero-padded at the end
      (id 0 = padding: mask it in the loss). Elements shorter than 2 steps are skipped.

    Args:
        token_ids_ds: Unbatched dataset of int ``[time]`` or numeric ``[time, F]`` tensors.
        sequence_length: Model input length (> 0).
        stride: Steps between window starts, 1..sequence_length + 1 (None: see above).
        per_example: See above.

    Returns:
        Dataset of ``(inputs, targets)``, each ``[sequence_length]`` or ``[sequence_length, F]``,
        the input dtype.
    """
    _positive_int("sequence_length", sequence_length)
    _positive_int("stride", stride, allow_none=True)
    if stride is not None and stride > sequence_length + 1:
        raise ValueError(f"stride must be <= sequence_length + 1 = {sequence_length + 1} "
                         f"(larger strides skip data), got {stride!r}")
    token_ids_ds = _plain_tensors(token_ids_ds)
    spec = token_ids_ds.element_spec
    if (not isinstance(spec, tf.TensorSpec) or spec.shape.rank not in (1, 2)
            or not (spec.dtype.is_integer or spec.dtype.is_floating)
            or (spec.shape.rank == 2 and spec.shape[1] is None)):
        raise TypeError("lm_windows expects a dataset of numeric [time] or [time, F] tensors "
                        f"(static F), got element_spec {spec}")
    width = sequence_length + 1
    frame = spec.shape[1:]
    if not per_example:
        step = sequence_length if stride is None else stride

        def cut(buffer, x):
            # Carry the unused tail to the next element; emit this buffer + its window starts.
            buffer = tf.concat([buffer, x], axis=0)
            n = tf.maximum(0, (tf.shape(buffer)[0] - width) // step + 1)
            return buffer[n * step:], (buffer, tf.range(n) * step)

        empty = tf.zeros([0] + frame.as_list(), spec.dtype)
        windows = token_ids_ds.scan(empty, cut).flat_map(
            lambda buffer, starts: tf.data.Dataset.from_tensor_slices(starts).map(
                lambda s: buffer[s:s + width]))
    else:
        def cover(x):
            n = tf.shape(x)[0]
            if stride is None:
                starts = tf.zeros([1], tf.int32)
            else:
                count = 1 + tf.maximum(0, (n - width + stride - 1) // stride)
                starts = tf.range(count) * stride
                # with stride = sequence_length + 1 the last start can be the last step: no target
                starts = tf.boolean_mask(starts, starts < n - 1)
            pad = tf.maximum(0, starts[-1] + width - n)
            x = tf.pad(x, [[0, pad]] + [[0, 0]] * len(frame))
            return tf.gather(x, _window_indices(starts, width))

        windows = token_ids_ds.filter(lambda x: tf.shape(x)[0] >= 2).map(cover)
        windows = windows.unbatch() if stride is not None else windows.map(lambda w: w[0])
    return windows.map(lambda w: (tf.ensure_shape(w[:-1], [sequence_length] + frame),
                                  tf.ensure_shape(w[1:], [sequence_length] + frame)))


def teacher_forcing(source_ids, target_ids, start_id: int, end_id: int):
    """Seq2seq training layout: ``((encoder_input, decoder_input), decoder_target)``.

    ``decoder_input = [start] + target`` and ``decoder_target = target + [end]``. Accepts one
    example (``[time]``), a ragged batch ``[batch, None]`` or a 0-padded dense batch
    ``[batch, time]`` (END goes right after each row's last non-zero id; the result is 0-padded).

    Args:
        source_ids: Encoder ids, passed through unchanged.
        target_ids: Target ids without START/END.
        start_id, end_id: Ids of the START and END tokens (>= 0).
    """
    for name, value in (("start_id", start_id), ("end_id", end_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    ragged = isinstance(target_ids, tf.RaggedTensor)
    if not ragged:
        target_ids = tf.convert_to_tensor(target_ids)
    if target_ids.shape.rank not in (1, 2):
        raise ValueError(f"target_ids must be [time] or [batch, time], got {target_ids.shape}")
    if target_ids.shape.rank == 1:
        one = tf.ones([1], target_ids.dtype)
        return ((source_ids, tf.concat([one * start_id, target_ids], 0)),
                tf.concat([target_ids, one * end_id], 0))
    rows = target_ids if ragged else tf.RaggedTensor.from_tensor(target_ids, padding=0)
    edge = tf.ones([rows.nrows(), 1], rows.dtype)
    dec_in = tf.concat([edge * start_id, rows], axis=1)
    dec_out = tf.concat([rows, edge * end_id], axis=1)
    if not ragged:
        dec_in, dec_out = dec_in.to_tensor(0), dec_out.to_tensor(0)
    return (source_ids, dec_in), dec_out


def padding_stats(ds: tf.data.Dataset, select: Callable | None = None, pad_id: int = 0,
                  max_batches: int | None = None) -> float:
    """Fraction of padded entries (``== pad_id``) in a batched dataset of int ids.

    Args:
        ds: Batched dataset.
        select: Element -> the int tensor to count (tuples unpacked, as in ``Dataset.map``;
            default: the first tensor of the element, e.g. ``inputs`` of ``(inputs, targets)``).
        pad_id: Padding id.
        max_batches: Stop after this many batches (None: all).
    """
    _positive_int("max_batches", max_batches, allow_none=True)
    pick = select or (lambda *element: tf.nest.flatten(element)[0])
    padded = total = 0
    for i, element in enumerate(ds):
        if max_batches is not None and i >= max_batches:
            break
        ids = pick(*element) if isinstance(element, tuple) else pick(element)
        if isinstance(ids, tf.RaggedTensor):
            ids = ids.flat_values  # nothing is padded in a ragged tensor
        if not ids.dtype.is_integer:
            raise TypeError(f"padding_stats counts int ids, got dtype {ids.dtype.name}")
        padded += int(tf.reduce_sum(tf.cast(tf.equal(ids, pad_id), tf.int64)))
        total += int(tf.size(ids, tf.int64))
    if total == 0:
        raise ValueError("padding_stats: the dataset has no tokens")
    return padded / total


__all__ = ["bucket_batch", "cache_target", "cached", "finalize", "length_boundaries",
           "lm_windows", "padding_stats", "teacher_forcing"]
