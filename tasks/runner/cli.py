"""The command line every task shares: ``python -m tasks.<task> COMMAND [flags]``.

Bad input is refused before any data loads (config values, ``--output``/``--export-dir``)
with one line, ``error: <message>``, and exit status 2: every
:class:`tasks.runner.errors.SuiteError` and the builtin errors naming a path
(:data:`tasks.runner.errors.PATH_ERRORS`). Any other exception is a bug: it keeps its
traceback, with a note on how to report it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from tasks.runner import config as config_lib
from tasks.runner import errors
from tasks.runner import run_dir as rd
from tasks.runner.signature_flags import (  # noqa: F401 (API: the predict flags)
    add_signature_flags,
    signature_flags,
    signature_inputs,
)
from tasks.runner.task import PredictRequest

#: File a run directory may hold to be recognised as one (besides config.json): the marker
#: ``train`` writes (train itself checks its content).
RUN_MARKER = rd.MARKER


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser(task) -> argparse.ArgumentParser:
    # A built-in task runs as its module; a plug-in through `python -m tasks NAME`.
    builtin = type(task).__module__ in (f"tasks.{task.name}", "__main__")
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{task.name}" if builtin
                                     else f"python -m tasks {task.name}",
                                     description=(task.__doc__ or "").strip().splitlines()[0]
                                     if task.__doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)

    def config_flags(p):
        p.add_argument("--data", help="named source or path (default: the task's embedded data)")
        p.add_argument("--epochs", type=int)
        p.add_argument("--config", help="JSON or YAML file of config overrides")
        p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                       help="override one config field (repeatable)")
        p.add_argument("--hparams", help="best.json written by `tune`")
        p.add_argument("--seed", type=int)
        p.add_argument("--mixed-precision", choices=["auto", "off", "float16", "bfloat16"])
        p.add_argument("--max-examples", type=int, help="cap the training split (0 = all)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = sub.add_parser("train", help="train into a run directory")
    config_flags(p)
    p.add_argument("--output", default=os.path.join("runs", task.name), help="run directory")
    p.add_argument("--strategy", choices=["auto", "default", "mirrored", "multiworker"])
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in --output")

    p = sub.add_parser("evaluate", help="metrics of a trained run on a split")
    p.add_argument("--model", default=os.path.join("runs", task.name), help="run directory")
    p.add_argument("--data", help="evaluate on another source than the one trained on")
    p.add_argument("--split", default="validation", choices=["validation", "test"],
                   help="split of the data to score (a --data FILE is scored whole)")

    p = sub.add_parser("predict", help="predict with a run directory or an export")
    p.add_argument("--model", default=os.path.join("runs", task.name),
                   help="run directory, or saved_models/<task>[/<version>]")
    p.add_argument("inputs", nargs="*", help="raw inputs (texts)")
    p.add_argument("--input-file", help="one input per line ('-': standard input); a blank "
                   "line gets an empty result in its place")
    p.add_argument("--json", action="store_true", help="print one JSON object per input")
    p.add_argument("--signature", default="serving_default",
                   help="serving signature to call (e.g. ner's tag_document)")
    task.add_predict_arguments(p)
    add_signature_flags(task, p)

    p = sub.add_parser("tune", help="Keras Tuner search; writes TUNE_DIR/best.json")
    config_flags(p)
    p.add_argument("--output", default=os.path.join("tune", task.name), help="tuning directory")
    p.add_argument("--tuner", default="random", choices=["random", "hyperband", "bayesian"])
    p.add_argument("--max-trials", type=_positive_int, default=10)
    p.add_argument("--overwrite", action="store_true",
                   help="start over when TUNE_DIR holds a search with another base config")

    p = sub.add_parser("export", help="SavedModel for TF Serving")
    p.add_argument("--model", default=os.path.join("runs", task.name), help="run directory")
    p.add_argument("--export-dir", default=os.path.join("saved_models", task.name))
    p.add_argument("--version", type=_positive_int, help="default: next integer version")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")

    for name, (add_arguments, _) in task.extra_commands().items():
        add_arguments(sub.add_parser(name))
    for p in (parser, *sub.choices.values()):
        # Read from sys.argv by tasks/__init__.py before TensorFlow loads; listed here so
        # argparse accepts it before or after the command.
        p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="keep TensorFlow's start-up and C++ log messages "
                            "(also RECURRENT_SUITE_VERBOSE=1)")
    return parser


def config_from_args(task, args):
    """Defaults < --config < --hparams < --set < explicit flags; validated once at the end.

    Raises:
        errors.ConfigError: A bad file, key or value, naming where it was set.
    """
    config, origins = task.config_class(), {}

    def apply(values, origin):
        nonlocal config
        config = config_lib.override(config, values, origin=origin, validate=False)
        origins.update({k: origin for k in values})

    if args.config:
        apply(config_lib.read_config_file(args.config), args.config)
    if args.hparams:
        apply(config_lib.read_config_file(args.hparams), args.hparams)
    apply(config_lib.parse_set_arguments(args.set), "--set")
    flags = {"data": args.data, "epochs": args.epochs, "seed": args.seed,
             "mixed_precision": getattr(args, "mixed_precision", None),
             "max_examples": args.max_examples, "strategy": getattr(args, "strategy", None)}
    for key, value in flags.items():
        if value is not None:
            apply({key: value}, "--" + key.replace("_", "-"))
    return config.validate(origins)


def check_output_dir(path: str, flag: str, recognised: tuple[str, ...]) -> None:
    """Refuses an output path that would mix results with a user's files.

    Args:
        path: The directory a command will write.
        flag: The flag that named it, for the message.
        recognised: Names (files or directories) of which one marks ``path`` as written by
            this command before, so a rerun may resume or refuse it itself.

    Raises:
        errors.RunDirError: ``path`` is a file, or a non-empty directory holding none of
            ``recognised``.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise errors.RunDirError(f"{flag} {path} is a file, not a directory; choose a "
                                 f"directory path")
    if not os.path.isdir(path):
        return
    entries = os.listdir(path)
    if entries and not any(os.path.exists(os.path.join(path, name)) for name in recognised):
        raise errors.RunDirError(
            f"{flag} {path} is a non-empty directory that holds no run ({len(entries)} "
            f"{'entry' if len(entries) == 1 else 'entries'}, none of {', '.join(recognised)}); "
            f"refusing to write among its files: choose a new or empty directory")


