"""The evaluation worker: one target network evaluates a unit's stored perturbations.

For a shard of images, the source's stored directions (never recomputed) are
mapped into the frame the target sees (:mod:`pipeline.stages.eval_inputs`), every
condition of the unit's tasks is built from the protocol's registry
(:mod:`tasks.evaluation.build`), and all of them, with the linearity probes,
are scanned in shared rounds, each round one batched pass through the network
(:mod:`tasks.evaluation.engine`). Rows follow ``pipeline.results.tables``' schemas.
A batch that runs out of memory (or fails) is split in halves down to single
images; only an image that fails alone becomes error rows.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable

import torch

from pipeline.config.benchmark import EvalCfg
from pipeline.models.image_cache import ImageCache
from pipeline.models.networks import PixelModel
from pipeline.results.codec import read_store
from pipeline.results.partitions import read_partition
from pipeline.results.storage import Location
from pipeline.stages.eval_adaptive import TaskBatch, adaptive_foveations, adaptive_rows
from pipeline.stages.eval_black_box import black_box_foveations, black_box_rows
from pipeline.stages.eval_inputs import AttackFactory, Stored, frame_cfg, load_batch, object_setup
from pipeline.stages.eval_rows import RowSink
from pipeline.stages.eval_unit import EvalOutput, EvalUnit
from pipeline.stages.oom import BatchGrowth, bisecting, cuda_memory_share
from pipeline.stages.progress import ProgressTarget, UnitProgress
from tasks.attacks.specs import attack_spec
from tasks.criterion import TopK
from tasks.evaluation.build import BatchData, build_conditions
from tasks.evaluation.conditions import ConditionBatch
from tasks.evaluation.engine import ConditionResult, Grids, evaluate
from tasks.linearity import Effect, LinearityProbe
from tasks.probing import ScoreQueue
from tasks.protocol import (
    ADAPTIVE,
    CONDITIONS,
    MP,
    OBJECT,
    SETUPS,
    ConditionSpec,
    base_of,
    conditions_of,
    effect_of,
)

AUTOCAST = {"bf16": torch.bfloat16}


class Evaluator:
    """Evaluates perturbations on one target network (a plain class; actors wrap it)."""

    def __init__(
        self,
        model: PixelModel,
        criterion: TopK,
        settings: EvalCfg,
        make_attack: AttackFactory,
        images: ImageCache,
        batch_size: int = 16,
        memory_share: Callable[[], float | None] | None = None,
    ) -> None:
        self.model = model
        self.criterion = criterion
        self.settings = settings
        self.make_attack = make_attack
        self.images = images
        self.batch_size = batch_size
        self.forward_batch = settings.batch_size or 4 * batch_size
        self.growth = BatchGrowth(cap=max(self.forward_batch, settings.max_batch_size))
        device = model.shift.device
        self.memory_share = memory_share or (lambda: cuda_memory_share(device))
        self.grids = Grids(settings.grids(), rtol=settings.rtol, search=settings.search)
        self.halvings = 0
        self._progress = UnitProgress(None, "", 1)  # the running unit's (evaluate sets it)

    def specs(self, unit: EvalUnit) -> list[ConditionSpec]:
        """The conditions a unit computes: its tasks' conditions that apply to its pair."""
        self_pair = unit.source == unit.target
        baseline = attack_spec(unit.attack).baseline
        out = []
        for task in unit.tasks:
            for spec in conditions_of(task):
                if spec.pairs == "self" and not self_pair:
                    continue
                if baseline and not spec.baseline_ok:
                    continue
                if spec.views and spec.name not in self.settings.evaluated_views(spec.setup):
                    continue
                out.append(spec)
        return out

    def evaluate(self, unit: EvalUnit, progress: ProgressTarget | None = None) -> EvalOutput:
        """Every condition of the unit, batch by batch; finished batches go to ``progress``."""
        start = time.perf_counter()
        steps = 1 + len(self._adaptive_foveations(unit))
        self._progress = done = UnitProgress(progress, unit.model, steps)
        self.halvings = 0
        queue = self._queue()
        run_dir = Location(unit.run_dir)
        stored = read_store(read_partition(run_dir, unit.perturbations, shard=unit.shard))
        clean = _read_clean(run_dir, unit.target_attacks, unit.shard)
        sink = RowSink(unit, self.specs(unit))
        n = len(unit.image_ids)
        batches = [
            list(range(lo, min(lo + self.batch_size, n))) for lo in range(0, n, self.batch_size)
        ]
        for k, idx in enumerate(batches):
            if k + 1 < len(batches):  # decode the next batch while this one computes
                self.images.prefetch([unit.paths[i] for i in batches[k + 1]], self.model.cfg)
            self._resilient(unit, idx, stored, clean, sink, queue)
            done.commit(len(idx))
        out = EvalOutput(unit=unit, seconds=time.perf_counter() - start)
        out.tables, out.object_perturbations = sink.tables()
        out.forward_calls, out.image_forwards = queue.stats.calls, queue.stats.images
        out.halvings = self.halvings
        return out

    def _queue(self, exact: bool = False) -> ScoreQueue:
        """The batched forward queue (bf16 autocast when configured, unless ``exact``).

        Inputs go channels-last on every device: on CPU too the convolutions run ~30%
        faster that way (docs/benchmarks.md), and the logits agree to ~1e-5."""
        autocast = None if exact else AUTOCAST.get(self.settings.autocast or "")
        return ScoreQueue(self.model, self.forward_batch, autocast, channels_last=True)

    def _resilient(
        self,
        unit: EvalUnit,
        idx: list[int],
        stored: Stored,
        clean: dict[str, bool],
        sink: RowSink,
        queue: ScoreQueue,
    ) -> None:
        """One batch of images (pipeline.stages.oom.bisecting: split in halves on failure); out of
        memory also shrinks the forward batch from then on (a single image is retried)."""

        def attempt(part: list[int]) -> None:
            rows = RowSink(unit, sink.specs)
            self._batch(unit, part, stored, clean, rows, queue)
            sink.extend(rows)
            queue.batch_size = self.growth.after_success(queue.batch_size, self.memory_share())
            self.forward_batch = queue.batch_size  # the next unit starts where this one got

        def remedy(exc: BaseException, oom: bool, n: int) -> bool:
            queue.reset()
            if oom and self.model.shift.device.type == "cuda":
                torch.cuda.empty_cache()
            if oom and queue.batch_size > 1:  # smaller forward batches, from now on
                queue.batch_size = self.growth.after_out_of_memory(queue.batch_size)
                self.forward_batch = queue.batch_size
                self.halvings += 1
                return n == 1
            return False

        def give_up(i: int, exc: BaseException, oom: bool) -> None:
            what = "out of memory with a batch of 1" if oom else "failed"
            sink.error(i, f"{unit.paths[i]}: evaluation {what}: {traceback.format_exc(limit=4)}")

        def split() -> None:
            self.halvings += 1

        bisecting(idx, attempt, give_up, lambda a, b: None, remedy, split)

    def _batch(
        self,
        unit: EvalUnit,
        idx: list[int],
        stored: Stored,
        clean: dict[str, bool],
        rows: RowSink,
        queue: ScoreQueue,
    ) -> None:
        queue.reset()  # cached views belong to one batch of images
        start, images_before = time.perf_counter(), queue.stats.images
        dense = max(0, self.settings.dense_check - idx[0])
        data = load_batch(unit, idx, self.model, self.images, stored, clean, self.settings, dense)
        specs = rows.specs
        wants_object = data.self_pair and (
            any(s.setup == OBJECT for s in specs)
            or "linearity" in unit.tasks
            or ADAPTIVE in unit.tasks
        )
        if wants_object:
            views = [c.name for c in CONDITIONS.in_order() if c.setup == OBJECT and c.views]
            data.object, attack = object_setup(
                unit,
                idx,
                data,
                self.model,
                self.images,
                self.make_attack(unit.attack),
                views,
                self.settings.seed,
            )
            if data.object is not None and attack is not None:
                rows.object_store(idx, data.object, attack)
        conditions = build_conditions(data, specs)
        probe = self._linearity(data) if "linearity" in unit.tasks and data.self_pair else None
        axis = attack_spec(unit.attack).norm
        grids = self.grids.with_points(axis, unit.points)
        covered = {c.spec.name: set(c.rows) for c in conditions}
        results = evaluate(
            queue,
            conditions,
            self.criterion,
            grids,
            axis,
            lambda c: tuple(grids.values) if c.spec.pairs == "all" else (axis,),
            riders=[probe] if probe is not None else None,
        )
        seconds = time.perf_counter() - start
        per_forward = seconds / max(1, queue.stats.images - images_before)
        if queue.autocast is not None:  # the dense sample again in fp32: do scales agree?
            self._check_precision(conditions, results, grids, axis)
        self._progress.step(len(idx), 1)  # the conditions; then each adaptive foveation
        for cond, result in zip(conditions, results, strict=True):
            rows.conditions(idx, data, cond, result, per_forward)
        rows.missing(idx, data, covered)
        if probe is not None:
            rows.linearity(idx, data, probe, per_forward)
        if self._adaptive_foveations(unit):  # white box (self pair) or black box (cross)
            rows_of = adaptive_rows if data.self_pair else black_box_rows
            batch = TaskBatch(
                unit, idx, data, self.model, self.make_attack(unit.attack), self.settings,
                on_done=lambda k: self._progress.step(len(idx), 1 + k),
            )  # fmt: skip
            rows.adaptive(rows_of(batch))

    def _adaptive_foveations(self, unit: EvalUnit) -> list[str]:
        """What the adaptive task attacks in this unit: every foveation through itself on a
        self pair; on a cross pair, a black-box transfer through the MP set-up's, where the
        target sees its own frame (otherwise its norms would not compare: none)."""
        if ADAPTIVE not in unit.tasks:
            return []
        if unit.source == unit.target:
            return adaptive_foveations(self.settings)
        own = frame_cfg(unit, self.model.cfg, self.settings) == self.model.cfg
        return black_box_foveations(self.settings) if own else []

    def _check_precision(
        self,
        conditions: list[ConditionBatch],
        results: list[ConditionResult],
        grids: Grids,
        axis: str,
    ) -> None:
        """bf16 autocast is opt-in and checked: the dense-sample images of every condition are
        scanned again in fp32; ``result.autocast_agrees`` says whether the critical scales agree
        within the search tolerance."""
        sample = [(c, r) for c, r in zip(conditions, results, strict=True) if c.dense]
        if not sample:
            return
        exact = evaluate(
            self._queue(exact=True),
            [c.head(c.dense) for c, _ in sample],
            self.criterion,
            grids,
            axis,
            lambda c: (),
        )
        for (c, r), e in zip(sample, exact, strict=True):
            r.autocast_agrees = [
                _same_scale(float(r.scale[k]), float(e.scale[k]), self.settings.rtol)
                for k in range(c.dense)
            ] + [None] * (len(c.rows) - c.dense)

    def _linearity(self, data: BatchData) -> LinearityProbe | None:
        """Fig. 4, 6, 9-12 probes for the images with the source's perturbation."""
        have = [j for j in range(data.x.shape[0]) if bool(data.has_direction[j])]
        if not have:
            return None
        sel = torch.tensor(have, device=data.x.device)
        x, d = data.x[sel], data.direction[sel]
        s = data.scale[have].to(x.device).view(-1, 1, 1, 1)
        e = (x + s * d).clamp(0, 255) - x
        effects = _effects(data, have)
        return LinearityProbe(
            x, e, data.labels[sel], list(self.settings.alphas), self.model.shift, effects
        )


