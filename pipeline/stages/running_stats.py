"""Running metrics streamed to MLflow while attack shards land, exact after a resume.

``images_done``, ``running/clean_top5`` and ``running/mp/<attack>/median_l1pp``
describe the whole run so far, not only what this driver computed, over the population
of the final metrics (``mp/<attack>/median_l1pp``: the fooled images among those correct
clean, the median of an even count the mean of the middle two), so the last running
value is the final one, never a second median beside it; a resumed
run first reads the shards already complete on disk (those the plan does not
recompute), and continues each model's step count from the last step MLflow
holds, so no step is logged twice.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.config.benchmark import BenchmarkConfig
from pipeline.results.partitions import SHARD_COLUMN, read_partition
from pipeline.results.storage import Location, RunDir, location
from pipeline.results.tables import attack_partition, clean_partition
from pipeline.stages.attack_unit import AttackOutput, AttackUnit
from pipeline.stages.progress import Partial


def _present(values: list[Any]) -> list[Any]:
    return [v for v in values if v is not None]


class RunningStats:
    """Per model: images done, clean top-5 hits and each attack's L1pp values so far."""

    def __init__(self) -> None:
        self.images: collections.Counter[str] = collections.Counter()
        self.top5: dict[str, list[bool]] = collections.defaultdict(list)
        self.l1pp: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
        self.steps: collections.Counter[str] = collections.Counter()

    @classmethod
    def resume(
        cls,
        cfg: BenchmarkConfig,
        manifest: pa.Table,
        run_dir: RunDir,
        pending: Iterable[AttackUnit],
        last_step: Callable[[str], int],
    ) -> RunningStats:
        """Stats seeded from the complete shards of this run that ``pending`` will not rewrite.

        ``last_step(model)`` is the last step already logged for the model (0: none).
        """
        stats = cls()
        todo: set[tuple[str, int, str]] = set()
        for unit in pending:  # a joined unit covers several shards
            for shard, _ in unit.shards():
                todo |= {(unit.model, shard, a) for a in unit.attacks}
                if unit.clean:
                    todo.add((unit.model, shard, "clean"))
        attacks = [a.name for a in cfg.attacks] if "min_perturbation" in cfg.tasks else []
        root = location(run_dir)
        for model in (m.name for m in cfg.models):
            stats.steps[model] = last_step(model)
            if "clean" in cfg.tasks:
                done = _done_rows(root, clean_partition(model), model, "clean", todo)
                if done is not None:
                    stats._add_clean(model, done)
            for attack in attacks:
                done = _done_rows(root, attack_partition(model, attack), model, attack, todo)
                if done is not None:
                    stats._add_attack(model, attack, done)
        return stats

    def _add_clean(self, model: str, clean: pa.Table) -> None:
        self.images[model] += clean.num_rows
        self.top5[model].extend(_present(clean.column("top5_correct").to_pylist()))

    def _add_attack(self, model: str, attack: str, rows: pa.Table) -> None:
        fooled = pc.and_(rows.column("success"), rows.column("clean_correct"))
        if "error" in rows.column_names:
            fooled = pc.and_(fooled, pc.is_null(rows.column("error")))
        kept = rows.filter(pc.fill_null(fooled, False))
        self.l1pp[(model, attack)].extend(_present(kept.column("l1pp").to_pylist()))

    def update(self, out: AttackOutput) -> tuple[str, dict[str, float], int]:
        """Add one finished shard; return (model, the metrics to log, their step)."""
        model = out.unit.model
        self.steps[model] += 1
        if out.clean is not None:
            self._add_clean(model, out.clean)
        metrics: dict[str, float] = {"images_done": float(self.images[model])}
        if self.top5[model]:
            metrics["running/clean_top5"] = sum(self.top5[model]) / len(self.top5[model])
        for attack, (rows, _) in out.attacks.items():
            self._add_attack(model, attack, rows)
            values = self.l1pp[(model, attack)]
            if values:
                metrics[f"running/mp/{attack}/median_l1pp"] = statistics.median(values)
        return model, metrics, self.steps[model]

    def preview(self, model: str, running: list[Partial]) -> tuple[dict[str, float], int]:
        """The metrics with the complete batches of ``model``'s running shards counted in.

        Nothing is stored: when a shard lands, :meth:`update` adds its rows (the same
        values) and the partial counts are dropped. Returns (metrics, their step).
        """
        self.steps[model] += 1
        images = self.images[model] + sum(p.clean_rows for p in running)
        metrics: dict[str, float] = {"images_done": float(images)}
        top5 = [*self.top5[model], *(t for p in running for t in p.top5)]
        if top5:
            metrics["running/clean_top5"] = sum(top5) / len(top5)
        attacks = {a for (m, a) in self.l1pp if m == model} | {a for p in running for a in p.l1pp}
        for attack in sorted(attacks):
            values = [
                *self.l1pp[(model, attack)],
                *(v for p in running for v in p.l1pp.get(attack, ())),
            ]
            if values:
                metrics[f"running/mp/{attack}/median_l1pp"] = statistics.median(values)
        return metrics, self.steps[model]


def _done_rows(
    run_dir: Location, partition: str, model: str, task: str, todo: set[tuple[str, int, str]]
) -> pa.Table | None:
    """Committed rows of the partition, minus the shards this session recomputes."""
    rows = read_partition(run_dir, partition, with_shard=True)
    if rows is None:
        return None
    redo = [shard for (m, shard, t) in todo if (m, t) == (model, task)]
    return rows.filter(pc.invert(pc.is_in(rows[SHARD_COLUMN], pa.array(redo, pa.int32()))))
