"""Compacting a stage's shard pieces: each partition's pieces folded into one file, in the
driver, a few partitions at a time.

Why in the driver, not in Ray tasks: the pieces are read from the run's storage and
written back to it, which the driver reaches like any node (a shared disk or the object
store). Tasks for it hold no resources (the model actors hold the CPUs), so Ray runs them
on the driver's node anyway, each in a worker process started only to import pyarrow: a
test run on three nodes left three such processes idle after folding a few kilobytes
(docs/testing.md, "Eighth session"). Parquet's reading, compressing and writing release
the GIL, so a few threads here fold as fast.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from pipeline.results.catalogue import partition_keys, result_dirs
from pipeline.results.partitions import CommitIndex, compact, partitions
from pipeline.results.storage import Location

#: Tables each stage writes; perturbations are read by the evaluation stage through the
#: same reader, so compacting them after the attack stage is safe.
ATTACK_TABLES = result_dirs("attack", compacted=True)
EVAL_TABLES = result_dirs("eval", compacted=True)
#: Tables mirrored to MLflow (the perturbation stores are large and not for review).
LOGGED = result_dirs(compacted=True, logged=True)


#: Partitions folded at once: enough to overlap an object store's latency, few enough that
#: a small head node is not swamped.
FOLD_THREADS = min(4, os.cpu_count() or 1)


def mlflow_model(partition: str) -> str:
    """The child run a partition is logged to: its model, or the evaluating target."""
    keys = partition_keys(partition)
    return keys.get("model") or keys["target"]


def compact_stage(run_dir: Location, tables: tuple[str, ...]) -> list[tuple[str, str]]:
    """Compact every partition of ``tables`` that has committed pieces; return (partition,
    model) of every partition to log. A resumed run with nothing left to fold reads only
    the commit index."""
    todo = [p for table in tables for p in partitions(run_dir, table)]
    with_pieces = CommitIndex.load(run_dir).records  # partitions holding commit records
    fold = [p for p in todo if p in with_pieces]
    if fold:
        with ThreadPoolExecutor(FOLD_THREADS, thread_name_prefix="compaction") as pool:
            for _ in pool.map(lambda partition: compact(run_dir, partition), fold):
                pass  # map raises the first error (a full disk's ResultWriteError) here
    return [(p, mlflow_model(p)) for p in todo if p.split("/", 1)[0] in LOGGED]
