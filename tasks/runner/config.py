"""One frozen config dataclass per task, overridable from a file, ``--set`` and tuner results.

Precedence (later wins): dataclass defaults < ``--config FILE`` (JSON or YAML) < ``--hparams
best.json`` < ``--set key=value`` < explicit flags (``--epochs``, ``--data``, ``--seed`` ...).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from typing import Any, Mapping


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Fields every task shares. Task configs subclass this and add their own fields."""

    data: str = ""                 # source name or path; "" = the task's embedded default
    seed: int = 1337
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    clipnorm: float = 1.0
    ema_momentum: float = 0.0      # >0: validate, checkpoint and export an EMA of the weights
    patience: int = 3              # early stopping on the task's monitor metric
    lr_patience: int = 0           # >0: halve the learning rate after this many flat epochs
    max_examples: int = 0          # 0 = all; caps the training split (validation is capped at 1/4)
    mixed_precision: str = "auto"  # auto|off|float16|bfloat16
    strategy: str = "auto"         # auto|default|mirrored|multiworker
    logical_devices: int = 0       # >1: split the CPU so `mirrored` has that many replicas
    # Shared model knobs (the search spaces draw on these).
    cell: str = "lstm"             # lstm|peephole_lstm|gru|simple_rnn
    units: int = 64
    num_layers: int = 1
    dropout: float = 0.2
    recurrent_dropout: float = 0.0
    embedding_dim: int = 64


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Turns a string (from ``--set``) or JSON value into the field's declared type."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | vars(types) | {"list": list, "tuple": tuple})
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(f"{key}={value!r}: " + "; ".join(errors))
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            items = json.loads(text) if text.startswith("[") else [v for v in text.split(",") if v]
        else:
            items = list(value)
        inner = args[0] if args else str
        out = [_coerce(item, inner, key) for item in items]
        return tuple(out) if origin is tuple else out
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{key}={value!r} is not a boolean (true/false)")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return annotation(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{key}={value!r} is not a valid {annotation.__name__}") from None
    return value


def override(config, values: Mapping[str, Any], origin: str = "override"):
    """Returns ``config`` with ``values`` applied; unknown keys raise ValueError naming them."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(
            f"{origin}: unknown config key(s) {unknown} for {type(config).__name__}; "
            f"known keys: {sorted(fields)}")
    changes = {k: _coerce(v, hints[k], f"{origin}: {k}") for k, v in values.items()}
    return dataclasses.replace(config, **changes)


def parse_set_arguments(items: list[str] | None) -> dict[str, str]:
    """``["units=128", "cell=gru"]`` -> ``{"units": "128", "cell": "gru"}``."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def read_config_file(path: str) -> dict:
    """Reads a JSON or YAML mapping of config overrides."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith((".yaml", ".yml")):
        import yaml

        data = yaml.safe_load(text) or {}
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    # best.json from `tune` nests the values under "hparams"
    return dict(data.get("hparams", data))


def to_json(config) -> str:
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)


def from_json_file(config_class, path: str):
    """Loads a run directory's config.json back into ``config_class`` (extra keys rejected)."""
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    return override(config_class(), values, origin=path)
