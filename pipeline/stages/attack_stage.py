"""The attack stage: clean scores, Peck's bounds and every attack's minimum perturbation,
per (model, shard), on the model's actor.

Planned from the commit records (:mod:`pipeline.stages.plan_attacks`), computed batch by
batch (:mod:`pipeline.stages.attack_batch`); the actor writes every shard's pieces, the
perturbation store included, and sends back the rows without the perturbation bytes. The
driver streams running metrics to MLflow as units land and as batches finish inside them
(:mod:`pipeline.stages.running_stats`) and measures each model's images per second.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.results.catalogue import result_dirs
from pipeline.results.tables import (
    PERTURBATION_SCHEMA,
    attack_partition,
    bounds_partition,
    clean_partition,
    perturbation_partition,
)
from pipeline.stages.attack_batch import AttackBatches
from pipeline.stages.attack_unit import AttackOutput, AttackUnit
from pipeline.stages.plan_attacks import plan_attack_units
from pipeline.stages.running_stats import RunningStats
from pipeline.stages.stage import Booking, Stage, StageContext, StagePlan, log

if TYPE_CHECKING:
    from pipeline.config.benchmark import BenchmarkConfig
    from pipeline.results.storage import Location
    from pipeline.results.write import ResultWriter
    from pipeline.stages.progress import Partial, ProgressTarget
    from pipeline.stages.worker import ModelWorker


class AttackStage(Stage[AttackUnit, AttackOutput]):
    """Always active: with no attack task its plan is empty, and it still compacts what an
    interrupted run left."""

    name = "attack"
    unit_type = AttackUnit
    tables = result_dirs("attack", compacted=True)

    def plan(
        self, cfg: BenchmarkConfig, manifest: pa.Table, run_dir: Location
    ) -> StagePlan[AttackUnit]:
        return plan_attack_units(cfg, manifest, run_dir)

    def compute(
        self, worker: ModelWorker, unit: AttackUnit, progress: ProgressTarget | None
    ) -> AttackOutput:
        return AttackBatches(worker, unit, progress).output()

    def write(self, writer: ResultWriter, out: AttackOutput) -> None:
        """Per shard of the unit (a joined unit spans several): every table's piece, then
        the commit records."""
        u = out.unit
        for shard, ids in u.shards():
            keep = pa.array(ids)

            def part(table: pa.Table, keep: pa.Array = keep) -> pa.Table:
                return table.filter(pc.is_in(table["image_id"], value_set=keep))

            written = []
            for attack, (rows, perts) in out.attacks.items():
                writer.piece(perturbation_partition(u.model, attack), shard, part(perts))
                writer.piece(attack_partition(u.model, attack), shard, part(rows))
                written += [
                    perturbation_partition(u.model, attack),
                    attack_partition(u.model, attack),
                ]
            for table, partition in (
                (out.clean, clean_partition(u.model)),
                (out.bounds, bounds_partition(u.model)),
            ):
                if table is not None:
                    writer.piece(partition, shard, part(table))
                    written.append(partition)
            writer.commit(written, shard, ids)

    def strip(self, out: AttackOutput) -> AttackOutput:
        """The rows, without the perturbation bytes."""
        empty = PERTURBATION_SCHEMA.empty_table()
        attacks = {a: (rows, empty) for a, (rows, _) in out.attacks.items()}
        return dataclasses.replace(out, attacks=attacks)

    def booking(self, ctx: StageContext, units: list[AttackUnit]) -> Booking[AttackOutput]:
        return _AttackBooking(ctx, units)


class _AttackBooking(Booking[AttackOutput]):
    """Running metrics (exact after a resume), images per second of actor time per model,
    halvings in the log, and the ``attack_unit`` hook."""

    def __init__(self, ctx: StageContext, units: list[AttackUnit]) -> None:
        self.ctx = ctx
        self.stats = RunningStats.resume(
            ctx.cfg,
            ctx.manifest,
            ctx.run_dir,
            units,
            lambda model: ctx.tracker.last_step("images_done", model),
        )
        self.busy: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
        self.rates: dict[str, float] = {}

    def output(self, out: AttackOutput) -> None:
        spent = self.busy[out.unit.model]
        spent[0] += len(out.unit.image_ids)
        spent[1] += out.seconds
        self.rates[out.unit.model] = spent[0] / max(spent[1], 1e-9)
        if out.halvings:
            log(f"{out.unit.model} shard {out.unit.shard}: batch split {out.halvings} time(s)")
        model, metrics, step = self.stats.update(out)
        self.ctx.tracker.log_metrics(metrics, step=step, model=model)
        if self.ctx.hooks.attack_unit:
            self.ctx.hooks.attack_unit(out)

    def partial(self, model: str, running: list[Partial]) -> None:
        metrics, step = self.stats.preview(model, running)
        self.ctx.tracker.log_metrics(metrics, step=step, model=model)

    def images_per_s(self) -> dict[str, float]:
        return dict(self.rates)


ATTACK = AttackStage()
