"""models.layers.attention: masking of padded source positions, shapes, dtypes, config, errors."""

import keras
import numpy as np
import pytest

from models.layers.attention import BahdanauAttention, LuongAttention, get_attention
from tests.layer_test import run_layer_test
from tests.testing import assert_allclose, to_numpy

LAYERS = [
    pytest.param(lambda: BahdanauAttention(8), id="bahdanau"),
    pytest.param(lambda: LuongAttention("general"), id="luong_general"),
    pytest.param(lambda: LuongAttention("dot", scale=True), id="luong_dot"),
]


def _data(batch=3, tq=4, ts=6, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    query = rng.normal(size=(batch, tq, dim)).astype("float32")
    value = rng.normal(size=(batch, ts, dim)).astype("float32")
    lengths = np.array([ts, 3, 1])[:batch]
    mask = np.arange(ts)[None, :] < lengths[:, None]
    return query, value, mask, lengths


@pytest.mark.parametrize("make", LAYERS)
def test_padded_source_equals_unpadded(make):
    layer = make()
    query, value, mask, lengths = _data()
    # Garbage in the padded positions must change nothing.
    noisy = value.copy()
    noisy[~mask] = 1e3
    context, weights = to_numpy(layer([query, noisy], value_mask=mask))
    for b, n in enumerate(lengths):
        ref_context, ref_weights = to_numpy(layer([query[b:b + 1], value[b:b + 1, :n]]))
        np.testing.assert_allclose(context[b], ref_context[0], atol=1e-5)
        np.testing.assert_allclose(weights[b, :, :n], ref_weights[0], atol=1e-6)
        assert np.all(weights[b, :, n:] == 0.0)
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("make", LAYERS)
def test_keras_mask_from_embedding_is_used(make):
    layer = make()
    query, _, mask, _ = _data()
    ids = np.where(mask, 3, 0).astype("int32")
    embedding = keras.layers.Embedding(10, 5, mask_zero=True)
    value = embedding(ids)  # carries the padding mask
    _, implicit = layer([query, value])
    _, explicit = layer([query, embedding(ids)], value_mask=mask)
    assert_allclose(implicit, explicit, atol=0)
    assert np.all(to_numpy(implicit)[~np.broadcast_to(mask[:, None], (3, 4, 6))] == 0)


@pytest.mark.parametrize("make", LAYERS)
def test_single_step_query_matches_sequence(make):
    layer = make()
    query, value, mask, _ = _data()
    context, weights = layer([query, value], value_mask=mask)
    step_context, step_weights = layer([query[:, 2], value], value_mask=mask)
    assert tuple(step_context.shape) == (3, 5) and tuple(step_weights.shape) == (3, 6)
    assert_allclose(step_context, to_numpy(context)[:, 2], atol=1e-6)
    assert_allclose(step_weights, to_numpy(weights)[:, 2], atol=1e-6)


def test_empty_source_gives_zero_context_not_nan():
    query, value, mask, _ = _data()
    mask[1] = False
    context, weights = to_numpy(BahdanauAttention(4)([query, value], value_mask=mask))
    assert np.all(context[1] == 0) and np.all(weights[1] == 0)
    assert np.all(np.isfinite(context))


def test_bahdanau_layer_battery(tmp_path):
    query, value, mask, _ = _data()
    run_layer_test(
        BahdanauAttention, init_kwargs={"units": 4}, input_data=[query, value],
        call_kwargs={"value_mask": mask},
        expected_output_shape=[(3, 4, 5), (3, 4, 6)],
        expected_output_dtype=["float32", "float32"], expected_num_trainable_weights=4,
        supports_masking=True, mixed_precision_output_dtype=["compute", "float32"],
        mixed_precision_policies=("mixed_float16",), tmp_path=tmp_path)


def test_luong_layer_battery(tmp_path):
    query, value, mask, _ = _data()
    value = np.concatenate([value, value], -1)  # general score: any value size
    run_layer_test(
        LuongAttention, init_kwargs={"score": "general", "scale": True},
        input_data=[query, value], call_kwargs={"value_mask": mask},
        expected_output_shape=[(3, 4, 10), (3, 4, 6)], expected_num_trainable_weights=1,
        mixed_precision_output_dtype=["compute", "float32"],
        mixed_precision_policies=("mixed_bfloat16",), tmp_path=tmp_path)


def test_luong_dot_has_no_weights():
    layer = LuongAttention("dot")
    query, value, mask, _ = _data()
    layer([query, value], value_mask=mask)
    assert layer.weights == []


@pytest.mark.parametrize("build, match", [
    (lambda: BahdanauAttention(0), "units must be a positive int; got 0"),
    (lambda: LuongAttention("concat"), "score must be one of .*'concat'"),
    (lambda: get_attention("additive", 4), "'additive'"),
    (lambda: LuongAttention("dot")([np.zeros((1, 2, 3)), np.zeros((1, 4, 5))]),
     "query_dim=3, value_dim=5"),
    (lambda: BahdanauAttention(4)([np.zeros((1, 2, 3)), np.zeros((1, 5))]),
     r"value must be \[batch, source_time, dim\]"),
])
def test_bad_arguments_raise_one_clear_error(build, match):
    with pytest.raises(ValueError, match=match):
        build()
