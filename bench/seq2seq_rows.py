"""Translation rows of ``bench/seq2seq.py --budget SECONDS``: word vs subword units, greedy vs
beam, last weights vs the average of the last K weight snapshots, side by side in one run.

Each unit trains for half the budget's training share; weights are snapshotted every
``train_seconds / (2 K)`` seconds and the last K averaged (a short budget ends before K epochs,
so snapshots stand in for the epoch checkpoints of ``--set average_last=K``). Both weight sets
decode the same held-out test pairs (``task.evaluate``: sacreBLEU BLEU/chrF with signatures,
test pairs whose source is a training source dropped). The issue's goals are stated with each
result, met or not.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from bench.budget import TimeBudget
from tasks.runner import config as config_lib
from tasks.runner import training

GOALS = {"heldout_bleu": 30.0, "heldout_bleu_hours": 2.0, "dates_exact_match": 0.995}


class Snapshots(keras.callbacks.Callback):
    """Keeps the model's weights every ``every`` seconds (the last ``k`` of them)."""

    def __init__(self, every: float, k: int):
        super().__init__()
        self.every, self.k, self.saved, self.last = every, k, [], None

    def on_train_begin(self, logs=None):
        self.last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            self.saved = (self.saved + [[np.array(w) for w in self.model.get_weights()]])[-self.k:]

    def average(self) -> list[np.ndarray] | None:
        if len(self.saved) < 2:
            return None
        return [np.mean([s[i] for s in self.saved], axis=0).astype(w.dtype)
                for i, w in enumerate(self.saved[-1])]


def unit_rows(task, config, seconds: float, eval_examples: int, k: int, log) -> dict:
    """Trains ``config`` for ``seconds``; decodes the test pairs with the last and the averaged
    weights. Returns ``{"<unit>_<weights>_<method>_<metric>": value, ...}``."""
    unit = config.unit
    keras.utils.set_random_seed(config.seed)
    started = time.perf_counter()
    splits = task.load_splits(config)
    pre = task.fit_preprocessor(config, splits)
    train = task.make_dataset(config, pre, splits.train, training=True)
    model = task.build_model(config, pre)
    training.compile_model(task, config, model)
    setup = time.perf_counter() - started
    log(f"[{unit}] vocab {pre.source_vocab.vocabulary_size} -> "
        f"{pre.target_vocab.vocabulary_size}; {model.count_params():,} parameters; setup "
        f"{setup:.0f}s")
    budget, snapshots = TimeBudget(seconds), Snapshots(seconds / (2 * k), k)
    model.fit(train, epochs=10_000, callbacks=[budget, snapshots], verbose=0)
    out = {f"{unit}_train_seconds": round(budget.elapsed(), 1),
           f"{unit}_train_batches": budget.batches, f"{unit}_epochs": budget.epochs_run(),
           f"{unit}_setup_seconds": round(setup, 1),
           f"{unit}_target_vocab": pre.target_vocab.vocabulary_size}
    test = splits.test.take(eval_examples)
    weights = {"last": model.get_weights(), "averaged": snapshots.average()}
    for name, values in weights.items():
        if values is None:
            log(f"[{unit}] fewer than 2 snapshots: no averaged row")
            continue
        model.set_weights(values)
        metrics = task.evaluate(config, model, pre, test)
        for method in ("greedy", "beam"):
            for key in ("bleu", "chrf", "unk_outputs"):
                if f"{method}_{key}" in metrics:
                    value = float(metrics[f"{method}_{key}"])
                    out[f"{unit}_{name}_{method}_{key}"] = round(value, 2)
        out["bleu_signature"] = metrics.get("beam_bleu_signature")
        out["chrf_signature"] = metrics.get("beam_chrf_signature")
        out["eval_pairs"] = metrics["examples"]
        out["removed_train_duplicates"] = metrics.get("removed_train_duplicates")
        row = {k[len(f"{unit}_{name}_"):]: v for k, v in out.items()
               if k.startswith(f"{unit}_{name}_")}
        log(f"[{unit}/{name}] BLEU greedy {row.get('greedy_bleu')} beam {row.get('beam_bleu')}; "
            f"chrF beam {row.get('beam_chrf')}")
    if unit == "subword":
        targets = [e["target"] for e in test.as_numpy_iterator()]
        back = pre.decode(pre.target_ids(tf.constant(targets)).to_tensor(0)).numpy()
        want = [t.decode("utf-8").lower() if config.lowercase else t.decode("utf-8")
                for t in targets]
        out["subword_round_trip_exact"] = float(np.mean(
            [b.decode("utf-8") == t for b, t in zip(back, want)])) if targets else None
    return out


def translation_rows(task, base: dict, pairs: str, budget: float, eval_examples: int, k: int,
                     log) -> dict:
    """Word and subword rows within ``budget`` seconds in all (about 60% of it training)."""
    seconds = max(10.0, 0.3 * budget)  # per unit; setup and decoding take the rest
    result = {"rows_budget_seconds": budget, "rows_train_seconds_per_unit": seconds,
              "average_snapshots": k}
    for unit, extra in (("word", {}), ("subword", {"vocab_size": 8000})):
        config = config_lib.override(task.config_class(), {
            **base, "data": "pairs:" + pairs, "unit": unit, **extra})
        result.update(unit_rows(task, config, seconds, eval_examples, k, log))
    best = {u: max((v for key, v in result.items() if key.startswith(f"{u}_")
                    and key.endswith("_bleu")), default=None) for u in ("word", "subword")}
    measured = max((v for v in best.values() if v is not None), default=None)
    result["goals"] = {
        "heldout_bleu>=30_within_2h": {"measured_best_bleu": measured,
                                       "train_seconds_per_unit": seconds,
                                       "met": measured is not None and measured >= 30},
        "subword>=word_same_budget": None if None in best.values()
        else best["subword"] >= best["word"],
        "zero_unk_in_subword_outputs": all(v == 0 for key, v in result.items()
                                           if key.startswith("subword_")
                                           and key.endswith("unk_outputs")),
        "unicode_round_trip_exact": result.get("subword_round_trip_exact") == 1.0,
    }
    return result
