"""Generation benchmark: in-graph sampling vs the keras-io Python loop, plus quality budgets.

    python -m bench.generation                               # speed only (~1-3 min on 2 cores)
    python -m bench.generation --train-seconds 600 --music-seconds 300   # + quality figures

1. Speed (always): one char LM (2 x 256 LSTM, 65-char vocabulary), batch 1. In-graph:
   ``models.language_model.generate`` in one ``tf.function`` (XLA and plain), the state carried
   step by step. Baseline: the keras-io pattern, a Python loop calling ``model.predict`` on the
   growing prefix for every character. Same model, same run; ``speedup`` = in-graph (XLA)
   characters/s over baseline characters/s, both for the same number of new characters.
2. Tiny Shakespeare (``--train-seconds`` > 0): trains the char_generation task on
   ``--shakespeare`` (continuous windows) for a wall-clock budget, then reports the validation
   loss in nats/char of the best checkpoint (goal <= 1.50).
3. Bach (``--music-seconds`` > 0): trains the music_generation task (its default settings) on
   the soprano chorales and reports the held-out pitch NLL over the bigram baseline's
   (goal <= 0.8).

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.budget import TimeBudget  # noqa: E402
from models.language_model import (  # noqa: E402
    build_char_language_model,
    build_step_model,
    generate,
)

DEFAULT_TEXT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                            "shared", "data", "tinyshakespeare", "input.txt")


def log(message: str) -> None:
    print(message, flush=True)


# ---- 1. speed -------------------------------------------------------------------------------
def speed(chars: int, baseline_chars: int, repeats: int, units: int, layers: int,
          vocab: int, prompt_length: int, seed: int) -> dict:
    keras.utils.set_random_seed(seed)
    model = build_char_language_model(vocab, embedding_dim=64, units=units, num_layers=layers)
    step = build_step_model(model)
    rng = np.random.default_rng(seed)
    prompt = rng.integers(4, vocab, (1, prompt_length)).astype("int32")
    out = {"model": f"{layers}x{units} lstm", "vocab": vocab, "batch": 1,
           "prompt_length": prompt_length, "chars": chars}

    for name, jit in (("xla", True), ("graph", False)):
        gen = keras.random.SeedGenerator(seed)
        fn = tf.function(lambda p, g=gen: generate(step, p, chars, 1.0, seed=g),
                         jit_compile=jit)
        start = time.perf_counter()
        fn(tf.constant(prompt))[0].numpy()  # trace + compile
        compile_s = time.perf_counter() - start
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            ids = fn(tf.constant(prompt))[0].numpy()
            times.append(time.perf_counter() - start)
        assert ids.shape == (1, chars)
        best = min(times)
        out[f"{name}_chars_per_s"] = chars / best
        out[f"{name}_compile_s"] = compile_s
        log(f"in-graph ({name}): {chars} chars in {best:.3f} s (best of {repeats}) = "
            f"{chars / best:,.0f} chars/s; first call {compile_s:.1f} s")

    # keras-io: re-read the whole growing prefix with model.predict for each new character.
    seq = list(prompt[0])
    model.predict(np.array([seq], "int32"), verbose=0)  # build the predict function first
    start = time.perf_counter()
    for _ in range(baseline_chars):
        logits = model.predict(np.array([seq], "int32"), verbose=0)[0, -1].astype("float64")
        logits[:2] = -np.inf
        probs = np.exp(logits - logits.max())
        seq.append(int(rng.choice(vocab, p=probs / probs.sum())))
    elapsed = time.perf_counter() - start
    out["baseline_chars"] = baseline_chars
    out["baseline_chars_per_s"] = baseline_chars / elapsed
    log(f"python loop + model.predict on the prefix: {baseline_chars} chars in {elapsed:.2f} s "
        f"= {baseline_chars / elapsed:,.1f} chars/s")
    if baseline_chars != chars:
        log("  (fewer baseline characters than in-graph ones: the baseline's prefix stays "
            "shorter, so its rate and the speedup are flattering to the baseline)")
    out["speedup"] = out["xla_chars_per_s"] / out["baseline_chars_per_s"]
    out["speedup_no_xla"] = out["graph_chars_per_s"] / out["baseline_chars_per_s"]
    log(f"speedup: {out['speedup']:.1f}x with XLA, {out['speedup_no_xla']:.1f}x without")
    return out


# ---- 2. tiny shakespeare --------------------------------------------------------------------
def shakespeare(path: str, seconds: float, args) -> dict:
    from tasks import char_generation as cg
    from tasks.runner import config as config_lib
    from tasks.runner import training

    if not os.path.exists(path):
        log(f"tiny shakespeare not found at {path}: skipped")
        return {"shakespeare_skipped": f"missing {path}"}
    config = config_lib.override(cg.CharGenerationConfig(), {
        "data": path, "mode": "continuous", "units": args.train_units,
        "num_layers": args.train_layers, "embedding_dim": 64, "dropout": 0.0,
        "sequence_length": 100, "batch_size": args.train_batch_size,
        "learning_rate": args.learning_rate, "epochs": 1000, "patience": 1000,
        "seed": args.seed, "mixed_precision": "off"})
    budget = TimeBudget(seconds)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        metrics = training.train(cg.CharGenerationTask(), config, os.path.join(run_dir, "r"),
                                 verbose=0, extra_callbacks=[budget])
        total = time.perf_counter() - start
    nats = metrics["nats_per_char"]
    log(f"tiny shakespeare ({args.train_layers}x{args.train_units} lstm): validation "
        f"{nats:.3f} nats/char ({metrics['bits_per_char']:.3f} "
        f"bits/char) after {budget.batches} batches in a {seconds:.0f} s training budget "
        f"({total:.0f} s with data, evaluation); goal <= 1.50")
    return {"shakespeare_val_nats_per_char": nats,
            "shakespeare_val_bits_per_char": metrics["bits_per_char"],
            "shakespeare_model": f"{args.train_layers}x{args.train_units} lstm",
            "shakespeare_train_budget_s": seconds, "shakespeare_batches": budget.batches,
            "shakespeare_total_s": total}


# ---- 3. bach ----------------------------------------------------------------------------------
def bach(seconds: float, args) -> dict:
    from tasks import music_generation as mg
    from tasks.runner import config as config_lib
    from tasks.runner import training

    # The task's default model and training settings; only the stopping rule is the budget.
    config = config_lib.override(mg.MusicGenerationConfig(), {
        "epochs": 1000, "patience": 1000, "seed": args.seed, "mixed_precision": "off"})
    budget = TimeBudget(seconds)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        metrics = training.train(mg.MusicGenerationTask(), config, os.path.join(run_dir, "r"),
                                 verbose=0, extra_callbacks=[budget])
        total = time.perf_counter() - start
    log(f"bach soprano: pitch NLL {metrics['pitch_nll']:.3f} vs bigram "
        f"{metrics['bigram_pitch_nll']:.3f} nats/note -> ratio {metrics['nll_ratio']:.3f} "
        f"(accuracy {metrics['pitch_accuracy']:.3f} vs {metrics['bigram_pitch_accuracy']:.3f}) "
        f"after {budget.batches} batches in a {seconds:.0f} s budget; goal <= 0.8")
    return {"bach_nll_ratio": metrics["nll_ratio"], "bach_pitch_nll": metrics["pitch_nll"],
            "bach_bigram_pitch_nll": metrics["bigram_pitch_nll"],
            "bach_pitch_accuracy": metrics["pitch_accuracy"],
            "bach_bigram_pitch_accuracy": metrics["bigram_pitch_accuracy"],
            "bach_train_budget_s": seconds, "bach_batches": budget.batches,
            "bach_total_s": total}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=256, help="characters per in-graph run")
    parser.add_argument("--baseline-chars", type=int, default=None,
                        help="characters for the model.predict loop (default: --chars)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--train-seconds", type=float, default=0.0,
                        help="tiny-shakespeare training budget (0 = skip)")
    parser.add_argument("--shakespeare", default=DEFAULT_TEXT)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--train-units", type=int, default=256)
    parser.add_argument("--train-layers", type=int, default=2)
    parser.add_argument("--train-batch-size", type=int, default=64)
    parser.add_argument("--music-seconds", type=float, default=0.0,
                        help="Bach training budget (0 = skip)")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args(argv)
    for name in ("chars", "repeats", "units", "layers", "vocab", "prompt_length"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    baseline_chars = args.baseline_chars or args.chars

    result = {"host": platform.node(), "cpus": os.cpu_count(), "tf": tf.__version__,
              "keras": keras.__version__}
    result.update(speed(args.chars, baseline_chars, args.repeats, args.units, args.layers,
                        args.vocab, args.prompt_length, args.seed))
    if args.train_seconds > 0:
        result.update(shakespeare(os.path.normpath(args.shakespeare), args.train_seconds, args))
    if args.music_seconds > 0:
        result.update(bach(args.music_seconds, args))
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
