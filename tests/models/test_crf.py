"""CRF: forward algorithm and Viterbi against brute-force enumeration, masks, constraints,
gradients, mixed precision, and the CRFModel training / saving path."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from models.layers.crf import (
    CRF,
    CRFModel,
    allowed_transitions,
    crf_log_likelihood,
    crf_log_norm,
    crf_sequence_score,
    viterbi_decode,
)
from tests.layer_test import run_layer_test
from tests.testing import assert_allclose, assert_finite, mixed_precision_policy


def _random_crf(seed, batch, time, tags, boundary=True):
    rng = np.random.default_rng(seed)
    pot = rng.normal(size=(batch, time, tags)).astype("float32")
    trans = rng.normal(size=(tags, tags)).astype("float32")
    start = rng.normal(size=tags).astype("float32") if boundary else None
    end = rng.normal(size=tags).astype("float32") if boundary else None
    return pot, trans, start, end


def _path_score(pot, path, trans, start, end):
    s = sum(pot[t, y] for t, y in enumerate(path))
    s += sum(trans[a, b] for a, b in zip(path[:-1], path[1:]))
    if start is not None:
        s += start[path[0]] + end[path[-1]]
    return float(s)


def _brute(pot, length, trans, start, end, allowed=None):
    """(log Z, best score, best path) over every tag sequence of ``length`` (optionally only
    the allowed ones)."""
    k = pot.shape[-1]
    scores, best = [], (-np.inf, None)
    for path in itertools.product(range(k), repeat=length):
        if allowed is not None and not allowed(path):
            continue
        s = _path_score(pot, path, trans, start, end)
        scores.append(s)
        if s > best[0]:
            best = (s, path)
    return float(np.logaddexp.reduce(scores)), best[0], best[1]


@pytest.mark.parametrize("time,tags,boundary", [(1, 2, True), (3, 3, True), (4, 3, False),
                                                (4, 2, True)])
def test_log_norm_and_viterbi_match_brute_force_with_masks(time, tags, boundary):
    lengths = [time, max(time - 1, 1), 1, 0][: 4]
    pot, trans, start, end = _random_crf(time * 10 + tags, len(lengths), time, tags, boundary)
    mask = np.array([[t < n for t in range(time)] for n in lengths])
    log_z = np.asarray(crf_log_norm(pot, trans, mask, start, end))
    paths, best = viterbi_decode(pot, trans, mask, start, end)
    paths, best = np.asarray(paths), np.asarray(best)
    for b, n in enumerate(lengths):
        if n == 0:  # an empty row contributes nothing
            assert log_z[b] == 0.0 and best[b] == 0.0 and not paths[b].any()
            continue
        bz, bs, bp = _brute(pot[b], n, trans, start, end)
        np.testing.assert_allclose(log_z[b], bz, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(best[b], bs, rtol=1e-5, atol=1e-5)
        assert tuple(paths[b, :n]) == bp, (b, paths[b], bp)
        assert not paths[b, n:].any(), "padded positions must decode to 0"


def test_padding_gives_the_same_result_as_no_padding():
    pot, trans, start, end = _random_crf(7, 1, 3, 3)
    rng = np.random.default_rng(1)
    tags = np.array([[2, 0, 1]])
    # Pad with large random garbage potentials and invalid tag ids: they must be ignored.
    padded = np.concatenate([pot, 50 * rng.normal(size=(1, 4, 3)).astype("float32")], axis=1)
    padded_tags = np.concatenate([tags, [[-1, 5, 2, 0]]], axis=1)
    mask = np.array([[1, 1, 1, 0, 0, 0, 0]], bool)
    for fn, args_a, args_b in [
        (crf_log_norm, (pot, trans, None), (padded, trans, mask)),
        (crf_sequence_score, (pot, tags, trans, None), (padded, padded_tags, trans, mask)),
        (crf_log_likelihood, (pot, tags, trans, None), (padded, padded_tags, trans, mask)),
    ]:
        assert_allclose(fn(*args_a, start, end), fn(*args_b, start, end), atol=1e-5,
                        msg=fn.__name__)
    a_path, a_score = viterbi_decode(pot, trans, None, start, end)
    b_path, b_score = viterbi_decode(padded, trans, mask, start, end)
    np.testing.assert_array_equal(np.asarray(b_path)[:, :3], np.asarray(a_path))
    assert_allclose(a_score, b_score, atol=1e-5)


def test_likelihoods_of_all_paths_sum_to_one():
    pot, trans, start, end = _random_crf(3, 1, 3, 3)
    paths = np.array(list(itertools.product(range(3), repeat=3)))  # 27 paths as a batch
    ll = crf_log_likelihood(np.repeat(pot, len(paths), 0), paths, trans, None, start, end)
    np.testing.assert_allclose(np.exp(np.asarray(ll)).sum(), 1.0, rtol=1e-5)
    for path, value in zip(paths[:5], np.asarray(crf_sequence_score(
            np.repeat(pot, 5, 0), paths[:5], trans, None, start, end))):
        np.testing.assert_allclose(value, _path_score(pot[0], path, trans, start, end),
                                   rtol=1e-5)


def test_iob2_constraint_forbids_inside_after_outside():
    names = ["O", "B-PER", "I-PER"]
    trans_ok, start_ok, end_ok = allowed_transitions(names)
    assert not trans_ok[0, 2] and not start_ok[2] and trans_ok[1, 2] and trans_ok[2, 2]
    assert end_ok.all()
    layer = CRF(3, tag_names=names)
    layer.build((None, None, 3))
    # Potentials shout "I-PER" everywhere: the unconstrained best path would be I I I.
    pot = np.array([[[0.0, 0.0, 5.0], [0.0, 0.0, 5.0], [3.0, 0.0, 5.0]]], "float32")
    tags = np.asarray(layer(pot, decode=True))[0].tolist()
    assert tags == [1, 2, 2], tags
    # Matches brute force over valid paths only.
    def valid(path):
        prev = ("start",)
        for y in path:
            if y == 2 and prev[0] not in (1, 2):
                return False
            prev = (y,)
        return True
    _, _, best = _brute(pot[0], 3, np.zeros((3, 3)), np.zeros(3), np.zeros(3), valid)
    assert tuple(tags) == best
    # O at step 0 followed by I-PER is impossible, even when the potentials insist.
    pot2 = np.array([[[9.0, 0.0, 0.0], [0.0, 0.0, 9.0]]], "float32")
    assert np.asarray(layer(pot2, decode=True))[0].tolist() in ([0, 0], [1, 2])


def test_bioes_constraint_allows_only_well_formed_entities():
    names = ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "S-PER", "<pad>"]
    trans, start, end = allowed_transitions(names)
    assert start.tolist() == [True, True, False, False, True, True, False]
    assert end.tolist() == [True, False, False, True, True, True, False]
    assert trans[1].tolist() == [False, False, True, True, False, False, False]  # after B-LOC
    assert trans[3].tolist() == [True, True, False, False, True, True, False]  # after E-LOC
    assert not trans[:, 6].any(), "padding tag must be unreachable"
    layer = CRF(len(names), tag_names=names)
    rng = np.random.default_rng(0)
    pot = rng.normal(scale=4.0, size=(8, 5, len(names))).astype("float32")
    for row in np.asarray(layer(pot, decode=True)):
        prev = None
        for y in row:
            assert (start[y] if prev is None else trans[prev, y]), row
            prev = y
        assert end[prev], row


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="'X-PER'"):
        allowed_transitions(["O", "X-PER"])
    with pytest.raises(ValueError, match="IOB3"):
        allowed_transitions(["O", "B-PER"], scheme="IOB3")
    with pytest.raises(ValueError, match="num_tags=3"):
        CRF(3, tag_names=["O", "B-PER"])
    with pytest.raises(ValueError, match="num_tags"):
        CRF(0)
    with pytest.raises(ValueError, match="last dim 4"):
        CRF(3)(np.zeros((1, 2, 4), "float32"))


def test_gradients_are_finite_on_long_sharp_sequences():
    layer = CRF(5, tag_names=["O", "B-A", "I-A", "B-B", "I-B"])
    rng = np.random.default_rng(0)
    pot_var = tf.Variable(rng.normal(scale=30.0, size=(2, 60, 5)).astype("float32"))
    tags = rng.integers(0, 5, size=(2, 60))  # includes forbidden transitions on purpose
    mask = np.arange(60)[None] < np.array([[60], [17]])
    layer.build((None, None, 5))
    with tf.GradientTape() as tape:
        pot = pot_var * 1.0
        nll = -tf.reduce_mean(layer.log_likelihood(pot, tags, mask))
    grads = tape.gradient(nll, [pot_var] + layer.trainable_weights)
    assert np.isfinite(float(nll)) and float(nll) > 0
    assert_finite(grads, "CRF gradients")
    assert not np.asarray(grads[0])[1, 17:].any(), "padded potentials get zero gradient"


def test_viterbi_and_nll_compile_with_xla_and_dynamic_time():
    pot, trans, start, end = _random_crf(5, 2, 6, 3)
    mask = np.arange(6)[None] < np.array([[6], [3]])
    spec = [tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([None, None], tf.bool)]

    @tf.function(input_signature=spec, jit_compile=True)
    def run(p, m):
        return viterbi_decode(p, trans, m, start, end)[0], crf_log_norm(p, trans, m, start, end)

    paths, log_z = run(pot, mask)
    ref_paths, _ = viterbi_decode(pot, trans, mask, start, end)
    np.testing.assert_array_equal(paths, ref_paths)
    assert_allclose(log_z, crf_log_norm(pot, trans, mask, start, end), atol=1e-5)


def test_crf_layer_contract_and_mixed_precision():
    run_layer_test(
        CRF,
        init_kwargs={"num_tags": 3, "tag_names": ["O", "B-X", "I-X"], "scheme": "IOB2"},
        input_shape=(2, 4, 3),
        expected_output_shape=(2, 4, 3),
        expected_output_dtype="float32",
        expected_num_trainable_weights=3,
        supports_masking=True,
        # The potentials pass through untouched, so a loss on the output cannot move the
        # transitions; CRFModel training is tested below.
        run_training_check=False,
        mixed_precision_output_dtype="float32",
    )
    for policy in ("mixed_float16", "mixed_bfloat16"):
        with mixed_precision_policy(policy):
            layer = CRF(3)
            pot = keras.ops.cast(np.random.default_rng(0).normal(size=(2, 4, 3)), "float16")
            layer.build(pot.shape)
            ll = layer.log_likelihood(pot, np.zeros((2, 4), "int32"))
            tags, score = layer.decode(pot)
            dtypes = [keras.backend.standardize_dtype(t.dtype) for t in (ll, score, tags)]
            assert dtypes == ["float32", "float32", "int32"]
            assert_finite(ll)


def _toy_data(n=32, time=6, vocab=8, seed=0):
    """Tag = 1 on odd tokens, 2 on a token following an odd token (a CRF-friendly pattern)."""
    rng = np.random.default_rng(seed)
    words = rng.integers(1, vocab, size=(n, time))
    lengths = rng.integers(2, time + 1, size=n)
    words[np.arange(time)[None] >= lengths[:, None]] = 0
    tags = np.where(words % 2 == 1, 1, 0)
    tags[:, 1:] = np.where((tags[:, 1:] == 0) & (tags[:, :-1] == 1), 2, tags[:, 1:])
    tags[words == 0] = 0
    return words.astype("int32"), tags.astype("int32")


def _toy_model(vocab=8, tags=3):
    inp = keras.Input((None,), dtype="int32")
    # No recurrence on purpose: "2 after an odd token" is only learnable via the transitions.
    x = keras.layers.Embedding(vocab, 8, mask_zero=True)(inp)
    x = keras.layers.Dense(tags)(x)
    return CRFModel(inp, CRF(tags, name="crf")(x))


def test_crf_model_fits_decodes_and_round_trips(tmp_path):
    words, tags = _toy_data()
    wrong = _toy_model()
    wrong.compile(optimizer="adam", loss="mse")
    with pytest.raises(ValueError, match="without a loss"):
        wrong.train_on_batch(words, tags)
    model = _toy_model()
    model.compile(optimizer=keras.optimizers.Adam(0.05),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="acc")])
    history = model.fit(words, tags, batch_size=16, epochs=20, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all() and losses[-1] < 0.3 * losses[0], losses
    # Metrics see the masked Viterbi path: the "2 after odd" tags need the transitions.
    assert history.history["acc"][-1] > 0.95, history.history["acc"]
    crf = model.get_layer("crf")
    mask = words != 0
    decoded = np.asarray(crf.decode(model(words), mask)[0])
    assert (decoded[mask] == tags[mask]).mean() > 0.95
    path = tmp_path / "crf.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, CRFModel)
    assert_allclose(loaded(words), model(words), atol=1e-6)
    assert loaded.get_layer("crf").get_config() == crf.get_config()
    # The reloaded model keeps training on the CRF loss.
    loaded.compile(optimizer="adam")
    assert np.isfinite(loaded.evaluate(words, tags, verbose=0)).all()


def _policy_model():
    inp = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(8, 4)(inp)  # no mask_zero: the mask comes from the weights
    return CRFModel(inp, CRF(3)(keras.layers.Dense(3)(x)))


def test_crf_model_mask_from_sample_weight_and_mixed_precision():
    words, tags = _toy_data(n=8)
    weights = (words != 0).astype("float32")
    with mixed_precision_policy("mixed_float16"):
        model = _policy_model()
        model.compile(optimizer="adam")
        loss = model.evaluate(words, tags, sample_weight=weights, verbose=0)
        # Changing the ids at weight-0 positions must not change the loss.
        loss_pad_changed = model.evaluate(np.where(words == 0, 7, words), tags,
                                          sample_weight=weights, verbose=0)
        assert keras.backend.standardize_dtype(model.output.dtype) == "float32"
    np.testing.assert_allclose(loss, loss_pad_changed, rtol=1e-6)
    assert np.isfinite(loss) and loss > 0
    # Training under a mixed policy (bfloat16: float16's loss-scale trace is slow on CPU; the
    # CRF math is float32 either way).
    with mixed_precision_policy("mixed_bfloat16"):
        model = _policy_model()
        model.compile(optimizer="adam")
        history = model.fit(words, tags, sample_weight=weights, epochs=2, verbose=0)
        assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in model.weights)
    assert np.isfinite(history.history["loss"]).all()
