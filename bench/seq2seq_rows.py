"""Translation rows of ``bench/seq2seq.py --budget SECONDS``: the baseline (word units, the
task's default model) against the strongest configuration (subword units + tied decoder
embeddings + a 2-layer residual encoder), each decoded greedy and beam, with its last weights
and with the average of its last K weight snapshots, side by side in one run.

Only two models train, since a row with under ~300 s of training is noise (a 300 s budget
split over four trained rows gave BLEU ~0; the word baseline reached BLEU 12.9 beam after
600 s): every other row is a *decoding* of those two (greedy vs beam, last vs averaged). The
baseline trains first for ``baseline_share`` (30%) of the budget; the strongest model then gets
everything that is left after the baseline's measured setup + decoding time, and the same again
(x1.25) reserved for its own, so it always has the largest share. Weights are snapshotted every
``train_seconds / (2 K)`` seconds and the last K averaged (a short budget ends before K epochs,
so snapshots stand in for the epoch checkpoints of ``--set average_last=K``). Both weight sets
decode the same held-out test pairs (``task.evaluate``: sacreBLEU BLEU/chrF with signatures,
test pairs whose source is a training source dropped). The issue's goals are stated with each
result, met or not, and ``samples`` shows a few (source, reference, hypotheses) side by side.

Wall time is about the budget (within ~10% when the baseline's overhead predicts the strongest
model's): ``--budget 1700`` runs ~28-31 minutes on 2 cores, of which ~510 s train the baseline
and ~800-900 s the strongest model.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf

from bench.budget import TimeBudget, prepare_run
from tasks import seq2seq_eval
from tasks.runner import config as config_lib

GOALS = {"heldout_bleu": 30.0, "heldout_bleu_hours": 2.0, "dates_exact_match": 0.995}
#: The strongest configuration's overrides of the baseline. A tied output layer makes a wider
#: target embedding cheap (its matrix is also the softmax), hence 128 instead of 64.
STRONGEST = {"unit": "subword", "vocab_size": 8000, "tie_embeddings": True, "num_layers": 2,
             "encoder_residual": True, "embedding_dim": 128}
BASELINE = {"unit": "word"}
BASELINE_SHARE = 0.3
MIN_USEFUL_SECONDS = 300.0


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


def model_rows(task, name: str, config, seconds: float, eval_examples: int, k: int,
               num_samples: int, log) -> dict:
    """Trains ``config`` for ``seconds``; decodes the test pairs greedy and beam with the last
    and the averaged weights.

    Returns:
        ``{"<name>_<weights>_<method>_<metric>": value, ..., "<name>_samples": [...]}`` plus
        the training figures (``<name>_train_seconds``, ``_setup_seconds``, ``_eval_seconds``).
    """
    splits, pre, train, model, setup = prepare_run(task, config)
    log(f"[{name}] unit {config.unit}, encoder {config.num_layers} layer(s) (residual "
        f"{config.encoder_residual}), tied {config.tie_embeddings}; vocab "
        f"{pre.source_vocab.vocabulary_size} -> {pre.target_vocab.vocabulary_size}; "
        f"{model.count_params():,} parameters; setup {setup:.0f}s; training {seconds:.0f}s")
    budget, snapshots = TimeBudget(seconds), Snapshots(seconds / (2 * k), k)
    model.fit(train, epochs=10_000, callbacks=[budget, snapshots], verbose=0)
    out = {f"{name}_train_seconds": round(budget.elapsed(), 1),
           f"{name}_train_batches": budget.batches, f"{name}_epochs": budget.epochs_run(),
           f"{name}_setup_seconds": round(setup, 1), f"{name}_parameters": model.count_params(),
           f"{name}_config": {key: getattr(config, key) for key in (
               "unit", "vocab_size", "max_tokens", "embedding_dim", "units", "num_layers",
               "encoder_residual", "tie_embeddings", "learning_rate", "batch_size")},
           f"{name}_target_vocab": pre.target_vocab.vocabulary_size}
    started = time.perf_counter()
    test = splits.test.take(eval_examples)
    held, _ = seq2seq_eval.held_out(task, config, test)
    pairs = list(held.take(num_samples).as_numpy_iterator())
    last = model.get_weights()
    if pairs:  # the last weights' beam output, what the export would serve
        serving = task.serving_module(config, model, pre)  # held: its tf.function binds weakly
        hyps = serving.serving_default(tf.constant([p["source"] for p in pairs]))[
            "translation"].numpy()
        out[f"{name}_samples"] = [
            {"source": p["source"].decode("utf-8"), "reference": p["target"].decode("utf-8"),
             "hypothesis": h.decode("utf-8")} for p, h in zip(pairs, hyps)]
    for weights, values in (("last", last), ("averaged", snapshots.average())):
        if values is None:
            log(f"[{name}] fewer than 2 snapshots: no averaged row")
            continue
        model.set_weights(values)
        metrics = task.evaluate(config, model, pre, test)
        for method in ("greedy", "beam"):
            for key in ("bleu", "chrf", "unk_outputs"):
                if f"{method}_{key}" in metrics:
                    out[f"{name}_{weights}_{method}_{key}"] = round(
                        float(metrics[f"{method}_{key}"]), 2)
        out["bleu_signature"] = metrics.get("beam_bleu_signature")
        out["chrf_signature"] = metrics.get("beam_chrf_signature")
        out["eval_pairs"] = metrics["examples"]
        out["removed_train_duplicates"] = metrics.get("removed_train_duplicates")
        log(f"[{name}/{weights}] BLEU greedy {out.get(f'{name}_{weights}_greedy_bleu')} beam "
            f"{out.get(f'{name}_{weights}_beam_bleu')}; chrF beam "
            f"{out.get(f'{name}_{weights}_beam_chrf')}")
    if config.unit == "subword":
        targets = [e["target"] for e in test.as_numpy_iterator()]
        back = pre.decode(pre.target_ids(tf.constant(targets)).to_tensor(0)).numpy()
        want = [t.decode("utf-8").lower() if config.lowercase else t.decode("utf-8")
                for t in targets]
        out[f"{name}_round_trip_exact"] = float(np.mean(
            [b.decode("utf-8") == t for b, t in zip(back, want)])) if targets else None
    out[f"{name}_eval_seconds"] = round(time.perf_counter() - started, 1)
    return out


def side_by_side(result: dict) -> list[dict]:
    """One row per (model, weights, method): ``{"model", "unit", "weights", "method", "bleu",
    "chrf"}``, in the order baseline/strongest x last/averaged x greedy/beam."""
    rows = []
    for name in ("baseline", "strongest"):
        for weights in ("last", "averaged"):
            for method in ("greedy", "beam"):
                key = f"{name}_{weights}_{method}"
                if f"{key}_bleu" in result:
                    rows.append({"model": name, "unit": result[f"{name}_config"]["unit"],
                                 "weights": weights, "method": method,
                                 "bleu": result[f"{key}_bleu"], "chrf": result.get(f"{key}_chrf")})
    return rows


def _best(result: dict, name: str, method: str = "", weights: str = ""):
    """The best BLEU of ``name``'s rows (of one method or one weight set when given)."""
    values = [v for key, v in result.items() if key.startswith(f"{name}_{weights}")
              and key.endswith(f"{method}_bleu")]
    return max(values, default=None)


