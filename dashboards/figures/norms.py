"""Distributions of minimum-perturbation norms per model and attack (attack shards).

Box plots with every image as a point: with tens of images a histogram hides
the shape, with thousands the box still reads. Log scale, since the random
baseline needs norms orders of magnitude above the gradient attacks.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib import ticker

from dashboards.figures import _style as st
from dashboards.figures.base import Figure
from pipeline.summary.report_data import ReportData


def norm_distributions(data: ReportData) -> list[Figure]:
    rows = data.attack_rows
    if rows.is_empty():
        return []
    fooled = rows.filter(pl.col("error").is_null() & pl.col("clean_correct") & pl.col("success"))
    if fooled.is_empty():
        return []
    keys = sorted({(m, a) for m, a in fooled.select("model", "attack").iter_rows()})
    labels = [f"{st.short(m)}\n{a}" for m, a in keys]
    norms = [n for n in ("l1pp", "l2", "linf") if n in fooled.columns]
    fig, axes = st.grid(len(norms))
    rng = np.random.default_rng(0)
    for ax, norm in zip(axes, norms, strict=True):
        groups = []
        for model, attack in keys:
            v = fooled.filter((pl.col("model") == model) & (pl.col("attack") == attack))[norm]
            groups.append(v.drop_nulls().to_numpy().astype(float))
        ax.boxplot(groups, showfliers=False, widths=0.5)
        ax.set_xticks(range(1, len(labels) + 1), labels, fontsize=7)
        for i, g in enumerate(groups, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(g)), g, s=8, alpha=0.6, color="tab:blue")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_ylabel(st.NORM_LABEL[norm])
        ax.set_title(f"minimum perturbation, {norm}", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return [
        Figure(
            name="norm_distributions",
            section="Minimum perturbations",
            title="Minimum-perturbation norms per model and attack",
            caption=(
                "Each point is one image the network classified correctly and the attack fooled; "
                "boxes show the quartiles and the median of the norm of e* (log scale)."
            ),
            data=st.to_bytes(fig),
        )
    ]


def fooling_ratio_curves(data: ReportData) -> list[Figure]:
    """Balda's fooling ratio vs eps, one panel per norm, one line per (model, attack)."""
    curves = data.fooling
    if curves.is_empty():
        return []
    norms = [n for n in ("l1pp", "l2", "linf") if n in set(curves["norm"])]
    fig, axes = st.grid(len(norms))
    for ax, norm in zip(axes, norms, strict=True):
        part = curves.filter(pl.col("norm") == norm)
        for (model, attack), g in part.group_by("model", "attack", maintain_order=True):
            ax.plot(g["eps"], g["fooling_ratio"], label=f"{st.short(str(model))} {attack}")
        st.share_axes(ax, st.NORM_LABEL[norm], "fooling ratio", f"fooling ratio vs eps, {norm}")
        ax.axhline(0.99, color="grey", linestyle=":", linewidth=0.8)
    st.legend_below(fig, axes)
    return [
        Figure(
            name="fooling_ratio",
            section="Minimum perturbations",
            title="Fooling ratio as a function of eps (Balda et al.)",
            caption=(
                "Fraction of the images correct clean whose minimum perturbation has norm at most "
                "eps; the dotted line is 99%, where the table's 'eps >99%' is read."
            ),
            data=st.to_bytes(fig),
        )
    ]
