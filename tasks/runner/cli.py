"""The command line every task shares: ``python -m tasks.<task> COMMAND [flags]``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tasks.runner import config as config_lib


def build_parser(task) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m tasks.{task.name}",
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
    p.add_argument("--split", default="validation", choices=["validation", "test"])

    p = sub.add_parser("predict", help="predict with a run directory or an export")
    p.add_argument("--model", default=os.path.join("runs", task.name),
                   help="run directory, or saved_models/<task>[/<version>]")
    p.add_argument("inputs", nargs="*", help="raw inputs (texts)")
    p.add_argument("--input-file", help="one input per line")
    p.add_argument("--json", action="store_true", help="print one JSON object per input")
    p.add_argument("--signature", default="serving_default",
                   help="serving signature to call (e.g. ner's tag_document)")
    task.add_predict_arguments(p)

    p = sub.add_parser("tune", help="Keras Tuner search; writes TUNE_DIR/best.json")
    config_flags(p)
    p.add_argument("--output", default=os.path.join("tune", task.name), help="tuning directory")
    p.add_argument("--tuner", default="random", choices=["random", "hyperband", "bayesian"])
    p.add_argument("--max-trials", type=int, default=10)
    p.add_argument("--overwrite", action="store_true",
                   help="start over when TUNE_DIR holds a search with another base config")

    p = sub.add_parser("export", help="SavedModel for TF Serving")
    p.add_argument("--model", default=os.path.join("runs", task.name), help="run directory")
    p.add_argument("--export-dir", default=os.path.join("saved_models", task.name))
    p.add_argument("--version", type=int, help="default: next integer version")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")

    for name, (add_arguments, _) in task.extra_commands().items():
        add_arguments(sub.add_parser(name))
    return parser


def config_from_args(task, args):
    """Defaults < --config < --hparams < --set < explicit flags."""
    config = task.config_class()
    if args.config:
        config = config_lib.override(config, config_lib.read_config_file(args.config),
                                     origin=args.config)
    if args.hparams:
        config = config_lib.override(config, config_lib.read_config_file(args.hparams),
                                     origin=args.hparams)
    config = config_lib.override(config, config_lib.parse_set_arguments(args.set), origin="--set")
    flags = {"data": args.data, "epochs": args.epochs, "seed": args.seed,
             "mixed_precision": getattr(args, "mixed_precision", None),
             "max_examples": args.max_examples, "strategy": getattr(args, "strategy", None)}
    return config_lib.override(config, {k: v for k, v in flags.items() if v is not None},
                               origin="flags")


def _read_inputs(args) -> list[str]:
    texts = list(args.inputs)
    if args.input_file:
        with open(args.input_file, encoding="utf-8") as f:
            texts += [line.rstrip("\n") for line in f if line.strip()]
    return texts


def _print_json_line(metrics: dict) -> None:
    flat = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
    print(json.dumps(flat, sort_keys=True, default=float))


def run_command(task, args) -> int:
    from tasks.runner import export as export_lib
    from tasks.runner import run_dir as rd
    from tasks.runner import training, tuning

    if args.command == "train":
        config = config_from_args(task, args)
        metrics = training.train(task, config, args.output, overwrite=args.overwrite,
                                 verbose=0 if args.quiet else 1)
        if not metrics:  # a multi-worker worker: the chief evaluates and writes the run
            return 0
        print(f"validation metrics of the best checkpoint ({args.output}/model.keras):")
        task.print_metrics(metrics)
        _print_json_line(metrics)
    elif args.command == "evaluate":
        config, preprocessor, model = rd.load_run(task, args.model)
        if args.data:
            config = config_lib.override(config, {"data": args.data}, origin="--data")
        training.compile_model(task, config, model)
        splits = task.load_splits(config)
        split = getattr(splits, args.split)
        if split is None:
            raise ValueError(f"source {config.data!r} has no {args.split} split")
        metrics = task.evaluate(config, model, preprocessor, split,
                                plots_dir=rd.path(args.model, rd.PLOTS))
        print(f"{args.split} metrics ({args.model}):")
        task.print_metrics(metrics)
        _print_json_line(metrics)
    elif args.command == "predict":
        import tensorflow as tf

        if os.path.exists(os.path.join(args.model, rd.CONFIG)):
            config, preprocessor, model = rd.load_run(task, args.model)
            # Keep the module referenced: its tf.function methods hold it only weakly.
            module = task.serving_module(config, model, preprocessor)
            names = getattr(module, "signature_names", ("serving_default",))
            if args.signature not in names:
                raise ValueError(f"--signature {args.signature!r}: the {task.name} serving "
                                 f"module has {list(names)}")
            serve = getattr(module, args.signature)
        else:
            serve = export_lib.load_serving_function(args.model, args.signature)
            config = task.config_class()
        inputs = task.predict_inputs(config, args, _read_inputs(args))
        outputs = serve(**{k: tf.convert_to_tensor(v) for k, v in inputs.items()})
        results = task.show_predictions(config, args, inputs, outputs)
        if args.json:
            for result in results:
                print(json.dumps(result, ensure_ascii=False, default=float))
    elif args.command == "tune":
        config = config_from_args(task, args)
        tuning.tune(task, config, args.output, tuner_kind=args.tuner, max_trials=args.max_trials,
                    verbose=0 if args.quiet else 1, overwrite=args.overwrite)
    elif args.command == "export":
        target = export_lib.export(task, args.model, args.export_dir, version=args.version,
                                   overwrite=args.overwrite)
        print(f"exported {args.model} -> {target} (validated in a fresh process)")
    else:
        _, run = task.extra_commands()[args.command]
        return int(run(task, args) or 0)
    return 0


def main(task, argv=None) -> int:
    """Entry point of ``python -m tasks.<task>``; errors print one line and exit non-zero."""
    args = build_parser(task).parse_args(argv)
    from tasks.runner.callbacks import NanLossError

    try:
        return run_command(task, args)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError, NanLossError) as err:
        if os.environ.get("RECURRENT_SUITE_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return 2
