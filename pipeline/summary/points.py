"""The findings' evaluation points, fixed before any evaluation result exists.

Per (model, attack), on the attack's norm axis: the config's points (the
paper's Table 2 point 5.3 by default) and, if asked, the grid point nearest
the model's median minimum-perturbation norm — computed from the attack stage
only. They are written once to ``<run>/eval_points.json`` when the evaluation
stage is planned and never recomputed, so no evaluation result can move them.
"""

from __future__ import annotations

import json

import polars as pl

from pipeline import rundir
from pipeline.config import EvalCfg
from pipeline.storage import RunDir
from pipeline.summary.attacks import scan
from pipeline.summary.axes import native_norm

FILE = rundir.EVAL_POINTS_FILE

Points = dict[str, dict[str, dict[str, object]]]  # model -> attack -> {norm, values}


def fix_eval_points(run_dir: RunDir, settings: EvalCfg) -> Points:
    """Write (once) and return the evaluation points of every (model, attack)."""
    path = run_dir / FILE
    if path.is_file():
        return read_eval_points(run_dir)
    attacks = scan(run_dir, "attacks")
    points: Points = {}
    if attacks is not None:
        for (model, attack), group in attacks.group_by("model", "attack"):
            norm = native_norm(str(attack))
            values = list(settings.points)
            mine = group.filter(
                pl.col("error").is_null() & pl.col("clean_correct") & pl.col("success")
            )
            if settings.median_point and mine.height:
                median = float(mine[norm].median())  # type: ignore[arg-type]
                grid = [v for v in settings.grid(norm) if v > 0]
                values.append(min(grid, key=lambda v: abs(v - median)))
            points.setdefault(str(model), {})[str(attack)] = {
                "norm": norm,
                "values": sorted(set(values)),
            }
    path.write_text(json.dumps(points, indent=2, sort_keys=True))
    return points


def read_eval_points(run_dir: RunDir) -> Points:
    path = run_dir / FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def point_list(points: Points) -> list[tuple[str, float]]:
    """Every (norm, value) of the run's points, once (progress metrics, transfer artifacts)."""
    found = {
        (str(where["norm"]), float(v))
        for attacks in points.values()
        for where in attacks.values()
        for v in where["values"]  # type: ignore[attr-defined]
    }
    return sorted(found)
