"""Result rows of an evaluation unit (CRITICAL_SCHEMA, LINEARITY_SCHEMA, MP-Object store).

Every image of the unit gets a row per condition: measured, or an ``error``
that says why not (no ground-truth box for a box condition, a failure). An
image without the source's perturbation is measured unperturbed (its critical
scale is 0 if wrong clean, inf otherwise; ``has_perturbation`` false), which
keeps the paper's population: all evaluated images.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from pipeline.results.codec import record
from pipeline.results.tables import (
    ADAPTIVE_SCHEMA,
    CRITICAL_SCHEMA,
    EFFECT_COLUMNS,
    LINEARITY_SCHEMA,
    PERTURBATION_SCHEMA,
    table_from_rows,
)
from pipeline.stages.eval_unit import EvalUnit
from tasks.attacks.base import AttackResult
from tasks.evaluation.build import BatchData, ObjectSetup
from tasks.evaluation.conditions import ConditionBatch
from tasks.evaluation.engine import ConditionResult
from tasks.linearity import LinearityProbe
from tasks.protocol import ADAPTIVE, OBJECT, ConditionSpec

NO_BOX = "no ground-truth box in this image; box-based conditions are skipped for it"
NO_PERTURBATION = "no perturbation: the source got the image wrong clean or its attack failed"


class RowSink:
    """Collects a unit's rows per task (a batch's rows are kept apart until it succeeds)."""

    def __init__(self, unit: EvalUnit, specs: list[ConditionSpec]) -> None:
        self.unit = unit
        self.specs = specs
        self.rows: dict[str, list[dict[str, Any]]] = {t: [] for t in unit.tasks}
        self.objects: list[dict[str, Any]] = []

    def base(self, i: int) -> dict[str, Any]:
        u = self.unit
        return {
            "image_id": u.image_ids[i],
            "label": u.labels[i],
            "source": u.source,
            "target": u.target,
            "attack": u.attack,
        }

    def conditions(
        self,
        idx: list[int],
        data: BatchData,
        cond: ConditionBatch,
        result: ConditionResult,
        seconds_per_forward: float,
    ) -> None:
        spec = cond.spec
        lo = result.lo_norms or {}
        for k, j in enumerate(cond.rows):
            has = bool(cond.has_direction[k])
            scale = float(result.scale[k])
            clean = bool(result.clean_correct[k])
            censored = has and clean and scale == float("inf")
            self.rows[spec.task].append(
                {
                    **self.base(idx[j]),
                    "setup": spec.setup,
                    "condition": spec.name,
                    "has_perturbation": has,
                    "clean_correct": clean,
                    "critical_scale": scale,
                    "scale_lo": float(result.scale_lo[k]),
                    "censored": censored,
                    **{f"crit_{n}": float(v[k]) for n, v in result.crit.items()},
                    **{f"src_{n}": float(v[k]) for n, v in result.source.items()},
                    **{f"max_tried_{n}": float(v[k]) if censored else None for n, v in lo.items()},
                    "views": cond.view_names(k),
                    "background_share": cond.background_share(k),
                    "line_search_earlier": result.line_search_earlier[k],
                    "n_image_forwards": int(result.image_forwards[k]),
                    "n_views": cond.n_views(k),
                    "seconds": float(result.image_forwards[k]) * seconds_per_forward,
                    "dense_mismatch": result.dense_mismatch[k],
                    "dense_earlier": result.dense_earlier[k],
                    "autocast_agrees": (
                        None if result.autocast_agrees is None else result.autocast_agrees[k]
                    ),
                }
            )

    def missing(self, idx: list[int], data: BatchData, covered: dict[str, set[int]]) -> None:
        """Error rows for the images a condition could not use (no box)."""
        for spec in self.specs:
            for j in range(len(idx)):
                if j not in covered.get(spec.name, set()):
                    self.rows[spec.task].append(
                        {
                            **self.base(idx[j]),
                            "setup": spec.setup,
                            "condition": spec.name,
                            "error": NO_BOX,
                        }
                    )

    def linearity(
        self,
        idx: list[int],
        data: BatchData,
        probe: LinearityProbe | None,
        seconds_per_forward: float,
    ) -> None:
        have = [j for j in range(len(idx)) if bool(data.has_direction[j])]
        for j in range(len(idx)):
            if j not in have:
                self.rows["linearity"].append({**self.base(idx[j]), "error": NO_PERTURBATION})
        if probe is None:
            return
        out = probe.out
        effects = {
            name: {
                j: (float(e.image[n]), float(e.perturbation[n]))
                for n, (_, _, j, _) in enumerate(e.items)
            }
            for name, e in probe.effects.items()
        }
        for p, j in enumerate(have):
            fig6 = {
                f"{prefix}_{term}": effects.get(setup, {}).get(p, (None, None))[k]
                for setup, prefix in EFFECT_COLUMNS.items()
                for k, term in enumerate(("image", "perturbation"))
            }
            self.rows["linearity"].append(
                {
                    **self.base(idx[j]),
                    "alphas": list(out.alphas),
                    "response": out.response[p].tolist(),
                    "alone": out.alone[p].tolist(),
                    "err_interpolation": float(out.err_interpolation[p]),
                    "err_alone": float(out.err_alone[p]),
                    **fig6,
                    "n_image_forwards": int(probe.image_forwards[p]),
                    "seconds": float(probe.image_forwards[p]) * seconds_per_forward,
                }
            )

    def object_store(self, idx: list[int], setup: ObjectSetup, result: AttackResult) -> None:
        """MP-Object's directions (the images it fooled), kept like the attack stage's."""
        for k, j in enumerate(setup.rows):
            if bool(setup.has_direction[k]):
                self.objects.append(
                    record(
                        self.unit.image_ids[idx[j]],
                        self.unit.target,
                        self.unit.attack,
                        OBJECT,
                        float(setup.scale[k]),
                        setup.direction[k],
                    )
                )

    def adaptive(self, rows: list[dict[str, Any]]) -> None:
        self.rows[ADAPTIVE].extend(rows)

    def error(self, i: int, message: str) -> None:
        """An image that failed alone: an error row in every condition and task."""
        for spec in self.specs:
            self.rows[spec.task].append(
                {**self.base(i), "setup": spec.setup, "condition": spec.name, "error": message}
            )
        for task in ("linearity", ADAPTIVE):
            if task in self.rows:
                self.rows[task].append({**self.base(i), "error": message})

    def extend(self, other: RowSink) -> None:
        for task, rows in other.rows.items():
            self.rows[task].extend(rows)
        self.objects.extend(other.objects)

    def tables(self) -> tuple[dict[str, pa.Table], pa.Table | None]:
        schemas = {"linearity": LINEARITY_SCHEMA, ADAPTIVE: ADAPTIVE_SCHEMA}
        tables = {
            task: table_from_rows(rows, schemas.get(task, CRITICAL_SCHEMA))
            for task, rows in self.rows.items()
        }
        objects = table_from_rows(self.objects, PERTURBATION_SCHEMA) if self.objects else None
        return tables, objects
