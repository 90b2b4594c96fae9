"""NER benchmark: CoNLL-2003 valid entity F1 for the CRF and softmax heads, WNUT-17 test F1.

    python bench/ner.py --minutes 45 [--max-examples 0] [--epochs 30] [--set key=value ...]
                        [--heads crf,softmax] [--no-wnut] [--data-dir ../shared/data]

Each head trains on ``conll2003/train.txt`` through the shared runner (best checkpoint chosen
on ``valid.txt`` by the per-epoch seqeval entity F1, early stopping), and reports the seqeval
strict entity F1 of that checkpoint on valid: with the default document context (a
``-DOCSTART-`` document's repeated words pooled, ``models.layers.document_context``) and sentence by
sentence (``valid_sentence_f1_*``; ``--set document_context=0`` also selects on the latter).
WNUT-17 (``wnut17/``: train, dev for selection, test annotated; no documents) trains the CRF
head and reports test F1. No external embeddings unless ``--set embeddings=PATH``.

``--minutes`` is the wall-clock budget for everything: it is split into training budgets
(CRF 40%, softmax 25%, WNUT 20%; the rest is data loading and evaluation), and training
stops at the first batch past its budget (the epoch then ends with validation, so the best
checkpoint so far is evaluated). That last validation and the final evaluations can overrun
the budget by a few minutes (``wall_seconds`` says by how much). Scores depend on the budget
and the machine's load: the JSON line reports epochs (fractional) and seconds next to each.

The last stdout line is one JSON object: ``valid_f1_crf``, ``valid_f1_softmax``,
``valid_sentence_f1_*``, ``wnut17_test_f1`` (percent), ``epochs_*``, ``best_epoch_*``,
``train_seconds_*``, ``minutes_budget``, ``wall_seconds``, ``cpu_count``, ``config``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TF loads (the CLI sets it likewise)


from bench.budget import TimeBudget  # noqa: E402
from tasks import ner  # noqa: E402
from tasks.runner import config as config_lib  # noqa: E402
from tasks.runner import run_dir as rd  # noqa: E402
from tasks.runner import training  # noqa: E402

SHARES = {"crf": 0.40, "softmax": 0.25, "wnut": 0.20}


def run(task, config, run_dir: str, seconds: float, test: bool = False) -> dict:
    budget = TimeBudget(seconds)
    start = time.time()
    metrics = training.train(task, config, run_dir, verbose=0, extra_callbacks=[budget])
    task.print_metrics(metrics)
    with open(rd.path(run_dir, rd.HISTORY), encoding="utf-8") as f:
        scores = [entry[f"val_{task.monitor}"] for entry in json.load(f)]
    out = {"valid_f1": 100 * metrics["f1"],
           "valid_sentence_f1": 100 * metrics.get("sentence_f1", metrics["f1"]),
           "epochs": budget.epochs_run(),
           "best_epoch": scores.index(max(scores)) + 1,
           "train_seconds": round(time.time() - start, 1)}
    if test:
        config, preprocessor, model = rd.load_run(task, run_dir)
        split = task.load_splits(config).test
        out["test_f1"] = 100 * task.evaluate(config, model, preprocessor, split)["f1"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=45.0, help="total wall-clock budget")
    parser.add_argument("--epochs", type=int, default=30, help="upper bound on epochs")
    parser.add_argument("--max-examples", type=int, default=0, help="cap train (0 = all)")
    parser.add_argument("--heads", default="crf,softmax", help="comma list of crf, softmax")
    parser.add_argument("--no-wnut", action="store_true", help="skip WNUT-17")
    parser.add_argument("--data-dir", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="NerConfig override for every run")
    parser.add_argument("--output", default=None, help="keep run dirs here (default: temp)")
    args = parser.parse_args()
    if args.minutes <= 0:
        parser.error(f"--minutes must be > 0, got {args.minutes}")
    heads = [h for h in args.heads.split(",") if h]
    if not heads or any(h not in ("crf", "softmax") for h in heads):
        parser.error(f"--heads must list crf and/or softmax, got {args.heads!r}")
    conll = os.path.join(args.data_dir, "conll2003")
    if not os.path.isdir(conll):
        parser.error(f"CoNLL-2003 not found at {conll} (pass --data-dir)")

    wall = time.time()
    task = ner.NerTask()
    base = config_lib.override(ner.NerConfig(), {
        "epochs": args.epochs, "max_examples": args.max_examples,
        **config_lib.parse_set_arguments(args.set)}, origin="bench")
    work = args.output or tempfile.mkdtemp(prefix="bench-ner-")
    budget = args.minutes * 60
    result: dict = {"minutes_budget": args.minutes, "cpu_count": os.cpu_count(),
                    "max_examples": args.max_examples, "data_dir": os.path.abspath(args.data_dir),
                    "config": {k: v for k, v in dataclasses.asdict(base).items() if k != "data"}}
    for head in heads:
        config = config_lib.override(base, {"data": conll, "crf": head == "crf"})
        print(f"== CoNLL-2003, {head} head, budget {SHARES[head] * budget / 60:.1f} min",
              flush=True)
        out = run(task, config, os.path.join(work, f"conll_{head}"), SHARES[head] * budget)
        result.update({f"valid_f1_{head}": round(out["valid_f1"], 2),
                       f"valid_sentence_f1_{head}": round(out["valid_sentence_f1"], 2),
                       f"epochs_{head}": out["epochs"], f"best_epoch_{head}": out["best_epoch"],
                       f"train_seconds_{head}": out["train_seconds"]})
        print(json.dumps(out), flush=True)
    wnut = os.path.join(args.data_dir, "wnut17")
    if not args.no_wnut and os.path.isdir(wnut):
        print(f"== WNUT-17, crf head, budget {SHARES['wnut'] * budget / 60:.1f} min", flush=True)
        config = config_lib.override(base, {"data": wnut, "crf": True})
        out = run(task, config, os.path.join(work, "wnut17_crf"), SHARES["wnut"] * budget,
                  test=True)
        result.update({"wnut17_test_f1": round(out["test_f1"], 2),
                       "wnut17_dev_f1": round(out["valid_f1"], 2), "epochs_wnut17": out["epochs"],
                       "best_epoch_wnut17": out["best_epoch"],
                       "train_seconds_wnut17": out["train_seconds"]})
    result["wall_seconds"] = round(time.time() - wall, 1)
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
