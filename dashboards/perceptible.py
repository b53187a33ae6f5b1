"""Minimum perturbations a person would see: linf above ``report.perceptible_linf``.

A "minimum" perturbation can still be plainly visible (the review met a linf of 103 of
255); the report flags and counts those per (network, attack) instead of letting a median
hide them. linf is in 0..255 pixel units, as everywhere in the results (16 = 16/255).
"""

from __future__ import annotations

import polars as pl

from dashboards.figures.tables import render


def perceptible_counts(attack_rows: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Per (model, attack): images fooled, how many of them with linf > ``threshold``,
    and the largest linf (images correct clean, no error rows)."""
    need = {"model", "attack", "linf", "success", "clean_correct", "error"}
    if attack_rows.is_empty() or not need <= set(attack_rows.columns):
        return pl.DataFrame()
    fooled = attack_rows.filter(
        pl.col("error").is_null() & pl.col("clean_correct") & pl.col("success")
    )
    return (
        fooled.group_by("model", "attack")
        .agg(
            pl.len().alias("fooled"),
            (pl.col("linf") > threshold).sum().alias("perceptible"),
            pl.col("linf").max().alias("linf_max"),
        )
        .sort("model", "attack")
    )


def perceptible_table(counts: pl.DataFrame, threshold: float) -> str:
    if counts.is_empty():
        return ""
    header = ["model", "attack", "fooled", f"linf > {threshold:g}", "largest linf"]
    rows = [
        [r["model"], r["attack"], r["fooled"], r["perceptible"], r["linf_max"]]
        for r in counts.to_dicts()
    ]
    flags = ["bad" if r["perceptible"] else "" for r in counts.to_dicts()]
    return render(header, rows, classes=flags)


def perceptible_caption(counts: pl.DataFrame, threshold: float) -> str:
    total = int(counts["perceptible"].sum()) if counts.height else 0
    return (
        f"Minimum perturbations whose largest pixel change (linf, 0..255 units) exceeds "
        f"{threshold:g} (report.perceptible_linf in the config) are likely visible: "
        f"{total} of {int(counts['fooled'].sum()) if counts.height else 0} here; rows "
        "with any are red."
    )
