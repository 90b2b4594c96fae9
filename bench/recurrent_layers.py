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

``runner_default_mode`` names the mode ``python -m tasks.<task> train`` uses by default on
this machine: its precision (``--mixed-precision auto``: the runner's bf16 probe; ``--precision``
forces one) and its XLA choice for one batch shape (``jit_compile=auto``: XLA when the peephole
train step is >= 1.1x faster with it); ``train_ratio_default`` is the ratio in that mode.
``achieved_gflops`` (peephole and built-in, training, in the default mode) is estimated from
the LSTM's matrix multiplications (forward 2*4u*(d_in+u) FLOPs per direction, layer and
sample-timestep; training ~3x forward), next to ``fp32_peak_gflops`` = cores x clock x FP32
lanes (16 with AVX-512, 8 with AVX2) x 2 (FMA) x ``--fma-units`` (2 on server Xeons).
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
    p.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="policy of every model (auto: the runner's choice on this machine)")
    p.add_argument("--fma-units", type=int, default=2, help="FMA units per core, for the peak")
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


def cpu_peak_gflops(fma_units: int = 2) -> dict:
    """FP32 peak estimate: cores x clock (GHz, /proc/cpuinfo) x lanes x 2 (FMA) x units."""
    mhz, flags = 0.0, set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "cpu MHz":
                    mhz = max(mhz, float(value))
                elif key.strip() == "flags":
                    flags |= set(value.split())
    except OSError:
        pass
    lanes = 16 if "avx512f" in flags else 8 if "avx2" in flags else 4
    cores = os.cpu_count() or 1
    peak = cores * mhz / 1000 * lanes * 2 * fma_units
    return {"fp32_peak_gflops": round(peak, 1), "cores": cores, "clock_ghz": mhz / 1000,
            "fp32_lanes": lanes, "fma_units": fma_units}


def train_flops_per_sample_step(args) -> float:
    """Matmul FLOPs of one training sample-timestep of the bidirectional stack (x3 forward)."""
    forward, d_in = 0.0, args.features
    for _ in range(args.layers):
        forward += 2 * (2 * 4 * args.units * (d_in + args.units))  # two directions
        d_in = 2 * args.units
    return 3 * forward


def runner_precision(args) -> tuple[str, str]:
    """The policy the runner's ``--mixed-precision auto`` picks for this stack (or forced)."""
    if args.precision == "float32":
        return "float32", "--precision float32"
    if args.precision == "bfloat16":
        return "mixed_bfloat16", "--precision bfloat16"
    from types import SimpleNamespace

    from tasks.runner import environment

    return environment.choose_cpu_precision(SimpleNamespace(
        cell="peephole_lstm", units=args.units, embedding_dim=args.features,
        batch_size=args.batch))


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        import tensorflow as tf  # the benchmark may use TF directly; models/ may not

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    policy, policy_why = runner_precision(args)  # after the thread settings: it runs TF
    keras.config.set_dtype_policy(policy)
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
    # The runner's default mode on this machine: its precision, and XLA when it wins.
    default_jit = (True in modes and result.get("peephole_train_samples_timesteps_per_s_xla", 0)
                   >= 1.1 * result.get("peephole_train_samples_timesteps_per_s", float("inf")))
    if False not in modes:
        default_jit = True
    suffix = "_xla" if default_jit else ""
    result["runner_default_mode"] = {"precision": policy, "precision_why": policy_why,
                                     "jit_compile": default_jit}
    result["train_ratio_default"] = result[f"train_ratio{suffix}"]
    flops = train_flops_per_sample_step(args)
    result["achieved_gflops"] = {
        kind: round(flops * result[f"{kind}_train_samples_timesteps_per_s{suffix}"] / 1e9, 1)
        for kind in ("peephole", "builtin")}
    result.update(cpu_peak_gflops(args.fma_units))
    result["peak_fraction"] = round(result["achieved_gflops"]["peephole"]
                                    / max(result["fp32_peak_gflops"], 1e-9), 3)
    print(f"default mode {policy} jit={default_jit}: train_ratio {result['train_ratio_default']}"
          f" (goal >= 1.2); peephole {result['achieved_gflops']['peephole']} GFLOP/s of an "
          f"estimated FP32 peak {result['fp32_peak_gflops']}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
