"""Evaluation-stage progress in MLflow: running accuracy per (source, target, attack).

The evaluation stage is most of a protocol run's time; without this, MLflow
receives nothing until the end. Each finished evaluation unit feeds its tables
here, and for every (source, target, attack) it touched one step-indexed batch
is logged to the *target's* child run (the network that evaluated the unit,
whose actor produced it and whose run already holds the unit's shards):

- ``eval/<attack>/<source>/<target>/images_done``: images of condition ``mp``
  evaluated so far, the metric's step as well, so every chart's x-axis reads
  "images evaluated" and the running accuracy converges along it;
- ``eval/<attack>/<source>/<target>/errors``: rows of that condition with an error;
- ``eval/<attack>/<source>/<target>/acc_at_<norm>_<value>``: the running
  accuracy at each evaluation point, the share of the evaluated images the source
  perturbed whose critical norm exceeds the value (the transfer matrices' population,
  ``pipeline.summary.protocol.transfer_matrices``; rows with an error are left out).

A resumed run first counts the shards already on disk (``for_units``), so its
steps continue where the interrupted run left off instead of restarting at 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.results.partitions import SHARD_COLUMN, partitions, read_partition
from pipeline.results.storage import RunDir, location
from pipeline.results.tables import eval_partition
from tasks.protocol import MP

NORMS = ("l1pp", "l2", "linf")
CONDITION = MP  # the full perturbation: the transfer matrices' condition
#: (norm, value) points the progress reports accuracy at, until the config names them.
DEFAULT_POINTS: tuple[tuple[str, float], ...] = (("l1pp", 5.3), ("linf", 5.3))
KEY_COLUMNS = ("source", "target", "attack")
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_\-./: ]")  # what MLflow rejects in a metric name

Triple = tuple[str, str, str]  # (source, target, attack)


class UnitLike(Protocol):
    """What ``for_units`` reads of an evaluation unit (pipeline.evaluation.EvalUnit)."""

    @property
    def source(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def attack(self) -> str: ...
    @property
    def shard(self) -> int: ...
    @property
    def tasks(self) -> tuple[str, ...]: ...


class MetricsSink(Protocol):
    """What EvalProgress logs to (pipeline.tracking.tracker.Tracker)."""

    def log_metrics(self, metrics: dict[str, float], step: int, model: str | None = None) -> None:
        """Log ``metrics`` at ``step`` to ``model``'s child run (the parent run for None)."""


@dataclass
class _Running:
    """Counts of one (source, target, attack) so far."""

    images: int = 0
    perturbed: int = 0  # images the source perturbed: the accuracy's population
    errors: int = 0
    above: dict[tuple[str, float], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    """One step of one (source, target, attack): what gets logged for it."""

    source: str
    target: str
    attack: str
    step: int
    metrics: dict[str, float]


def metric_prefix(attack: str, source: str, target: str) -> str:
    """``eval/<attack>/<source>/<target>``, with characters MLflow rejects replaced by ``_``."""
    return "/".join(_NOT_IN_NAME.sub("_", part) for part in ("eval", attack, source, target))


def point_name(norm: str, value: float) -> str:
    """``acc_at_l1pp_5.3``: the spelling of the transfer metrics (pipeline.run.runmeta)."""
    return f"acc_at_{norm}_{value:g}"


def check_points(points: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    """The points as (norm, float value); a bad one is an error naming it and the fix."""
    out = []
    for norm, value in points:
        if norm not in NORMS or not math.isfinite(float(value)) or float(value) < 0:
            raise ValueError(
                f"evaluation point ({norm!r}, {value!r}): the norm must be one of {NORMS} and "
                "the value a finite number >= 0 (0..255 units), e.g. ('l1pp', 5.3)"
            )
        out.append((norm, float(value)))
    return tuple(out)


class EvalProgress:
    """Running accuracy of every (source, target, attack) as evaluation units land."""

    def __init__(self, points: Sequence[tuple[str, float]] = DEFAULT_POINTS) -> None:
        self.points = check_points(points)
        self.running: dict[Triple, _Running] = {}

    def update(self, tables: Iterable[pa.Table]) -> list[Progress]:
        """Count one unit's tables; return one step per (source, target, attack) it added to.

        Tables without critical norms (linearity) or without ``mp`` rows add nothing.
        """
        touched: list[Triple] = []
        for table in tables:
            for key in self._count(table):
                if key not in touched:
                    touched.append(key)
        return [self._progress(key) for key in touched]

    def record(self, tables: Iterable[pa.Table], sink: MetricsSink) -> list[Progress]:
        """``update``, then log each step to the target's child run."""
        steps = self.update(tables)
        for p in steps:
            sink.log_metrics(p.metrics, step=p.step, model=p.target)
        return steps

    @classmethod
    def for_units(
        cls,
        run_dir: RunDir,
        units: Iterable[UnitLike],
        points: Sequence[tuple[str, float]] = DEFAULT_POINTS,
    ) -> EvalProgress:
        """A progress that has already counted the run's finished evaluation shards.

        ``units``: the evaluation units this session will compute; the shard files
        they (re)write are not counted now, so a recomputed file never counts twice.
        """
        progress = cls(points)
        pending = {
            (eval_partition(task, u.source, u.target, u.attack), u.shard)
            for u in units
            for task in u.tasks
        }
        root = location(run_dir)
        for partition in partitions(root, "evals"):
            rows = read_partition(root, partition, with_shard=True)
            if rows is None or not set(progress._columns) <= set(rows.column_names):
                continue
            redo = [shard for p, shard in pending if p == partition]
            keep = pc.invert(pc.is_in(rows[SHARD_COLUMN], pa.array(redo, pa.int32())))
            progress.update([rows.filter(keep).select(progress._columns)])
        return progress

    # -- internals ---------------------------------------------------------------------
    @property
    def _columns(self) -> list[str]:
        crit = sorted({f"crit_{n}" for n, _ in self.points})
        return [*KEY_COLUMNS, "condition", "has_perturbation", "error", *crit]

    def _count(self, table: pa.Table) -> list[Triple]:
        if not set(self._columns) <= set(table.column_names):
            return []
        rows = table.filter(pc.equal(table["condition"], CONDITION)).select(self._columns)
        keys: list[Triple] = []
        for row in rows.to_pylist():
            key = (str(row["source"]), str(row["target"]), str(row["attack"]))
            run = self.running.setdefault(key, _Running())
            if key not in keys:
                keys.append(key)
            if row["error"] is not None:
                run.errors += 1
                continue
            run.images += 1
            if not row["has_perturbation"]:  # says nothing about transfer
                continue
            run.perturbed += 1
            for norm, value in self.points:
                crit = row[f"crit_{norm}"]
                if crit is not None and crit > value:  # inf: never fooled, above every point
                    run.above[(norm, value)] = run.above.get((norm, value), 0) + 1
        return keys

    def _progress(self, key: Triple) -> Progress:
        source, target, attack = key
        run = self.running[key]
        prefix = metric_prefix(attack, source, target)
        metrics = {
            f"{prefix}/images_done": float(run.images),
            f"{prefix}/errors": float(run.errors),
        }
        if run.perturbed:
            for point in self.points:
                share = run.above.get(point, 0) / run.perturbed
                metrics[f"{prefix}/{point_name(*point)}"] = share
        return Progress(source, target, attack, run.images, metrics)
