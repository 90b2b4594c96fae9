"""``train``: config -> data -> preprocessor -> model under strategy/precision -> fit -> RUN_DIR."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import warnings

import keras
import tensorflow as tf

from models import schedules
from models.optimizers import Adam  # noqa: F401 (tests and tools reach it as training.Adam)
from tasks.runner import callbacks as cb
from tasks.runner import config as config_lib
from tasks.runner import distributed, environment, plots
from tasks.runner import run_dir as rd
from tasks.runner.errors import RunDirError, TrainingError


class ResumeMismatch(RunDirError, ValueError):
    """An interrupted run in ``--output`` was trained with another config."""


def compile_model(task, config, model, jit_compile="auto", total_steps=None) -> None:
    """Adam with gradient clipping (and an exponential moving average of the weights when
    ``ema_momentum`` > 0); Keras adds loss scaling itself under ``mixed_float16``.
    ``jit_compile``: as ``model.compile`` (``train`` passes :func:`environment.choose_jit`'s).
    ``total_steps``: the run's training steps, which ``lr_schedule=slanted_triangular``
    needs (None: a constant rate, for a model compiled only to be evaluated)."""
    if not 0.0 <= config.ema_momentum < 1.0:
        raise ValueError(f"ema_momentum must be in [0, 1), got {config.ema_momentum!r}")
    ema = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum else {}
    rate = schedules.learning_rate(config.lr_schedule, config.learning_rate, total_steps)
    optimizer = task.make_optimizer(config, learning_rate=rate,
                                    clipnorm=config.clipnorm or None, **ema)
    model.compile(optimizer=optimizer, jit_compile=jit_compile, **task.compile_kwargs(config))


def _check_resume(task, config, run_dir: str, overwrite: bool) -> tuple[bool, str]:
    """Decides what ``train`` does with what ``run_dir`` holds; changes nothing on disk.

    Returns:
        ``(resuming, found)``: resume an interrupted run of the same config, or start anew over
        ``found`` (a :func:`run_dir.state`).
    """
    found = rd.state(run_dir)
    if found == "unfinished":
        saved = rd.load_config(task, run_dir)
        # epochs may grow on resume; everything else must match or the weights would not fit.
        diff = {k: (getattr(saved, k), getattr(config, k))
                for k in (f.name for f in dataclasses.fields(config))
                if k != "epochs" and getattr(saved, k) != getattr(config, k)}
        if diff:
            raise ResumeMismatch(f"{run_dir} holds an interrupted run with a different config "
                             f"(saved vs now: {diff}); resume with the same settings or choose "
                             f"another --output")
        return True, found
    if found == "foreign":
        raise FileExistsError(f"{run_dir} is not empty and is not a run directory of this suite "
                              f"(no {rd.MARKER}); refusing to write into it, even with "
                              f"--overwrite; choose another --output")
    if found == "finished" and not overwrite:
        raise FileExistsError(f"{run_dir} already holds a run; choose another --output or "
                              f"pass --overwrite to replace it")
    return False, found


def _start_run_dir(task, config, run_dir: str, found: str, preprocessor) -> None:
    """Chief only, after the new config and data passed every check: the old run (if
    ``--overwrite``) is renamed aside until the new run's first checkpoint, a run that stopped
    before its first checkpoint is started over, and the marker, config and assets are written."""
    if found == "finished":
        aside = rd.move_aside(run_dir)
        print(f"[{task.name}] the previous run is kept in {aside} until the first checkpoint")
    elif found == "unstarted":
        shutil.rmtree(run_dir)
    # The directory appears with its marker in it (a rename), so a process that looks at the
    # same --output meanwhile (another worker) never sees an unmarked directory.
    parent = os.path.dirname(os.path.abspath(run_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(run_dir))}.new-",
                               dir=parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # as os.makedirs would have made it
    rd.write_marker(staging, task.name, "started")
    os.replace(staging, run_dir)
    preprocessor.save(rd.path(run_dir, rd.ASSETS))
    preprocessor.track_assets(rd.path(run_dir, rd.ASSETS))  # the same object is exported
    rd.write_text_atomic(rd.path(run_dir, rd.CONFIG), config_lib.to_json(config))


def _first_checkpoint(task, run_dir: str):
    def done():
        rd.write_marker(run_dir, task.name, "training")
        rd.drop_aside(run_dir)
    return done


def _build(task, config, strategy, preprocessor, splits, peek: bool):
    """Datasets and the compiled model under ``strategy``; writes nothing. ``peek`` pulls one
    batch through the pipeline, so a bad batch size or sequence setting fails here."""
    train_ds = task.make_dataset(config, preprocessor, splits.train, training=True)
    val_ds = task.make_dataset(config, preprocessor, splits.validation, training=False)
    if distributed.is_multi_worker(strategy):
        train_ds = distributed.shard(train_ds, strategy)
        val_ds = distributed.shard(val_ds, strategy)
    total = None
    if config.lr_schedule != "constant":  # a schedule over the run's steps needs their count
        total = config.epochs * epoch_steps(task, config, preprocessor, splits, strategy,
                                            None)["train"]
    with strategy.scope():
        jit, why = environment.choose_jit(task, config, strategy, preprocessor, train_ds,
                                          _cardinality(splits.train))
        environment.set_seeds(config.seed)  # the same weights whether or not XLA was probed
        model = task.build_model(config, preprocessor)
        compile_model(task, config, model, jit_compile=jit, total_steps=total)
    environment.install_xla_fallback(model, task.name)
    print(f"[{task.name}] jit_compile={jit} ({why})")
    if peek:
        for _ in train_ds.take(1):
            pass
    return train_ds, val_ds, model


def train(task, config, run_dir: str, *, overwrite: bool = False, verbose: int = 1,
          extra_callbacks=()) -> dict:
    """Trains ``task`` with ``config`` into ``run_dir`` and returns the validation metrics.

    Under ``--strategy multiworker`` every process runs this with the same arguments; only the
    chief writes ``run_dir`` (workers write to a private temporary directory, removed at the
    end, and return ``{}``); ``overwrite`` is the chief's alone.

    Raises:
        cb.NanLossError: the loss became NaN/inf (the best checkpoint so far is kept).
        FileExistsError: ``run_dir`` holds a finished run (without ``overwrite``) or files that
            are not a run of this suite.
    """
    config.validate()  # every value, before the run directory or the data is touched
    # Datasets of unknown length make Keras warn at the end of every first epoch.
    warnings.filterwarnings("ignore", message="Your input ran out of data")
    # The strategy first: multi-worker collectives and logical CPUs configure the runtime.
    strategy = environment.make_strategy(config.strategy, config.logical_devices)
    role = distributed.role(strategy)
    environment.set_seeds(config.seed)
    policy = environment.configure_precision(config.mixed_precision, config)
    if role.chief:
        rd.restore_aside(run_dir)  # an earlier --overwrite that never reached a checkpoint
        resuming, found = _check_resume(task, config, run_dir, overwrite)
    else:
        resuming, found = rd.is_unfinished(run_dir), "worker"
        if resuming:
            _check_resume(task, config, run_dir, False)
    print(f"[{task.name}] policy={policy} ({environment.LAST_CHOICE}) "
          f"replicas={strategy.num_replicas_in_sync} role={role.name} run_dir={run_dir}"
          f"{f' (resuming after epoch {rd.backup_epoch(run_dir)})' if resuming else ''}")
    multi = distributed.is_multi_worker(strategy)
    splits = task.load_splits(config)
    _print_data_report(splits)
    assets = rd.path(run_dir, rd.ASSETS)
    preprocessor = built = None
    if role.chief:
        preprocessor = (task.load_preprocessor(config, assets) if resuming
                        else task.fit_preprocessor(config, splits))
        if not resuming:
            # Everything is checked before a previous run is touched (in multi-worker mode on a
            # local model: the distributed one is built by all workers together, below).
            built = _build(task, config, tf.distribute.get_strategy() if multi else strategy,
                           preprocessor, splits, peek=True)
    out_dir = run_dir if role.chief else tempfile.mkdtemp(prefix=f"{task.name}-{role.name}-")
    try:
        nan_stop = cb.StopOnNaN()
        try:
            if role.chief and not resuming:
                _start_run_dir(task, config, run_dir, found, preprocessor)
            if multi:
                # Workers use the chief's vocabularies (a data source need not be reproducible
                # across processes), written by now.
                distributed.barrier(strategy)
                if not role.chief:
                    preprocessor = task.load_preprocessor(config, assets)
                built = _build(task, config, strategy, preprocessor, splits, peek=False)
            elif built is None:
                built = _build(task, config, strategy, preprocessor, splits, peek=False)
            train_ds, val_ds, model = built
            if verbose:
                model.summary(print_fn=lambda line, **_: print(line))
            callbacks = _callbacks(task, config, preprocessor, splits, nan_stop, run_dir,
                                   out_dir, role.chief, strategy)
            steps = epoch_steps(task, config, preprocessor, splits, strategy,
                                run_dir if role.chief else None)
            # shuffle=False: the task's dataset already shuffles (seeded) before bucketing.
            # Known epoch lengths (progress bar N/N, ETA): Keras keeps its iterator across
            # epochs when given steps, so both datasets repeat and each epoch is one pass.
            model.fit(train_ds.repeat(), validation_data=val_ds.repeat(), epochs=config.epochs,
                      steps_per_epoch=steps["train"], validation_steps=steps["validation"],
                      callbacks=[*callbacks, *extra_callbacks], verbose=verbose, shuffle=False)
        except BaseException:
            if role.chief and not resuming and rd.state(run_dir) == "unstarted":
                # Nothing to resume: leave no half run (and bring back a replaced one).
                shutil.rmtree(run_dir, ignore_errors=True)
                rd.restore_aside(run_dir)
            raise
        if role.chief:
            try:
                return _finish(task, config, run_dir, nan_stop, preprocessor, splits)
            finally:
                distributed.barrier(strategy)
        # Workers wait for the chief to finish writing (a worker that exits first makes the
        # chief's runtime report it as crashed).
        distributed.barrier(strategy)
        if nan_stop.where:
            epoch, batch, loss = nan_stop.where
            raise cb.NanLossError(f"training stopped: loss became {loss} at epoch {epoch}, "
                                  f"batch {batch}; see the chief's message")
        print(f"[{task.name}] {role.name} done; the chief wrote {run_dir}")
        return {}
    finally:
        if not role.chief:
            shutil.rmtree(out_dir, ignore_errors=True)


STEPS_FILE = "steps.json"


def epoch_steps(task, config, preprocessor, splits, strategy, run_dir: str | None) -> dict:
    """Batches per epoch, ``{"train": n, "validation": m}``, as ``fit`` will read them.

    Counted once by a pass over fresh copies of the task's datasets (the copies' seeded
    shuffle starts where the training dataset's does, which stays untouched; with
    ``--set cache=DIR`` the pass also fills the cache), after the multi-worker filter, so the
    counts match what is fed. Kept in ``RUN_DIR/steps.json`` (chief only) and reused on resume
    while the settings and split sizes are the same. ``steps_per_epoch`` > 0 caps training.

    Raises:
        TrainingError: A split gives no batch at all.
    """
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k != "epochs"}
    key = json.dumps({"config": fields, "examples": splits.info.get("examples")},
                     sort_keys=True, default=str)
    saved = rd.path(run_dir, STEPS_FILE) if run_dir else None
    counts = None
    if saved and os.path.exists(saved):
        with open(saved, encoding="utf-8") as f:
            stored = json.load(f)
        counts = stored.get("counts") if stored.get("key") == key else None
    if counts is None:
        counts = {}
        for name, split, training in (("train", splits.train, True),
                                      ("validation", splits.validation, False)):
            ds = task.make_dataset(config, preprocessor, split, training=training)
            if distributed.is_multi_worker(strategy):
                ds = distributed.shard(ds, strategy)
            counts[name] = int(ds.reduce(tf.constant(0, tf.int64), lambda n, *_: n + 1))
            if counts[name] == 0:
                raise TrainingError(f"the {name} split gives no batch (batch_size="
                                    f"{config.batch_size}); use more data or a smaller batch")
        if saved:
            rd.write_json_atomic(saved, {"key": key, "counts": counts})
    steps = dict(counts)
    if config.steps_per_epoch:
        steps["train"] = min(steps["train"], config.steps_per_epoch)
    return steps


def _callbacks(task, config, preprocessor, splits, nan_stop, run_dir, out_dir, chief,
               strategy) -> list:
    history_path = rd.path(out_dir, rd.HISTORY)
    return [
        *epoch_evaluation(task, config, preprocessor, splits.validation, strategy),  # first
        nan_stop,
        cb.HistoryWriter(history_path),
        cb.AtomicBestCheckpoint(rd.path(out_dir, rd.MODEL), _val(task.monitor),
                                task.monitor_mode, history_path),
        keras.callbacks.EarlyStopping(monitor=_val(task.monitor), mode=task.monitor_mode,
                                      patience=config.patience),
        *_lr_schedule(task, config),
        *task.training_callbacks(config, out_dir),
        keras.callbacks.TensorBoard(rd.path(out_dir, rd.LOGS)),
        # Last, so the backup is taken after history/checkpoint of the epoch are on disk.
        cb.RunBackup(rd.path(run_dir, rd.BACKUP), rd.path(out_dir, rd.BACKUP),
                     on_first_backup=_first_checkpoint(task, run_dir) if chief else None),
    ]


def _finish(task, config, run_dir, nan_stop, preprocessor, splits) -> dict:
    """Chief, after ``fit``: marks the run finished, then plots and the best checkpoint's
    validation metrics."""
    if nan_stop.where:
        epoch, batch, loss = nan_stop.where
        shutil.rmtree(rd.path(run_dir, rd.BACKUP), ignore_errors=True)
        if os.path.exists(rd.path(run_dir, rd.MODEL)):
            rd.write_marker(run_dir, task.name, "finished", stopped="non-finite loss")
        raise cb.NanLossError(
            f"training stopped: loss became {loss} at epoch {epoch}, batch {batch}. "
            f"Try a lower learning rate (--set learning_rate=...), a smaller clipnorm, or "
            f"--mixed-precision off. The best checkpoint before that is kept in {run_dir}.")
    if not os.path.exists(rd.path(run_dir, rd.MODEL)):
        raise TrainingError(f"no checkpoint was saved in {run_dir}: the validation monitor "
                           f"{_val(task.monitor)} was never finite")
    rd.write_marker(run_dir, task.name, "finished")
    history_path = rd.path(run_dir, rd.HISTORY)
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


def epoch_evaluation(task, config, preprocessor, split, strategy=None) -> list:
    """The callbacks that must run first at each epoch end: with ``ema_momentum``, the swap of
    the averaged weights into the model (so validation, the task's epoch metrics and the
    checkpoint all see them; the raw weights come back at the next epoch's start), then the
    task's own epoch metrics (in multi-worker mode, the chief's values on every worker)."""
    out = [cb.SwapEMAWeights()] if config.ema_momentum else []
    evaluate = task.epoch_metrics(config, preprocessor, split)
    if evaluate is not None and distributed.is_multi_worker(strategy):
        local = evaluate

        def evaluate(model):
            return distributed.from_chief(strategy, local(model))
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


def _cardinality(ds) -> int | None:
    """Elements of ``ds`` when tf.data knows it without reading the data, else None."""
    n = int(ds.cardinality())
    return n if n >= 0 else None


def _print_data_report(splits) -> None:
    try:
        from pipelines import sources

        print(sources.describe(splits))
    except (ImportError, AttributeError, NotImplementedError):
        print(f"data: {json.dumps(splits.info, default=str)[:500]}")
