"""Heatmaps of every transfer matrix (source x target), per attack.

Panels: accuracy at the reference norm (5.3) the target receives, in l1pp and linf, and the median
critical norm (how large the source's perturbation must get before the target
fails, for the median image). 5.3 can sit where every self entry is already 0
for modern networks; the median critical norm stays informative there.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes

from dashboards.figures import _style as st
from dashboards.figures.base import Figure, attacks_of, safe
from pipeline.summary.report_data import ReportData


def heatmap(
    ax: Axes,
    matrix: np.ndarray,
    rows: list[str],
    cols: list[str],
    title: str,
    fmt: str,
    vmax: float | None,
    labels: tuple[str, str] = ("target (evaluated on)", "source (perturbation from)"),
    counts: np.ndarray | None = None,
) -> None:
    """A matrix with its values written in the cells, each with its number of images
    below when ``counts`` is given (a value of 2 images reads differently from one of
    2000); ``labels``: (x axis, y axis)."""
    image = ax.imshow(matrix, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title, fontsize=9)
    finite = matrix[np.isfinite(matrix)]
    top = vmax if vmax is not None else (float(finite.max()) if finite.size else 0.0)
    for (i, j), v in np.ndenumerate(matrix):
        if np.isfinite(v):
            ax.text(
                j,
                i,
                format(v, fmt) + _n(counts, i, j),
                ha="center",
                va="center",
                fontsize=8,
                color="black"
                if top > 0 and v / top > 0.5
                else "white",  # viridis is light in its upper half
            )
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)


def _n(counts: np.ndarray | None, i: int, j: int) -> str:
    if counts is None or not np.isfinite(counts[i, j]):
        return ""
    return f"\nn={int(counts[i, j])}"


def _matrix(df: pl.DataFrame, models: list[str], column: str) -> np.ndarray:
    out = np.full((len(models), len(models)), np.nan)
    for row in df.iter_rows(named=True):
        if row["source"] in models and row["target"] in models and row[column] is not None:
            out[models.index(row["source"]), models.index(row["target"])] = float(row[column])
    return out


NORM_TEXT = {"l1pp": "l1pp", "linf": "linf", "l2": "l2"}  # one name per norm (README)
#: matrix, title, number format, colour max, images per cell
Panel = tuple[np.ndarray, str, str, float | None, np.ndarray | None]


def models_of(transfer: pl.DataFrame) -> list[str]:
    return sorted(set(transfer["source"].to_list()) | set(transfer["target"].to_list()))


def at_point(transfer: pl.DataFrame, norm: str, value: float) -> pl.DataFrame:
    """The rows of one evaluation point (grid values are floats read back from Parquet)."""
    return transfer.filter((pl.col("norm") == norm) & ((pl.col("value") - value).abs() < 1e-9))


def accuracy_panel(at: pl.DataFrame, models: list[str], norm: str, value: float) -> Panel:
    """Top-k accuracy of every (source, target) at one norm value: 0..1, two decimals."""
    title = f"accuracy at received {NORM_TEXT.get(norm, norm)} = {value:g}"
    return _matrix(at, models, "accuracy"), title, ".2f", 1.0, _matrix(at, models, "n")


def draw(panels: list[Panel], models: list[str], suptitle: str) -> bytes:
    """The panels side by side as one PNG."""
    fig, axes = st.grid(len(panels), max_cols=4)
    ticks = [st.short(m) for m in models]
    for ax, (matrix, title, fmt, vmax, counts) in zip(axes, panels, strict=True):
        heatmap(ax, matrix, ticks, ticks, title, fmt, vmax, counts=counts)
    fig.suptitle(suptitle, fontsize=11)
    fig.tight_layout()
    return st.to_bytes(fig)


def transfer_heatmaps(data: ReportData) -> list[Figure]:
    """One figure per attack: the accuracy and median-critical-norm matrices."""
    transfer = data.table("transfer")
    if transfer.is_empty():
        return []
    out = []
    point = data.point
    for attack in attacks_of(transfer):
        sub = transfer.filter(pl.col("attack") == attack)
        models = models_of(sub)
        panels: list[Panel] = []
        for norm in ("l1pp", "linf"):
            at = at_point(sub, norm, point)
            if at.height:
                panels.append(accuracy_panel(at, models, norm, point))
        pairs = sub.unique(subset=["source", "target"])
        for norm in ("l1pp", "linf"):
            if f"median_crit_{norm}" in pairs.columns:
                m = _matrix(pairs, models, f"median_crit_{norm}")
                finite = m[np.isfinite(m)]
                vmax = float(finite.max()) if finite.size else None
                title = f"median critical {NORM_TEXT[norm]} (0..255)"
                n = _matrix(pairs, models, "n_median") if "n_median" in pairs.columns else None
                panels.append((m, title, ".3g", vmax, n))
        if not panels:
            continue
        png = draw(panels, models, f"{attack}: transfer between networks")
        out.append(
            Figure(
                name=f"transfer_{safe(attack)}",
                section="Transfer",
                title=f"Transfer matrices, {attack}",
                caption=(
                    f"Rows are the network whose {attack} perturbation is applied, columns the "
                    f"network evaluated: top-k accuracy at the norm {point:g} the target receives "
                    "and the median received critical norm (higher = the perturbation "
                    "transfers less)."
                ),
                data=png,
            )
        )
    return out
