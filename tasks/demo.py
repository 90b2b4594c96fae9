"""``make demo``: train each registered task briefly on its embedded default data (offline),
export it to ``saved_models/<task>/<version>/``, and print a prediction made by the export.

    python -m tasks.demo [--tasks NAME ...] [--runs-dir runs/demo] [--list]

The tasks are the registry's (``tasks.runner.registry``): the built-in modules of ``tasks/``
and installed plug-ins, in their ``order``.
"""

from __future__ import annotations

import argparse
import os
import time

from tasks.runner import registry
from tasks.runner.errors import ConfigError
from tasks.runner.task import PredictRequest


def task_names() -> list[str]:
    """The tasks ``make demo`` runs: every registered task, in listing order."""
    return registry.names()


def find_task(name: str):
    """A new instance of the registered task ``name``, or None if there is no such task."""
    try:
        return registry.get(name)
    except ConfigError:
        return None


def run_task(task, runs_dir: str) -> None:
    import tensorflow as tf

    from tasks.runner import config as config_lib
    from tasks.runner import export as export_lib
    from tasks.runner import training

    config = config_lib.override(task.config_class(), task.demo_overrides, origin="demo")
    run_dir = os.path.join(runs_dir, task.name)
    print(f"\n=== {task.name}: training ({json_short(task.demo_overrides)}) -> {run_dir}")
    start = time.time()
    metrics = training.train(task, config, run_dir, overwrite=True, verbose=2)
    print(f"validation: {json_short(metrics)} ({time.time() - start:.0f} s)")
    target = export_lib.export(task, run_dir, os.path.join("saved_models", task.name))
    print(f"exported -> {target}")
    serve = export_lib.load_serving_function(target)
    inputs = task.demo_inputs or task.warmup_inputs(config)
    outputs = serve(**{k: tf.convert_to_tensor(v) for k, v in inputs.items()})
    print("prediction made by the export:")
    request = PredictRequest(options=demo_predict_defaults(task))
    task.show_predictions(config, request,
                          {k: tf.convert_to_tensor(v) for k, v in inputs.items()}, outputs)


def demo_predict_defaults(task) -> dict:
    """The defaults of the task's own ``predict`` flags (``PredictRequest.options``)."""
    parser = argparse.ArgumentParser()
    task.add_predict_arguments(parser)
    return vars(parser.parse_args([]))


def json_short(values: dict) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif not isinstance(value, (dict, list)):
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="*", help="default: every registered task")
    parser.add_argument("--runs-dir", default=os.path.join("runs", "demo"))
    parser.add_argument("--list", action="store_true", help="print the task names and stop")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(task_names()))
        return 0
    if args.tasks is None:
        args.tasks = task_names()
    done, failed = [], []
    for name in args.tasks:
        task = find_task(name)
        if task is None:
            print(f"\n=== {name}: no such task, skipped")
            continue
        try:
            run_task(task, args.runs_dir)
            done.append(name)
        except Exception as err:  # one task's failure must not hide the others' results
            print(f"\n=== {name}: FAILED: {type(err).__name__}: {err}")
            failed.append(name)
    print(f"\ndemo finished: {len(done)} task(s) ok {done}"
          + (f", {len(failed)} failed {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
