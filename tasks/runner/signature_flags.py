"""``predict --signature NAME``: a flag per input of the task's other serving signatures.

The flags are derived from the signatures' input signatures (:meth:`Task.serving_signatures`,
read from the task's serving class without training or loading anything): ``--top-k`` feeds
``top_k``, typed by its dtype, one value for a scalar and one or more for a vector.
"""

from __future__ import annotations

import argparse

from tasks.runner import errors


def signature_flags(task, parser) -> dict[str, tuple]:
    """``{input: (TensorSpec, [signature, ...])}``: the inputs of the task's signatures other
    than ``serving_default`` that need a ``predict`` flag of their own, from their input
    signatures (:meth:`Task.serving_signatures`). Inputs that a flag of ``parser`` (the task's
    own, by ``dest``) or the positional texts (``text``) already give are left to them, and
    inputs of rank 2 or more (``prompt_notes``) to the task's own flags."""
    taken = {a.dest for a in parser._actions} | {"text"}
    try:
        signatures = task.serving_signatures()
    except NotImplementedError:  # a task still being written: no serving inputs yet
        return {}
    used = {}
    for signature, specs in signatures.items():
        if signature == "serving_default":
            continue
        for spec in specs:
            if spec.name in taken or spec.shape.rank is None or spec.shape.rank > 1:
                continue
            used.setdefault(spec.name, (spec, []))[1].append(signature)
    return used


def _flag_value(dtype):
    """The argparse ``type`` of a flag feeding a tensor of ``dtype``."""
    if dtype.is_bool:
        def boolean(text):
            if text.lower() not in ("true", "false", "1", "0"):
                raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
            return text.lower() in ("true", "1")
        return boolean
    return int if dtype.is_integer else float if dtype.is_floating else str


def add_signature_flags(task, parser) -> None:
    """A ``predict`` flag per input of :func:`signature_flags` (``--top-k`` for ``top_k``),
    for ``--signature NAME``: its type from the input's dtype, one value for a scalar and one
    or more for a vector."""
    from tasks.runner.task import SIGNATURE_INPUT_PREFIX

    for name, (spec, signatures) in signature_flags(task, parser).items():
        parser.add_argument("--" + name.replace("_", "-"), dest=SIGNATURE_INPUT_PREFIX + name,
                            type=_flag_value(spec.dtype), nargs="+" if spec.shape.rank else None,
                            metavar=name.upper(),
                            help=f"input {name!r} of --signature {'/'.join(signatures)} "
                                 f"({spec.dtype.name})")


def signature_inputs(task, args, loaded, inputs: dict) -> dict:
    """``inputs`` for ``args.signature``: the derived flags' values added, what the signature
    does not take left out.

    Raises:
        errors.InputError: A flag of another signature, or an input no flag gave.
    """
    import tensorflow as tf

    from tasks.runner.task import SIGNATURE_INPUT_PREFIX

    given = {k[len(SIGNATURE_INPUT_PREFIX):]: v for k, v in vars(args).items()
             if k.startswith(SIGNATURE_INPUT_PREFIX) and v is not None}
    if not given and args.signature == "serving_default":
        return inputs  # what predict_inputs makes is serving_default's input
    specs = loaded.input_specs(args.signature)
    flag = lambda name: "--" + name.replace("_", "-")  # noqa: E731
    wrong = sorted(flag(n) for n in given if n not in specs)
    if wrong:
        raise errors.InputError(f"{', '.join(wrong)}: not inputs of --signature "
                                f"{args.signature!r}, which takes {sorted(specs)}")
    out = {k: v for k, v in inputs.items() if k in specs}
    out.update({name: tf.constant(value, specs[name].dtype) for name, value in given.items()})
    missing = sorted(flag(n) for n in specs if n not in out)
    if missing:
        raise errors.InputError(f"--signature {args.signature!r} needs {', '.join(missing)}")
    return out
