"""Sentiment end to end: train on IMDB (20k/5k split), export, measure the export's latency.

    python bench/sentiment.py [--epochs 4] [--max-examples 0] [--set key=value ...]

Prints the validation metrics of the best checkpoint, the wall time and epochs, then the exported
model's single-request p50/p95 latency and batch-64 throughput (same process, after warm-up).
The last stdout line is one JSON object:
``{"val_accuracy", "val_f1", "epochs_run", "train_seconds", "p50_ms", "p95_ms",
"batch64_examples_per_s", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tasks import sentiment  # noqa: E402
from tasks.runner import config as config_lib  # noqa: E402
from tasks.runner import export as export_lib  # noqa: E402
from tasks.runner import training  # noqa: E402


def latency(serve, texts: list[str], repeats: int) -> tuple[float, float]:
    """p50/p95 milliseconds of single-text requests."""
    times = []
    for i in range(repeats):
        text = tf.constant([texts[i % len(texts)]])
        start = time.perf_counter()
        serve(text=text)["probabilities"].numpy()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def throughput(serve, texts: list[str], batch: int, seconds: float = 10.0) -> float:
    batch_texts = tf.constant((texts * (batch // len(texts) + 1))[:batch])
    serve(text=batch_texts)  # warm-up for this shape
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        serve(text=batch_texts)["probabilities"].numpy()
        done += batch
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-examples", type=int, default=0, help="0 = all 20k")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", default=None, help="run dir (default: a temp dir)")
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()

    task = sentiment.SentimentTask()
    config = config_lib.override(sentiment.SentimentConfig(),
                                 {"epochs": args.epochs, "max_examples": args.max_examples,
                                  **config_lib.parse_set_arguments(args.set)}, origin="bench")
    work = tempfile.mkdtemp(prefix="bench-sentiment-")
    run_dir = args.output or os.path.join(work, "run")
    start = time.time()
    metrics = training.train(task, config, run_dir, verbose=2)
    train_seconds = time.time() - start
    with open(os.path.join(run_dir, "history.json"), encoding="utf-8") as f:
        epochs_run = len(json.load(f))

    target = export_lib.export(task, run_dir, os.path.join(work, "export"))
    serve = export_lib.load_serving_function(target)
    texts = ["A wonderful film, moving and beautifully acted.",
             "Dull, predictable and far too long.",
             "I expected more from this director, but the last hour is superb."]
    for text in texts:  # warm-up
        serve(text=tf.constant([text]))
    p50, p95 = latency(serve, texts, args.requests)
    batch64 = throughput(serve, texts, 64)
    result = {"val_accuracy": metrics["accuracy"], "val_f1": metrics["f1"],
              "val_auc": metrics["auc"], "val_examples": metrics["examples"],
              "epochs_run": epochs_run, "epochs_max": config.epochs,
              "train_seconds": round(train_seconds, 1), "p50_ms": round(p50, 2),
              "p95_ms": round(p95, 2), "batch64_examples_per_s": round(batch64, 1),
              "cpu_count": os.cpu_count(), "config": {k: getattr(config, k) for k in (
                  "cell", "units", "num_layers", "embedding_dim", "max_length", "max_tokens",
                  "pooling", "batch_size", "learning_rate")}}
    print(f"validation accuracy {result['val_accuracy']:.4f} after {epochs_run} epoch(s) "
          f"in {train_seconds / 60:.1f} min; export p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"batch-64 {batch64:.0f} examples/s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
