"""Accuracy-vs-norm figures: Fig. 2/7 (self, cross, random), 3/8 (masks), 5/13 (foveations).

All come from ``summary/curves.parquet``: accuracy at each grid norm of the
perturbation the target receives, over every evaluated image (the paper's
population; pipeline/summary/protocol.py explains it).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from dashboards.figures import _style as st
from dashboards.figures.base import Figure, attacks_of, max_n, norm_for, safe
from pipeline.summary.report_data import ReportData
from tasks.protocol import MP, OBJECT, conditions_of

MASK_CONDITIONS = (MP, *(c.name for c in conditions_of("masks")))
FOVEATION_CONDITIONS = (MP, *(c.name for c in conditions_of("foveation")))
#: The MP-Object set-up is drawn dashed, so its curves read apart from the MP set-up's.
DASHED = {c.name for c in conditions_of("foveation") if c.setup == OBJECT}


def transfer_curves(data: ReportData) -> list[Figure]:
    """Fig. 2 (l1pp) and 7 (linf): one panel per target, a line per source and attack."""
    curves = data.table("curves")
    if curves.is_empty():
        return []
    mp = curves.filter(pl.col("condition") == MP)
    targets = sorted(mp["target"].unique().to_list())
    out = []
    for norm in ("l1pp", "linf"):
        sub = mp.filter(pl.col("norm") == norm)
        if sub.is_empty():
            continue
        fig, axes = st.grid(len(targets))
        for ax, target in zip(axes, targets, strict=True):
            panel = sub.filter(pl.col("target") == target)
            for (source, attack), line in panel.group_by("source", "attack", maintain_order=True):
                line = line.sort("value")
                own = source == target
                baseline = st.is_baseline(str(attack))
                label = f"{st.short(str(source))} {attack}" + (" (self)" if own else "")
                ax.plot(
                    line["value"],
                    line["accuracy"],
                    linestyle="--" if baseline else "-",
                    linewidth=2.2 if own else 1.2,
                    marker="o" if own else ".",
                    markersize=4,
                    label=label,
                )
            n = max_n(panel)
            st.accuracy_axes(ax, norm, f"evaluated on {st.short(target)} (n≤{n})", data.top_k)
        st.legend_below(fig, axes)
        fig_no = "2" if norm == "l1pp" else "7"
        out.append(
            Figure(
                name=f"accuracy_{norm}",
                section="Transfer",
                title=f"Accuracy vs {st.NORM_LABEL[norm]} (Fig. {fig_no})",
                caption=transfer_caption(mp),
                data=st.to_bytes(fig),
            )
        )
    return out


def transfer_caption(mp: pl.DataFrame) -> str:
    """The caption names only the lines drawn: other networks' when the run has cross
    pairs, the random direction when it ran the baseline."""
    text = (
        "Accuracy of each target network as each source network's minimum perturbation is "
        "rescaled: thick lines are the network's own perturbations"
    )
    if (mp["source"] != mp["target"]).any():
        text += ", thin lines other networks'"
    if any(st.is_baseline(str(a)) for a in mp["attack"].unique().to_list()):
        text += ", dashed the random direction"
    return text + "."


def _condition_figure(
    data: ReportData,
    attack: str,
    conditions: Sequence[str],
    name: str,
    title: str,
    caption: str,
) -> Figure | None:
    curves = data.table("curves")
    norm = norm_for(attack)
    sub = curves.filter(
        (pl.col("source") == pl.col("target"))
        & (pl.col("attack") == attack)
        & (pl.col("norm") == norm)
        & pl.col("condition").is_in(list(conditions))
    )
    present = set(sub["condition"].unique().to_list())
    if present <= {MP}:  # nothing to compare MP with
        return None
    models = sorted(sub["source"].unique().to_list())
    fig, axes = st.grid(len(models))
    for ax, model in zip(axes, models, strict=True):
        for cond in conditions:
            line = sub.filter((pl.col("source") == model) & (pl.col("condition") == cond))
            if line.is_empty():
                continue
            line = line.sort("value")
            ax.plot(
                line["value"],
                line["accuracy"],
                color=st.CONDITION_COLOR.get(cond),
                linestyle="--" if cond in DASHED else "-",
                linewidth=2.0 if cond == MP else 1.4,
                marker=".",
                label=st.CONDITION_LABEL.get(cond, cond),
            )
        n = max_n(sub.filter(pl.col("source") == model))
        st.accuracy_axes(ax, norm, f"{st.short(model)}, {attack} (n≤{n})", data.top_k)
    st.legend_below(fig, axes)
    return Figure(
        name=name,
        section="Where the perturbation matters" if "mask" in name else "Foveation",
        title=title,
        caption=caption,
        data=st.to_bytes(fig),
    )


def mask_curves(data: ReportData) -> list[Figure]:
    """Fig. 3 / 8: the perturbation inside the boxes only, outside only, and whole."""
    curves = data.table("curves")
    out = []
    for attack in attacks_of(curves):
        fig = _condition_figure(
            data,
            attack,
            MASK_CONDITIONS,
            name=f"masks_{safe(attack)}",
            title=f"Object- vs background-masked perturbations, {attack} (Fig. 3/8)",
            caption=(
                "Self-model accuracy when only the part of e* on the object (ground-truth boxes) "
                "or only the part on the background is applied, against the whole e* (MP); "
                "the norm is that of the masked perturbation's source direction."
            ),
        )
        if fig:
            out.append(fig)
    return out


def foveation_curves(data: ReportData) -> list[Figure]:
    """Fig. 5 / 13: each foveation of x + e* against MP, and the MP-Object set-up."""
    curves = data.table("curves")
    out = []
    for attack in attacks_of(curves):
        fig = _condition_figure(
            data,
            attack,
            FOVEATION_CONDITIONS,
            name=f"foveation_{safe(attack)}",
            title=f"Foveations under perturbation, {attack} (Fig. 5/13)",
            caption=(
                "Self-model accuracy of each foveation (crop + resize) applied to x + e*, "
                "against no foveation (MP, black); grey/cyan/olive are the MP-Object set-up, "
                "where e* is computed on the object crop itself."
            ),
        )
        if fig:
            out.append(fig)
    return out
