"""Multi-worker training on Keras 3's TensorFlow trainer: two narrow fixes and the chief/worker
roles.

Keras 3.x (checked on 3.15) cannot ``fit`` under ``MultiWorkerMirroredStrategy`` with more than
one worker, because of two reductions in ``keras/src/backend/tensorflow/trainer.py``:

* ``_maybe_symbolic_build`` (under any strategy scope) pulls a first batch from a fresh pass
  over the data and averages it with ``strategy.reduce("MEAN", batch, axis=None)`` only to learn
  its shapes; in multi-worker mode that reduce cannot convert the ``PerReplica`` batch
  (keras-team/keras#20585), and under any strategy the extra pass advances the dataset's seeded
  reshuffle, so a one-replica mirrored run saw other batches than the default strategy at the
  same seed. The dataset's element spec gives the build the shapes without either.
* ``reduce_per_replica`` reduces every step output with ``strategy.reduce("MEAN", v, axis=0)``
  in multi-worker mode, which fails on the scalar metric results (tensorflow/tensorflow#72388).
  The elementwise mean over replicas (``axis=None``) is what the one-worker path computes
  (``tf.reduce_mean(local_results, axis=0)``).

:func:`patch_keras_trainer` replaces both, each delegating to Keras' own code outside the case
it fixes (the reduction: a multi-worker strategy; the build: a model created under a strategy
scope), so training under the default strategy runs the unpatched Keras code. The gradients are
all-reduced by Keras' own ``train_step`` (``optimizer.apply_gradients`` inside
``strategy.run``), and ``batch_size`` stays global: each of the ``num_replicas_in_sync``
replicas gets ``batch_size / replicas`` examples per step.
"""

from __future__ import annotations

import dataclasses
import json
import os

import keras
import tensorflow as tf

#: Keras versions whose trainer has the two reductions above (checked by reading the source).
_PATCHED_KERAS = ("3.",)
_patched = False


def is_multi_worker(strategy) -> bool:
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


def patch_keras_trainer() -> bool:
    """Installs the two fixes into Keras' TF trainer (idempotent).

    Returns:
        True when the patch is in place; False on a Keras version it was not written for, or
        one whose trainer no longer has the patched functions (then Keras' own code runs).
    """
    global _patched
    if _patched:
        return True
    if not keras.version().startswith(_PATCHED_KERAS):
        return False
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not (hasattr(tf_trainer, "reduce_per_replica")
            and hasattr(tf_trainer.TensorFlowTrainer, "_maybe_symbolic_build")):
        return False

    original_reduce = tf_trainer.reduce_per_replica
    original_build = tf_trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce_per_replica(values, strategy, reduction):
        if not is_multi_worker(strategy) or reduction not in ("auto", "mean"):
            return original_reduce(values, strategy, reduction)
        return tree.map_structure(lambda v: strategy.reduce("MEAN", v, axis=None), values)

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        if self._distribute_strategy is None or iterator is None:
            return original_build(self, iterator=iterator, data_batch=data_batch)
        # The dataset's element spec (shapes with None dimensions) is all the symbolic build
        # needs; unlike a batch, it neither reduces over workers nor starts an extra pass over
        # the data (which would advance a seeded reshuffle_each_iteration shuffle).
        spec = iterator.data_adapter.get_tf_dataset().element_spec
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=spec)

    tf_trainer.reduce_per_replica = reduce_per_replica
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    _patched = True
    return True


@dataclasses.dataclass(frozen=True)
class Role:
    """This process's part in a run: the chief writes the run directory, workers do not."""

    chief: bool = True
    name: str = "chief"
    workers: int = 1


def role(strategy) -> Role:
    """The chief is ``task.type == "chief"``, or worker 0 of a cluster without a chief (TF's
    convention); a single process is its own chief."""
    if not is_multi_worker(strategy):
        return Role()
    resolver = strategy.cluster_resolver
    kind, index = resolver.task_type, resolver.task_id
    spec = resolver.cluster_spec().as_dict()
    workers = sum(len(spec.get(k, [])) for k in ("chief", "worker"))
    chief = kind == "chief" or (kind == "worker" and index == 0 and "chief" not in spec)
    return Role(chief=chief, name="chief" if chief else f"{kind}{index}", workers=workers)


def barrier(strategy) -> None:
    """Blocks until every worker got here (a one-number all-reduce); no-op in one process."""
    if is_multi_worker(strategy):
        _all_reduce(strategy, tf.constant(1.0))


def from_chief(strategy, values: dict) -> dict:
    """The chief's ``values`` (name -> float) on every worker (an all-reduce where the others
    add zeros), so that decisions taken on them (early stopping, the learning-rate schedule,
    NaN stop) are the same everywhere even when a metric computed locally is not."""
    if not is_multi_worker(strategy):
        return values
    keys = sorted(values)
    local = [float(values[k]) if role(strategy).chief else 0.0 for k in keys]
    per_replica = tf.constant(local, tf.float64) / len(strategy.extended.worker_devices)
    return dict(zip(keys, _all_reduce(strategy, per_replica).numpy().tolist()))


_REDUCERS = {}


def _all_reduce(strategy, value):
    """The sum over all replicas of ``value`` (the same tensor on each of a worker's)."""
    run = _REDUCERS.get(id(strategy))
    if run is None:
        @tf.function(autograph=False, reduce_retracing=True)
        def run(v):
            return strategy.run(tf.identity, args=(v,))
        _REDUCERS[id(strategy)] = run
    return strategy.reduce("SUM", run(value), axis=None)


def cluster_size() -> int:
    """Processes named in ``TF_CONFIG`` (1 without it)."""
    try:
        spec = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except json.JSONDecodeError:
        return 1
    return max(1, sum(len(spec.get(k, [])) for k in ("chief", "worker")))


def shard(dataset, strategy):
    """The dataset as multi-worker ``fit`` should read it.

    Every global batch is split across all replicas of all workers (``AutoShardPolicy.DATA``
    splits each batch after rebatching: checked with two processes, ``range(10).batch(4)``
    gives worker 0 ``[0, 1], [4, 5], [8]`` and worker 1 ``[2, 3], [6, 7], [9]``), so every
    worker takes the same number of steps. A batch with fewer examples than replicas (a
    bucket's last, partial batch) would hand some replica an empty batch, on which recurrent
    layers and the CRF fail; such batches are left out.
    """
    replicas = strategy.num_replicas_in_sync

    def big_enough(*batch):
        return tf.shape(tf.nest.flatten(batch)[0])[0] >= replicas

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return dataset.filter(big_enough).with_options(options)
