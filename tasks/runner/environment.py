"""Seeds, mixed precision and distribution strategy: set once, before any model is built."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from tasks.runner.errors import ConfigError

PRECISION_POLICIES = {
    "off": "float32",
    "float32": "float32",
    "float16": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
}
STRATEGIES = ("auto", "default", "mirrored", "multiworker")
JIT_MODES = ("auto", "on", "off")
#: ``jit_compile=auto`` leaves XLA off for runs shorter than this many train steps: compiling
#: every bucket shape costs seconds each, more than a short run can win back.
JIT_MIN_STEPS = 300
#: Batch shapes a bucketed run compiles (one per length bucket; pipelines use up to 8).
JIT_SHAPES = 8


def set_seeds(seed: int) -> None:
    """Python, NumPy, TF and Keras generators from one seed (weights, dropout, shuffles)."""
    keras.utils.set_random_seed(int(seed))


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16 instructions);
    elsewhere bfloat16 is emulated and slower than float32."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


_PROBED: dict = {}


def _probe_step_seconds(policy: str, shape: tuple, steps: int = 3) -> float:
    """Median seconds of one train step of a representative recurrent model under ``policy``.

    The model is a one-layer bidirectional stack of the run's cell and width on float inputs
    [batch, time, features], sigmoid output in float32 (like the tasks' heads); it is built
    and dropped here, with the previous global policy put back.
    """
    import statistics
    import time

    import numpy as np

    from models.layers.stacked import StackedBidirectional

    cell, units, features, batch, time_steps = shape
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        inputs = keras.Input((time_steps, features))
        x = StackedBidirectional(units, num_layers=1, cell=cell)(inputs)
        outputs = keras.layers.Dense(1, dtype="float32")(x)
        model = keras.Model(inputs, outputs)
        model.compile(keras.optimizers.Adam(1e-3), "mse", jit_compile=False)
        rng = np.random.default_rng(0)
        x_batch = rng.standard_normal((batch, time_steps, features)).astype("float32")
        y_batch = rng.standard_normal((batch, 1)).astype("float32")
        model.train_on_batch(x_batch, y_batch)  # trace outside the timing
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            model.train_on_batch(x_batch, y_batch)
            times.append(time.perf_counter() - start)
        return statistics.median(times)
    finally:
        keras.config.set_dtype_policy(previous)


def choose_cpu_precision(config, min_speedup: float = 1.1) -> tuple[str, str]:
    """``auto`` on a CPU: ``(policy, why)``.

    float32 unless the CPU has native bf16 AND a probe (a few train steps of a representative
    recurrent model with the run's cell, units and batch size, ~2 s) runs ``mixed_bfloat16`` at
    least ``min_speedup`` times faster. Cached per process and shape, so tuning trials and
    tests probe once.
    """
    if not cpu_has_native_bf16():
        return "float32", "CPU without native bfloat16 (no avx512_bf16/amx_bf16)"
    shape = (getattr(config, "cell", "lstm"), int(getattr(config, "units", 64)),
             int(getattr(config, "embedding_dim", 64)), int(getattr(config, "batch_size", 32)),
             16)
    if shape not in _PROBED:
        fp32 = _probe_step_seconds("float32", shape)
        bf16 = _probe_step_seconds("mixed_bfloat16", shape)
        _PROBED[shape] = fp32 / bf16
    speedup = _PROBED[shape]
    verdict = "mixed_bfloat16" if speedup >= min_speedup else "float32"
    return verdict, (f"native bf16 CPU; probe: mixed_bfloat16 {speedup:.2f}x float32 "
                     f"(needs >= {min_speedup}x)")


def configure_precision(mode: str, config=None) -> str:
    """Sets the global Keras dtype policy and returns its name.

    ``auto`` picks ``mixed_float16`` when a GPU is visible (tensor cores; Keras wraps the
    optimizer in a LossScaleOptimizer at compile time); on a CPU it probes
    (:func:`choose_cpu_precision`: ``mixed_bfloat16`` where native bf16 makes it faster,
    float32 otherwise; float16 on CPU is emulated and slower). ``bfloat16`` needs no loss
    scaling. :data:`LAST_CHOICE` says why ``auto`` chose what it did. Output layers, losses
    and CRFs compute in float32 under every policy (the task builders set their dtype).
    """
    global LAST_CHOICE
    if mode == "auto":
        if tf.config.list_physical_devices("GPU"):
            name, LAST_CHOICE = "mixed_float16", "auto: GPU visible"
        elif config is None:
            name, LAST_CHOICE = "float32", "auto: CPU"
        else:
            name, why = choose_cpu_precision(config)
            LAST_CHOICE = f"auto: {why}"
    elif mode in PRECISION_POLICIES:
        name, LAST_CHOICE = PRECISION_POLICIES[mode], f"--mixed-precision {mode}"
    else:
        raise ValueError(f"unknown mixed precision mode {mode!r}; choose one of "
                         f"auto, {', '.join(PRECISION_POLICIES)}")
    keras.config.set_dtype_policy(name)
    return name


LAST_CHOICE = ""


def split_cpu(devices: int) -> None:
    """Splits the first CPU into ``devices`` logical devices, so ``--strategy mirrored`` has that
    many replicas on a machine without GPUs (``--set logical_devices=N``). 0 or 1: no split.

    Raises:
        ConfigError: ``devices`` < 0, or TensorFlow has already initialised its devices.
    """
    if devices < 0:
        raise ConfigError(f"logical_devices must be >= 0, got {devices}")
    if devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current and len(current) == devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    except RuntimeError:
        raise ConfigError(f"logical_devices={devices}: TensorFlow's devices are already "
                         f"initialised in this process; set it before anything else runs "
                         f"(the command line does)") from None


def make_strategy(name: str, logical_devices: int = 0) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy named on the command line.

    ``auto``: MirroredStrategy over all GPUs when there are several, else the default strategy.
    ``mirrored``: all local GPUs, or the ``logical_devices`` CPUs (NCCL all-reduce on GPUs).
    ``multiworker`` reads the cluster from ``TF_CONFIG`` (see README, "Distributed training");
    its collectives use NCCL when GPUs are visible and gRPC ring all-reduce otherwise.
    Create the strategy before any other TensorFlow work: it configures the runtime.
    """
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    split_cpu(logical_devices)
    from tasks.runner import distributed

    distributed.patch_keras_trainer()
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    tf_config = os.environ.get("TF_CONFIG")
    if not tf_config:
        raise ConfigError("--strategy multiworker needs the TF_CONFIG environment variable "
                         "(a JSON cluster spec and this worker's task index); see README")
    try:
        json.loads(tf_config)
    except json.JSONDecodeError as err:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {err}") from None
    gpu = bool(tf.config.list_physical_devices("GPU"))
    implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL if gpu
                      else tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation))


