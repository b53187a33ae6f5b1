"""Per-run aggregates with polars, read straight from the result shards.

Statistics follow Peck's tables: success rate, then min / max / mean /
median / std of each norm over the images the attack fooled, among images
the network classified correctly clean (the others need no perturbation).
"""

from __future__ import annotations

from typing import cast

import polars as pl

from pipeline.results.partitions import partitions, read_partition
from pipeline.results.storage import RunDir, location

NORM_COLUMNS = ("l1pp", "l2", "linf")


def read_results(run_dir: RunDir, sub: str) -> pl.DataFrame | None:
    """Every committed row of the table ``sub`` (compacted files and pieces); pieces of an
    older schema (fewer columns) get nulls."""
    root = location(run_dir)
    tables = [read_partition(root, p) for p in partitions(root, sub)]
    frames = [cast(pl.DataFrame, pl.from_arrow(t)) for t in tables if t is not None]
    if not frames:
        return None
    return pl.concat(frames, how="diagonal_relaxed")


def clean_summary(run_dir: RunDir) -> pl.DataFrame:
    """Per model: images, errors, top-1 and top-5 accuracy."""
    df = read_results(run_dir, "clean")
    if df is None:
        return pl.DataFrame()
    ok = pl.col("error").is_null()
    return (
        df.group_by("model")
        .agg(
            pl.len().alias("images"),
            (~ok).sum().alias("errors"),
            pl.col("top1_correct").filter(ok).mean().alias("top1"),
            pl.col("top5_correct").filter(ok).mean().alias("top5"),
        )
        .sort("model")
    )


def attack_summary(run_dir: RunDir, top_pairs: int = 5) -> pl.DataFrame:
    """Per (model, attack): success rate, norm statistics and frequent class pairs."""
    df = read_results(run_dir, "attacks")
    if df is None:
        return pl.DataFrame()
    attacked = df.filter(pl.col("error").is_null() & pl.col("clean_correct"))
    fooled = pl.col("success")
    aggs: list[pl.Expr] = [
        pl.len().alias("attacked"),
        fooled.mean().alias("success_rate"),
        pl.col("n_forward").mean().alias("mean_forward"),
        pl.col("n_backward").mean().alias("mean_backward"),
        pl.col("seconds").sum().alias("seconds"),
    ]
    for norm in NORM_COLUMNS:
        col = pl.col(norm).filter(fooled)
        aggs += [
            col.min().alias(f"{norm}_min"),
            col.max().alias(f"{norm}_max"),
            col.mean().alias(f"{norm}_mean"),
            col.median().alias(f"{norm}_median"),
            col.std().alias(f"{norm}_std"),
        ]
    stats = attacked.group_by("model", "attack").agg(aggs)
    errors = df.group_by("model", "attack").agg(pl.col("error").is_not_null().sum().alias("errors"))
    pairs = (
        attacked.filter(fooled)
        .group_by("model", "attack", "label", "adv_label")
        .len()
        .sort("len", "label", descending=[True, False])
        .group_by("model", "attack", maintain_order=True)
        .head(top_pairs)
        .with_columns(pl.format("{}->{} ({})", "label", "adv_label", "len").alias("pair"))
        .group_by("model", "attack", maintain_order=True)
        .agg(pl.col("pair").alias("top_pairs"))
    )
    return (
        errors.join(stats, on=["model", "attack"], how="left")
        .join(median_intervals(attacked.filter(fooled)), on=["model", "attack"], how="left")
        .join(pairs, on=["model", "attack"], how="left")
        .sort("model", "attack")
    )


def median_intervals(fooled: pl.DataFrame) -> pl.DataFrame:
    """Per (model, attack) and norm, the 95% distribution-free interval of the median
    (``<norm>_median_ci_low`` / ``_high``; order statistics, pipeline.summary.stats):
    a median of 3 images and one of 3000 are not the same number. Infinite ends: too few
    images for an interval."""
    from pipeline.summary.stats import median_interval

    rows = []
    for (model, attack), group in fooled.group_by("model", "attack"):
        row: dict[str, object] = {"model": model, "attack": attack}
        for norm in NORM_COLUMNS:
            values = group[norm].drop_nulls().to_numpy()
            _, low, high = median_interval(values) if len(values) else (None, None, None)
            row[f"{norm}_median_ci_low"], row[f"{norm}_median_ci_high"] = low, high
        rows.append(row)
    schema: dict[str, pl.DataType | type[pl.DataType]] = {"model": pl.String, "attack": pl.String}
    schema |= {f"{n}_median_ci_{e}": pl.Float64 for n in NORM_COLUMNS for e in ("low", "high")}
    return pl.DataFrame(rows, schema=schema)
