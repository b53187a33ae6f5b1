"""The run's stages, in order, on one set of model actors (pipeline/stages/registry.py).

Each active stage is run the same way: ``before`` (the evaluation stage fixes its points
from the attack stage's results), ``plan`` (its units are planned only once the stages
before it wrote their results), its units handed to the
:class:`~pipeline.stages.scheduler.UnitScheduler`, each output and the progress inside
units booked by the stage's :class:`~pipeline.stages.stage.Booking`, then its tables
compacted (in the driver). Each network is loaded once per actor, for every stage; Ray
is started only when a stage has units.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import Any

import pyarrow as pa
import ray
from tqdm import tqdm

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.results.compaction import compact_stage
from pipeline.results.partitions import COMPACTED
from pipeline.results.storage import Location
from pipeline.run import interrupts
from pipeline.run.run_result import RunHooks, StageTotals
from pipeline.stages.actors import ActorSet, init_ray, reserve_actors
from pipeline.stages.progress import ProgressWatch, RemoteProgressBoard
from pipeline.stages.registry import active_stages
from pipeline.stages.scheduler import ScheduleResult, UnitScheduler
from pipeline.stages.stage import (
    Booking,
    Stage,
    StageContext,
    StageOutcome,
    StagePlan,
    log,
    unit_images,
)
from pipeline.tracking.tracker import Tracker

__all__ = ["Stages", "has_work", "log"]


def has_work(cfg: BenchmarkConfig, manifest: pa.Table, run_dir: Location) -> bool:
    """Whether any active stage has units to compute as the run stands now. A stage planned
    after the ones before it (the evaluation stage) may find more once they ran; what it
    can plan now decides, as before, whether a resumed run needs Ray at all."""
    return any(stage.plan(cfg, manifest, run_dir).units for stage in active_stages(cfg))


class Stages:
    """Every active stage, in order, on one set of model actors."""

    def __init__(
        self,
        cfg: BenchmarkConfig,
        run_dir: Location,
        tracker: Tracker,
        prov: dict[str, Any],
        manifest: pa.Table,
        hooks: RunHooks,
    ) -> None:
        self.cfg, self.prov, self.run_dir = cfg, prov, run_dir
        self.ctx = StageContext(cfg, run_dir, manifest, tracker, hooks)
        self.actors: ActorSet | None = None
        self.board: Any = None  # where workers report progress inside their units

    def run(self) -> StageTotals:
        try:
            outcomes = [self._stage(stage) for stage in active_stages(self.cfg)]
            if not any(o.computed_units or o.failed for o in outcomes):
                log("nothing to compute: every shard of this run is already complete")
            return StageTotals.of(outcomes)
        finally:
            if self.actors is not None:
                self.actors.stop()
            if self.board is not None:
                with contextlib.suppress(Exception):  # gone with a removed node
                    ray.kill(self.board)

    def _stage(self, stage: Stage[Any, Any]) -> StageOutcome:
        """Before, plan, schedule and book, compact: one stage."""
        stage.before(self.ctx)
        plan: StagePlan[Any] = stage.plan(self.cfg, self.ctx.manifest, self.run_dir)
        if plan.resume:
            log(f"resume: {plan.resume}")
        outcome = StageOutcome(stage.name, done_files=plan.done_files, skipped=plan.skipped)
        if plan.units:
            start = time.perf_counter()
            booking = stage.booking(self.ctx, plan.units)
            result = self._schedule(plan.units, booking, stage.name)
            outcome = StageOutcome(
                stage.name,
                seconds=time.perf_counter() - start,
                computed_units=len(plan.units) - len(result.failed),
                done_files=plan.done_files,
                skipped=plan.skipped,
                failed=tuple(result.failed),
                requeued=result.requeued,
                images_per_s=booking.images_per_s(),
            )
        self._compact(stage.tables)
        return outcome

    def _actors_for(self, units: list[Any]) -> dict[str, list[Any]]:
        """The actors of the units' models: the first call reserves every model's bundles,
        and each model's actors start when a stage first has work for it."""
        if self.actors is None:
            init_ray(self.cfg)
            interrupts.claim()  # ray.init installed its own SIGTERM handler
            models = [m.name for m in self.cfg.models]
            self.actors = reserve_actors(self.cfg, models, str(self.run_dir), self.prov)
            self.board = RemoteProgressBoard.remote()
        return self.actors.for_models(unit.model for unit in units)

    def _schedule(self, units: list[Any], booking: Booking[Any], desc: str) -> ScheduleResult:
        """Run a stage's units on the actors; the bar counts images as batches finish."""
        actors = self._actors_for(units)
        total = sum(map(unit_images, units))
        with tqdm(total=total, desc=desc, unit="img", file=sys.stderr) as bar:

            def show(images: float) -> None:
                bar.n = round(images, 1)
                bar.refresh()

            watch = ProgressWatch(self.board, show, unit_images, booking.partial)
            scheduler = UnitScheduler(
                actors, units, self.cfg.ray.max_restarts, log, "run_unit", watch=watch
            )
            return scheduler.run(booking.output, lambda: None)

    def _compact(self, tables: tuple[str, ...]) -> None:
        """Fold the stage's shard pieces into one file per partition (in this process, with
        no Ray: pipeline/results/compaction.py) and log those to MLflow."""
        tracker = self.ctx.tracker
        for partition, model in compact_stage(self.run_dir, tables):
            tracker.log_artifact(self.run_dir / partition / COMPACTED, model=model)
