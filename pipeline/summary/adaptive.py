"""The adaptive gain: what each foveation keeps against an attacker who knows it.

Per (model, attack, foveation), over the images correct under the foveation that the
attack stage perturbed: the adaptive critical norm (the minimum perturbation of the
foveated network, :mod:`pipeline.stages.eval_adaptive`) over the image's MP critical norm (the
unfoveated network's), both found by the attack's own line search, so both sides of the
ratio have the same precision. Beside it, the transferred gain (the foveation's Table 1
ratio: MP foveated / MP) and the gradient-masking checks that apply (Carlini et al.
2019): the adaptive attack, unbounded, fools every image; it is never weaker than the
transferred MP on the same foveated network, nor than another network's MP transferred
through it (the black-box rows: ``source`` != ``target``, pipeline/stages/eval_black_box.py).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import torch

from pipeline.results.storage import RunDir
from pipeline.summary.attacks import read_results
from pipeline.summary.axes import native_norm
from pipeline.summary.stats import Test, ratio_test, tie_tolerance
from tasks.adaptive import MaskingChecks, masking_checks
from tasks.protocol import MP

#: The attack stage's line-search precision (both sides of the adaptive ratio use it).
LINE_SEARCH_RTOL = 1e-3


def load_adaptive(run_dir: RunDir) -> pl.DataFrame:
    df = read_results(run_dir, "evals/adaptive")
    return pl.DataFrame() if df is None else df.filter(pl.col("error").is_null())


def adaptive_pairs(adaptive: pl.DataFrame, model: str, attack: str, condition: str) -> pl.DataFrame:
    """The images a gain is measured on: correct under the foveation, perturbed by MP."""
    norm = native_norm(attack)
    return adaptive.filter(
        (pl.col("source") == model)
        & (pl.col("target") == model)
        & (pl.col("attack") == attack)
        & (pl.col("condition") == condition)
        & pl.col("clean_correct")
        & pl.col("has_perturbation")
        & (pl.col(f"mp_{norm}") > 0)
    ).select("image_id", pl.col(f"crit_{norm}").alias("a"), pl.col(f"mp_{norm}").alias("b"))


def gain_test(pairs: pl.DataFrame) -> Test:
    """Sign test of adaptive critical norm > MP's, with the median ratio (a foveation whose
    adaptive attack never fools an image gives a ratio only known to be large)."""
    return ratio_test(pairs["a"].to_numpy(), pairs["b"].to_numpy(), tie_tolerance(LINE_SEARCH_RTOL))


def adaptive_summary(adaptive: pl.DataFrame, crit: pl.DataFrame, rtol: float) -> pl.DataFrame:
    """One row per (model, attack, foveation): adaptive gain, transferred gain, checks."""
    if adaptive.is_empty():
        return pl.DataFrame()
    out = []
    black = adaptive.filter(pl.col("source") != pl.col("target"))
    for (model, attack, condition), group in white_box(adaptive).group_by(
        "source", "attack", "condition"
    ):
        m, a, c = str(model), str(attack), str(condition)
        norm = native_norm(a)
        pairs = adaptive_pairs(adaptive, m, a, c)
        test = gain_test(pairs) if pairs.height else None
        transferred = _transferred(crit, m, a, c, norm)
        joined = pairs.join(transferred, on="image_id", how="left")
        right = group.filter(pl.col("clean_correct"))
        checks = _checks(right, transferred, norm, rtol, _black_box(black, m, a, c, norm))
        t_ratio = (joined["t"] / joined["b"]).drop_nulls().to_numpy()
        out.append(
            {
                "model": m,
                "attack": a,
                "condition": c,
                "norm": norm,
                "random_views": bool(group["random_views"][0]),
                "n": pairs.height,
                "adaptive_gain_median": None if test is None else test.effect,
                "adaptive_gain_ci_low": None if test is None else test.ci_low,
                "adaptive_gain_ci_high": None if test is None else test.ci_high,
                "adaptive_gain_lower_bound": test is not None
                and test.effect_high is not None
                and test.effect_high != test.effect,
                "transferred_gain_median": float(np.median(t_ratio)) if len(t_ratio) else None,
                "success_rate": float(right["success"].mean()) if right.height else None,  # type: ignore[arg-type]
                "fresh_fooled_mean": _mean(group, "fresh_fooled"),
                "holdout_fooled_mean": _mean(group, "holdout_fooled"),
                # gradient masking (each should be 0; tasks.adaptive.MaskingChecks)
                "check_unreached": checks.unreached,
                "check_weaker_than_transfer": checks.weaker_than_transfer,
                "check_noise_not_weaker": checks.noise_not_weaker,
                "check_black_box_stronger": checks.black_box_stronger,
                "image_forwards_per_image": _mean(group, "n_image_forwards"),
                "image_backwards_per_image": _mean(group, "n_image_backwards"),
            }
        )
    return pl.DataFrame(out).sort("attack", "model", "condition")


def adaptive_curves(adaptive: pl.DataFrame, grids: dict[str, tuple[float, ...]]) -> pl.DataFrame:
    """Security curves: accuracy of each foveated network under its own adaptive attack at
    each norm of the attack's axis, over every image it was attacked on (wrong clean:
    wrong at every norm; never fooled: right at every norm). The MP and transferred
    curves of the same (model, attack, foveation) are in ``summary/curves.parquet``."""
    if adaptive.is_empty():
        return pl.DataFrame()
    parts = []
    for (model, attack, condition), group in white_box(adaptive).group_by(
        "source", "attack", "condition"
    ):
        norm = native_norm(str(attack))
        right = pl.col("clean_correct") & (pl.col(f"crit_{norm}") > pl.lit(0.0))
        for v in grids.get(norm, ()):
            ok = right & (pl.col(f"crit_{norm}") > v)
            parts.append(
                group.select(
                    pl.lit(str(model)).alias("model"),
                    pl.lit(str(attack)).alias("attack"),
                    pl.lit(str(condition)).alias("condition"),
                    pl.lit(norm).alias("norm"),
                    pl.lit(float(v)).alias("value"),
                    ok.mean().alias("accuracy"),
                    pl.len().alias("n"),
                )
            )
    return (
        pl.concat(parts).sort("attack", "model", "condition", "value") if parts else pl.DataFrame()
    )


def gain_metrics(summary: pl.DataFrame) -> dict[str, float]:
    """MLflow metrics of the parent run: each (model, attack, foveation)'s adaptive and
    transferred gain and its masking counts."""
    out: dict[str, float] = {}
    for r in summary.to_dicts() if not summary.is_empty() else []:
        prefix = f"adaptive/{r['attack']}/{r['model']}/{r['condition']}"
        for key in ("adaptive_gain_median", "transferred_gain_median", "success_rate"):
            if r[key] is not None and math.isfinite(r[key]):
                out[f"{prefix}/{key}"] = float(r[key])
        out[f"{prefix}/check_unreached"] = float(r["check_unreached"])
        out[f"{prefix}/check_weaker_than_transfer"] = float(r["check_weaker_than_transfer"])
        out[f"{prefix}/check_noise_not_weaker"] = float(r.get("check_noise_not_weaker", 0))
        if r.get("check_black_box_stronger") is not None:
            out[f"{prefix}/check_black_box_stronger"] = float(r["check_black_box_stronger"])
    return out


def masking_warnings(summary: pl.DataFrame) -> list[str]:
    """One line per (model, attack, foveation) whose masking checks are not all 0."""
    if summary.is_empty():
        return []

    def count(column: str) -> pl.Expr:
        return pl.col(column).fill_null(0) if column in summary.columns else pl.lit(0)

    bad = summary.filter(
        (count("check_unreached") > 0)
        | (count("check_weaker_than_transfer") > 0)
        | (count("check_noise_not_weaker") > 0)
        | (count("check_black_box_stronger") > 0)
    )
    return [
        f"adaptive {r['condition']} {r['model']} {r['attack']}: {r['check_unreached']} of "
        f"{r['n']} images never fooled by the unbounded adaptive attack, "
        f"{r['check_weaker_than_transfer']} where it was weaker than the transferred MP, "
        f"{r.get('check_noise_not_weaker', 0)} where random noise of its norm fooled as well"
        + (  # the black box only where another network was measured
            ""
            if r.get("check_black_box_stronger") is None
            else f", {r['check_black_box_stronger']} where another network's MP (black box) "
            "fooled it more cheaply"
        )
        + ": look for gradient masking (a non-differentiable step, saturated scores)"
        for r in bad.to_dicts()
    ]


def white_box(adaptive: pl.DataFrame) -> pl.DataFrame:
    """The adaptive attacks proper: each network's foveations attacked through themselves."""
    return adaptive.filter(pl.col("source") == pl.col("target"))


