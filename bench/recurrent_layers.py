"""Throughput of a 2-layer StackedBidirectional(cell="peephole_lstm") vs the same stack of
``keras.layers.Bidirectional(keras.layers.LSTM)``, measured side by side in one run.

Both models: Input [B, T, D] -> (Bi)LSTM stack (units each direction, lower layers return
sequences) -> Dense(1), MSE loss, Adam. Training throughput is samples x timesteps per second
of ``train_on_batch``; inference throughput of ``predict_on_batch``. Timings are interleaved
(model A, model B, model A, ...) and the median of ``--repeats`` rounds is reported, so a
shared, noisy CPU hurts both sides alike.

XLA: with ``--jit both`` (default) each model is also compiled with ``jit_compile=True``
(Keras' ``"auto"`` picks XLA on CPU for both); ratios are reported per mode.

Usage::

    python bench/recurrent_layers.py             # issue defaults: B=64, T=100, D=64, units=256
    python bench/recurrent_layers.py --quick     # B=32, T=50, units=128, fewer rounds

The LAST stdout line is one JSON object with the figures: ``train_ratio`` and
``infer_ratio`` = peephole throughput / built-in throughput (wall clock, no XLA); ``*_cpu``
the same from process CPU time (steadier when other jobs share the CPU); ``*_xla`` under XLA.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from models.layers.stacked import StackedBidirectional  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--time", type=int, default=100)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="timed calls per round")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (median)")
    p.add_argument("--jit", choices=["off", "on", "both"], default="both")
    p.add_argument("--threads", type=int, default=0,
                   help="TF intra/inter-op threads (0 = TF default); 1 gives steadier "
                        "figures on a shared machine")
    p.add_argument("--quick", action="store_true",
                   help="B=32, T=50, units=128, 3 rounds: a smoke run on a busy machine")
    args = p.parse_args(argv)
    if args.quick:
        args.batch, args.time, args.units, args.repeats = 32, 50, 128, 3
    return args


def builtin_stack(args):
    inputs = keras.Input((args.time, args.features))
    x = inputs
    for i in range(args.layers):
        x = keras.layers.Bidirectional(
            keras.layers.LSTM(args.units, return_sequences=i < args.layers - 1))(x)
    return keras.Model(inputs, keras.layers.Dense(1)(x), name="builtin_bilstm")


def peephole_stack(args):
    inputs = keras.Input((args.time, args.features))
    x = StackedBidirectional(args.units, num_layers=args.layers, cell="peephole_lstm")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1)(x), name="peephole_stacked")


def timed(fn, steps):
    """(wall seconds, process CPU seconds) per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        import tensorflow as tf  # the benchmark may use TF directly; models/ may not

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, args.time, args.features)).astype("float32")
    y = rng.standard_normal((args.batch, 1)).astype("float32")
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.jit]

    models = {}
    for jit in modes:
        for kind, build in (("builtin", builtin_stack), ("peephole", peephole_stack)):
            model = build(args)
            model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=jit)
            model.train_on_batch(x, y)  # trace / compile outside the timings
            model.predict_on_batch(x)
            models[(kind, jit)] = model

    train = {k: [] for k in models}
    infer = {k: [] for k in models}
    for r in range(args.repeats):
        for key, model in models.items():
            train[key].append(timed(lambda m=model: m.train_on_batch(x, y), args.steps))
            infer[key].append(timed(lambda m=model: m.predict_on_batch(x), args.steps))
        print(f"round {r + 1}/{args.repeats}: " + ", ".join(
            f"{k[0]}{'+xla' if k[1] else ''} train {train[k][-1][0]:.3f}s "
            f"infer {infer[k][-1][0]:.3f}s" for k in models), flush=True)

    work = args.batch * args.time
    result = {"config": {k: getattr(args, k) for k in ("batch", "time", "features", "units",
                                                       "layers", "steps", "repeats", "threads")},
              "load_avg_1min": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count()}

    def median(table, key, which):  # which: 0 wall, 1 CPU
        return statistics.median(t[which] for t in table[key])

    for jit in modes:
        suffix = "_xla" if jit else ""
        for kind in ("builtin", "peephole"):
            for what, table in (("train", train), ("infer", infer)):
                result[f"{kind}_{what}_samples_timesteps_per_s{suffix}"] = round(
                    work / median(table, (kind, jit), 0), 1)
        for what, table in (("train", train), ("infer", infer)):
            for which, tag in ((0, ""), (1, "_cpu")):
                ratio = median(table, ("builtin", jit), which) / median(
                    table, ("peephole", jit), which)
                result[f"{what}_ratio{suffix}{tag}"] = round(ratio, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