def _effects(data: BatchData, have: list[int]) -> dict[str, Effect]:
    """Fig. 6 per set-up, keyed by set-up: its foveation T (tasks.protocol ``effect``).

    MP: x is the input, T its object crop (the probe's own x and x + e* are the
    base). MP-Object: x is the object crop, T one shifted crop of it.
    """
    effects: dict[str, Effect] = {}
    for setup in SETUPS:
        t, base = effect_of(setup), base_of(setup)
        if t is None:
            continue
        specs = [t] if setup == MP else [t, base]
        built = {c.spec.name: c for c in build_conditions(data, specs)}
        view = built.get(t.name)
        if view is None:
            continue
        if setup == MP:
            items = [
                (0, view.rows.index(j), p, float(data.scale[j]))
                for p, j in enumerate(have)
                if j in view.rows
            ]
            effects[setup] = Effect(None, view, items)
        elif base.name in built and data.object is not None:
            o = data.object
            items = [
                (k, k, have.index(j), float(o.scale[k]))
                for k, j in enumerate(o.rows)
                if j in have and bool(o.has_direction[k])
            ]
            effects[setup] = Effect(built[base.name], view, items)
    return effects


def _same_scale(a: float, b: float, rtol: float) -> bool:
    """Equal critical scales up to the search tolerance (0 and inf compare exactly)."""
    if a == b:
        return True
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= rtol * max(a, b) * 1.01


def _read_clean(run_dir: Location, partition: str, shard: int) -> dict[str, bool]:
    """image_id -> clean correctness under the run's criterion, from the target's attack rows."""
    if not partition:
        return {}
    columns = ["image_id", "clean_correct", "error"]
    try:
        table = read_partition(run_dir, partition, columns, shard=shard)
    except (OSError, ValueError):
        return {}
    if table is None:
        return {}
    return {
        r["image_id"]: bool(r["clean_correct"])
        for r in table.to_pylist()
        if r["error"] is None and r["clean_correct"] is not None
    }
