"""The two stages of a run on one set of model actors: attacks, then evaluations.

Evaluation units are planned only once the attack stage has written its perturbation
store; each network is loaded once per actor for both stages. A stage hands its units
to the :class:`~pipeline.stages.scheduler.UnitScheduler`, books what each unit returns
(running metrics, progress inside units, failures) and compacts its shard pieces.
"""

from __future__ import annotations

import collections
import contextlib
import sys
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import ray
from tqdm import tqdm

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.results.compaction import ATTACK_TABLES, EVAL_TABLES, compact_stage
from pipeline.results.partitions import COMPACTED
from pipeline.results.storage import Location
from pipeline.run import interrupts
from pipeline.run.run_result import RunHooks, StageTotals
from pipeline.stages.actors import ActorSet, init_ray, start_actors
from pipeline.stages.attack_unit import AttackOutput, AttackUnit
from pipeline.stages.eval_progress import DEFAULT_POINTS, EvalProgress
from pipeline.stages.eval_unit import EvalOutput, EvalUnit
from pipeline.stages.plan_evals import eval_tasks, plan_eval_units
from pipeline.stages.progress import Partial, ProgressWatch, RemoteProgressBoard
from pipeline.stages.running_stats import RunningStats
from pipeline.stages.scheduler import UnitFailure, UnitScheduler
from pipeline.summary.points import FILE as FIXED_POINTS
from pipeline.summary.points import fix_eval_points, point_list, read_eval_points
from pipeline.tracking.tracker import Tracker


def log(message: str) -> None:
    """The driver's own lines (progress, resume, warnings) go to stderr, unbuffered."""
    print(message, file=sys.stderr, flush=True)


