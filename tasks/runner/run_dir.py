"""The run directory: what ``train`` writes and what every other command reads back.

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
import tempfile

from tasks.runner import config as config_lib

CONFIG = "config.json"
ASSETS = "assets"
MODEL = "model.keras"
HISTORY = "history.json"
LOGS = "logs"
PLOTS = "plots"
BACKUP = "backup"


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


def write_json_atomic(file_path: str, data) -> None:
    write_text_atomic(file_path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")


def is_unfinished(run_dir: str) -> bool:
    """True while BackupAndRestore state exists: a rerun resumes instead of starting over."""
    return os.path.isdir(path(run_dir, BACKUP))


def is_finished(run_dir: str) -> bool:
    return os.path.exists(path(run_dir, MODEL)) and not is_unfinished(run_dir)


def require_run(run_dir: str) -> None:
    """Raises a clear error when ``run_dir`` is not a trained run directory."""
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    for name in (CONFIG, MODEL):
        if not os.path.exists(path(run_dir, name)):
            hint = " (training did not finish; rerun `train` with the same --output to resume)" \
                if is_unfinished(run_dir) else ""
            raise FileNotFoundError(f"{run_dir} is not a trained run directory: "
                                    f"{name} is missing{hint}")


def load_config(task, run_dir: str):
    return config_lib.from_json_file(task.config_class, path(run_dir, CONFIG))


def load_run(task, run_dir: str):
    """Returns ``(config, preprocessor, model)`` of a finished run."""
    import keras

    require_run(run_dir)
    config = load_config(task, run_dir)
    preprocessor = task.load_preprocessor(config, path(run_dir, ASSETS))
    # Importing the task module registered its layers; compile=False since only inference and
    # evaluation (which recompiles) follow.
    model = keras.saving.load_model(path(run_dir, MODEL), compile=False)
    return config, preprocessor, model
