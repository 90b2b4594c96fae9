"""Small shared test helpers: :func:`assert_allclose`, :func:`assert_all_equal`,
:func:`assert_finite`, :func:`to_numpy`, :func:`keras_roundtrip`, :func:`savedmodel_roundtrip`,
:func:`make_inputs`, :func:`mixed_precision_policy` (context manager).

The layer test most model tests need, :func:`tests.layer_test.run_layer_test`, is built on them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from typing import Any, Callable

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