class Stages:
    """The attack stage, then the evaluation stage, on one set of model actors.

    Evaluation units are planned only once the attack stage has written its
    perturbation store; each network is loaded once per actor for both stages.
    """

    def __init__(
        self,
        cfg: BenchmarkConfig,
        run_dir: Location,
        tracker: Tracker,
        prov: dict[str, Any],
        manifest: pa.Table,
        hooks: RunHooks,
    ) -> None:
        self.cfg, self.prov = cfg, prov
        self.run_dir, self.tracker = run_dir, tracker
        self.manifest, self.hooks = manifest, hooks
        self.actors: ActorSet | None = None
        self.board: Any = None  # where workers report progress inside their units
        self.failed: list[UnitFailure] = []
        self.requeued = 0
        self.images_per_s: dict[str, float] = {}

    def run(self, attack_units: list[AttackUnit]) -> StageTotals:
        try:
            attack_seconds = eval_seconds = 0.0
            computed = computed_eval = 0
            if attack_units:
                attack_seconds, computed = self._timed(self._attack_stage, attack_units)
            self._compact(ATTACK_TABLES)
            if eval_tasks(self.cfg):  # fixed from the attack stage, before any evaluation
                fix_eval_points(self.run_dir, self.cfg.eval)
                self.tracker.log_artifact(self.run_dir / FIXED_POINTS)
            eval_units, eval_done = plan_eval_units(self.cfg, self.manifest, self.run_dir)
            if eval_done:
                log(f"resume: {eval_done} evaluation shard files already complete, not recomputed")
            if eval_units:
                eval_seconds, computed_eval = self._timed(self._eval_stage, eval_units)
            if eval_tasks(self.cfg):
                self._compact(EVAL_TABLES)
            if not attack_units and not eval_units:
                log("nothing to compute: every shard of this run is already complete")
            return StageTotals(
                computed_units=computed,
                attack_seconds=attack_seconds,
                attack_images_per_s=dict(self.images_per_s),
                computed_eval_units=computed_eval,
                eval_seconds=eval_seconds,
                eval_skipped_files=eval_done,
                failed_units=tuple(self.failed),
                requeued_units=self.requeued,
            )
        finally:
            if self.actors is not None:
                self.actors.stop()
            if self.board is not None:
                with contextlib.suppress(Exception):  # gone with a removed node
                    ray.kill(self.board)

    def _timed(
        self, stage: Callable[[list[Any]], tuple[list[UnitFailure], int]], units: list[Any]
    ) -> tuple[float, int]:
        """Run one stage; book its failures and requeues; return (seconds, units computed)."""
        start = time.perf_counter()
        failed, requeued = stage(units)
        self.failed += failed
        self.requeued += requeued
        return time.perf_counter() - start, len(units) - len(failed)

    def _ensure_actors(self) -> dict[str, list[Any]]:
        if self.actors is None:
            init_ray(self.cfg)
            interrupts.claim()  # ray.init installed its own SIGTERM handler
            models = [m.name for m in self.cfg.models]
            self.actors = start_actors(self.cfg, models, str(self.run_dir), self.prov)
            self.board = RemoteProgressBoard.remote()
        return self.actors.by_model

    def _schedule(
        self,
        units: list[Any],
        on_output: Callable[[Any], None],
        desc: str,
        on_partial: Callable[[str, list[Partial]], None] | None = None,
    ) -> tuple[list[UnitFailure], int]:
        """Run a stage's units on the actors; the bar counts images as batches finish."""
        actors = self._ensure_actors()
        total = sum(len(u.image_ids) for u in units)
        with tqdm(total=total, desc=desc, unit="img", file=sys.stderr) as bar:

            def show(images: float) -> None:
                bar.n = round(images, 1)
                bar.refresh()

            watch = ProgressWatch(self.board, show, lambda u: len(u.image_ids), on_partial)
            scheduler = UnitScheduler(
                actors, units, self.cfg.ray.max_restarts, log, "run_unit", watch=watch
            )
            result = scheduler.run(on_output, lambda: None)
        return result.failed, result.requeued

    def _attack_stage(self, units: list[AttackUnit]) -> tuple[list[UnitFailure], int]:
        stats = RunningStats.resume(
            self.cfg,
            self.manifest,
            self.run_dir,
            units,
            lambda model: self.tracker.last_step("images_done", model),
        )
        busy: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])

        def on_output(out: AttackOutput) -> None:
            spent = busy[out.unit.model]
            spent[0] += len(out.unit.image_ids)
            spent[1] += out.seconds
            self.images_per_s[out.unit.model] = spent[0] / max(spent[1], 1e-9)
            if out.halvings:
                log(f"{out.unit.model} shard {out.unit.shard}: batch split {out.halvings} time(s)")
            model, metrics, step = stats.update(out)
            self.tracker.log_metrics(metrics, step=step, model=model)
            if self.hooks.attack_unit:
                self.hooks.attack_unit(out)

        def on_partial(model: str, running: list[Partial]) -> None:
            metrics, step = stats.preview(model, running)
            self.tracker.log_metrics(metrics, step=step, model=model)

        return self._schedule(units, on_output, "attack", on_partial)

    def _eval_stage(self, units: list[EvalUnit]) -> tuple[list[UnitFailure], int]:
        points = point_list(read_eval_points(self.run_dir)) or DEFAULT_POINTS
        progress = EvalProgress.for_units(self.run_dir, units, points)  # running accuracy

        def on_output(out: EvalOutput) -> None:
            progress.record(out.tables.values(), self.tracker)
            if self.hooks.eval_unit:
                self.hooks.eval_unit(out)

        return self._schedule(units, on_output, "evaluation")

    def _compact(self, tables: tuple[str, ...]) -> None:
        """Fold the stage's shard pieces into one file per partition (on the cluster, not in
        the driver: perturbation bytes never pass through it) and log those to MLflow.
        Ray is started only if a partition has pieces left to fold."""
        for partition, model in compact_stage(self.run_dir, tables, lambda: init_ray(self.cfg)):
            self.tracker.log_artifact(self.run_dir / partition / COMPACTED, model=model)
