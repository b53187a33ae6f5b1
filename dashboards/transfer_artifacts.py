"""Each transfer matrix as MLflow artifacts: a heatmap and a small table per attack and point.

The report shows every matrix too, but a reviewer in the MLflow UI should not
need it: ``transfer_matrices/<attack>/acc_at_<norm>_<value>.png`` is one
heatmap (rows: the network whose perturbation is applied, columns: the network
evaluated), ``.json`` the same numbers as a table (``MlflowClient.log_table``)
with the image count and the median critical norm of each pair. Drawn from
``summary/transfer.parquet`` (the caller reads it), so only evaluation points on the config's norm
grids have a matrix; the others are returned as missing, for the caller to say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from dashboards.figures.base import attacks_of, max_n, safe
from dashboards.figures.transfer import accuracy_panel, at_point, draw, models_of

ARTIFACT_DIR = "transfer_matrices"


@dataclass(frozen=True)
class MatrixArtifact:
    attack: str
    norm: str
    value: float
    png: bytes
    table: dict[str, list[Any]]  # column -> values, one row per (source, target)

    @property
    def stem(self) -> str:
        """Artifact path without extension, e.g. ``transfer_matrices/sign/acc_at_l1pp_5.3``."""
        return f"{ARTIFACT_DIR}/{safe(self.attack)}/acc_at_{self.norm}_{self.value:g}"


def _table(at: pl.DataFrame, norm: str) -> dict[str, list[Any]]:
    median = f"median_crit_{norm}"
    cols = [pl.col("source"), pl.col("target"), pl.col("accuracy"), pl.col("n").alias("images")]
    if median in at.columns:
        cols.append(pl.col(median))
    return at.sort("source", "target").select(cols).to_dict(as_series=False)


def transfer_matrix_artifacts(
    transfer: pl.DataFrame, points: Sequence[tuple[str, float]]
) -> tuple[list[MatrixArtifact], list[tuple[str, float]]]:
    """Heatmap + table per (attack, point); and the points the table has no rows for."""
    if transfer.is_empty():
        return [], []
    made: list[MatrixArtifact] = []
    missing: list[tuple[str, float]] = []
    for norm, value in points:
        if at_point(transfer, norm, value).is_empty():
            missing.append((norm, value))
            continue
        for attack in attacks_of(transfer):
            at = at_point(transfer.filter(pl.col("attack") == attack), norm, value)
            if at.is_empty():
                continue
            models = models_of(at)
            title = f"{attack}: transfer between networks (n={max_n(at)} images)"
            png = draw([accuracy_panel(at, models, norm, value)], models, title)
            made.append(MatrixArtifact(attack, norm, value, png, _table(at, norm)))
    return made, missing
