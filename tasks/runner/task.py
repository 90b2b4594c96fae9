"""The contract between one application module and the shared runner.

A task module (``tasks/sentiment.py`` ...) defines a frozen config dataclass (subclass of
:class:`tasks.runner.config.TaskConfig`) and one :class:`Task` subclass, then ends with::

    if __name__ == "__main__":
        raise SystemExit(main(SentimentTask()))

The runner owns everything that is the same for every task: command line, config overrides,
seeds, mixed precision, distribution strategy, run directory, compile (Adam + clipnorm), callbacks
(early stopping, best checkpoint, BackupAndRestore, TensorBoard, NaN stop), history and plots,
Keras Tuner, and the atomic SavedModel export with warm-up requests and fresh-process validation.
The task adds only what is specific to it: its data, preprocessing, model, metrics, serving
function and search space.

Prediction goes through the serving function for both a run directory and an export, so what
``predict`` prints is exactly what TF Serving would answer.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Mapping

import tensorflow as tf

#: ``predict`` flags that belong to the runner, not to a task's :class:`PredictRequest` options.
RUNNER_PREDICT_FLAGS = ("command", "model", "inputs", "input_file", "json", "signature")
#: ``dest`` prefix of the ``predict`` flags derived from a signature's inputs (runner-owned).
SIGNATURE_INPUT_PREFIX = "signature_input__"


@dataclasses.dataclass(frozen=True)
class PredictRequest:
    """What ``predict`` (and a generator's ``generate``) asks of a task, instead of argparse's
    Namespace.

    Attributes:
        texts: The raw inputs given (positional arguments or ``--input-file`` lines); blank
            ones are left out (see :meth:`Task.empty_result`).
        json: The caller prints JSON lines itself: print nothing for a person.
        input_positions: When set, the position of each of ``texts`` among all inputs.
        options: The task's own flags (``add_predict_arguments``), by argparse ``dest``.
    """

    texts: tuple[str, ...] = ()
    json: bool = False
    input_positions: tuple[int, ...] | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def option(self, name: str, default: Any = None) -> Any:
        """The value of the task flag ``name`` (its ``dest``), or ``default`` when absent."""
        return self.options.get(name, default)

    def replace(self, **changes) -> "PredictRequest":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_args(cls, args: argparse.Namespace, texts=()) -> "PredictRequest":
        """The request of a parsed command line: the runner's flags set aside."""
        values = vars(args)
        return cls(texts=tuple(texts), json=bool(values.get("json", False)),
                   options={k: v for k, v in values.items() if k not in RUNNER_PREDICT_FLAGS
                            and not k.startswith(SIGNATURE_INPUT_PREFIX)})


class Preprocessor(tf.Module):
    """Whatever a task fits on the training split (vocabularies, label names, scalers): ONE
    trackable object that is fitted, saved in the run directory, loaded back and exported.

    A ``tf.Module``: its vocabularies (:mod:`pipelines.vocab` modules, whose lookup tables are
    tracked) are attributes, and its in-graph methods (token ids, decoding, label names) are
    what the task's datasets and serving module call. The serving module holds the preprocessor
    itself (``self.preprocessor = preprocessor``) and wraps none of its tables again, so the
    export carries each table once.

    Subclasses call ``super().__init__()`` and implement :meth:`save` (plain files under
    ``assets_dir``, so a run directory can be reloaded identically and read by hand) and
    :meth:`load`. Python values that are not TensorFlow state (settings, name lists) are stored
    with ``self._no_dependency(value)``, so ``tf.Module`` does not wrap them for tracking.

    :meth:`track_assets` (called by the runner after ``save`` and after ``load``) makes those
    files ``tf.saved_model.Asset`` s of the preprocessor: the export's ``assets/`` folder holds
    the same vocabulary files as the run directory's ``assets/``.
    """

    def save(self, assets_dir: str) -> None:
        """Must: writes the fitted state as plain files into ``assets_dir`` (created)."""
        raise NotImplementedError

    @classmethod
    def load(cls, assets_dir: str, config: Any) -> "Preprocessor":
        """Must: the inverse of :meth:`save` (same ids, same outputs)."""
        raise NotImplementedError

    def track_assets(self, assets_dir: str) -> "Preprocessor":
        """Tracks every file under ``assets_dir`` (what :meth:`save` wrote) as a SavedModel
        asset of this module, in ``self.asset_files``; returns ``self``.

        An export copies them into its ``assets/`` folder (by file name; a clash gets a
        numbered suffix), and TF Serving's loader resolves them there.
        """
        paths = sorted(os.path.abspath(os.path.join(folder, name))
                       for folder, _, names in os.walk(assets_dir)
                       for name in names if not name.startswith("."))
        self.asset_files = [tf.saved_model.Asset(path) for path in paths]
        return self

    def asset_paths(self) -> list[str]:
        """The files :meth:`track_assets` tracks (empty before ``save`` or ``load``)."""
        return [a.asset_path.numpy().decode("utf-8") for a in getattr(self, "asset_files", [])]


class Task:
    """Base class of an application. Override the methods marked "must"."""

    #: Short name: module ``tasks.<name>``, default run dir ``runs/<name>``, export
    #: ``saved_models/<name>``.
    name: str = ""
    #: The task's frozen config dataclass (a TaskConfig subclass).
    config_class: type = None  # type: ignore[assignment]
    #: The task's Preprocessor subclass; the default ``load_preprocessor`` calls its ``load``.
    preprocessor_class: type = None  # type: ignore[assignment]
    #: The class of what ``serving_module`` returns: its ``signature_names`` and the
    #: ``input_signature`` of each of those ``tf.function`` s are the export's signatures, read
    #: by :meth:`serving_signatures` without building anything (``predict --signature`` flags).
    serving_class: type = None  # type: ignore[assignment]
    #: Validation metric for early stopping / best checkpoint, and its direction.
    monitor: str = "val_loss"
    monitor_mode: str = "min"
    #: Config overrides for `make demo`: a run of a minute or two on the embedded default data.
    demo_overrides: dict = {}
    #: Raw inputs the demo sends to the export (same form as ``predict_inputs``'s result).
    demo_inputs: dict = {}
    #: Position in task listings and ``make demo`` (then by name).
    order: int = 100

    # ---- data -------------------------------------------------------------------------
    def load_splits(self, config, evaluation: bool = False) -> Any:
        """Must: return ``pipelines.sources.Splits`` for ``config.data`` (name or path).

        ``evaluation=True`` (``evaluate --data``; pass it on to ``sources.load``): a single
        file is not split but evaluated whole, and a corpus directory needs no training file.
        """
        raise NotImplementedError

    # ---- preprocessing ------------------------------------------------------------------
    def fit_preprocessor(self, config, splits) -> Preprocessor:
        """Must: fit vocabularies etc. on ``splits.train`` only."""
        raise NotImplementedError

    def load_preprocessor(self, config, assets_dir: str) -> Preprocessor:
        """The inverse of ``Preprocessor.save``: ``preprocessor_class.load(assets_dir, config)``
        with its files tracked as assets (``track_assets``); override only when loading needs
        more than that (and keep the ``track_assets`` call)."""
        if self.preprocessor_class is None:
            raise NotImplementedError(f"{type(self).__name__} sets no preprocessor_class and "
                                      "does not override load_preprocessor")
        return self.preprocessor_class.load(assets_dir, config).track_assets(assets_dir)

    def make_dataset(self, config, preprocessor, split: tf.data.Dataset, training: bool):
        """Must: batched ``(inputs, targets)`` dataset ready for ``model.fit``.

        ``training=True`` shuffles (seeded) and may drop incomplete windows; evaluation order is
        deterministic.
        """
        raise NotImplementedError

    # ---- model ------------------------------------------------------------------------
    def build_model(self, config, preprocessor):
        """Must: an uncompiled ``keras.Model`` built from ``models/`` (float32 outputs)."""
        raise NotImplementedError

    def training_callbacks(self, config, run_dir: str) -> list:
        """Extra Keras callbacks for ``train`` (e.g. checkpoint averaging), run before the
        TensorBoard and backup callbacks. ``run_dir``: where the run's files go (a private
        temporary directory on multi-worker non-chief workers). Default: none."""
        return []

    def make_optimizer(self, config, **kwargs):
        """The optimizer ``train`` compiles with; ``kwargs``: the runner's Adam settings
        (learning rate, clipping, EMA). Default: ``models.optimizers.Adam(**kwargs)``; a task
        may return a subclass (e.g. per-layer learning rates when fine-tuning)."""
        from models.optimizers import Adam

        return Adam(**kwargs)

    def compile_kwargs(self, config) -> dict:
        """Must: ``loss`` and ``metrics`` for ``model.compile``; the runner adds the optimizer."""
        raise NotImplementedError

    # ---- evaluation -------------------------------------------------------------------
    def evaluate(self, config, model, preprocessor, split: tf.data.Dataset,
                 plots_dir: str | None = None) -> dict:
        """Task metrics on one split as a flat JSON-able dict; must include ``examples``.

        Default: ``model.evaluate`` on ``make_dataset``. Tasks add their own metrics (F1, BLEU,
        ...) and may write figures (confusion matrix, ...) into ``plots_dir``.
        """
        ds = self.make_dataset(config, preprocessor, split, training=False)
        result = model.evaluate(ds, verbose=0, return_dict=True)
        result = {k: float(v) for k, v in result.items()}
        result["examples"] = int(sum(1 for _ in split))
        return result

    def epoch_metrics(self, config, preprocessor, split: tf.data.Dataset):
        """Optional: ``model -> {name: float}`` evaluated on ``split`` (validation) after every
        epoch, logged as ``val_<name>``; ``monitor`` may name one of them. None (default): Keras'
        compiled metrics only."""
        return None

    def print_metrics(self, metrics: Mapping[str, Any]) -> None:
        """Readable form of ``evaluate``'s result (the runner prints the JSON line after it)."""
        width = max(len(k) for k in metrics) if metrics else 0
        for key, value in metrics.items():
            if isinstance(value, float):
                print(f"  {key:<{width}}  {value:.4f}")
            elif not isinstance(value, (dict, list)):
                print(f"  {key:<{width}}  {value}")

    # ---- serving / prediction -----------------------------------------------------------
    def serving_module(self, config, model, preprocessor) -> tf.Module:
        """Must: a ``tf.Module`` whose attribute ``serving_default`` is a ``tf.function`` with an
        ``input_signature`` of RAW named inputs (e.g. ``text``: string [batch]) returning a dict
        of named outputs (float32 / string / int32). Extra signatures: list their attribute names
        in ``module.signature_names`` (a tuple), ``serving_default`` first.

        Preprocessing (vocabulary lookup, tokenisation) and post-processing (label names, decoding
        loops) happen inside these functions, so no project code is needed to serve the export.
        Keep the model and preprocessor layers as attributes of the module so they are tracked.
        """
        raise NotImplementedError

    def serving_signatures(self) -> dict[str, tuple]:
        """``{signature: (tf.TensorSpec, ...)}``, ``serving_default`` first: the named inputs of
        each signature, read from :attr:`serving_class` (no model or data needed). A task that
        sets no ``serving_class`` falls back to its warm-up requests' names, dtypes and ranks."""
        if self.serving_class is not None:
            names = getattr(self.serving_class, "signature_names", ("serving_default",))
            return {name: tuple(getattr(self.serving_class, name).input_signature)
                    for name in names}
        import numpy as np

        specs = {}
        for name, inputs in self.warmup_requests(self.config_class()).items():
            arrays = {k: np.asarray(v) for k, v in inputs.items()}
            specs[name] = tuple(tf.TensorSpec(
                [None] * a.ndim, tf.string if a.dtype.kind in "OSU" else tf.as_dtype(a.dtype),
                name=k) for k, a in arrays.items())
        return specs

    def warmup_inputs(self, config) -> dict[str, Any]:
        """Must: raw example inputs for ``serving_default`` (numpy arrays or python lists, with a
        batch dimension where the signature has one). Used for TF Serving warm-up requests and to
        validate the export in a fresh process.
        """
        raise NotImplementedError

    def warmup_requests(self, config) -> dict[str, dict[str, Any]]:
        """``{signature: raw inputs}``: one TF Serving warm-up request per signature, each also
        checked through both loaders in a fresh process, so each must be DETERMINISTIC.
        Default: ``serving_default`` with :meth:`warmup_inputs`; tasks with more signatures add
        theirs."""
        return {"serving_default": self.warmup_inputs(config)}

    def add_predict_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Extra ``predict`` flags (they reach the task as ``request.option(dest)``). The runner
        already adds ``--model``, positional ``inputs``, ``--input-file``, ``--json``,
        ``--signature`` and a flag per input of the other signatures that these flags do not
        give (:meth:`serving_signatures` names them)."""

    def predict_inputs(self, config, request: PredictRequest) -> dict[str, Any]:
        """Raw inputs for ``serving_default`` built from ``request`` (default: ``text``, its
        texts).

        Raises:
            tasks.runner.errors.InputError: A bad flag value or input (naming it).
        """
        return {"text": tf.constant(list(request.texts), dtype=tf.string)}

    def empty_result(self, config, text: str) -> dict | None:
        """The result for a blank input (empty or only whitespace), or None.

        A blank input is not sent to the model (a label or tags for no text would be made
        up): ``predict`` answers it with this dict in the input's position, so outputs stay
        aligned with inputs. None: the task takes blank inputs like any other (a generator's
        empty prompt). Tasks that answer blanks here also need at least one input.
        """
        return {"text": text, "empty": True}

    def format_prediction(self, config, result: Mapping[str, Any]) -> str:
        """One result of ``show_predictions`` as text for a person (default: its JSON)."""
        import json

        return json.dumps(result, ensure_ascii=False, default=float)

    def show_predictions(self, config, request: PredictRequest, inputs: Mapping[str, Any],
                         outputs: Mapping[str, Any]) -> list[dict]:
        """Must: print the serving outputs for a person (unless ``request.json``) and return
        one JSON-able dict per input (printed instead when ``--json``).

        ``request.input_positions``, when set, holds the position of each of ``inputs`` among
        all inputs (blank inputs are left out of ``inputs``, see :meth:`empty_result`).
        """
        raise NotImplementedError

    # ---- tuning ------------------------------------------------------------------------
    def search_space(self, hp) -> dict:
        """Must: config overrides drawn from a ``keras_tuner.HyperParameters`` (cell type including
        ``peephole_lstm``, units, layers, dropout, learning rate, embedding size, ...)."""
        raise NotImplementedError

    def tuning_space(self, config, hp) -> dict:
        """What ``tune`` searches for the base ``config``: :meth:`search_space` unless a setting
        fixes some of it (e.g. sizes that come from a pretrained model must not be searched)."""
        return self.search_space(hp)

    def tuning_callbacks(self, config, trial_dir: str) -> list:
        """Callbacks every ``tune`` trial needs to train as ``train`` would (e.g. gradual
        unfreezing); ``trial_dir``: the trial's own directory. Default: none."""
        return []

    # ---- extra sub-commands --------------------------------------------------------------
    def extra_commands(self) -> dict:
        """Optional: ``{name: (add_arguments(parser), run(task, args) -> int)}`` for commands beyond
        train/evaluate/predict/tune/export (e.g. ``score`` for the character language model)."""
        return {}
