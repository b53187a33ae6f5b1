"""Security curves (the adaptive task): a foveation under the perturbation made for the
unfoveated network (transferred, the paper's set-up) and under its own adaptive attack.

Per attack, one panel per network: MP on the unfoveated network (black), and per
foveation its transferred curve (dashed, ``summary/curves.parquet``) beside its
adaptive one (solid, ``summary/adaptive_curves.parquet``), in the same colour: the
gap between a dashed and a solid line is how much of the foveation's gain an attacker
who knows it takes back.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from dashboards.figures import _style as st
from dashboards.figures.base import Figure, attacks_of, safe
from dashboards.figures.transfer import heatmap
from pipeline.summary.report_data import ReportData
from tasks.protocol import MP


def security_curves(data: ReportData) -> list[Figure]:
    adaptive, curves = data.table("adaptive_curves"), data.table("curves")
    if adaptive.is_empty():
        return []
    out = []
    for attack in attacks_of(adaptive):
        mine = adaptive.filter(pl.col("attack") == attack)
        norm = str(mine["norm"][0])
        models = sorted(mine["model"].unique().to_list())
        fig, axes = st.grid(len(models))
        for ax, model in zip(axes, models, strict=True):
            transferred = (
                curves.filter(
                    (pl.col("source") == model)
                    & (pl.col("target") == model)
                    & (pl.col("attack") == attack)
                    & (pl.col("norm") == norm)
                )
                if not curves.is_empty()
                else pl.DataFrame()
            )
            if not transferred.is_empty():
                line = transferred.filter(pl.col("condition") == MP).sort("value")
                ax.plot(line["value"], line["accuracy"], color="black", linewidth=2.0, label="MP")
            for (condition,), line in mine.filter(pl.col("model") == model).group_by(
                "condition", maintain_order=True
            ):
                color = st.CONDITION_COLOR.get(str(condition), "tab:purple")
                label = st.CONDITION_LABEL.get(str(condition), str(condition))
                line = line.sort("value")
                ax.plot(line["value"], line["accuracy"], color=color, label=f"{label}, adaptive")
                if not transferred.is_empty():
                    t = transferred.filter(pl.col("condition") == condition).sort("value")
                    if t.height:
                        ax.plot(t["value"], t["accuracy"], color=color, linestyle="--",
                                label=f"{label}, transferred MP")  # fmt: skip
            n = int(mine.filter(pl.col("model") == model)["n"].max() or 0)  # type: ignore[arg-type]
            st.accuracy_axes(ax, norm, f"{st.short(model)}, {attack} (n≤{n})", data.top_k)
        st.legend_below(fig, axes)
        out.append(
            Figure(
                name=f"security_curves_{safe(attack)}",
                section="Adaptive foveation",
                title=f"Security curves, {attack}: transferred MP (dashed) vs the foveation's own adaptive attack (solid)",
                caption="Accuracy of each foveated network against the norm of the perturbation in the full image's frame, when the perturbation was made for the unfoveated network (dashed, the paper's set-up) and when it was made for the foveated network itself (solid; random crops with EOT, judged on fresh draws). Black: the unfoveated network under MP.",
                data=st.to_bytes(fig),
            )
        )
    return out


def adaptive_gain_heatmaps(data: ReportData) -> list[Figure]:
    """Per attack: the adaptive and the transferred gain per (network, foveation), side by
    side on one colour scale (a cell's fall from the right panel to the left is what an
    attacker who knows the foveation takes back)."""
    summary = data.table("adaptive")
    if summary.is_empty():
        return []
    out = []
    for attack in attacks_of(summary):
        mine = summary.filter(pl.col("attack") == attack)
        models = sorted(mine["model"].unique().to_list())
        foveations = [c for c in st.CONDITION_LABEL if c in set(mine["condition"])]
        foveations += sorted(set(mine["condition"]) - set(foveations))
        panels = {
            key: np.full((len(models), len(foveations)), np.nan)
            for key in ("adaptive_gain_median", "transferred_gain_median")
        }
        counts = np.full((len(models), len(foveations)), np.nan)  # images per cell
        for r in mine.to_dicts():
            i, j = models.index(r["model"]), foveations.index(r["condition"])
            counts[i, j] = r["n"] if r.get("n") is not None else np.nan
            for key, matrix in panels.items():
                if r[key] is not None and np.isfinite(r[key]):
                    matrix[i, j] = r[key]
        finite = np.concatenate([m[np.isfinite(m)] for m in panels.values()])
        vmax = float(finite.max()) if finite.size else None
        fig, axes = st.grid(2, max_cols=2)
        names = [st.CONDITION_LABEL.get(c, c) for c in foveations]
        titles = ("adaptive gain (median)", "transferred gain (median, Table 1)")
        for ax, matrix, title in zip(axes, panels.values(), titles, strict=True):
            heatmap(ax, matrix, [st.short(m) for m in models], names, title, ".2f", vmax,
                    labels=("foveation", "network"), counts=counts)  # fmt: skip
        fig.suptitle(f"{attack}: what each foveation keeps against an attacker who knows it")
        fig.tight_layout()
        out.append(
            Figure(
                name=f"adaptive_gain_{safe(attack)}",
                section="Adaptive foveation",
                title=f"Adaptive gain per network and foveation, {attack}",
                caption="Median per image of the foveated network's own minimum perturbation over the unfoveated network's MP (left), beside the paper's transferred gain, MP foveated over MP (right). 1 means no gain; blank: not measured.",
                data=st.to_bytes(fig),
            )
        )
    return out
