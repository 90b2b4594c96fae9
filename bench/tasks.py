"""Per-task training throughput: the runner's default ``train`` path vs Keras defaults.

For each task (sentiment, ner, char_generation, music_generation, seq2seq), side by side in one
process, on the SAME training examples:

- ``default``: what ``python -m tasks.<task> train`` does: the task's batches (bucketed by
  length where the task buckets), the precision ``--mixed-precision auto`` picks (a bf16 probe
  on CPUs with native bf16) and the ``jit_compile`` that ``--set jit_compile=auto`` picks for
  a 10-epoch run of the loaded split (an XLA probe on the first batch unless that run is short);
- ``keras_defaults``: the same model and config compiled with Keras' defaults
  (``jit_compile="auto"``, which is off on a CPU-only machine, float32) on pad-to-max batches
  (every batch padded to the longest example of the sample).

Throughput is examples/s of ``train_on_batch`` over the sampled batches, after one untimed
pass (so tracing / XLA compiling of every batch shape is not counted; the compile seconds are
reported apart, as ``*_warmup_s``). Then, per task, the latency of one model forward pass
(batch 1, the serving path's model call) as a plain graph and under XLA, and whether XLA
would help the export (``serving_xla``: yes only when >= 1.1x faster).

``--precision-check`` (on by default, off with ``--quick``) trains sentiment's demo settings
(2000 examples) with float32 and with mixed_bfloat16 and reports both validation accuracies.

``--memory``: also runs ``bench/task_memory.py`` (peak RSS of training on 100 MB vs 1 GB
corpora, another benchmark) in a subprocess when that file exists and merges its last-line
JSON under ``"memory"``.

Usage::

    python bench/tasks.py             # all tasks, ~10 min on 2 busy cores
    python bench/tasks.py --quick     # smoke run: 2 tasks, few batches
    python bench/tasks.py --tasks sentiment,ner --batches 12

The LAST stdout line is one JSON object: per task ``default_examples_per_s``,
``keras_defaults_examples_per_s``, ``speedup`` (goal >= 1.5 for every recurrent task),
``precision``/``jit_compile`` (and why), padding and serving figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

__import__("tasks")  # quiet TensorFlow start-up: before TensorFlow loads

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tasks.runner import config as config_lib  # noqa: E402
from tasks.runner import environment, training  # noqa: E402

TASKS = ("sentiment", "ner", "char_generation", "music_generation", "seq2seq")
GOAL = 1.5
#: Training examples loaded per task: enough for a vocabulary and a few dozen batches.
MAX_EXAMPLES = {"sentiment": 2000, "ner": 2000, "char_generation": 0, "music_generation": 0,
                "seq2seq": 4000}


def task_object(name: str):
    import importlib

    module = importlib.import_module(f"tasks.{name}")
    return next(v() for v in vars(module).values()
                if isinstance(v, type) and getattr(v, "name", None) == name
                and hasattr(v, "make_dataset") and v.__module__ == module.__name__)


def sample_batches(ds, n: int) -> list:
    return [b for b in ds.take(n)]


def pad_to_max(batches: list, batch_size: int) -> list:
    """The same examples re-batched in order with every batch padded to the largest shape of
    any example (Keras-defaults style: one shape, no bucketing)."""
    flat = [tf.nest.flatten(b) for b in batches]
    shapes = [[max(int(f[i].shape[d]) for f in flat) for d in range(1, len(flat[0][i].shape))]
              for i in range(len(flat[0]))]
    structure = batches[0]
    ds = tf.data.Dataset.from_tensor_slices(batches[0])
    for b in batches[1:]:
        ds = ds.concatenate(tf.data.Dataset.from_tensor_slices(b))
    padded = ds.padded_batch(batch_size, padded_shapes=tf.nest.pack_sequence_as(
        structure, [tf.TensorShape(s) for s in shapes]))
    return list(padded)


def _size(batch) -> int:
    return int(tf.nest.flatten(batch)[0].shape[0])


def _tokens(batch) -> tuple[int, int]:
    """(cells, non-zero cells) of the first rank>=2 input: padding share of a batch."""
    for t in tf.nest.flatten(batch[0]):
        if len(t.shape) >= 2:
            ids = t.numpy().reshape(t.shape[0], t.shape[1], -1)[..., 0]
            return ids.size, int(np.count_nonzero(ids))
    return 1, 1


def throughput(model, batches: list, repeats: int) -> tuple[float, float]:
    """(examples/s over ``repeats`` timed passes, seconds of the untimed first pass)."""
    start = time.perf_counter()
    for b in batches:
        model.train_on_batch(*b)
    warmup = time.perf_counter() - start
    examples = sum(_size(b) for b in batches)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for b in batches:
            model.train_on_batch(*b)
        rates.append(examples / (time.perf_counter() - start))
    return statistics.median(rates), warmup


def forward_latency_ms(model, x, repeats: int = 20) -> dict:
    """Median ms of ``model(x)`` as a graph and under XLA (None if XLA cannot compile)."""
    out = {}
    for name, jit in (("graph", False), ("xla", True)):
        fn = tf.function(lambda inputs: model(inputs, training=False), jit_compile=jit)
        try:
            fn(x)
        except environment.XLA_ERRORS as err:
            out[name] = None
            out[f"{name}_error"] = environment.first_line(err, 100)
            continue
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            tf.nest.map_structure(lambda t: t.numpy(), fn(x))
            times.append((time.perf_counter() - start) * 1000)
        out[name] = round(statistics.median(times), 3)
    return out


def bench_task(name: str, args) -> dict:
    task = task_object(name)
    config = config_lib.override(task.config_class(), {
        "max_examples": MAX_EXAMPLES[name] if not args.quick else min(
            MAX_EXAMPLES[name] or 400, 400), "epochs": 10})
    splits = task.load_splits(config)
    preprocessor = task.fit_preprocessor(config, splits)
    result = {}

    # Default train path: the runner's precision and XLA choices.
    policy = environment.configure_precision(config.mixed_precision, config)
    result["precision"], result["precision_why"] = policy, environment.LAST_CHOICE
    ds = task.make_dataset(config, preprocessor, splits.train, training=True)
    batches = sample_batches(ds, args.batches)
    strategy = tf.distribute.get_strategy()
    jit, why = environment.choose_jit(task, config, strategy, preprocessor, ds,
                                      training._cardinality(splits.train))
    result["jit_compile"], result["jit_why"] = jit, why
    environment.set_seeds(config.seed)
    model = task.build_model(config, preprocessor)
    training.compile_model(task, config, model, jit_compile=jit)
    environment.install_xla_fallback(model, name)
    rate, warm = throughput(model, batches, args.repeats)
    result["default_examples_per_s"], result["default_warmup_s"] = round(rate, 1), round(warm, 1)
    cells = [_tokens(b) for b in batches]
    result["default_padding"] = round(1 - sum(c[1] for c in cells) / sum(c[0] for c in cells), 3)
    x1 = tf.nest.map_structure(lambda t: t[:1], batches[0][0])

    # Keras defaults: float32, jit_compile="auto", pad-to-max batches of the same examples.
    keras.config.set_dtype_policy("float32")
    padded = pad_to_max(batches, config.batch_size)
    environment.set_seeds(config.seed)
    base = task.build_model(config, preprocessor)
    training.compile_model(task, config, base, jit_compile="auto")
    rate, warm = throughput(base, padded, args.repeats)
    result["keras_defaults_examples_per_s"] = round(rate, 1)
    result["keras_defaults_warmup_s"] = round(warm, 1)
    cells = [_tokens(b) for b in padded]
    result["keras_defaults_padding"] = round(
        1 - sum(c[1] for c in cells) / sum(c[0] for c in cells), 3)
    result["speedup"] = round(result["default_examples_per_s"]
                              / result["keras_defaults_examples_per_s"], 3)
    result["examples_timed"] = sum(_size(b) for b in batches)

    # Serving: does XLA help the model call of the export's functions (batch 1)?
    latency = forward_latency_ms(base, x1)
    result["serving_forward_ms"] = latency
    result["serving_xla"] = bool(latency.get("xla") and latency["graph"] / latency["xla"] >= 1.1)
    keras.config.set_dtype_policy("float32")
    return result


def precision_check(args) -> dict:
    """Sentiment demo settings trained with float32 and with mixed_bfloat16."""
    import tempfile

    task = task_object("sentiment")
    out = {}
    for mode in ("off", "bfloat16"):
        config = config_lib.override(task.config_class(), {
            **task.demo_overrides, "max_examples": 2000, "mixed_precision": mode,
            "jit_compile": "off"})
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            metrics = training.train(task, config, os.path.join(tmp, "run"), verbose=0)
            out[mode] = {"val_accuracy": round(metrics["accuracy"], 4),
                         "train_seconds": round(time.perf_counter() - start, 1)}
    out["accuracy_delta"] = round(out["bfloat16"]["val_accuracy"] - out["off"]["val_accuracy"], 4)
    return out


def memory_part() -> dict:
    """bench/task_memory.py's last-line JSON (run in a subprocess), when that file exists."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "task_memory.py")
    if not os.path.exists(path):
        return {"skipped": "bench/task_memory.py not present"}
    done = subprocess.run([sys.executable, path], capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--batches", type=int, default=8, help="training batches timed per task")
    p.add_argument("--repeats", type=int, default=2, help="timed passes over them (median)")
    p.add_argument("--quick", action="store_true", help="sentiment and seq2seq, 4 batches")
    p.add_argument("--precision-check", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--memory", action="store_true", help="also run bench/task_memory.py")
    args = p.parse_args(argv)
    names = args.tasks.split(",")
    if args.quick:
        names = [n for n in names if n in ("sentiment", "seq2seq")] or names[:1]
        args.batches, args.repeats = 4, 1
    unknown = sorted(set(names) - set(TASKS))
    if unknown:
        p.error(f"unknown task(s) {unknown}; choose from {', '.join(TASKS)}")
    start = time.perf_counter()
    result = {"tasks": {}, "goal_speedup": GOAL, "cpu_count": os.cpu_count()}
    for name in names:
        t0 = time.perf_counter()
        figures = bench_task(name, args)
        figures["bench_seconds"] = round(time.perf_counter() - t0, 1)
        result["tasks"][name] = figures
        print(f"{name}: default {figures['default_examples_per_s']} ex/s "
              f"({figures['precision']}, jit={figures['jit_compile']}) vs keras defaults "
              f"{figures['keras_defaults_examples_per_s']} ex/s -> {figures['speedup']}x "
              f"(goal {GOAL}x{'' if figures['speedup'] >= GOAL else ', MISSED'}); padding "
              f"{figures['default_padding']:.0%} vs {figures['keras_defaults_padding']:.0%}; "
              f"serving forward {figures['serving_forward_ms']}", flush=True)
    result["goal_met"] = all(f["speedup"] >= GOAL for f in result["tasks"].values())
    if args.precision_check if args.precision_check is not None else not args.quick:
        result["precision_check"] = precision_check(args)
        print(f"precision check (sentiment demo settings): {result['precision_check']}")
    if args.memory:
        result["memory"] = memory_part()
    result["load_avg_1min"] = round(os.getloadavg()[0], 2)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
