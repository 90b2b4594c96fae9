"""One frozen config dataclass per task, overridable from a file, ``--set`` and tuner results.

Precedence (later wins): dataclass defaults < ``--config FILE`` (JSON or YAML) < ``--hparams
best.json`` < ``--set key=value`` < explicit flags (``--epochs``, ``--data``, ``--seed`` ...).

Every value is checked before any data is loaded (:meth:`TaskConfig.validate`: positive
sizes, rates in range, known names; task configs add their own rules in ``check``); every
problem is a :class:`tasks.runner.errors.ConfigError` naming the key, the value and where it
was set.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from typing import Any, Iterable, Mapping

from models.layers.stacked import CELLS
from models.schedules import SCHEDULES
from tasks.runner.environment import JIT_MODES, PRECISION_POLICIES, STRATEGIES
from tasks.runner.errors import ConfigError

PRECISION_MODES = ("auto", *PRECISION_POLICIES)


class Checks:
    """Collects the problems of one config; :meth:`TaskConfig.check` fills it.

    Every helper names the field, its value and the rule, e.g. ``epochs=0 (must be >= 1)``.
    """

    def __init__(self, config):
        self.config = config
        self.problems: list[tuple[str, str]] = []

    def require(self, name: str, ok: bool, rule: str) -> None:
        """Records ``name=value (rule)`` unless ``ok``."""
        if not ok:
            self.problems.append((name, f"{name}={getattr(self.config, name)!r} ({rule})"))

    def _number(self, name: str) -> float | None:
        value = getattr(self.config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.require(name, False, "must be a number")
            return None
        if not math.isfinite(value):
            self.require(name, False, "must be finite")
            return None
        return value

    def at_least(self, low: float, *names: str) -> None:
        """Each of ``names`` is a finite number >= ``low``."""
        for name in names:
            value = self._number(name)
            if value is not None:
                self.require(name, value >= low, f"must be >= {low}")

    def positive(self, *names: str) -> None:
        """Each of ``names`` is a finite number > 0."""
        for name in names:
            value = self._number(name)
            if value is not None:
                self.require(name, value > 0, "must be > 0")

    def fraction(self, *names: str, high_open: bool = True) -> None:
        """Each of ``names`` is in [0, 1) (``high_open``) or [0, 1]."""
        for name in names:
            value = self._number(name)
            if value is not None:
                ok = 0 <= value < 1 if high_open else 0 <= value <= 1
                self.require(name, ok, "must be in [0, 1)" if high_open else "must be in [0, 1]")

    def one_of(self, **choices: Iterable) -> None:
        """Each keyword's field is one of its values: ``one_of(cell=CELLS, unit=UNITS)``."""
        for name, allowed in choices.items():
            allowed = tuple(allowed)
            self.require(name, getattr(self.config, name) in allowed,
                         "must be one of " + ", ".join(repr(c) for c in allowed))


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
    lr_schedule: str = "constant"  # constant|slanted_triangular (ULMFiT; peak = learning_rate)
    max_examples: int = 0          # 0 = all; caps the training split (validation is capped at 1/4)
    # Streaming data (pipelines.streaming): an on-disk cache of the encoded data ("" = none:
    # in-memory sources are cached in memory, streamed ones re-read), the training examples
    # vocabularies are fitted on (0 = all), and a cap on steps per epoch (0 = one full pass).
    cache: str = ""
    vocab_max_examples: int = 0
    steps_per_epoch: int = 0
    mixed_precision: str = "auto"  # auto|off|float16|bfloat16
    strategy: str = "auto"         # auto|default|mirrored|multiworker
    logical_devices: int = 0       # >1: split the CPU so `mirrored` has that many replicas
    jit_compile: str = "auto"      # auto|on|off: XLA for the train step (auto: when a probe wins)
    # Shared model knobs (the search spaces draw on these).
    cell: str = "lstm"             # lstm|peephole_lstm|gru|simple_rnn
    units: int = 64
    num_layers: int = 1
    dropout: float = 0.2
    recurrent_dropout: float = 0.0
    embedding_dim: int = 64
    # Serving: the most rows one request may hold (more: InvalidArgumentError naming the input).
    max_batch: int = 1024

    def check(self, checks: Checks) -> None:
        """Adds this config's rules to ``checks``; task configs extend it (call ``super``)."""
        checks.at_least(1, "epochs", "batch_size", "units", "num_layers", "embedding_dim",
                        "max_batch")
        checks.at_least(0, "patience", "lr_patience", "max_examples", "clipnorm",
                        "logical_devices", "vocab_max_examples", "steps_per_epoch")
        checks.require("seed", isinstance(self.seed, int) and 0 <= self.seed < 2 ** 32,
                       "must be an int in [0, 2**32)")
        checks.positive("learning_rate")
        checks.fraction("ema_momentum", "dropout", "recurrent_dropout")
        checks.one_of(mixed_precision=PRECISION_MODES, strategy=STRATEGIES, cell=CELLS,
                      jit_compile=JIT_MODES, lr_schedule=SCHEDULES)
        # ReduceLROnPlateau assigns a float rate, which a schedule does not take.
        checks.require("lr_patience", self.lr_patience == 0 or self.lr_schedule == "constant",
                       f"must be 0 with lr_schedule={self.lr_schedule!r}")

    def validate(self, origins: Mapping[str, str] | None = None) -> "TaskConfig":
        """Returns ``self`` when every value is valid.

        Args:
            origins: Where each key was last set (a file, ``--set``, a flag), named in the error.

        Raises:
            ConfigError: One line listing every invalid value, its origin and its rule.
        """
        checks = Checks(self)
        self.check(checks)
        if checks.problems:
            origins = origins or {}
            parts = [text + (f" from {origins[name]}" if name in origins else "")
                     for name, text in checks.problems]
            raise ConfigError(f"invalid {type(self).__name__}: " + "; ".join(parts))
        return self


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
        raise ConfigError(f"{key}={value!r}: " + "; ".join(errors))
    if origin in (tuple, list):
        if isinstance(value, str):
            text = value.strip()
            try:
                items = (json.loads(text) if text.startswith("[")
                         else [v for v in text.split(",") if v])
            except json.JSONDecodeError as err:
                raise ConfigError(f"{key}={value!r} is not a JSON list ({err.msg})") from None
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ConfigError(f"{key}={value!r} is not a list")
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
        raise ConfigError(f"{key}={value!r} is not a boolean (true/false)")
    if annotation in (int, float, str):
        try:
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            if annotation is not str and isinstance(value, bool):
                raise ValueError  # YAML `epochs: true` is a mistake, not 1
            return annotation(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{key}={value!r} is not a valid {annotation.__name__}") from None
    return value


def override(config, values: Mapping[str, Any], origin: str = "override", *,
             validate: bool = False):
    """Returns ``config`` with ``values`` applied.

    Args:
        config: A frozen config dataclass.
        values: ``{key: value}``; strings (``--set``) are coerced to the field's type.
        origin: Where the values come from (a file, ``--set``), named in errors.
        validate: Also check every value of the result (:meth:`TaskConfig.validate`). Off by
            default: a caller applying several layers validates once at the end (the CLI),
            and ``training.train`` validates what it is given.

    Raises:
        ConfigError: An unknown key or a value of the wrong type (with ``validate``: or an
            invalid value).
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{origin}: unknown config key(s) {unknown} for {type(config).__name__}; "
            f"known keys: {sorted(fields)}")
    changes = {k: _coerce(v, hints[k], f"{origin}: {k}") for k, v in values.items()}
    config = dataclasses.replace(config, **changes)
    if validate and hasattr(config, "validate"):
        config.validate({k: origin for k in changes})
    return config


def parse_set_arguments(items: list[str] | None) -> dict[str, str]:
    """``["units=128", "cell=gru"]`` -> ``{"units": "128", "cell": "gru"}``."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def read_config_file(path: str) -> dict:
    """Reads a JSON or YAML mapping of config overrides.

    Raises:
        ConfigError: A missing or unreadable file, a syntax error (with its line and column)
            or a document that is not a mapping.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}" if not os.path.exists(path)
                          else f"config file {path} is not a file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {err.start})") from None
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"{path}:{where} invalid YAML ({problem})") from None
        data = {} if data is None else data
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: line {err.lineno}, column {err.colno}: invalid JSON "
                              f"({err.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got "
                          f"{type(data).__name__}")
    # best.json from `tune` nests the values under "hparams"
    data = data.get("hparams", data)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: 'hparams' must be a mapping, got {type(data).__name__}")
    return dict(data)


def to_json(config) -> str:
    return json.dumps(dataclasses.asdict(config), indent=2, sort_keys=True)


def from_json_file(config_class, path: str):
    """Loads a run directory's config.json back into ``config_class`` (extra keys rejected).

    Not validated: the values are the ones the run was trained with.
    """
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    return override(config_class(), values, origin=path, validate=False)
