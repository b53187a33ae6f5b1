"""Writing a unit's result pieces where the run lives, from the actor that computed them.

Actors write their own pieces (local disk or object store) and then the shards'
commit records, so the driver never handles perturbation bytes: it receives the
unit's small row tables for progress metrics, with the perturbation tables
dropped (:func:`strip_attack`, :func:`strip_eval`). Order matters for resume:
every piece of a unit first, the commit records last, so a committed shard
always has its store and its rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.results import provenance
from pipeline.results.partitions import commit, piece_name
from pipeline.results.storage import Location, write_table
from pipeline.results.tables import (
    PERTURBATION_SCHEMA,
    attack_partition,
    bounds_partition,
    clean_partition,
    eval_partition,
    perturbation_partition,
)
from pipeline.stages.attack_unit import AttackOutput
from pipeline.stages.eval_unit import EvalOutput
from tasks.protocol import OBJECT


class ResultWriter:
    """Writes pieces of one run (``run_dir``: a local folder or an object-store URI)."""

    def __init__(self, run_dir: str | Location, prov: dict[str, Any]) -> None:
        self.run_dir = Location(run_dir)
        self.metadata = provenance.schema_metadata(prov)
        self.objects = 0  # pieces and records written (the scale benchmark counts them)

    def piece(self, partition: str, shard: int, table: pa.Table) -> None:
        write_table(table, self.run_dir / partition / piece_name(shard), self.metadata)
        self.objects += 1

    def attack_output(self, out: AttackOutput) -> None:
        """Per shard of the unit: every table's piece, then the commit records."""
        u = out.unit
        for shard, ids in u.shards():
            keep = pa.array(ids)

            def part(table: pa.Table, keep: pa.Array = keep) -> pa.Table:
                return table.filter(pc.is_in(table["image_id"], value_set=keep))

            written = []
            for attack, (rows, perts) in out.attacks.items():
                self.piece(perturbation_partition(u.model, attack), shard, part(perts))
                self.piece(attack_partition(u.model, attack), shard, part(rows))
                written += [
                    perturbation_partition(u.model, attack),
                    attack_partition(u.model, attack),
                ]
            for table, partition in (
                (out.clean, clean_partition(u.model)),
                (out.bounds, bounds_partition(u.model)),
            ):
                if table is not None:
                    self.piece(partition, shard, part(table))
                    written.append(partition)
            for partition in written:
                commit(self.run_dir, partition, shard, ids)
                self.objects += 1

    def eval_output(self, out: EvalOutput) -> None:
        """MP-Object perturbations and every task's piece, then the commit records."""
        u = out.unit
        written = []
        if out.object_perturbations is not None:
            partition = perturbation_partition(u.target, u.attack, setup=OBJECT)
            self.piece(partition, u.shard, out.object_perturbations)
            written.append(partition)
        for task, table in out.tables.items():
            partition = eval_partition(task, u.source, u.target, u.attack)
            self.piece(partition, u.shard, table)
            written.append(partition)
        for partition in written:
            commit(self.run_dir, partition, u.shard, u.image_ids)
            self.objects += 1


def strip_attack(out: AttackOutput) -> AttackOutput:
    """What goes back to the driver: the rows, without the perturbation bytes."""
    return dataclasses.replace(
        out,
        attacks={
            a: (rows, PERTURBATION_SCHEMA.empty_table()) for a, (rows, _) in out.attacks.items()
        },
    )


def strip_eval(out: EvalOutput) -> EvalOutput:
    return dataclasses.replace(out, object_perturbations=None)
