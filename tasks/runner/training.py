"""``train``: config -> data -> preprocessor -> model under strategy/precision -> fit -> RUN_DIR."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import warnings

import keras

from models.optimizers import Adam
from tasks.runner import callbacks as cb
from tasks.runner import config as config_lib
from tasks.runner import environment, plots
from tasks.runner import run_dir as rd


def compile_model(task, config, model) -> None:
    """Adam with gradient clipping (and an exponential moving average of the weights when
    ``ema_momentum`` > 0); Keras adds loss scaling itself under ``mixed_float16``."""
    if not 0.0 <= config.ema_momentum < 1.0:
        raise ValueError(f"ema_momentum must be in [0, 1), got {config.ema_momentum!r}")
    ema = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum else {}
    optimizer = Adam(learning_rate=config.learning_rate, clipnorm=config.clipnorm or None,
                     **ema)
    model.compile(optimizer=optimizer, **task.compile_kwargs(config))


def _check_resume(task, config, run_dir: str, overwrite: bool) -> bool:
    """Returns True when ``run_dir`` holds an interrupted run of the same config to resume."""
    if rd.is_unfinished(run_dir):
        saved = rd.load_config(task, run_dir)
        # epochs may grow on resume; everything else must match or the weights would not fit.
        diff = {k: (getattr(saved, k), getattr(config, k))
                for k in (f.name for f in dataclasses.fields(config))
                if k != "epochs" and getattr(saved, k) != getattr(config, k)}
        if diff:
            raise ValueError(f"{run_dir} holds an interrupted run with a different config "
                             f"(saved vs now: {diff}); resume with the same settings or choose "
                             f"another --output")
        return True
    if rd.is_finished(run_dir) or os.path.exists(rd.path(run_dir, rd.CONFIG)):
        if not overwrite:
            raise FileExistsError(f"{run_dir} already holds a run; choose another --output or "
                                  f"pass --overwrite to replace it")
        shutil.rmtree(run_dir)
    return False


def train(task, config, run_dir: str, *, overwrite: bool = False, verbose: int = 1,
          extra_callbacks=()) -> dict:
    """Trains ``task`` with ``config`` into ``run_dir`` and returns the validation metrics.

    Raises:
        cb.NanLossError: the loss became NaN/inf (the best checkpoint so far is kept).
    """
    config.validate()  # every value, before the run directory or the data is touched
    # Datasets of unknown length make Keras warn at the end of every first epoch.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    resuming = _check_resume(task, config, run_dir, overwrite)
    environment.set_seeds(config.seed)
    policy = environment.configure_precision(config.mixed_precision)
    strategy = environment.make_strategy(config.strategy)
    print(f"[{task.name}] policy={policy} replicas={strategy.num_replicas_in_sync} "
          f"run_dir={run_dir}{' (resuming)' if resuming else ''}")

    splits = task.load_splits(config)
    _print_data_report(splits)
    assets = rd.path(run_dir, rd.ASSETS)
    if resuming:
        preprocessor = task.load_preprocessor(config, assets)
    else:
        preprocessor = task.fit_preprocessor(config, splits)
        os.makedirs(run_dir, exist_ok=True)
        preprocessor.save(assets)
        rd.write_text_atomic(rd.path(run_dir, rd.CONFIG), config_lib.to_json(config))
    train_ds = task.make_dataset(config, preprocessor, splits.train, training=True)
    val_ds = task.make_dataset(config, preprocessor, splits.validation, training=False)

    with strategy.scope():
        model = task.build_model(config, preprocessor)
        compile_model(task, config, model)
    if verbose:
        model.summary(print_fn=lambda line, **_: print(line))

    nan_stop = cb.StopOnNaN()
    history_path = rd.path(run_dir, rd.HISTORY)
    callbacks = [
        *epoch_evaluation(task, config, preprocessor, splits.validation),  # first: adds to logs
        nan_stop,
        cb.HistoryWriter(history_path),
        cb.AtomicBestCheckpoint(rd.path(run_dir, rd.MODEL), _val(task.monitor),
                                task.monitor_mode, history_path),
        keras.callbacks.EarlyStopping(monitor=_val(task.monitor), mode=task.monitor_mode,
                                      patience=config.patience),
        *_lr_schedule(task, config),
        keras.callbacks.TensorBoard(rd.path(run_dir, rd.LOGS)),
        # Last, so the backup is taken after history/checkpoint of the epoch are on disk.
        keras.callbacks.BackupAndRestore(rd.path(run_dir, rd.BACKUP)),
        *extra_callbacks,
    ]
    # shuffle=False: the task's dataset already shuffles (seeded) before bucketing.
    model.fit(train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks,
              verbose=verbose, shuffle=False)
    if nan_stop.where:
        epoch, batch, loss = nan_stop.where
        shutil.rmtree(rd.path(run_dir, rd.BACKUP), ignore_errors=True)
        raise cb.NanLossError(
            f"training stopped: loss became {loss} at epoch {epoch}, batch {batch}. "
            f"Try a lower learning rate (--set learning_rate=...), a smaller clipnorm, or "
            f"--mixed-precision off. The best checkpoint before that is kept in {run_dir}.")
    if not os.path.exists(rd.path(run_dir, rd.MODEL)):
        raise RuntimeError(f"no checkpoint was saved in {run_dir}: the validation monitor "
                           f"{_val(task.monitor)} was never finite")

    with open(history_path, encoding="utf-8") as f:
        history = json.load(f)
    plots.training_curves(history, task.monitor, rd.path(run_dir, rd.PLOTS))
    # Evaluate the best checkpoint, not the last epoch's weights.
    best = keras.saving.load_model(rd.path(run_dir, rd.MODEL), compile=False)
    compile_model(task, config, best)
    metrics = task.evaluate(config, best, preprocessor, splits.validation,
                            plots_dir=rd.path(run_dir, rd.PLOTS))
    rd.write_json_atomic(rd.path(run_dir, "metrics.json"), {"validation": metrics})
    return metrics


def epoch_evaluation(task, config, preprocessor, split) -> list:
    """The callbacks that must run first at each epoch end: with ``ema_momentum``, the swap of
    the averaged weights into the model (so validation, the task's epoch metrics and the
    checkpoint all see them; the raw weights come back at the next epoch's start), then the
    task's own epoch metrics."""
    out = [cb.SwapEMAWeights()] if config.ema_momentum else []
    evaluate = task.epoch_metrics(config, preprocessor, split)
    return out + ([] if evaluate is None else [cb.EpochEvaluation(evaluate)])


def _lr_schedule(task, config) -> list:
    """Halves the learning rate when the validation monitor stalls for ``lr_patience`` epochs
    (off at 0), down to 1/64 of ``learning_rate``."""
    if config.lr_patience <= 0:
        return []
    return [keras.callbacks.ReduceLROnPlateau(monitor=_val(task.monitor), mode=task.monitor_mode,
                                              factor=0.5, patience=config.lr_patience,
                                              min_lr=config.learning_rate / 64, verbose=0)]


def _val(monitor: str) -> str:
    return monitor if monitor.startswith("val_") else f"val_{monitor}"


def _print_data_report(splits) -> None:
    try:
        from pipelines import sources

        print(sources.describe(splits))
    except (ImportError, AttributeError, NotImplementedError):
        print(f"data: {json.dumps(splits.info, default=str)[:500]}")
