"""Robustness measures (Balda et al.) and certified bounds (Peck) per model, from the shards.

* ``measures``: per (model, attack), over images correct clean under the run's
  criterion: rho1 = mean ||e*||_p / ||x||_p over the fooled ones (p = 2, inf),
  and eps99 = the smallest eps whose fooling ratio exceeds 99% (a failure
  never fools), per norm; per model, rho2 = mean first-order distance
  L(x) / ||grad L(x)||_q over images with L > 0 (L = softmax margin of the
  label, so top-1 correct: Balda's definition, whatever the run's k).
* ``fooling``: the fooling ratio as a function of eps, per (model, attack, norm).
* ``bounds``: per model, Peck's bound against what the attacks found: the
  bound must lie under every perturbation that changes the top-1 class it
  protects, and ``violations`` counts the ones that do not (it must be 0).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.results.storage import RunDir
from pipeline.summary.attacks import read_results

RHO_NORMS = ("l2", "linf")
EPS_NORMS = ("l1pp", "l2", "linf")
FOOLING_POINTS = 41
#: A found perturbation below the bound by more than this (relative) is a violation.
BOUND_RTOL = 1e-4


def _attacked(run_dir: RunDir) -> pl.DataFrame | None:
    df = read_results(run_dir, "attacks")
    if df is None:
        return None
    return df.filter(pl.col("error").is_null() & pl.col("clean_correct"))


def _eps99(norm: str) -> pl.Expr:
    filled = pl.when(pl.col("success")).then(pl.col(norm)).otherwise(float("inf"))
    index = (pl.len() * 0.99).floor().cast(pl.Int64)
    return filled.sort().get(index).alias(f"eps99_{norm}")


def rho2_summary(run_dir: RunDir) -> pl.DataFrame:
    """Per model: Balda's rho2 for each norm (images with a positive margin)."""
    clean = read_results(run_dir, "clean")
    if clean is None or not set(f"fo_{p}" for p in RHO_NORMS) <= set(clean.columns):
        return pl.DataFrame()
    ok = clean.filter(pl.col("error").is_null())
    return (
        ok.group_by("model")
        .agg(
            *[
                pl.col(f"fo_{p}").filter(pl.col(f"fo_{p}") > 0).mean().alias(f"rho2_{p}")
                for p in RHO_NORMS
            ]
        )
        .sort("model")
    )


def measure_summary(run_dir: RunDir) -> pl.DataFrame:
    """Per (model, attack): rho1, eps99 per norm, and the model's rho2 alongside."""
    attacked = _attacked(run_dir)
    if attacked is None or attacked.is_empty():
        return pl.DataFrame()
    clean = read_results(run_dir, "clean")
    aggs: list[pl.Expr] = [pl.len().alias("attacked"), *[_eps99(n) for n in EPS_NORMS]]
    if clean is not None and {"x_l2", "x_linf"} <= set(clean.columns):
        own = clean.select("image_id", "model", *[f"x_{p}" for p in RHO_NORMS])
        attacked = attacked.join(own, on=["image_id", "model"], how="left")
        aggs += [
            (pl.col(p) / pl.col(f"x_{p}")).filter(pl.col("success")).mean().alias(f"rho1_{p}")
            for p in RHO_NORMS
        ]
    out = attacked.group_by("model", "attack").agg(aggs).sort("model", "attack")
    rho2 = rho2_summary(run_dir)
    return out.join(rho2, on="model", how="left") if rho2.height else out


def fooling_curves(run_dir: RunDir, points: int = FOOLING_POINTS) -> pl.DataFrame:
    """Fooling ratio at ``points`` eps per (model, attack, norm), from 0 to the largest found."""
    attacked = _attacked(run_dir)
    if attacked is None or attacked.is_empty():
        return pl.DataFrame()
    rows = []
    for (model, attack), group in attacked.group_by("model", "attack"):
        for norm in EPS_NORMS:
            values = group.select(
                pl.when(pl.col("success")).then(pl.col(norm)).otherwise(float("inf"))
            ).to_series()
            found = np.sort(values.fill_null(float("inf")).to_numpy().astype(float))
            finite = found[np.isfinite(found)]
            if not finite.size:
                continue
            grid = np.linspace(0.0, float(finite.max()), points)
            ratio = np.searchsorted(found, grid, side="right") / found.size
            rows += [
                {
                    "model": model,
                    "attack": attack,
                    "norm": norm,
                    "eps": float(e),
                    "fooling_ratio": float(r),
                }
                for e, r in zip(grid, ratio, strict=True)
            ]
    return pl.DataFrame(rows).sort("model", "attack", "norm", "eps") if rows else pl.DataFrame()


def bounds_summary(run_dir: RunDir) -> pl.DataFrame:
    """Per model: how many images got a bound, its median, and whether any attack beat it."""
    bounds = read_results(run_dir, "bounds")
    if bounds is None:
        return pl.DataFrame()
    per_model = bounds.group_by("model").agg(
        pl.len().alias("images"),
        pl.col("bound_l2").is_not_null().sum().alias("bounded"),
        pl.col("bound_l2").median().alias("bound_l2_median"),
        pl.col("error").drop_nulls().first().alias("first_error"),
    )
    attacks = read_results(run_dir, "attacks")
    if attacks is None:
        return per_model.sort("model")
    # Perturbations that change the top-1 class the bound protects (any criterion).
    changed = attacks.filter(
        pl.col("error").is_null()
        & pl.col("success")
        & (pl.col("adv_label") != pl.col("clean_label"))
    )
    smallest = changed.group_by("image_id", "model").agg(pl.col("l2").min().alias("found_l2"))
    paired = bounds.filter(pl.col("bound_l2").is_not_null()).join(
        smallest, on=["image_id", "model"], how="inner"
    )
    checks = paired.group_by("model").agg(
        pl.len().alias("checked"),
        (pl.col("found_l2") < pl.col("bound_l2") * (1 - BOUND_RTOL)).sum().alias("violations"),
        pl.col("found_l2").median().alias("found_l2_median"),
        (pl.col("found_l2") / pl.col("bound_l2")).median().alias("gap_median"),
    )
    return per_model.join(checks, on="model", how="left").sort("model")
