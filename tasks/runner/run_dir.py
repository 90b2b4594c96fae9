"""The run directory: what ``train`` writes and what every other command reads back.

``RUN_DIR/run.json``         the marker: this directory is a run of this suite, and its state
                             (``started``, ``training`` after the first checkpoint, ``finished``)
``RUN_DIR/config.json``      the frozen config the run was trained with
``RUN_DIR/assets/``          the preprocessor's plain files (vocabularies, settings)
``RUN_DIR/model.keras``      the best checkpoint on the validation monitor
``RUN_DIR/history.json``     one entry per finished epoch
``RUN_DIR/logs/``            TensorBoard event files
``RUN_DIR/plots/*.png``      training curves and task figures
``RUN_DIR/backup/``          BackupAndRestore state while a run is unfinished (gone when done)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile

from tasks.runner import config as config_lib

CONFIG = "config.json"
ASSETS = "assets"
MODEL = "model.keras"
HISTORY = "history.json"
LOGS = "logs"
PLOTS = "plots"
BACKUP = "backup"
MARKER = "run.json"
SUITE = "recurrent-suite"


def path(run_dir: str, name: str) -> str:
    return os.path.join(run_dir, name)


def write_text_atomic(file_path: str, text: str) -> None:
    """Writes through a temporary file and a rename, so a crash never leaves half a file."""
    directory = os.path.dirname(os.path.abspath(file_path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, file_path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_atomic(file_path: str, save, suffix: str = "") -> None:
    """``save(tmp)`` writes a temporary file next to ``file_path``, then one rename puts it in
    place: a crash mid-save leaves the previous file (or none), never half of one.

    Args:
        file_path: the final path (its directory is created).
        save: ``callable(path)`` that writes the file, e.g. ``model.save``.
        suffix: the temporary file's suffix, for savers that check it (``.keras``,
            ``.weights.h5``).
    """
    directory = os.path.dirname(os.path.abspath(file_path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        save(tmp)
        os.replace(tmp, file_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json_atomic(file_path: str, data) -> None:
    write_text_atomic(file_path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")


def read_marker(run_dir: str) -> dict | None:
    """The run marker's content, or None when ``run_dir`` holds none (or an unreadable one)."""
    try:
        with open(path(run_dir, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("suite") == SUITE else None


def write_marker(run_dir: str, task_name: str, state: str, **extra) -> None:
    write_json_atomic(path(run_dir, MARKER),
                      {"suite": SUITE, "task": task_name, "state": state, **extra})


def is_unfinished(run_dir: str) -> bool:
    """True while BackupAndRestore state exists: a rerun resumes instead of starting over."""
    return os.path.isdir(path(run_dir, BACKUP))


def backup_epoch(run_dir: str) -> int | None:
    """The last epoch the run's backup holds (None without one)."""
    try:
        with open(os.path.join(run_dir, BACKUP, "training_metadata.json"), encoding="utf-8") as f:
            return int(json.load(f)["epoch"])
    except (OSError, ValueError, KeyError):
        return None


def is_finished(run_dir: str) -> bool:
    marker = read_marker(run_dir)
    if marker is not None and marker.get("state") != "finished":
        return False
    return os.path.exists(path(run_dir, MODEL)) and not is_unfinished(run_dir)


def state(run_dir: str) -> str:
    """What ``train`` finds in ``run_dir``.

    Returns:
        ``"empty"`` (missing or an empty directory), ``"foreign"`` (files this suite did not
        mark as a run), ``"unstarted"`` (a run of this suite with no checkpoint to resume: it
        stopped before its first epoch ended, and the same command starts it again),
        ``"unfinished"`` (a checkpoint to resume from), or ``"finished"`` (also a run written
        before the marker existed: config.json and model.keras, no backup).
    """
    if not os.path.isdir(run_dir) or not os.listdir(run_dir):
        return "empty"
    marker = read_marker(run_dir)
    if marker is None:
        # A run written before the marker existed: config.json with a checkpoint.
        legacy = os.path.exists(path(run_dir, CONFIG)) and (
            is_unfinished(run_dir) or all(os.path.exists(path(run_dir, n))
                                          for n in (MODEL, HISTORY)))
        if not legacy:
            return "foreign"
        return "unfinished" if is_unfinished(run_dir) else "finished"
    if is_unfinished(run_dir):
        return "unfinished"
    if marker.get("state") == "finished" and os.path.exists(path(run_dir, MODEL)):
        return "finished"
    return "unstarted"


def aside_path(run_dir: str) -> str:
    """Where ``train --overwrite`` keeps the old run until the new one has a checkpoint."""
    parent, base = os.path.split(os.path.abspath(run_dir))
    return os.path.join(parent, f".{base}.replaced")


def move_aside(run_dir: str) -> str:
    """Renames the run out of the way (one atomic rename); :func:`restore_aside` undoes it."""
    aside = aside_path(run_dir)
    if os.path.exists(aside):
        raise FileExistsError(f"{aside} exists: an earlier --overwrite of {run_dir} did not "
                              f"finish; move or delete it by hand")
    os.replace(run_dir, aside)
    return aside


def restore_aside(run_dir: str) -> bool:
    """Brings back a run that ``--overwrite`` moved aside when the new run never reached its
    first checkpoint (a killed or failed start). Returns True when it did."""
    aside = aside_path(run_dir)
    if not os.path.isdir(aside) or state(run_dir) not in ("empty", "unstarted"):
        return False
    if os.path.isdir(run_dir):
        shutil.rmtree(run_dir)
    os.replace(aside, run_dir)
    return True


def drop_aside(run_dir: str) -> None:
    """Deletes the replaced run once the new run has its first checkpoint."""
    shutil.rmtree(aside_path(run_dir), ignore_errors=True)


def require_run(run_dir: str) -> None:
    """Raises a clear error when ``run_dir`` is not a trained run directory."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    for name in (CONFIG, MODEL):
        if not os.path.exists(path(run_dir, name)):
            hint = " (training did not finish; rerun `train` with the same --output to resume)" \
                if state(run_dir) in ("unstarted", "unfinished") else ""
            raise FileNotFoundError(f"{run_dir} is not a trained run directory: "
                                    f"{name} is missing{hint}")


def unfinished_note(run_dir: str) -> str | None:
    """A one-line warning when ``run_dir`` holds the best checkpoint of an unfinished run."""
    marker = read_marker(run_dir)
    if not is_unfinished(run_dir) and (marker is None or marker.get("state") == "finished"):
        return None
    done = ""
    try:
        with open(path(run_dir, HISTORY), encoding="utf-8") as f:
            epochs = [e.get("epoch") for e in json.load(f)]
        done = f" after epoch {max(epochs)}" if epochs else ""
    except (OSError, ValueError):
        pass
    return (f"warning: {run_dir} is an unfinished run (stopped{done}); using its best "
            f"checkpoint so far. Rerun `train` with the same --output to finish it.")


def load_config(task, run_dir: str):
    return config_lib.from_json_file(task.config_class, path(run_dir, CONFIG))


def load_run(task, run_dir: str):
    """Returns ``(config, preprocessor, model)`` of a run; warns on stderr when it is unfinished."""
    import keras

    require_run(run_dir)
    note = unfinished_note(run_dir)
    if note:
        print(note, file=sys.stderr)
    config = load_config(task, run_dir)
    preprocessor = task.load_preprocessor(config, path(run_dir, ASSETS))
    # Importing the task module registered its layers; compile=False since only inference and
    # evaluation (which recompiles) follow.
    model = keras.saving.load_model(path(run_dir, MODEL), compile=False)
    return config, preprocessor, model
