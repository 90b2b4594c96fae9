"""``tune``: Keras Tuner over a task's search space; resumable; writes ``best.json``.

Distributed tuning uses Keras Tuner's own environment variables (see README): start one chief
with ``KERASTUNER_TUNER_ID=chief`` and workers with ``KERASTUNER_TUNER_ID=tuner0, tuner1, ...``,
all with the same ``KERASTUNER_ORACLE_IP``/``KERASTUNER_ORACLE_PORT`` and TUNE_DIR.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import keras

from tasks.runner import config as config_lib
from tasks.runner import environment, training
from tasks.runner import run_dir as rd

TUNERS = ("random", "hyperband", "bayesian")


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


def tune(task, config, tune_dir: str, *, tuner_kind: str = "random", max_trials: int = 10,
         verbose: int = 1) -> dict:
    """Searches ``task.search_space`` and returns ``{"hparams": ..., "score": ..., ...}``."""
    import keras_tuner as kt

    environment.set_seeds(config.seed)
    environment.configure_precision(config.mixed_precision)
    splits = task.load_splits(config)
    assets = os.path.join(tune_dir, rd.ASSETS)
    # Vocabularies do not depend on the searched hyperparameters: fit once, reuse on resume.
    if os.path.isdir(assets):
        preprocessor = task.load_preprocessor(config, assets)
    else:
        preprocessor = task.fit_preprocessor(config, splits)
        preprocessor.save(assets)
    train_ds = task.make_dataset(config, preprocessor, splits.train, training=True)
    val_ds = task.make_dataset(config, preprocessor, splits.validation, training=False)

    class HyperModel(kt.HyperModel):
        def build(self, hp):
            trial_config = config_lib.override(config, task.search_space(hp), origin="search")
            model = task.build_model(trial_config, preprocessor)
            training.compile_model(task, trial_config, model)
            return model

    monitor = training._val(task.monitor)
    objective = kt.Objective(monitor, direction=task.monitor_mode)
    tuner = _make_tuner(tuner_kind, HyperModel(), objective, max_trials, config.epochs, tune_dir,
                        task.name, config.seed)
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    tuner.search(train_ds, validation_data=val_ds, epochs=config.epochs, verbose=verbose,
                 shuffle=False,
                 callbacks=[*training.epoch_evaluation(task, config, preprocessor,
                                                       splits.validation),
                            keras.callbacks.EarlyStopping(monitor=monitor, mode=task.monitor_mode,
                                                          patience=config.patience)])
    trials = tuner.oracle.get_best_trials(num_trials=max(1, len(tuner.oracle.trials)))
    trials = [t for t in trials if t.score is not None]
    if not trials:
        raise RuntimeError(f"no trial finished in {tune_dir}; see the log above")
    print_trials(trials, monitor)
    best = trials[0]
    hparams = config_lib.override(config, task.search_space(best.hyperparameters),
                                  origin="best trial")
    changed = {k: getattr(hparams, k) for k in task.search_space(best.hyperparameters)}
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
