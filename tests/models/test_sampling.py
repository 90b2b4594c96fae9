"""Properties of models.decoding.sampling: temperature, top-k, top-p, seeds, forbidden ids."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.decoding.sampling import NEG_LOGIT, filter_logits, sample_logits


def _logits(batch=4, vocab=12, seed=0, scale=2.0):
    return np.random.default_rng(seed).normal(0, scale, (batch, vocab)).astype("float32")


def _tile(row, n):
    return np.tile(np.asarray(row, "float32")[None, :], (n, 1))


def _draw(logits, **kwargs):
    return np.asarray(sample_logits(logits, **kwargs))


def test_greedy_is_argmax_over_allowed_tokens():
    logits = _logits(batch=16)
    logits[:, 0] = 50.0  # padding id would win without the forbidden filter
    ids = _draw(logits, temperature=0)
    masked = logits.copy()
    masked[:, :2] = -np.inf
    np.testing.assert_array_equal(ids, masked.argmax(-1))
    assert ids.dtype == np.int32


def test_temperature_going_to_zero_tends_to_argmax():
    row = np.array([0, 0, 1.0, 0.6, 0.3, 0.0, -0.5, 0.9], "float32")
    logits = _tile(row, 2000)
    seed = keras.random.SeedGenerator(5)
    fractions = [np.mean(_draw(logits, temperature=t, seed=seed, forbidden_ids=(0, 1)) == 2)
                 for t in (2.0, 1.0, 0.3, 0.05, 0.01)]
    assert all(b >= a for a, b in zip(fractions, fractions[1:], strict=False)), fractions
    assert fractions[0] < 0.4 and fractions[-1] == 1.0, fractions


def test_unfiltered_samples_follow_softmax():
    row = np.array([0.0, 0.0, 1.0, 0.5, -0.5, 0.2], "float32")
    ids = _draw(_tile(row, 20000), temperature=1.0, seed=keras.random.SeedGenerator(1))
    freq = np.bincount(ids, minlength=6) / ids.size
    allowed = np.exp(row[2:]) / np.exp(row[2:]).sum()
    np.testing.assert_allclose(freq[2:], allowed, atol=0.015)
    assert freq[0] == 0 and freq[1] == 0


@pytest.mark.parametrize("k", [1, 3, 5])
def test_top_k_never_picks_outside_the_k(k):
    row = _logits(batch=1, vocab=20, seed=k)[0]
    allowed = np.argsort(-row[2:])[:k] + 2  # ids 0, 1 forbidden
    ids = _draw(_tile(row, 3000), temperature=1.5, top_k=k, seed=keras.random.SeedGenerator(k))
    assert set(ids.tolist()) == set(allowed.tolist())


def test_top_k_larger_than_vocab_means_no_filter():
    logits = _logits()
    np.testing.assert_array_equal(filter_logits(logits, top_k=100, forbidden_ids=()), logits)


def _smallest_nucleus(probs, p):
    order = np.argsort(-probs)
    mass = np.cumsum(probs[order])
    n = int(np.searchsorted(mass, p - 1e-7) + 1)
    return set(order[:n].tolist())


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_set_with_enough_mass(p):
    logits = _logits(batch=8, vocab=15, seed=3, scale=1.5)
    filtered = np.asarray(filter_logits(logits, top_p=p, forbidden_ids=()))
    for row, out in zip(logits, filtered, strict=True):
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        kept = set(np.nonzero(out > NEG_LOGIT / 2)[0].tolist())
        assert kept == _smallest_nucleus(probs, p)
        assert probs[list(kept)].sum() >= p - 1e-6
    ids = _draw(logits, top_p=p, forbidden_ids=(), seed=keras.random.SeedGenerator(0))
    assert all(filtered[i, t] > NEG_LOGIT / 2 for i, t in enumerate(ids))


def test_top_p_applies_after_top_k_and_temperature():
    row = np.array([0, 0, 3.0, 2.0, 1.0, 0.0], "float32")
    out = np.asarray(filter_logits(row[None], temperature=2.0, top_k=3, top_p=0.6))[0]
    # After /2 and top-3: probs over ids 2,3,4 = softmax([1.5, 1, .5]) = .51, .31, .19
    np.testing.assert_allclose(out[2:4], [1.5, 1.0])
    assert (out[[0, 1, 4, 5]] == NEG_LOGIT).all()


def test_seeded_determinism():
    logits = _logits(batch=64, vocab=30)

    def run(seed):
        gen = keras.random.SeedGenerator(seed)
        return [_draw(logits, temperature=1.0, top_p=0.9, seed=gen) for _ in range(3)]

    first, again, other = run(11), run(11), run(12)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1]), "a SeedGenerator must advance per call"
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    np.testing.assert_array_equal(_draw(logits, seed=3), _draw(logits, seed=3))


def test_forbidden_ids_never_sampled_even_when_most_likely():
    logits = _logits(batch=500, vocab=8)
    logits[:, 0] = 30.0
    logits[:, 5] = 25.0
    for kwargs in ({"temperature": 5.0}, {"temperature": 1.0, "top_k": 1},
                   {"temperature": 1.0, "top_p": 0.01}, {"temperature": 0}):
        ids = _draw(logits, forbidden_ids=(0, 5), seed=keras.random.SeedGenerator(2), **kwargs)
        assert not np.isin(ids, [0, 5]).any(), kwargs


def test_tensor_arguments_inside_tf_function():
    logits = _logits(batch=32, vocab=10)
    gen = keras.random.SeedGenerator(4)

    @tf.function(jit_compile=True)
    def draw(temperature, top_k, top_p):
        return sample_logits(logits, temperature, top_k, top_p, seed=gen)

    greedy = draw(tf.constant(0.0), tf.constant(0), tf.constant(1.0)).numpy()
    masked = logits.copy()
    masked[:, :2] = -np.inf
    np.testing.assert_array_equal(greedy, masked.argmax(-1))
    top1 = draw(tf.constant(3.0), tf.constant(1), tf.constant(1.0)).numpy()
    np.testing.assert_array_equal(top1, greedy)
    nucleus = draw(tf.constant(3.0), tf.constant(0), tf.constant(1e-4)).numpy()
    np.testing.assert_array_equal(nucleus, greedy)
    free = draw(tf.constant(3.0), tf.constant(0), tf.constant(1.0)).numpy()
    assert (free != greedy).any() and not np.isin(free, [0, 1]).any()


@pytest.mark.parametrize("kwargs, message", [
    ({"temperature": -1.0}, "temperature"),
    ({"top_k": -2}, "top_k"),
    ({"top_k": 1.5}, "top_k"),
    ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
    ({"forbidden_ids": (0, 12)}, "12"),
])
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_logits(_logits(vocab=12), **kwargs)


def test_bad_logits_shape():
    with pytest.raises(ValueError, match=r"\[batch, vocab\]"):
        sample_logits(np.zeros((2, 3, 4), "float32"))
    with pytest.raises(ValueError, match="whole vocabulary"):
        sample_logits(np.zeros((2, 2), "float32"))
