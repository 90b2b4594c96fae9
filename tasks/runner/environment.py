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


def set_seeds(seed: int) -> None:
    """Python, NumPy, TF and Keras generators from one seed (weights, dropout, shuffles)."""
    keras.utils.set_random_seed(int(seed))


def configure_precision(mode: str) -> str:
    """Sets the global Keras dtype policy and returns its name.

    ``auto`` picks ``mixed_float16`` when a GPU is visible (tensor cores; Keras wraps the
    optimizer in a LossScaleOptimizer at compile time) and plain float32 otherwise, since float16
    on CPU is emulated and slower. ``bfloat16`` needs no loss scaling.
    """
    if mode == "auto":
        name = "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    elif mode in PRECISION_POLICIES:
        name = PRECISION_POLICIES[mode]
    else:
        raise ValueError(f"unknown mixed precision mode {mode!r}; choose one of "
                         f"auto, {', '.join(PRECISION_POLICIES)}")
    keras.config.set_dtype_policy(name)
    return name


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
