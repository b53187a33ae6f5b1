"""Table 1 on the best minimum perturbation of the run: how much of each foveation's gain
depends on how weak the paper's MP was.

Luo et al.'s ratios divide a foveated critical norm by the unfoveated one, both along the
direction their attack found. If that attack stops far from the minimum (L-BFGS stops at
its first adversarial iterate), the denominator is too large and so is every gain. Here,
per (network, image) and per norm, the reference is the perturbation of whichever attack
of the run found the smallest MP critical norm *in that norm* (any non-baseline attack:
a perturbation has every norm), and every condition of that image is read along the same
perturbation, so both sides of each ratio still come from one direction and one search.
The rows are relabelled ``best_<norm>`` and go through the same :func:`table1` as the
paper's attacks; ``from_attacks`` says which attack supplied how many images.

A norm gets a best-reference table only where at least two attacks of the run could
supply it (with one, the table would repeat Table 1). docs/protocol.md shows both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import polars as pl

from pipeline.summary.axes import is_baseline, native_norm
from pipeline.summary.protocol import table1
from tasks.protocol import MP

PREFIX = "best_"


def best_attack(norm: str) -> str:
    """The label of the best-reference rows on ``norm``."""
    return f"{PREFIX}{norm}"


def best_reference_rows(crit: pl.DataFrame, norm: str) -> pl.DataFrame:
    """Self-pair rows re-read along each image's best MP on ``norm`` (attack relabelled,
    the chosen attack in ``chosen``). Ties go to the attack first in name order."""
    selfs = crit.filter(
        (pl.col("source") == pl.col("target"))
        & ~pl.col("attack").map_elements(is_baseline, return_dtype=pl.Boolean)
    )
    col = f"crit_{norm}"
    found = selfs.filter(
        (pl.col("condition") == MP)
        & pl.col("has_perturbation")
        & pl.col("clean_correct")
        & (pl.col(col) > 0)
        & pl.col(col).is_finite()
    )
    if found.is_empty():
        return selfs.clear()
    chosen = (
        found.sort(col, "attack")
        .group_by("source", "image_id", maintain_order=True)
        .first()
        .select("source", "image_id", pl.col("attack").alias("chosen"))
    )
    return (
        selfs.join(chosen, on=["source", "image_id"])
        .filter(pl.col("attack") == pl.col("chosen"))
        .with_columns(pl.lit(best_attack(norm)).alias("attack"))
    )


def best_norms(crit: pl.DataFrame) -> list[str]:
    """Norms at least two non-baseline attacks of the run's self pairs can supply."""
    if crit.is_empty():
        return []
    attacks = [a for a in crit["attack"].unique().to_list() if not is_baseline(a)]
    return sorted({native_norm(a) for a in attacks}) if len(attacks) >= 2 else []


def table1_best(crit: pl.DataFrame, rtol: float) -> pl.DataFrame:
    """Table 1 with each image's reference perturbation the run's best on the norm of each
    paper-style row (the norms the run's attacks minimise); ``from_attacks`` lists which
    attack supplied how many images of the network."""
    parts = []
    for norm in best_norms(crit):
        rows = best_reference_rows(crit, norm)
        if rows.is_empty():
            continue
        table = table1(rows, rtol, norm_of=_constant(norm))
        if table.is_empty():
            continue
        sources = {
            str(model): _counts(group["chosen"].to_list())
            for (model,), group in rows.filter(pl.col("condition") == MP).group_by("source")
        }
        parts.append(
            table.with_columns(
                pl.col("model")
                .replace_strict(sources, return_dtype=pl.String)
                .alias("from_attacks")
            )
        )
    return pl.concat(parts) if parts else pl.DataFrame()


def _constant(norm: str) -> Callable[[str], str]:
    return lambda _attack: norm


def _counts(chosen: list[str]) -> str:
    return ", ".join(f"{a} {n}" for a, n in sorted(Counter(chosen).items()))