_JIT_PROBED: dict = {}


def choose_jit(task, config, strategy, preprocessor, train_ds, train_examples=None,
               min_speedup: float = 1.1) -> tuple:
    """``(jit_compile, why)`` for ``model.compile``: True, False or Keras' ``"auto"``.

    ``auto``: Keras' own choice on a GPU; off under a multi-replica strategy (Keras keeps XLA
    off with tf.distribute) and for runs under :data:`JIT_MIN_STEPS` steps; otherwise a probe
    times a few train steps of a throw-away copy of the task's model on the first training
    batch with and without XLA, and XLA is used when it is ``min_speedup`` times faster.
    The caller re-seeds before building the real model (the probe draws random weights).
    """
    mode = getattr(config, "jit_compile", "auto")
    if mode == "on":
        return True, "--set jit_compile=on"
    if mode == "off":
        return False, "--set jit_compile=off"
    if tf.config.list_physical_devices("GPU"):
        return "auto", "auto: GPU visible, Keras decides"
    if strategy.num_replicas_in_sync > 1:
        return False, "auto: off under a multi-replica strategy"
    steps = None
    if train_examples:
        steps = config.epochs * -(-int(train_examples) // config.batch_size)
        if steps < JIT_MIN_STEPS:
            return False, f"auto: a run of ~{steps} steps is too short to pay for compiling"
    key = (task.name, config.cell, config.units, config.num_layers, config.embedding_dim,
           config.batch_size, keras.config.dtype_policy().name)
    if key not in _JIT_PROBED:
        _JIT_PROBED[key] = _probe_jit(task, config, preprocessor, train_ds)
    seconds = _JIT_PROBED[key]
    if seconds.get("error"):
        return False, f"auto: XLA could not compile the model ({seconds['error']})"
    speedup = seconds["off"] / seconds["on"]
    why = (f"auto: probe: XLA step {speedup:.2f}x the graph step (needs >= {min_speedup}x), "
           f"compiling one batch shape {seconds['compile']:.1f}s")
    if speedup < min_speedup:
        return False, why
    if steps is not None:
        # XLA compiles every batch shape (each length bucket) once; the run must win it back.
        saved = steps * (seconds["off"] - seconds["on"])
        cost = JIT_SHAPES * seconds["compile"]
        why += f"; saves ~{saved:.0f}s over {steps} steps vs ~{cost:.0f}s compiling"
        return saved > cost, why
    return True, why


def _probe_jit(task, config, preprocessor, train_ds, rounds: int = 4) -> dict:
    """Median seconds per train step without (``off``) and with XLA (``on``) on one batch,
    timed in alternation (a busy machine slows both alike), and the first XLA call's extra
    seconds (``compile``); ``error`` if XLA cannot compile the model."""
    import statistics
    import time

    from tasks.runner.training import compile_model

    batch = next(iter(train_ds.take(1)))
    models, first = {}, {}
    for jit in (False, True):
        models[jit] = task.build_model(config, preprocessor)
        compile_model(task, config, models[jit], jit_compile=jit)
        start = time.perf_counter()
        try:
            models[jit].train_on_batch(*batch)
        except XLA_ERRORS as err:
            if not jit:
                raise
            return {"error": first_line(err)}
        first[jit] = time.perf_counter() - start
    times = {False: [], True: []}
    for _ in range(rounds):
        for jit in (False, True):
            start = time.perf_counter()
            models[jit].train_on_batch(*batch)
            times[jit].append(time.perf_counter() - start)
    return {"off": statistics.median(times[False]), "on": statistics.median(times[True]),
            "compile": max(0.0, first[True] - first[False])}


#: What a train step raises when XLA cannot compile it (an op without an XLA kernel, ...).
XLA_ERRORS = (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError,
              tf.errors.InternalError)


def first_line(err: BaseException, limit: int = 160) -> str:
    """The first informative line of a TensorFlow error, cut to ``limit`` characters."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    text = next((ln for ln in lines if "XLA" in ln or "unsupported" in ln.lower()),
                lines[0] if lines else type(err).__name__)
    return text[:limit] + ("..." if len(text) > limit else "")


def install_xla_fallback(model, label: str, log=print) -> None:
    """When ``model``'s XLA train step fails to compile on its first call, says why in one
    line, recompiles the step without XLA and goes on with the same batch iterator.

    Wraps the model's ``make_train_function`` (which ``fit`` calls), so it survives
    ``fit`` rebuilding the function; a model compiled without XLA is left as it is.
    """
    make = model.make_train_function

    def make_guarded(force=False):
        make(force)
        function = model.train_function  # Keras' make_train_function returns None
        if not model.jit_compile or getattr(function, "xla_guarded", False):
            return function
        calls = [0]

        def guarded(iterator):
            calls[0] += 1
            try:
                return function(iterator)
            except XLA_ERRORS as err:
                if calls[0] > 1:  # compiled fine before: a real error of this batch
                    raise
                log(f"[{label}] XLA could not compile the train step ({first_line(err)}); "
                    f"training without XLA")
                model.jit_compile = False
                make(force=True)
                return model.train_function(iterator)

        guarded.xla_guarded = True
        model.train_function = guarded
        return guarded

    model.make_train_function = make_guarded
