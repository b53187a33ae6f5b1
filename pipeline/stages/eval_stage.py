"""The evaluation stage: every (source, target, attack) pair's stored perturbations
evaluated by the target's actor, under every condition of the configured tasks.

It runs after the attack stage: first the evaluation points are fixed from the attack
stage's results (and logged), then the units are planned over the perturbation store
(:mod:`pipeline.stages.plan_evals`) and computed by the actor's
:class:`~pipeline.stages.eval_worker.Evaluator`. The driver logs running accuracy per
pair to the target's MLflow run (:mod:`pipeline.stages.eval_progress`).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pyarrow as pa

from pipeline.results.catalogue import result_dirs
from pipeline.results.tables import eval_partition, perturbation_partition
from pipeline.stages.eval_progress import DEFAULT_POINTS, EvalProgress
from pipeline.stages.eval_unit import EvalOutput, EvalUnit
from pipeline.stages.plan_evals import eval_tasks, plan_eval_units
from pipeline.stages.stage import Booking, Stage, StageContext, StagePlan
from pipeline.summary.points import FILE as FIXED_POINTS
from pipeline.summary.points import fix_eval_points, point_list, read_eval_points
from tasks.protocol import OBJECT

if TYPE_CHECKING:
    from pipeline.config.benchmark import BenchmarkConfig
    from pipeline.results.storage import Location
    from pipeline.results.write import ResultWriter
    from pipeline.stages.progress import ProgressTarget
    from pipeline.stages.worker import ModelWorker


class EvalStage(Stage[EvalUnit, EvalOutput]):
    """Active when the config asks for an evaluation task (or one that implies it)."""

    name = "evaluation"
    unit_type = EvalUnit
    tables = result_dirs("eval", compacted=True)

    def active(self, cfg: BenchmarkConfig) -> bool:
        return bool(eval_tasks(cfg))

    def before(self, ctx: StageContext) -> None:
        """The findings' evaluation points, fixed from the attack stage only."""
        fix_eval_points(ctx.run_dir, ctx.cfg.eval)
        ctx.tracker.log_artifact(ctx.run_dir / FIXED_POINTS)

    def plan(
        self, cfg: BenchmarkConfig, manifest: pa.Table, run_dir: Location
    ) -> StagePlan[EvalUnit]:
        return plan_eval_units(cfg, manifest, run_dir)

    def compute(
        self, worker: ModelWorker, unit: EvalUnit, progress: ProgressTarget | None
    ) -> EvalOutput:
        """On this network as the target, reusing the model the actor holds."""
        return worker.evaluator.evaluate(unit, progress)

    def write(self, writer: ResultWriter, out: EvalOutput) -> None:
        """MP-Object perturbations and every task's piece, then the commit records."""
        u = out.unit
        written = []
        if out.object_perturbations is not None:
            partition = perturbation_partition(u.target, u.attack, setup=OBJECT)
            writer.piece(partition, u.shard, out.object_perturbations)
            written.append(partition)
        for task, table in out.tables.items():
            partition = eval_partition(task, u.source, u.target, u.attack)
            writer.piece(partition, u.shard, table)
            written.append(partition)
        writer.commit(written, u.shard, u.image_ids)

    def strip(self, out: EvalOutput) -> EvalOutput:
        return dataclasses.replace(out, object_perturbations=None)

    def booking(self, ctx: StageContext, units: list[EvalUnit]) -> Booking[EvalOutput]:
        return _EvalBooking(ctx, units)


class _EvalBooking(Booking[EvalOutput]):
    """Running accuracy per (source, target, attack), continued after a resume, and the
    ``eval_unit`` hook."""

    def __init__(self, ctx: StageContext, units: list[EvalUnit]) -> None:
        self.ctx = ctx
        points = point_list(read_eval_points(ctx.run_dir)) or DEFAULT_POINTS
        self.progress = EvalProgress.for_units(ctx.run_dir, units, points)

    def output(self, out: EvalOutput) -> None:
        self.progress.record(out.tables.values(), self.ctx.tracker)
        if self.ctx.hooks.eval_unit:
            self.ctx.hooks.eval_unit(out)


EVALUATION = EvalStage()