def read_inputs(args, stdin=None) -> list[str]:
    """The positional inputs, then one per line of ``--input-file`` (``-``: standard input).

    Every line counts, blank ones included, so results line up with the file's lines; a final
    newline does not start another input.

    Raises:
        errors.InputError: The file is missing, a directory or not UTF-8 (naming the line).
    """
    texts = list(args.inputs)
    if not args.input_file:
        return texts
    if args.input_file == "-":
        text = (stdin or sys.stdin).read()
    else:
        name = args.input_file
        if not os.path.isfile(name):
            raise errors.InputError(f"--input-file {name}: " + (
                "is a directory" if os.path.isdir(name) else "no such file"))
        with open(name, "rb") as f:
            data = f.read()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            line = data[:err.start].count(b"\n") + 1
            raise errors.InputError(f"--input-file {name}:{line}: not valid UTF-8") from None
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return texts + lines


def _print_json_line(metrics: dict) -> None:
    flat = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    print(json.dumps(flat, sort_keys=True, default=float))


def _serve(task, args):
    """``(config, serving function, what keeps it alive)`` of ``--model`` (a run directory or
    an export, see :func:`tasks.runner.loading.load`), with the config it was trained with."""
    from tasks.runner import loading

    loaded = loading.load(args.model, task)
    return loaded.config, loaded.signature(args.signature), loaded


def predict(task, args) -> list[dict]:
    """``predict``: one result per input, in order; blank inputs get ``task.empty_result``."""
    import tensorflow as tf

    texts = read_inputs(args)
    if not texts and task.empty_result(task.config_class(), "") is not None:
        raise errors.InputError(f"nothing to predict: give {task.name} inputs as arguments or "
                                f"one per line with --input-file FILE ('-' for stdin)")
    config, serve, loaded = _serve(task, args)
    empty = {i: task.empty_result(config, t) for i, t in enumerate(texts) if not t.strip()}
    empty = {i: r for i, r in empty.items() if r is not None}
    request = PredictRequest.from_args(args)

    def run(batch, run_request):
        inputs = task.predict_inputs(config, run_request.replace(texts=tuple(batch)))
        inputs = signature_inputs(task, args, loaded, inputs)
        outputs = serve(**{k: tf.convert_to_tensor(v) for k, v in inputs.items()})
        return task.show_predictions(config, run_request, inputs, outputs)

    if not empty:
        results = run(texts, request)
        if args.json:
            for result in results:
                print(json.dumps(result, ensure_ascii=False, default=float))
        return results
    positions = [i for i in range(len(texts)) if i not in empty]
    quiet = request.replace(json=True, input_positions=tuple(positions))
    answered = run([texts[i] for i in positions], quiet) if positions else []
    if len(answered) != len(positions):
        raise RuntimeError(f"{task.name}.show_predictions returned {len(answered)} results "
                           f"for {len(positions)} inputs")
    results = [empty.get(i) for i in range(len(texts))]
    for i, result in zip(positions, answered):
        results[i] = result
    for result in results:
        if args.json:
            print(json.dumps(result, ensure_ascii=False, default=float))
        else:
            print("(empty input)" if result.get("empty") else
                  task.format_prediction(config, result))
    return results


