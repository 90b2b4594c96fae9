"""Document-context pooling: against a per-token loop, masks, weights, dtypes, graph mode."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.layers.document_context import pool_repeated_tokens
from tests.testing import assert_allclose


def _reference(potentials, keys, mask, apply, weight):
    flat, k = potentials.reshape(-1, potentials.shape[-1]), keys.reshape(-1)
    m, a = mask.reshape(-1), apply.reshape(-1)
    out = flat.copy()
    for i in range(len(flat)):
        if m[i] and a[i]:
            same = [j for j in range(len(flat)) if m[j] and k[j] == k[i]]
            out[i] = (1 - weight) * flat[i] + weight * flat[same].mean(axis=0)
    return out.reshape(potentials.shape)


def _document(seed, sentences=3, time=5, tags=4, words=4):
    rng = np.random.default_rng(seed)
    potentials = rng.normal(size=(sentences, time, tags)).astype("float32")
    keys = rng.integers(0, words, size=(sentences, time)).astype("int64")
    lengths = rng.integers(1, time + 1, size=sentences)
    mask = np.arange(time)[None, :] < lengths[:, None]
    apply = rng.random((sentences, time)) < 0.6
    return potentials, keys, mask, apply


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("weight", [0.0, 0.5, 1.0])
def test_matches_a_per_token_loop(seed, weight):
    args = _document(seed)
    got = keras.ops.convert_to_numpy(pool_repeated_tokens(*args, weight=weight))
    assert got.dtype == np.float32
    assert_allclose(got, _reference(*args, weight), atol=1e-5)


def test_padding_neither_changes_nor_contributes():
    potentials, keys, mask, apply = _document(3)
    poisoned = potentials.copy()
    poisoned[~mask] = 1e6  # padding with the same keys as real tokens
    got = keras.ops.convert_to_numpy(pool_repeated_tokens(poisoned, keys, mask, apply))
    assert_allclose(got[mask], _reference(potentials, keys, mask, apply, 0.5)[mask], atol=1e-4)
    assert_allclose(got[~mask], poisoned[~mask])


def test_two_mentions_of_one_name_agree_and_others_stay():
    # "Japan" (clear LOC) and "JAPAN" (headline, leaning ORG) share a key; "said" is not pooled.
    potentials = np.array([[[0.0, 4.0, 0.0], [2.0, 0.0, 0.0]],
                           [[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]]], np.float32)
    keys = np.array([[7, 8], [7, 0]])
    mask = np.array([[True, True], [True, False]])
    apply = np.array([[True, False], [True, False]])
    got = keras.ops.convert_to_numpy(pool_repeated_tokens(potentials, keys, mask, apply, 0.5))
    assert got[0, 0].argmax() == got[1, 0].argmax() == 1
    assert_allclose(got[0, 0], np.array([0.0, 3.25, 0.5]))
    assert_allclose(got[1, 0], np.array([0.0, 1.75, 1.5]))
    assert_allclose(got[0, 1], potentials[0, 1])


def test_half_precision_input_and_graph_mode():
    potentials, keys, mask, apply = _document(4)
    want = _reference(potentials, keys, mask, apply, 0.5)
    half = pool_repeated_tokens(potentials.astype("float16"), keys, mask, apply)
    assert keras.ops.convert_to_numpy(half).dtype == np.float32
    assert_allclose(keras.ops.convert_to_numpy(half), want, atol=1e-2)
    spec = [tf.TensorSpec([None, None, 4], tf.float32), tf.TensorSpec([None, None], tf.int64),
            tf.TensorSpec([None, None], tf.bool), tf.TensorSpec([None, None], tf.bool)]
    graph = tf.function(lambda *a: pool_repeated_tokens(*a, weight=0.5), input_signature=spec)
    assert_allclose(graph(potentials, keys, mask, apply).numpy(), want, atol=1e-5)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_weight_outside_the_unit_interval_is_an_error(weight):
    with pytest.raises(ValueError, match="weight must be in"):
        pool_repeated_tokens(*_document(0), weight=weight)


def test_a_long_document_costs_linear_memory():
    # 60,000 tokens: an N x N comparison would need 14 GB; grouping by sorted keys needs MBs.
    rng = np.random.default_rng(5)
    n, tags = 60_000, 3
    potentials = rng.normal(size=(2, n // 2, tags)).astype("float32")
    keys = rng.integers(0, 500, size=(2, n // 2)).astype("int64")
    mask, apply = rng.random((2, n // 2)) < 0.9, rng.random((2, n // 2)) < 0.5
    got = keras.ops.convert_to_numpy(pool_repeated_tokens(potentials, keys, mask, apply, 0.5))
    flat, k, m = potentials.reshape(-1, tags), keys.ravel(), mask.ravel()
    sums = np.zeros((500, tags))
    np.add.at(sums, k[m], flat[m])
    means = sums / np.maximum(np.bincount(k[m], minlength=500), 1)[:, None]
    want = np.where((apply & mask).ravel()[:, None], 0.5 * flat + 0.5 * means[k], flat)
    assert_allclose(got.reshape(-1, tags), want, atol=1e-4)


def test_an_empty_document():
    empty = np.zeros((0, 4), bool)
    got = pool_repeated_tokens(np.zeros((0, 4, 3), "float32"), np.zeros((0, 4), "int64"),
                               empty, empty)
    assert tuple(keras.ops.shape(got)) == (0, 4, 3)
