"""Security curves (the adaptive task): a foveation under the perturbation made for the
unfoveated network (transferred, the paper's set-up) and under its own adaptive attack.

Per attack, one panel per network: MP on the unfoveated network (black), and per
foveation its transferred curve (dashed, ``summary/curves.parquet``) beside its
adaptive one (solid, ``summary/adaptive_curves.parquet``), in the same colour: the
gap between a dashed and a solid line is how much of the foveation's gain an attacker
who knows it takes back.
"""

from __future__ import annotations

import polars as pl

from dashboards.figures import _style as st
from dashboards.figures.base import Figure, attacks_of
from dashboards.figures.data import RunData
from tasks.protocol import MP


def security_curves(data: RunData) -> list[Figure]:
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
                name=f"security_curves_{attack}",
                section="Adaptive foveation",
                title=f"Security curves, {attack}: transferred MP (dashed) vs the foveation's own adaptive attack (solid)",
                caption="Accuracy of each foveated network against the norm of the perturbation in the full image's frame, when the perturbation was made for the unfoveated network (dashed, the paper's set-up) and when it was made for the foveated network itself (solid; random crops with EOT, judged on fresh draws). Black: the unfoveated network under MP.",
                data=st.to_bytes(fig),
            )
        )
    return out
