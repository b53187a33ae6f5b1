"""Writing a run's result shards: atomic files, each stamped with the run's provenance.

The order inside one unit matters for resume: the perturbation store before
the rows that refer to it, so a finished shard always implies its store.
Every shard is also logged to the model's MLflow child run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline import provenance
from pipeline.attack_unit import AttackOutput
from pipeline.eval_unit import EvalOutput
from pipeline.results import (
    attack_shard_path,
    bounds_shard_path,
    clean_shard_path,
    eval_shard_path,
    perturbation_shard_path,
    write_atomic,
)
from pipeline.tracking import Tracker
from tasks.protocol import OBJECT


class ResultWriter:
    """Writes what the actors computed under ``run_dir`` and mirrors it to MLflow."""

    def __init__(self, run_dir: Path, tracker: Tracker, prov: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.tracker = tracker
        self.metadata = provenance.schema_metadata(prov)

    def table(
        self, table: pa.Table, path: Path, model: str | None = None, log: bool = True
    ) -> None:
        write_atomic(table, path, self.metadata)
        if log:
            self.tracker.log_artifact(path, model=model)

    def attack_output(self, out: AttackOutput) -> None:
        """Per shard of the unit: perturbations first, attack rows last (an attack shard
        implies its store)."""
        u, run_dir = out.unit, self.run_dir
        for shard, ids in u.shards():
            keep = pa.array(ids)

            def part(table: pa.Table, keep: pa.Array = keep) -> pa.Table:
                return table.filter(pc.is_in(table["image_id"], value_set=keep))

            for attack, (rows, perts) in out.attacks.items():
                path = perturbation_shard_path(run_dir, u.model, attack, shard)
                self.table(part(perts), path, log=False)
                self.table(part(rows), attack_shard_path(run_dir, u.model, attack, shard), u.model)
            for table, path in (
                (out.clean, clean_shard_path(run_dir, u.model, shard)),
                (out.bounds, bounds_shard_path(run_dir, u.model, shard)),
            ):
                if table is not None:
                    self.table(part(table), path, u.model)

    def eval_output(self, out: EvalOutput) -> None:
        """MP-Object perturbations first, task shards last (a finished shard implies its store)."""
        u = out.unit
        if out.object_perturbations is not None:
            path = perturbation_shard_path(self.run_dir, u.target, u.attack, u.shard, setup=OBJECT)
            self.table(out.object_perturbations, path, log=False)
        for task, table in out.tables.items():
            path = eval_shard_path(self.run_dir, task, u.source, u.target, u.attack, u.shard)
            self.table(table, path, u.target)
