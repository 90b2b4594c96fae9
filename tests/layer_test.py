"""``run_layer_test``: the shared layer test, in the spirit of Keras' own.

The one entry point most tests need is :func:`run_layer_test`. It builds the layer from
``init_kwargs`` and checks, in order:

1. **Config**: every constructor argument of ``layer_cls.__init__`` appears in
   ``get_config()``; ``from_config(get_config())`` gives an equal config.
2. **Eager call**: output shapes/dtypes match ``expected_output_shape`` /
   ``expected_output_dtype``, outputs are finite, and the number of weights matches.
3. **from_config outputs**: a layer rebuilt from the config, with the weights copied over,
   gives bit-identical outputs (``training=False``).
4. **Symbolic call**: calling on ``keras.Input`` gives the same output structure and
   shapes (``None`` entries in the expected shape are wildcards).
5. **`.keras` round trip**: a functional model around the layer, saved and reloaded,
   gives bit-identical outputs.
6. **Training**: one ``fit`` step on a loss built from every floating output runs,
   the loss is finite and at least one trainable weight moves.
7. **Mixed precision**: for ``mixed_float16`` and ``mixed_bfloat16`` (set as the *global*
   policy, so sub-layers created in ``__init__`` pick it up too) every floating variable is
   float32, floating outputs have the policy's compute dtype (or float32 where the layer
   documents it, see ``mixed_precision_output_dtype``), nothing is NaN/Inf, and a train
   step runs with a finite loss (Keras wraps the optimizer in a LossScaleOptimizer for
   ``mixed_float16``).

Example::

    from tests.layer_test import run_layer_test

    def test_my_layer():
        run_layer_test(
            MyLayer,
            init_kwargs={"units": 4},
            input_shape=(2, 5, 3),                 # [batch, time, features]
            expected_output_shape=(2, 5, 4),
            expected_num_trainable_weights=3,
            supports_masking=True,
        )

Multiple inputs: pass ``input_shape``/``input_data`` as a list (or dict) of shapes/arrays,
and ``input_dtype`` with the same structure (e.g. ``["int32", "float32"]``). Tensor-valued
call arguments (e.g. ``call_kwargs={"initial_state": [h0, c0]}``) are accepted: in the
model-level checks they become extra ``keras.Input`` s. Layers whose inference output is
random (samplers) pass ``deterministic=False``: value comparisons are then skipped and only
shapes/dtypes/finiteness are checked.

The smaller helpers it uses live in :mod:`tests.testing`.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import tempfile
from typing import Any, Iterable, Sequence

import keras
import numpy as np
from keras import ops

from tests.testing import (
    MIXED_POLICIES,
    _flat,
    _is_shape,
    assert_all_equal,
    assert_finite,
    keras_roundtrip,
    make_inputs,
    mixed_precision_policy,
    to_numpy,
)


class _SumOfMeans(keras.layers.Layer):
    """Reduces every floating output to one [batch, 1] float32 value so any layer can be fit."""

    def call(self, outputs):
        total = None
        for t in outputs:
            t = ops.cast(t, "float32")
            axes = tuple(range(1, len(t.shape)))
            r = ops.mean(t, axis=axes) if axes else t
            total = r if total is None else total + r
        return ops.expand_dims(total, -1)


def _is_floating(t: Any) -> bool:
    return "float" in keras.backend.standardize_dtype(t.dtype)


def _init_params(layer_cls: type) -> list[str]:
    """Named constructor parameters, excluding self, *args and **kwargs."""
    sig = inspect.signature(layer_cls.__init__)
    return [
        n for n, p in sig.parameters.items()
        if n != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _json(cfg: dict) -> str:
    return json.dumps(cfg, sort_keys=True, default=repr)


def _split_call_kwargs(call_kwargs: dict) -> tuple[dict, dict]:
    """Separates tensor-valued call kwargs (become model inputs) from plain ones."""
    def is_tensorish(v):
        leaves = _flat(v)
        return bool(leaves) and all(
            isinstance(x, np.ndarray) or keras.ops.is_tensor(x) for x in leaves)

    tensors = {k: v for k, v in call_kwargs.items() if v is not None and is_tensorish(v)}
    plain = {k: v for k, v in call_kwargs.items() if k not in tensors}
    return tensors, plain


def _check_shapes(outputs: Any, expected: Any, where: str) -> None:
    got = [tuple(t.shape) for t in _flat(outputs)]
    if _is_shape(expected):
        want = [tuple(expected)]
    elif isinstance(expected, dict):
        want = [tuple(expected[k]) for k in sorted(expected)]
    else:
        want = [tuple(s) for s in expected]
    assert len(got) == len(want), f"{where}: got {len(got)} outputs {got}, expected {want}"
    for g, w in zip(got, want, strict=True):
        ok = len(g) == len(w) and all(
            e is None or d is None or e == d for d, e in zip(g, w, strict=True))
        assert ok, f"{where}: output shapes {got} do not match expected {want}"


def _check_dtypes(outputs: Any, expected: Any, where: str) -> None:
    flat = _flat(outputs)
    want = [expected] * len(flat) if isinstance(expected, str) else list(expected)
    for i, (t, w) in enumerate(zip(flat, want, strict=True)):
        if w is None:
            continue
        got = keras.backend.standardize_dtype(t.dtype)
        assert got == w, f"{where}: output {i} dtype {got}, expected {w}"


def _build_model(layer, input_data, tensor_kwargs, plain_kwargs):
    """Functional model with a flat list of inputs: data inputs then tensor call kwargs."""
    data_flat = _flat(input_data)
    kw_flat = _flat(tensor_kwargs)
    sym_flat = [
        keras.Input(batch_shape=tuple(ops.shape(x)), dtype=keras.backend.standardize_dtype(
            x.dtype)) for x in data_flat + kw_flat
    ]
    sym_data = keras.tree.pack_sequence_as(input_data, sym_flat[: len(data_flat)])
    sym_kw = keras.tree.pack_sequence_as(tensor_kwargs, sym_flat[len(data_flat):])
    outputs = layer(sym_data, **sym_kw, **plain_kwargs)
    feed = data_flat + kw_flat
    return keras.Model(sym_flat, outputs), sym_flat, outputs, feed


def _fit_check(layer, model_inputs, outputs, feed, jit_compile, where):
    floats = [t for t in _flat(outputs) if _is_floating(t)]
    if not floats or not layer.trainable_weights:
        return None
    train_model = keras.Model(model_inputs, _SumOfMeans(dtype="float32")(floats))
    train_model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse",
                        jit_compile=jit_compile)
    before = [np.array(ops.convert_to_numpy(w)) for w in layer.trainable_weights]
    batch = int(np.shape(feed[0])[0])
    target = np.zeros((batch, 1), "float32")
    history = train_model.fit(feed, target, batch_size=batch, epochs=1, verbose=0)
    losses = history.history["loss"]
    assert all(np.isfinite(losses)), f"{where}: training loss not finite: {losses}"
    after = [np.array(ops.convert_to_numpy(w)) for w in layer.trainable_weights]
    moved = any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))
    assert moved, f"{where}: no trainable weight changed after fit"
    return losses


def run_layer_test(
    layer_cls: type,
    init_kwargs: dict | None = None,
    input_shape: Any = None,
    input_data: Any = None,
    input_dtype: Any = "float32",
    call_kwargs: dict | None = None,
    expected_output_shape: Any = None,
    expected_output_dtype: Any = None,
    expected_num_trainable_weights: int | None = None,
    expected_num_non_trainable_weights: int | None = None,
    supports_masking: bool | None = None,
    custom_objects: dict | None = None,
    deterministic: bool = True,
    run_config_check: bool = True,
    run_symbolic_check: bool = True,
    run_saving_check: bool = True,
    run_training_check: bool = True,
    run_mixed_precision_check: bool = True,
    mixed_precision_policies: Iterable[str] = MIXED_POLICIES,
    mixed_precision_output_dtype: str | Sequence[str | None] = "compute",
    ignore_config_keys: Iterable[str] = (),
    jit_compile: bool = False,
    tmp_path: Any = None,
) -> dict:
    """Runs the standard battery of layer checks (see the module docstring).

    Args:
        layer_cls: the layer class under test.
        init_kwargs: constructor arguments.
        input_shape: one shape tuple (``[batch, time, features]`` etc., fully defined), or a
            list/dict of them for multi-input layers. Mutually exclusive with ``input_data``.
        input_data: concrete NumPy input(s) instead of random ones (e.g. token ids with
            padding).
        input_dtype: dtype for generated inputs; a string or a structure like
            ``input_shape``. Integer inputs are drawn from ``[1, 10)``.
        call_kwargs: extra call arguments. NumPy/tensor values (or lists of them, e.g.
            ``initial_state``) become extra model inputs in the model-level checks.
        expected_output_shape: shape tuple, or list of shape tuples for list outputs
            (flattened order). ``None`` dims are wildcards.
        expected_output_dtype: under the float32 policy; a string or per-output list
            (``None`` entries skip).
        expected_num_trainable_weights: checked after the eager call when given.
        expected_num_non_trainable_weights: likewise.
        supports_masking: checked against ``layer.supports_masking`` when not None.
        custom_objects: for ``from_config``/``load_model`` if the class is not registered.
        deterministic: False for layers with random inference output (samplers): skip the
            value-equality checks.
        run_config_check / run_symbolic_check / run_saving_check / run_training_check /
            run_mixed_precision_check: switch individual checks off.
        mixed_precision_policies: policies to test; default ``mixed_float16`` and
            ``mixed_bfloat16``.
        mixed_precision_output_dtype: ``"compute"`` (the policy's compute dtype),
            ``"float32"``, or a per-output list of those (``None`` skips an output).
            Non-floating outputs (ids) are never checked.
        ignore_config_keys: constructor parameters deliberately absent from ``get_config``.
        jit_compile: passed to ``compile`` in the training checks (False keeps CPU tests
            fast).
        tmp_path: directory for saved files; a temporary directory if None.

    Returns:
        dict with ``layer`` (the float32 layer), ``outputs`` (eager outputs as NumPy),
        ``model`` (the functional wrapper) and ``losses`` (training losses or None).
    """
    init_kwargs = dict(init_kwargs or {})
    call_kwargs = dict(call_kwargs or {})
    if (input_shape is None) == (input_data is None):
        raise ValueError("Pass exactly one of input_shape / input_data to run_layer_test.")
    if input_data is None:
        input_data = make_inputs(input_shape, input_dtype)
    tensor_kwargs, plain_kwargs = _split_call_kwargs(call_kwargs)
    name = layer_cls.__name__
    result: dict = {"losses": None}

    with contextlib.ExitStack() as stack:
        if tmp_path is None:
            tmp_path = stack.enter_context(tempfile.TemporaryDirectory())

        # 1. Config mirrors the constructor and survives from_config.
        layer = layer_cls(**init_kwargs)
        if run_config_check:
            cfg = layer.get_config()
            missing = [p for p in _init_params(layer_cls)
                       if p not in cfg and p not in set(ignore_config_keys)]
            assert not missing, f"{name}.get_config() lacks constructor args {missing}"
            for k in init_kwargs:
                assert k in cfg or k in set(ignore_config_keys), f"{name}: '{k}' not in config"
            revived = layer_cls.from_config(cfg)
            assert _json(revived.get_config()) == _json(cfg), f"{name}: config round trip"
        if supports_masking is not None:
            assert layer.supports_masking == supports_masking, (
                f"{name}.supports_masking is {layer.supports_masking}, expected "
                f"{supports_masking}")

        # 2. Eager call.
        outputs = layer(input_data, **tensor_kwargs, **plain_kwargs, training=False) \
            if _accepts_training(layer) else layer(input_data, **tensor_kwargs, **plain_kwargs)
        if expected_output_shape is not None:
            _check_shapes(outputs, expected_output_shape, f"{name} eager")
        if expected_output_dtype is not None:
            _check_dtypes(outputs, expected_output_dtype, f"{name} eager")
        assert_finite(outputs, f"{name} eager outputs")
        if expected_num_trainable_weights is not None:
            assert len(layer.trainable_weights) == expected_num_trainable_weights, (
                f"{name}: {len(layer.trainable_weights)} trainable weights, expected "
                f"{expected_num_trainable_weights}")
        if expected_num_non_trainable_weights is not None:
            assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights, (
                f"{name}: {len(layer.non_trainable_weights)} non-trainable weights")
        result["layer"], result["outputs"] = layer, to_numpy(outputs)

        # 3. from_config + copied weights -> identical outputs.
        if run_config_check and deterministic:
            twin = layer_cls.from_config(layer.get_config())
            _call(twin, input_data, tensor_kwargs, plain_kwargs)
            twin.set_weights(layer.get_weights())
            assert_all_equal(_call(twin, input_data, tensor_kwargs, plain_kwargs), outputs,
                             f"{name}: from_config with copied weights")

        # 4. Symbolic call + functional model; 5. .keras round trip.
        if run_symbolic_check or run_saving_check or run_training_check:
            model, sym_in, sym_out, feed = _build_model(layer, input_data, tensor_kwargs,
                                                        plain_kwargs)
            result["model"] = model
            if expected_output_shape is not None:
                _check_shapes(sym_out, expected_output_shape, f"{name} symbolic")
            assert len(_flat(sym_out)) == len(_flat(outputs)), f"{name}: symbolic structure"
            if run_saving_check:
                ref = model(feed, training=False)
                loaded = keras_roundtrip(model, tmp_path, custom_objects)
                got = loaded(feed, training=False)
                if deterministic:
                    assert_all_equal(got, ref, f"{name}: .keras round trip")
                else:
                    _check_shapes(got, [tuple(t.shape) for t in _flat(ref)], f"{name} loaded")
            # 6. Training.
            if run_training_check:
                result["losses"] = _fit_check(layer, sym_in, sym_out, feed, jit_compile,
                                              f"{name} float32")

    # 7. Mixed precision.
    if run_mixed_precision_check:
        for policy in mixed_precision_policies:
            _mixed_precision_check(layer_cls, init_kwargs, input_data, tensor_kwargs,
                                   plain_kwargs, policy, mixed_precision_output_dtype,
                                   run_training_check, jit_compile)
    return result


def _accepts_training(layer) -> bool:
    try:
        return "training" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def _call(layer, input_data, tensor_kwargs, plain_kwargs):
    if _accepts_training(layer):
        return layer(input_data, **tensor_kwargs, **plain_kwargs, training=False)
    return layer(input_data, **tensor_kwargs, **plain_kwargs)


def _mixed_precision_check(layer_cls, init_kwargs, input_data, tensor_kwargs, plain_kwargs,
                           policy, output_dtype, run_training_check, jit_compile):
    where = f"{layer_cls.__name__} [{policy}]"
    with mixed_precision_policy(policy):
        compute = keras.mixed_precision.Policy(policy).compute_dtype
        layer = layer_cls(**init_kwargs)
        assert layer.compute_dtype == compute, f"{where}: compute_dtype {layer.compute_dtype}"
        outputs = _call(layer, input_data, tensor_kwargs, plain_kwargs)
        for v in layer.weights:
            dt = keras.backend.standardize_dtype(v.dtype)
            if "float" in dt:
                assert dt == "float32", f"{where}: variable {v.path} is {dt}, expected float32"
        flat = _flat(outputs)
        want = [output_dtype] * len(flat) if isinstance(output_dtype, str) else list(
            output_dtype)
        for i, (t, w) in enumerate(zip(flat, want, strict=True)):
            if w is None or not _is_floating(t):
                continue
            expected = compute if w == "compute" else w
            got = keras.backend.standardize_dtype(t.dtype)
            assert got == expected, f"{where}: output {i} dtype {got}, expected {expected}"
        assert_finite(outputs, f"{where} outputs")
        if run_training_check:
            model, sym_in, sym_out, feed = _build_model(layer, input_data, tensor_kwargs,
                                                        plain_kwargs)
            _fit_check(layer, sym_in, sym_out, feed, jit_compile, where)
