"""Compacting a stage's shard pieces: on the cluster, a few Ray tasks per node, or in the
driver when its machine is Ray's only node.

On a cluster the driver only lists partitions and collects counts: the pieces
(perturbation bytes included) are read and rewritten by the tasks, where the storage
is. Each task folds a slice of the partitions: one task per partition started a worker
process per partition (a 12-image protocol run has ~100), and on a 2-core machine 46
workers importing pyarrow at once took the load average to 14. On one machine (a local
Ray, a one-node session) the tasks would read the same disk as the driver, so the
driver folds the pieces itself, two partitions at a time: no worker process starts
only to import pyarrow, and a resumed run with only pieces left to fold starts no Ray.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import ray

from pipeline.results.catalogue import partition_keys, result_dirs
from pipeline.results.partitions import CommitIndex, compact, partitions
from pipeline.results.storage import Location
from pipeline.results.write_error import ResultWriteError

#: Tables each stage writes; perturbations are read by the evaluation stage through the
#: same reader, so compacting them after the attack stage is safe.
ATTACK_TABLES = result_dirs("attack", compacted=True)
EVAL_TABLES = result_dirs("eval", compacted=True)
#: Tables mirrored to MLflow (the perturbation stores are large and not for review).
LOGGED = result_dirs(compacted=True, logged=True)


@ray.remote(num_cpus=0, max_retries=2)  # IO-bound; the model actors hold the CPUs
def _compact(run_dir: str, some: list[str]) -> int:
    return sum(compact(Location(run_dir), partition) for partition in some)


def _n_tasks(n_partitions: int) -> int:
    """Two tasks per node that can run one (at least one task, at most one per partition)."""
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    return max(1, min(n_partitions, 2 * max(1, nodes)))


def mlflow_model(partition: str) -> str:
    """The child run a partition is logged to: its model, or the evaluating target."""
    keys = partition_keys(partition)
    return keys.get("model") or keys["target"]


def compact_stage(
    run_dir: Location, tables: tuple[str, ...], on_cluster: Callable[[], bool]
) -> list[tuple[str, str]]:
    """Compact every partition of ``tables`` that has committed pieces; return (partition,
    model) of every partition to log. ``on_cluster`` is asked only when there is something
    to fold (it may start Ray): True folds with Ray tasks on the cluster's nodes, False in
    this process. A resumed run with nothing left to fold never asks."""
    todo = [p for table in tables for p in partitions(run_dir, table)]
    with_pieces = CommitIndex.load(run_dir).records  # partitions holding commit records
    fold = [p for p in todo if p in with_pieces]
    if fold:
        if on_cluster():
            _fold_on_cluster(run_dir, fold)
        else:
            _fold_here(run_dir, fold)
    return [(p, mlflow_model(p)) for p in todo if p.split("/", 1)[0] in LOGGED]


def _fold_on_cluster(run_dir: Location, fold: list[str]) -> None:
    n = _n_tasks(len(fold))
    tasks = [_compact.remote(str(run_dir), fold[k::n]) for k in range(n) if fold[k::n]]
    try:
        ray.get(tasks)
    except ray.exceptions.RayTaskError as exc:  # a full disk: its line, not Ray's trace
        if isinstance(exc.cause, ResultWriteError):
            raise exc.cause from None
        raise


def _fold_here(run_dir: Location, fold: list[str]) -> None:
    """Two partitions at a time, as two tasks on a node would (Parquet's reading,
    compressing and writing release the GIL)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="compaction") as pool:
        for _ in pool.map(lambda partition: compact(run_dir, partition), fold):
            pass  # map raises the first error (a full disk's ResultWriteError) here