def _black_box(
    black: pl.DataFrame, model: str, attack: str, condition: str, norm: str
) -> pl.DataFrame | None:
    """Per image, the smallest critical norm of another network's MP through ``model``'s
    foveation ``condition`` (inf: none fooled it); None when no other network was measured."""
    rows = black.filter(
        (pl.col("target") == model)
        & (pl.col("attack") == attack)
        & (pl.col("condition") == condition)
        & pl.col("clean_correct")
    )
    if rows.is_empty():
        return None
    crit = pl.when(pl.col("success")).then(pl.col(f"crit_{norm}")).otherwise(math.inf)
    return rows.group_by("image_id").agg(crit.min().alias("bb"))


def _checks(
    right: pl.DataFrame,
    transferred: pl.DataFrame,
    norm: str,
    rtol: float,
    black_box: pl.DataFrame | None = None,
) -> MaskingChecks:
    """The masking checks over the images correct under the foveation: the unbounded
    attack's failures, images where it lost to the transferred MP (those MP perturbed) or
    to another network's (black box), and images where noise of its norm fooled the
    foveated network as well."""
    inf = math.inf
    rows = right.join(transferred, on="image_id", how="left")
    bb = None
    if black_box is not None:
        rows = rows.join(black_box, on="image_id", how="left")
        bb = torch.tensor(rows["bb"].fill_null(inf).to_list(), dtype=torch.float64)
    adaptive = torch.tensor(rows[f"crit_{norm}"].fill_null(inf).to_list(), dtype=torch.float64)
    noise_fooled = (
        rows["noise_fooled"].fill_null(False).to_list() if "noise_fooled" in rows.columns else []
    )
    noise = torch.tensor(
        [v if hit else inf for v, hit in zip(adaptive.tolist(), noise_fooled, strict=True)]
        if noise_fooled
        else [inf] * rows.height,
        dtype=torch.float64,
    )
    return masking_checks(
        adaptive,
        torch.tensor(rows["success"].to_list(), dtype=torch.bool),
        transferred=torch.tensor(rows["t"].fill_null(inf).to_list(), dtype=torch.float64),
        noise=noise,
        rtol=rtol,
        black_box=bb,
    )


def _transferred(
    crit: pl.DataFrame, model: str, attack: str, condition: str, norm: str
) -> pl.DataFrame:
    """The foveation's critical norm for MP transferred through it (the foveation task)."""
    if crit.is_empty() or condition == MP:
        return pl.DataFrame(
            {"image_id": [], "t": []}, schema={"image_id": pl.String, "t": pl.Float64}
        )
    return crit.filter(
        (pl.col("source") == model)
        & (pl.col("target") == model)
        & (pl.col("attack") == attack)
        & (pl.col("condition") == condition)
    ).select("image_id", pl.col(f"crit_{norm}").alias("t"))


def _mean(df: pl.DataFrame, column: str) -> float | None:
    values = df[column].drop_nulls()
    if not len(values):
        return None
    value = float(values.mean())  # type: ignore[arg-type]
    return value if math.isfinite(value) else None
