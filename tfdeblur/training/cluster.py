"""Training on several machines: ``--strategy multiworker`` (TensorFlow's
``MultiWorkerMirroredStrategy``, one process per worker, each configured by its ``TF_CONFIG``).

Every worker runs the same program. What differs, as TensorFlow's multi-worker guide prescribes:

* **Who writes.** The chief (task ``chief``, or ``worker`` 0 in a cluster without one) writes the
  run's folder: checkpoints, TensorBoard events, ``generator*.keras``, ``config.yaml`` and
  ``summary.json``. The other workers take part in every checkpoint save (a save may need all of
  them), into a scratch folder of their own that is removed after each save, and write nothing
  else. All workers restore from the chief's checkpoints, so ``--resume`` continues a cluster run.
* **What data each worker feeds.** The training stream is a pure function of the step
  (:func:`tfdeblur.data.train_dataset`): every worker builds the step's global batch and keeps its
  replicas' slice of it, so a cluster trains on exactly the batches of a single-process run of the
  same global batch, whatever the number of workers. (Each worker blurs the whole global batch; at
  2 to 8 workers that costs less than coordinating a split of the random draws.)
"""

from __future__ import annotations

import os
import shutil

__all__ = ["is_multiworker", "is_chief", "task_label", "scratch_dir", "worker_slice", "distribute_per_worker",
           "remove_scratch"]


def is_multiworker(strategy) -> bool:
    import tensorflow as tf

    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def _task(strategy):
    resolver = getattr(strategy, "cluster_resolver", None) if is_multiworker(strategy) else None
    if resolver is None or resolver.task_type is None:
        return None, None, {}
    return resolver.task_type, int(resolver.task_id), resolver.cluster_spec().as_dict()


def is_chief(strategy) -> bool:
    """True for a single process, and for the cluster's chief (``chief``, else ``worker`` 0)."""
    task_type, task_id, cluster = _task(strategy)
    if task_type is None or task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def task_label(strategy) -> str:
    task_type, task_id, _ = _task(strategy)
    return "" if task_type is None else f"{task_type} {task_id}"


def scratch_dir(output_dir, strategy) -> str:
    """Where a non-chief worker writes its share of a checkpoint save (removed after each save)."""
    task_type, task_id, _ = _task(strategy)
    return os.path.join(output_dir, f".scratch-{task_type}-{task_id}")


def remove_scratch(path):
    shutil.rmtree(path, ignore_errors=True)


def worker_slice(dataset, ctx, global_batch: int):
    """This worker's share of a dataset of *global* batches ``(blurred, sharp)``: its replicas'
    consecutive slice of every batch, as one per-replica batch per local replica
    (``ctx``: the ``tf.distribute.InputContext`` of this worker's input pipeline)."""
    local_replicas = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    per_replica = ctx.get_per_replica_batch_size(global_batch)
    n = local_replicas * per_replica
    lo = ctx.input_pipeline_id * n
    ds = dataset.map(lambda blurred, sharp: (blurred[lo : lo + n], sharp[lo : lo + n]))
    if local_replicas > 1:  # consecutive elements go to the worker's consecutive replicas
        ds = ds.unbatch().batch(per_replica)
    return ds


def distribute_per_worker(strategy, global_dataset_fn, global_batch: int):
    """``strategy``'s distributed dataset: every worker builds the global batches
    (``global_dataset_fn()``) and feeds its :func:`worker_slice`."""
    return strategy.distribute_datasets_from_function(lambda ctx: worker_slice(global_dataset_fn(), ctx, global_batch))
