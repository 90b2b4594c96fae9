"""Shared test helpers for recurrent_suite layers, in the spirit of Keras' ``run_layer_test``.

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

    from tests.testing import run_layer_test

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

Smaller helpers: :func:`assert_allclose`, :func:`assert_all_equal`, :func:`assert_finite`,
:func:`to_numpy`, :func:`keras_roundtrip`, :func:`savedmodel_roundtrip`,
:func:`make_inputs`, :func:`mixed_precision_policy` (context manager).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import tempfile
from typing import Any, Callable, Iterable, Sequence

import keras
import numpy as np
from keras import ops

__all__ = [
    "MIXED_POLICIES",
    "assert_all_equal",
    "assert_allclose",
    "assert_finite",
    "keras_roundtrip",
    "make_inputs",
    "mixed_precision_policy",
    "run_layer_test",
    "savedmodel_roundtrip",
    "to_numpy",
]

MIXED_POLICIES = ("mixed_float16", "mixed_bfloat16")


# --------------------------------------------------------------------------- small helpers


def to_numpy(x: Any) -> Any:
    """Converts a tensor (or nested list/tuple/dict of tensors) to NumPy, keeping structure."""
    return keras.tree.map_structure(lambda t: np.asarray(ops.convert_to_numpy(t)), x)


def _flat(x: Any) -> list:
    return keras.tree.flatten(x)


def assert_allclose(actual: Any, desired: Any, atol: float = 1e-6, rtol: float = 1e-6,
                    msg: str = "") -> None:
    """``np.testing.assert_allclose`` over tensors or matching nested structures of them.

    Tensors are cast to float64 first so bfloat16/float16 values compare sensibly.
    """
    a, d = _flat(to_numpy(actual)), _flat(to_numpy(desired))
    assert len(a) == len(d), f"{msg}: structure differs ({len(a)} vs {len(d)} tensors)"
    for i, (x, y) in enumerate(zip(a, d, strict=True)):
        assert x.shape == y.shape, f"{msg}: tensor {i} shape {x.shape} != {y.shape}"
        np.testing.assert_allclose(
            x.astype(np.float64), y.astype(np.float64), atol=atol, rtol=rtol,
            err_msg=f"{msg} (tensor {i})",
        )


def assert_all_equal(actual: Any, desired: Any, msg: str = "") -> None:
    """Bit-exact equality over tensors or matching nested structures of them."""
    a, d = _flat(to_numpy(actual)), _flat(to_numpy(desired))
    assert len(a) == len(d), f"{msg}: structure differs ({len(a)} vs {len(d)} tensors)"
    for i, (x, y) in enumerate(zip(a, d, strict=True)):
        assert x.shape == y.shape, f"{msg}: tensor {i} shape {x.shape} != {y.shape}"
        np.testing.assert_array_equal(x, y, err_msg=f"{msg} (tensor {i})")


def assert_finite(x: Any, msg: str = "") -> None:
    """Asserts every floating tensor in ``x`` is free of NaN and Inf."""
    for i, t in enumerate(_flat(to_numpy(x))):
        if np.issubdtype(t.dtype, np.floating) or t.dtype.name == "bfloat16":
            assert np.all(np.isfinite(t.astype(np.float64))), f"{msg}: tensor {i} not finite"


@contextlib.contextmanager
def mixed_precision_policy(name: str):
    """Sets the global dtype policy inside the block and always restores the previous one."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _is_shape(x: Any) -> bool:
    return isinstance(x, (tuple, list)) and all(d is None or isinstance(d, int) for d in x)


def _map_shapes(fn: Callable, shapes: Any, *rest: Any) -> Any:
    """Maps ``fn`` over a single shape tuple or a list/tuple/dict of shape tuples."""
    if _is_shape(shapes):
        return fn(tuple(shapes), *rest)
    if isinstance(shapes, dict):
        return {k: _map_shapes(fn, v, *(r[k] for r in rest)) for k, v in shapes.items()}
    return [_map_shapes(fn, s, *(r[i] for r in rest)) for i, s in enumerate(shapes)]


def make_inputs(input_shape: Any, input_dtype: Any = "float32", seed: int = 0,
                int_high: int = 10) -> Any:
    """Deterministic random inputs for a shape (or structure of shapes).

    Floating dtypes draw from N(0, 1); integer dtypes draw from ``[1, int_high)`` so token
    ids never hit a ``mask_zero`` padding id by accident.
    """
    rng = np.random.default_rng(seed)
    if isinstance(input_dtype, str) and not _is_shape(input_shape):
        input_dtype = _map_shapes(lambda _: input_dtype, input_shape)

    def one(shape, dtype):
        if "int" in dtype:
            return rng.integers(1, int_high, size=shape).astype(dtype)
        return rng.standard_normal(shape).astype(dtype)

    return _map_shapes(one, input_shape, input_dtype) if not _is_shape(input_shape) else one(
        tuple(input_shape), input_dtype)


def keras_roundtrip(model: keras.Model, tmp_path: Any = None,
                    custom_objects: dict | None = None) -> keras.Model:
    """Saves ``model`` to a ``.keras`` archive and loads it back (``compile=False``).

    Args:
        model: any Keras model.
        tmp_path: directory to write into (pytest's ``tmp_path``); a temporary one if None.
        custom_objects: passed to ``keras.saving.load_model``.
    """
    with contextlib.ExitStack() as stack:
        if tmp_path is None:
            tmp_path = stack.enter_context(tempfile.TemporaryDirectory())
        path = os.path.join(str(tmp_path), "roundtrip.keras")
        model.save(path)
        return keras.saving.load_model(path, custom_objects=custom_objects, compile=False)


def savedmodel_roundtrip(model: keras.Model, inputs: Any, tmp_path: Any) -> Any:
    """Exports ``model`` as a TF SavedModel (``model.export``), reloads it with
    ``tf.saved_model.load`` and returns the reloaded ``serve`` endpoint's outputs on
    ``inputs`` (a tensor or the list of tensors the model takes), as NumPy.

    TensorFlow backend only (this is the TF Serving path).
    """
    import tensorflow as tf  # tests may import tensorflow; models/ may not

    path = os.path.join(str(tmp_path), "exported")
    model.export(path, format="tf_saved_model", verbose=False)
    reloaded = tf.saved_model.load(path)
    flat = _flat(inputs)
    out = reloaded.serve(*[tf.convert_to_tensor(x) for x in flat])
    return to_numpy(out)


# --------------------------------------------------------------------------- run_layer_test


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
