"""``tune``: Keras Tuner over a task's search space; resumable; writes ``best.json``.

Distributed tuning uses Keras Tuner's own environment variables (see README): start one chief
with ``KERASTUNER_TUNER_ID=chief`` and workers with ``KERASTUNER_TUNER_ID=tuner0, tuner1, ...``,
all with the same ``KERASTUNER_ORACLE_IP``/``KERASTUNER_ORACLE_PORT`` and TUNE_DIR. The chief
serves the oracle (it trains nothing) and writes ``best.json`` once every trial is done; the
workers run the trials and print their results.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings

import keras

from tasks.runner import callbacks as cb
from tasks.runner import config as config_lib
from tasks.runner import environment, training
from tasks.runner import run_dir as rd

TUNERS = ("random", "hyperband", "bayesian")
TUNE_MARKER = "tune.json"


def _make_tuner(kind: str, hypermodel, objective, max_trials: int, epochs: int, directory: str,
                project: str, seed: int):
    import keras_tuner as kt

    common = dict(objective=objective, directory=directory, project_name=project, seed=seed,
                  overwrite=False)
    if kind == "random":
        return kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    if kind == "bayesian":
        return kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    if kind == "hyperband":
        # Hyperband sizes its brackets from max_epochs; max_trials does not apply to it.
        return kt.Hyperband(hypermodel, max_epochs=max(epochs, 2), factor=3, **common)
    raise ValueError(f"unknown tuner {kind!r}; choose one of {', '.join(TUNERS)}")


def _is_worker() -> bool:
    """A Keras Tuner worker: ``KERASTUNER_TUNER_ID`` set, but not to the chief."""
    tuner_id = os.environ.get("KERASTUNER_TUNER_ID", "")
    return bool(os.environ.get("KERASTUNER_ORACLE_IP")) and bool(tuner_id) and \
        "chief" not in tuner_id


def _check_tune_dir(task, config, tune_dir: str, tuner_kind: str, overwrite: bool) -> None:
    """A rerun resumes only the same search: the base config (and so the data, vocabulary
    and validation split the trials are scored on) and the tuner must match ``tune.json``."""
    record = _record(task, config, tuner_kind)
    marker = os.path.join(tune_dir, TUNE_MARKER)
    if os.path.isdir(tune_dir) and os.listdir(tune_dir):
        try:
            with open(marker, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError):
            saved = None
        if saved != record:
            if saved is None:
                what = (f"{tune_dir} is not empty and holds no {TUNE_MARKER} (not a search of "
                        f"this suite, or one made before base configs were recorded)")
            else:
                diff = {k: (saved["base_config"].get(k), v)
                        for k, v in record["base_config"].items()
                        if saved["base_config"].get(k) != v}
                if saved.get("tuner") != tuner_kind:
                    diff["tuner"] = (saved.get("tuner"), tuner_kind)
                what = f"{tune_dir} holds a search with another base config (saved vs now: {diff})"
            if not overwrite:
                raise FileExistsError(f"{what}; rerun with the same settings to resume it, "
                                      f"choose another --output, or pass --overwrite")
            ours = {rd.ASSETS, task.name, "best.json", TUNE_MARKER}
            if saved is None and not set(os.listdir(tune_dir)) <= ours:
                raise FileExistsError(f"{what}; refusing to delete it, even with --overwrite")
            shutil.rmtree(tune_dir)


def _record(task, config, tuner_kind: str) -> dict:
    return {"suite": rd.SUITE, "task": task.name, "tuner": tuner_kind,
            "base_config": json.loads(config_lib.to_json(config))}


def _wait_for_chief(task, config, tune_dir: str, tuner_kind: str) -> None:
    """A worker starts once the chief has checked TUNE_DIR, written the vocabularies every trial
    uses, and recorded the same search."""
    record, marker = _record(task, config, tuner_kind), os.path.join(tune_dir, TUNE_MARKER)
    deadline = time.monotonic() + float(os.environ.get("RECURRENT_SUITE_CHIEF_WAIT", "600"))
    while time.monotonic() < deadline:
        try:
            with open(marker, encoding="utf-8") as f:
                if json.load(f) == record:
                    return
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise FileNotFoundError(f"the tuning chief has not recorded this search in {marker}: start "
                            f"the chief with the same command and TUNE_DIR (a different base "
                            f"config or tuner is refused)")


def tune(task, config, tune_dir: str, *, tuner_kind: str = "random", max_trials: int = 10,
         verbose: int = 1, overwrite: bool = False) -> dict:
    """Searches ``task.search_space`` and returns ``{"hparams": ..., "score": ..., ...}``.

    Every trial trains as ``train`` would with the trial's config: its own datasets (searched
    data settings such as ``sequence_length`` or ``batch_size`` take effect), the task's epoch
    metrics, early stopping and the learning-rate schedule. Vocabularies are fitted once from
    the base config (search spaces do not search preprocessing settings).

    Distributed (Keras Tuner's chief/worker mode, see the module docstring): the chief serves
    the oracle, checks and records ``tune.json`` and, once every trial is done, writes
    ``best.json``; a worker runs trials, prints their results and returns
    ``{"trials": [...]}``.
    """
    import keras_tuner as kt

    worker = _is_worker()
    if worker:
        _wait_for_chief(task, config, tune_dir, tuner_kind)
    else:
        _check_tune_dir(task, config, tune_dir, tuner_kind, overwrite)
    environment.set_seeds(config.seed)
    environment.configure_precision(config.mixed_precision)
    splits = task.load_splits(config)
    assets = os.path.join(tune_dir, rd.ASSETS)
    if os.path.isdir(assets):  # a worker: the chief wrote them before tune.json
        preprocessor = task.load_preprocessor(config, assets)
    else:
        preprocessor = task.fit_preprocessor(config, splits)
        preprocessor.save(assets)
        preprocessor.track_assets(assets)
    if not worker:
        rd.write_json_atomic(os.path.join(tune_dir, TUNE_MARKER),
                             _record(task, config, tuner_kind))
    monitor = training._val(task.monitor)
    ran = []

    class HyperModel(kt.HyperModel):
        def build(self, hp):
            trial_config = config_lib.override(config, task.tuning_space(config, hp),
                                               origin="search")
            model = task.build_model(trial_config, preprocessor)
            training.compile_model(task, trial_config, model)
            return model

        def fit(self, hp, model, *args, callbacks=(), **kwargs):
            trial_config = config_lib.override(config, task.tuning_space(config, hp),
                                               origin="search")
            train_ds = task.make_dataset(trial_config, preprocessor, splits.train, training=True)
            val_ds = task.make_dataset(trial_config, preprocessor, splits.validation,
                                       training=False)
            trial = next((c.trial for c in callbacks if hasattr(c, "trial")), None)
            trial_dir = os.path.join(tune_dir, task.name,
                                     f"trial_{getattr(trial, 'trial_id', 'unknown')}")
            own = [*training.epoch_evaluation(task, trial_config, preprocessor,
                                              splits.validation),  # first: adds to logs
                   cb.StopOnNaN(),
                   keras.callbacks.EarlyStopping(monitor=monitor, mode=task.monitor_mode,
                                                 patience=trial_config.patience),
                   *training._lr_schedule(task, trial_config),
                   *task.tuning_callbacks(trial_config, trial_dir)]
            # Hyperband passes each bracket's epochs and initial_epoch.
            history = model.fit(train_ds, validation_data=val_ds,
                                epochs=kwargs.get("epochs", trial_config.epochs),
                                initial_epoch=kwargs.get("initial_epoch", 0),
                                callbacks=[*own, *callbacks], shuffle=False,
                                verbose=kwargs.get("verbose", verbose))
            values = [v for v in history.history.get(monitor, []) if v == v]
            best = (max if task.monitor_mode == "max" else min)(values) if values else None
            ran.append({"trial_id": getattr(trial, "trial_id", None), "score": best,
                        "hparams": dict(hp.values)})
            return history

    objective = kt.Objective(monitor, direction=task.monitor_mode)
    tuner = _make_tuner(tuner_kind, HyperModel(), objective, max_trials, config.epochs, tune_dir,
                        task.name, config.seed)
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    tuner.search(epochs=config.epochs, verbose=verbose)
    if worker:
        for entry in ran:
            score = "none" if entry["score"] is None else f"{entry['score']:.4f}"
            print(f"trial {entry['trial_id']}: {monitor}={score} {json.dumps(entry['hparams'])}")
        print(f"{os.environ['KERASTUNER_TUNER_ID']} ran {len(ran)} trial(s); the chief "
              f"writes {os.path.join(tune_dir, 'best.json')}")
        return {"trials": ran}
    trials = tuner.oracle.get_best_trials(num_trials=max(1, len(tuner.oracle.trials)))
    sign = -1.0 if task.monitor_mode == "max" else 1.0
    # Ties go to the earlier trial, so a rerun names the same best trial.
    trials = sorted((t for t in trials if t.score is not None),
                    key=lambda t: (sign * t.score, len(t.trial_id), t.trial_id))
    if not trials:
        raise RuntimeError(f"no trial finished in {tune_dir}; see the log above")
    print_trials(trials, monitor)
    best = trials[0]
    hparams = config_lib.override(config, task.tuning_space(config, best.hyperparameters),
                                  origin="best trial")
    changed = {k: getattr(hparams, k) for k in task.tuning_space(config, best.hyperparameters)}
    result = {"hparams": changed, "score": float(best.score), "objective": monitor,
              "trial_id": best.trial_id, "tuner": tuner_kind,
              "base_config": dataclasses.asdict(config)}
    rd.write_json_atomic(os.path.join(tune_dir, "best.json"), result)
    print(f"best trial {best.trial_id}: {monitor}={best.score:.4f}; wrote "
          f"{os.path.join(tune_dir, 'best.json')} (use: train --hparams that file)")
    return result


def print_trials(trials, monitor: str, limit: int = 10) -> None:
    """A table of the best trials, best first."""
    names = sorted({k for t in trials for k in t.hyperparameters.values})
    header = ["trial", monitor] + names
    rows = [[t.trial_id, f"{t.score:.4f}"] + [_short(t.hyperparameters.values.get(n))
                                               for n in names] for t in trials[:limit]]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for row in [header] + rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
