"""Seq2seq benchmark: dates exact match, English->Spanish BLEU/chrF, in-graph vs Python decoding.

    python -m bench.seq2seq                                  # defaults below (~20-30 min, 2 cores)
    python -m bench.seq2seq --dates-seconds 120 --pairs-seconds 0 --speed-sentences 128  # quick

1. Dates (``--dates-seconds`` > 0): the seq2seq task's model (char level, Luong attention) is
   trained on ``--dates-train`` generated pairs for a wall-clock budget, then decodes the
   ``--dates-eval`` held-out generated test pairs (no source string shared with training):
   ``dates_exact_match`` (beam, what the export serves; goal >= 0.995), greedy alongside.
2. Translation (``--pairs-seconds`` > 0): English -> Spanish word-level model on the shared Anki
   pairs (lowercased, <= ``--max-words`` words a side, ``--pairs-train`` training pairs), trained
   for its budget; sacrebleu BLEU and chrF of greedy and beam on the first ``--pairs-eval``
   held-out test pairs (grouped split: no test source sentence is in training).
3. Decoding speed (on the dates model): sentences/s of beam search as one compiled graph
   (``models.decoding.beam_search`` in a ``tf.function``) vs a Python loop around the same
   compiled step function (NumPy top-k and bookkeeping, the usual notebook pattern), same
   batch, width and length, both without ``keep_greedy``; alternated ``--rounds`` times, best of
   each kept;
   ``beam_speedup`` = in-graph / Python. ``python_loop_agreement``: fraction of identical
   outputs (ties aside, the two implement the same search).

4. ``--budget SECONDS``: only the side-by-side translation rows of :mod:`bench.seq2seq_rows`
   on cased text: the baseline (word units, default model, 30% of the budget) vs the strongest
   configuration (subword + tied decoder embeddings + 2-layer residual encoder, the rest),
   each greedy vs beam and last vs averaged weights, a few sample translations, and the
   issue's goals stated met/false beside the measured values. Wall time ~ the budget:

       python -m bench.seq2seq --budget 1700     # ~28-31 min on 2 cores (the lead's run)
       python -m bench.seq2seq --budget 150 --pairs-train 4000 --pairs-eval 100  # smoke, ~3 min

Figures are taken side by side in one run; the machine may be shared, so compare ratios. The last
stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.budget import TimeBudget, prepare_run  # noqa: E402
from models.decoding import beam_search as search  # noqa: E402
from models.seq2seq import decode  # noqa: E402
from pipelines.vocab import END_ID, START_ID  # noqa: E402
from tasks import seq2seq as s2s  # noqa: E402
from tasks.runner import config as config_lib  # noqa: E402

warnings.filterwarnings("ignore", message="Your input ran out of data")
PAIRS = os.path.join(os.path.dirname(HERE), "..", "shared", "data", "anki_spa_eng", "spa.txt")


def log(message: str) -> None:
    print(message, flush=True)


def train_and_decode(task, config, seconds: float, eval_examples: int, prefix: str):
    """Trains for ``seconds``; decodes the first ``eval_examples`` test pairs.

    Returns:
        ``(figures, (config, model, preprocessor, splits))``.
    """
    splits, pre, train, model, setup = prepare_run(task, config)
    log(f"[{prefix}] {splits.info['examples']} examples; vocab {pre.source_vocab.vocabulary_size}"
        f" -> {pre.target_vocab.vocabulary_size}; {model.count_params():,} parameters; "
        f"setup {setup:.0f}s")
    budget = TimeBudget(seconds, on_epoch=lambda b, logs: log(
        f"  epoch {b.epochs}: loss {logs['loss']:.4f} accuracy {logs['accuracy']:.4f} "
        f"({b.elapsed():.0f}s)"))
    model.fit(train, epochs=10_000, callbacks=[budget], verbose=0)
    train_s = time.perf_counter() - budget.start
    test = splits.test.take(eval_examples)
    config = config_lib.override(config, {"eval_batch_size": 250})
    started = time.perf_counter()
    metrics = task.evaluate(config, model, pre, test)
    log(f"[{prefix}] trained {train_s:.0f}s ({budget.batches} batches, {budget.epochs} epochs, "
        f"the last one cut by the budget); decoded {metrics['examples']} test pairs in "
        f"{time.perf_counter() - started:.0f}s")
    out = {f"{prefix}_train_seconds": round(train_s, 1), f"{prefix}_train_batches": budget.batches,
           f"{prefix}_learning_rate": config.learning_rate,
           f"{prefix}_train_pairs": splits.info["examples"]["train"],
           f"{prefix}_eval_pairs": metrics["examples"]}
    for key in ("exact_match", "char_accuracy", "bleu", "chrf"):
        for method in ("beam", "greedy"):
            if f"{method}_{key}" in metrics:
                out[f"{prefix}_{key}" + ("" if method == "beam" else "_greedy")] = round(
                    metrics[f"{method}_{key}"], 4)
    out[f"{prefix}_beam_below_greedy"] = metrics["beam_below_greedy"]
    return out, (config, model, pre, splits)


def python_beam(encoder, step, ids, width, max_length, alpha):
    """Beam search as a Python loop around a compiled step (same algorithm as the graph's)."""
    memory, mask, *states = [x.numpy() for x in encoder(ids)]
    batch = ids.shape[0]
    tile = lambda x: np.repeat(x, width, axis=0)  # noqa: E731
    memory, mask, states = tile(memory), tile(mask), [tile(s) for s in states]
    scores = np.full((batch, width), -1e9, np.float32)
    scores[:, 0] = 0.0
    finished = np.zeros((batch, width), bool)
    lengths = np.zeros((batch, width), np.int32)
    tokens = np.zeros((batch * width, max_length), np.int32)
    ids_in = np.full((batch * width,), START_ID, np.int32)
    rows = np.arange(batch)[:, None] * width
    for t in range(max_length):
        log_probs, states = step(ids_in, states, memory, mask)
        log_probs = log_probs.numpy().reshape(batch, width, -1)
        vocab = log_probs.shape[-1]
        log_probs[..., 0] = -1e9  # padding is never generated
        end_only = np.full(vocab, -1e9, np.float32)
        end_only[END_ID] = 0.0
        log_probs = np.where(finished[..., None], end_only, log_probs)
        total = scores[..., None] + log_probs
        new_lengths = lengths + ~finished
        norm = total / (((5.0 + new_lengths) / 6.0) ** alpha)[..., None]
        index = np.argsort(-norm.reshape(batch, -1), axis=1, kind="stable")[:, :width]
        parent, token = index // vocab, index % vocab
        parent_finished = np.take_along_axis(finished, parent, 1)
        flat = (rows + parent).reshape(-1)
        alive = ~parent_finished.reshape(-1)
        states = [s.numpy()[flat] for s in states]
        tokens = tokens[flat]
        tokens[:, t] = np.where(alive, token.reshape(-1), 0)
        ids_in = np.where(alive, token.reshape(-1), END_ID).astype(np.int32)
        scores = np.take_along_axis(total.reshape(batch, -1), index, 1)
        lengths = np.take_along_axis(new_lengths, parent, 1)
        finished = parent_finished | (token == END_ID)
        if finished.all():
            break
    return tokens.reshape(batch, width, max_length)[:, 0]


def decoding_speed(config, model, pre, splits, sentences: int, batch: int, rounds: int):
    serving = s2s.Seq2SeqServing(model, pre, config)
    texts = [e["source"] for e in splits.test.take(sentences).as_numpy_iterator()]
    batches = [pre.source_ids(tf.constant(texts[i:i + batch]))
               for i in range(0, len(texts), batch)]
    common = dict(start_token=START_ID, end_token=END_ID,
                  max_length=serving.options["max_length"],
                  length_penalty=float(config.length_penalty))
    spec = tf.TensorSpec([None, None], tf.int32)

    def in_graph(method):
        return tf.function(lambda ids: decode(serving.encoder, serving._step, ids, method=method,
                                              beam_width=config.beam_width, keep_greedy=False,
                                              **common)["tokens"],
                           input_signature=[spec], autograph=False)

    beam_fn, greedy_fn = in_graph("beam"), in_graph("greedy")
    encoder = tf.function(lambda ids: serving.encoder(ids, training=False),
                          input_signature=[spec], autograph=False)
    units = [s.shape[-1] for s in encoder(batches[0])[2:]]
    width = int(serving.encoder.outputs[0].shape[-1])
    step = tf.function(
        lambda ids, states, memory, mask: search.forbid_tokens(serving._step, [0])(
            ids, states, (memory, mask))[:2],
        input_signature=[tf.TensorSpec([None], tf.int32), [tf.TensorSpec([None, u])
                                                          for u in units],
                         tf.TensorSpec([None, None, width]), tf.TensorSpec([None, None], tf.bool)],
        autograph=False)
    started = time.perf_counter()
    for fn in (beam_fn, greedy_fn):
        fn(batches[0])
    python_beam(encoder, step, batches[0], config.beam_width, common["max_length"],
                common["length_penalty"])
    trace_s = time.perf_counter() - started
    best = {"beam": np.inf, "greedy": np.inf, "python": np.inf}
    outputs = {}
    for _ in range(rounds):
        for name, run in (("beam", lambda ids: beam_fn(ids).numpy()),
                          ("greedy", lambda ids: greedy_fn(ids).numpy()),
                          ("python", lambda ids: python_beam(
                              encoder, step, ids, config.beam_width, common["max_length"],
                              common["length_penalty"]))):
            started = time.perf_counter()
            outputs[name] = [run(ids) for ids in batches]
            best[name] = min(best[name], time.perf_counter() - started)
    agree = np.mean(np.concatenate([np.all(a == b, axis=1) for a, b in zip(
        outputs["beam"], outputs["python"])]))
    rate = {k: len(texts) / v for k, v in best.items()}
    log(f"[speed] {len(texts)} sentences, batch {batch}, beam {config.beam_width}: in-graph beam "
        f"{rate['beam']:.1f}/s, Python-loop beam {rate['python']:.1f}/s, in-graph greedy "
        f"{rate['greedy']:.1f}/s (tracing {trace_s:.0f}s, excluded)")
    return {"decode_sentences_per_s_beam_ingraph": round(rate["beam"], 2),
            "decode_sentences_per_s_beam_python_loop": round(rate["python"], 2),
            "decode_sentences_per_s_greedy_ingraph": round(rate["greedy"], 2),
            "beam_speedup": round(rate["beam"] / rate["python"], 3),
            "python_loop_agreement": round(float(agree), 4), "speed_sentences": len(texts),
            "speed_batch": batch}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dates-seconds", type=float, default=600, help="0 skips dates")
    parser.add_argument("--dates-train", type=int, default=50000)
    parser.add_argument("--dates-eval", type=int, default=2000)
    parser.add_argument("--pairs", default=PAIRS, help="Anki/Tatoeba TSV")
    parser.add_argument("--pairs-seconds", type=float, default=600, help="0 skips translation")
    parser.add_argument("--pairs-train", type=int, default=40000)
    parser.add_argument("--pairs-eval", type=int, default=1000)
    parser.add_argument("--max-words", type=int, default=10)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dates-lr", type=float, default=2e-3)
    parser.add_argument("--pairs-lr", type=float, default=1e-3,
                        help="word-level models plateau on predicting [END] at 2e-3 and above")
    parser.add_argument("--pairs-vocab", type=int, default=8000, help="word vocabulary cap")
    parser.add_argument("--beam-width", type=int, default=4)
    parser.add_argument("--speed-sentences", type=int, default=256, help="0 skips the speed part")
    parser.add_argument("--speed-batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None,
                        help="--budget rows: the models' seed (default: the task config's)")
    parser.add_argument("--budget", type=float, default=0,
                        help="> 0: only the translation rows (baseline word vs strongest subword "
                             "model, greedy vs beam, last vs averaged) within this many seconds")
    parser.add_argument("--average", type=int, default=3, help="weight snapshots averaged")
    parser.add_argument("--samples", type=int, default=5,
                        help="--budget: sample translations in the JSON (per model)")
    args = parser.parse_args(argv)
    if args.budget > 0:
        return rows_main(args)
    task = s2s.Seq2SeqTask()
    base = {"units": args.units, "batch_size": args.batch_size, "dropout": 0.1,
            "beam_width": args.beam_width}
    result = {"tf": tf.__version__, "cpus": os.cpu_count(), "machine": platform.machine(),
              "load_avg_start": round(os.getloadavg()[0], 2), "beam_width": args.beam_width,
              "units": args.units, "dates_seconds_budget": args.dates_seconds,
              "pairs_seconds_budget": args.pairs_seconds}
    dates = None
    if args.dates_seconds > 0 or args.speed_sentences > 0:
        config = config_lib.override(s2s.Seq2SeqConfig(), {
            **base, "num_examples": args.dates_train, "learning_rate": args.dates_lr})
        figures, dates = train_and_decode(task, config, max(args.dates_seconds, 1.0),
                                          args.dates_eval, "dates")
        result.update(figures)
    if args.speed_sentences > 0:
        result.update(decoding_speed(*dates, args.speed_sentences, args.speed_batch,
                                     args.rounds))
    if args.pairs_seconds > 0:
        if not os.path.exists(args.pairs):
            log(f"[pairs] {args.pairs} not found: translation skipped")
        else:
            config = config_lib.override(s2s.Seq2SeqConfig(), {
                **base, "data": "pairs:" + os.path.abspath(args.pairs), "lowercase": True,
                "max_length": args.max_words, "max_examples": args.pairs_train,
                "learning_rate": args.pairs_lr, "max_tokens": args.pairs_vocab})
            figures, _ = train_and_decode(task, config, args.pairs_seconds, args.pairs_eval,
                                          "en_es")
            result.update(figures)
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, sort_keys=True))
    return 0


def rows_main(args) -> int:
    """``--budget``: the side-by-side translation rows (:mod:`bench.seq2seq_rows`)."""
    from bench.seq2seq_rows import GOALS, translation_rows

    if not os.path.exists(args.pairs):
        log(f"[rows] {args.pairs} not found: nothing to run")
        return 1
    base = {"units": args.units, "batch_size": args.batch_size, "dropout": 0.1,
            "beam_width": args.beam_width, "lowercase": False, "max_length": args.max_words,
            "max_examples": args.pairs_train, "learning_rate": args.pairs_lr,
            "max_tokens": args.pairs_vocab, **({} if args.seed is None else {"seed": args.seed})}
    result = {"tf": tf.__version__, "cpus": os.cpu_count(), "load_avg_start":
              round(os.getloadavg()[0], 2), "pairs_train": args.pairs_train, "goal_values": GOALS,
              "seed": s2s.Seq2SeqConfig().seed if args.seed is None else args.seed,
              "dates_exact_match": "not measured with --budget (run without it)"}
    result.update(translation_rows(s2s.Seq2SeqTask(), base, os.path.abspath(args.pairs),
                                   args.budget, args.pairs_eval, args.average, log,
                                   num_samples=args.samples))
    result["load_avg_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