def goals(result: dict) -> dict:
    """The issue's goals, each with the measured value and ``met`` true/false."""
    best = {n: _best(result, n) for n in ("baseline", "strongest")}
    measured = max((v for v in best.values() if v is not None), default=None)
    compare = {}
    for name in ("baseline", "strongest"):
        for key, (a, b) in (
                ("beam>=greedy", (_best(result, name, method="beam"),
                                  _best(result, name, method="greedy"))),
                ("averaged>=last", (_best(result, name, weights="averaged"),
                                    _best(result, name, weights="last")))):
            compare[f"{name}_{key}"] = None if None in (a, b) else a >= b
    return {
        "heldout_bleu>=30_within_2h": {
            "measured_best_bleu": measured, "met": measured is not None and measured >= 30,
            "train_seconds": {n: result.get(f"{n}_train_seconds") for n in best}},
        # The strongest model differs in units, tying, depth AND training time: not a
        # same-budget comparison of subword vs word units alone.
        "strongest_subword>=baseline_word": {
            "baseline": best["baseline"], "strongest": best["strongest"],
            "met": None not in best.values() and best["strongest"] >= best["baseline"]},
        "zero_unk_in_subword_outputs": all(v == 0 for key, v in result.items()
                                           if key.startswith("strongest_")
                                           and key.endswith("unk_outputs")),
        "unicode_round_trip_exact": result.get("strongest_round_trip_exact") == 1.0,
        **compare,
    }


def translation_rows(task, base: dict, pairs: str, budget: float, eval_examples: int, k: int,
                     log, num_samples: int = 5, strongest: dict | None = None) -> dict:
    """The baseline and the strongest model within ``budget`` seconds in all (module
    docstring: the baseline trains for 30%, the strongest model for what is left)."""
    started = time.perf_counter()
    baseline_s = max(10.0, BASELINE_SHARE * budget)
    result = {"rows_budget_seconds": budget, "average_snapshots": k,
              "strongest_overrides": dict(strongest or STRONGEST)}
    configs = {name: config_lib.override(task.config_class(), {
        **base, "data": "pairs:" + pairs, **extra}, validate=True)
        for name, extra in (("baseline", BASELINE), ("strongest", strongest or STRONGEST))}
    result.update(model_rows(task, "baseline", configs["baseline"], baseline_s, eval_examples, k,
                             num_samples, log))
    spent = time.perf_counter() - started
    overhead = spent - result["baseline_train_seconds"]
    strongest_s = max(10.0, budget - spent - 1.25 * overhead)
    result.update(model_rows(task, "strongest", configs["strongest"], strongest_s,
                             eval_examples, k, num_samples, log))
    result["rows_wall_seconds"] = round(time.perf_counter() - started, 1)
    short = [n for n in ("baseline", "strongest")
             if result[f"{n}_train_seconds"] < MIN_USEFUL_SECONDS]
    if short:
        result["warning"] = (f"{short} trained < {MIN_USEFUL_SECONDS:.0f}s: BLEU near 0 is "
                             "expected, the rows only prove the pipeline runs")
    result["side_by_side"] = side_by_side(result)
    baseline_samples = result.pop("baseline_samples", [])
    strongest_samples = {s["source"]: s["hypothesis"]
                         for s in result.pop("strongest_samples", [])}
    result["samples"] = [{"source": s["source"], "reference": s["reference"],
                          "baseline": s["hypothesis"],
                          "strongest": strongest_samples.get(s["source"])}
                         for s in baseline_samples]
    result["goals"] = goals(result)
    return result
