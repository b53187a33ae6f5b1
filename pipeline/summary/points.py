"""The findings' evaluation points, fixed before any evaluation result exists.

Per (model, attack), on the attack's norm axis, computed from the attack stage only:

- the config's points (the paper's Table 2 point 5.3 by default);
- the *matched* point: the norm at which the model's MP accuracy (all images, from the
  attack stage's minimum norms) equals the paper's Table 2 MP accuracy for the attack
  (BFGS: the mean of AlexNet, GoogLeNet and VGG at l1pp 5.3, 0.142; Sign: at linf
  5.3, 0.130; other attacks: the mean of the two, 0.136). A fixed norm is not
  comparable across networks (5.3 fools nearly every image under BFGS on
  efficientnet-lite and almost none under Sign); the matched point asks each network
  the question the paper's Table 2 asked its own. It is the primary family's point;
- if asked, the grid point nearest the model's median minimum-perturbation norm.

They are written once, with how each was chosen, to ``<run>/eval_points.json`` when the
evaluation stage is planned and never recomputed, so no evaluation result can move
them; the evaluation searches every one of them exactly (they join the search grid).
"""

from __future__ import annotations

import json
import math

import polars as pl

from pipeline.config.benchmark import EvalCfg
from pipeline.results.catalogue import EVAL_POINTS
from pipeline.results.storage import RunDir
from pipeline.summary.attacks import read_results
from pipeline.summary.axes import native_norm

FILE = EVAL_POINTS

Points = dict[str, dict[str, dict[str, object]]]  # model -> attack -> {norm, values, ...}

#: Luo et al.'s Table 2, MP accuracy (top-5) at norm 5.3: AlexNet, GoogLeNet, VGG.
PAPER_MP_ACCURACY = {"bfgs": (0.1166, 0.1622, 0.1477), "sign": (0.0855, 0.1793, 0.1238)}


def paper_accuracy(attack: str) -> float:
    """The MP accuracy a matched point aims at: the paper's mean for its attacks, else the
    mean over both of them."""
    values = PAPER_MP_ACCURACY.get(attack) or tuple(
        v for vs in PAPER_MP_ACCURACY.values() for v in vs
    )
    return sum(values) / len(values)


def matched_point(attacks: pl.DataFrame, norm: str, target: float) -> float | None:
    """The norm at which MP accuracy over all images falls to ``target``, from the attack
    rows of one (model, attack): an image is right at ``v`` if it is right clean and not
    fooled at a norm <= v. Placed halfway (geometrically) between the two minimum norms
    that straddle it, so an evaluated critical norm a little off the attack's own still
    falls on the same side; None when accuracy never gets that low."""
    rows = attacks.filter(pl.col("error").is_null())
    n = rows.height
    if n == 0:
        return None
    unfooled = rows.filter(pl.col("clean_correct") & ~pl.col("success")).height
    norms = sorted(
        float(v)
        for v in rows.filter(pl.col("clean_correct") & pl.col("success"))[norm].to_list()
        if v is not None and math.isfinite(v)
    )
    allowed = math.floor(target * n + 1e-9) - unfooled  # images that may stay right above v
    if allowed < 0 or not norms:
        return None
    if allowed >= len(norms):
        return 0.0  # clean accuracy is at or below the target already
    below, above = (
        norms[len(norms) - allowed - 1],
        (norms[len(norms) - allowed] if allowed else math.inf),
    )
    v = math.sqrt(below * above) if math.isfinite(above) and below > 0 else below * 1.05
    return float(f"{v:.3g}")


def fix_eval_points(run_dir: RunDir, settings: EvalCfg) -> Points:
    """Write (once) and return the evaluation points of every (model, attack)."""
    path = run_dir / FILE
    if path.is_file():
        return read_eval_points(run_dir)
    attacks = read_results(run_dir, "attacks")
    points: Points = {}
    if attacks is not None:
        for (model, attack), group in attacks.group_by("model", "attack"):
            points.setdefault(str(model), {})[str(attack)] = _points_of(
                group, str(attack), settings
            )
    path.write_text(json.dumps(points, indent=2, sort_keys=True))
    return points


def _points_of(group: pl.DataFrame, attack: str, settings: EvalCfg) -> dict[str, object]:
    norm = native_norm(attack)
    top = max(settings.grid(norm))
    how = {_key(v): "config eval.points (the paper's Table 2 point)" for v in settings.points}
    primary: float | None = None
    if settings.matched_point:
        target = paper_accuracy(attack)
        v = matched_point(group, norm, target)
        if v is not None and 0 < v <= top:
            primary = v
            how.setdefault(
                _key(v),
                f"matched: MP accuracy {target:.3f} (the paper's Table 2 MP accuracy for "
                f"{attack if attack in PAPER_MP_ACCURACY else 'its attacks'}), from the "
                "attack stage's minimum norms",
            )
    mine = group.filter(pl.col("error").is_null() & pl.col("clean_correct") & pl.col("success"))
    if settings.median_point and mine.height:
        median = float(mine[norm].median())  # type: ignore[arg-type]
        grid = [v for v in settings.grid(norm) if v > 0]
        nearest = min(grid, key=lambda v: abs(v - median))
        how.setdefault(
            _key(nearest), f"the grid point nearest the median minimum norm {median:.3g}"
        )
    values = sorted({float(k) for k in how})
    if primary is None and settings.points:
        primary = settings.points[0]
    return {"norm": norm, "values": values, "primary": primary, "how": how}


def _key(v: float) -> str:
    return repr(float(v))


def primary_point(where: dict[str, object]) -> float | None:
    """The (model, attack)'s point of the primary family (older runs: their first point)."""
    if where.get("primary") is not None:
        return float(where["primary"])  # type: ignore[arg-type]
    values = where.get("values") or []
    return float(values[0]) if values else None  # type: ignore[index]


def read_eval_points(run_dir: RunDir) -> Points:
    path = run_dir / FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def points_of(points: Points, model: str, attack: str) -> tuple[float, ...]:
    """One (model, attack)'s evaluation points (the evaluation searches each exactly)."""
    where = points.get(model, {}).get(attack, {})
    return tuple(float(v) for v in where.get("values", []))  # type: ignore[attr-defined]


def point_list(points: Points) -> list[tuple[str, float]]:
    """Every (norm, value) of the run's points, once (progress metrics, transfer artifacts)."""
    found = {
        (str(where["norm"]), float(v))
        for attacks in points.values()
        for where in attacks.values()
        for v in where["values"]  # type: ignore[attr-defined]
    }
    return sorted(found)