def evaluate(task, args) -> dict:
    """``evaluate``: a split of the run's data, or all of ``--data FILE``."""
    from tasks.runner import loading, training

    rd.require_run(args.model)  # an export has no validation split to score
    loaded = loading.load(args.model, task)
    config, preprocessor, model = loaded.config, loaded.preprocessor, loaded.model
    if args.data:
        config = config_lib.override(config, {"data": args.data}, origin="--data",
                                     validate=False)
    training.compile_model(task, config, model)
    splits = task.load_splits(config, evaluation=bool(args.data))
    if splits.info.get("whole_file"):
        split, title = splits.test, f"metrics on all of {args.data}"
    else:
        split, title = getattr(splits, args.split), f"{args.split} metrics"
    names, trained = splits.info.get("class_names"), getattr(preprocessor, "class_names", None)
    if names is not None and trained is not None and list(names) != list(trained):
        raise errors.DataError(f"its labels make the classes {list(names)} but the run was "
                               f"trained on {list(trained)}", config.data)
    if split is None:
        has = [s for s in ("validation", "test") if getattr(splits, s) is not None]
        raise errors.DataError(f"source {config.data!r} has no {args.split} split"
                               + (f"; it has {', '.join(has)} (--split)" if has else ""))
    metrics = task.evaluate(config, model, preprocessor, split,
                            plots_dir=rd.path(args.model, rd.PLOTS))
    print(f"{title} ({args.model}):")
    task.print_metrics(metrics)
    _print_json_line(metrics)
    return metrics


def run_command(task, args) -> int:
    from tasks.runner import export as export_lib
    from tasks.runner import training, tuning

    if args.command == "train":
        config = config_from_args(task, args)
        check_output_dir(args.output, "--output", (rd.CONFIG, RUN_MARKER))
        metrics = training.train(task, config, args.output, overwrite=args.overwrite,
                                 verbose=0 if args.quiet else 1)
        if not metrics:  # a multi-worker worker: the chief evaluates and writes the run
            return 0
        print(f"validation metrics of the best checkpoint ({args.output}/model.keras):")
        task.print_metrics(metrics)
        _print_json_line(metrics)
    elif args.command == "evaluate":
        evaluate(task, args)
    elif args.command == "predict":
        predict(task, args)
    elif args.command == "tune":
        config = config_from_args(task, args)
        check_output_dir(args.output, "--output", (
            "best.json", rd.ASSETS, os.path.join(task.name, "oracle.json"), RUN_MARKER,
            tuning.TUNE_MARKER))
        tuning.tune(task, config, args.output, tuner_kind=args.tuner, max_trials=args.max_trials,
                    verbose=0 if args.quiet else 1, overwrite=args.overwrite)
    elif args.command == "export":
        target = export_lib.export(task, args.model, args.export_dir, version=args.version,
                                   overwrite=args.overwrite)
        print(f"exported {args.model} -> {target} (validated in a fresh process: both "
              f"TensorFlow loaders and the warm-up replay)")
    else:
        _, run = task.extra_commands()[args.command]
        return int(run(task, args) or 0)
    return 0


def main(task, argv=None) -> int:
    """Entry point of ``python -m tasks.<task>``.

    Input errors (:class:`errors.SuiteError`, :data:`errors.PATH_ERRORS`) print one line and
    return 2 (``RECURRENT_SUITE_DEBUG=1``: raise them); any other exception is raised with
    :data:`errors.REPORT_NOTE` added to its traceback.
    """
    args = build_parser(task).parse_args(argv)
    try:
        return run_command(task, args)
    except (errors.SuiteError, *errors.PATH_ERRORS) as err:
        if os.environ.get("RECURRENT_SUITE_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        err.add_note(errors.REPORT_NOTE)
        raise
