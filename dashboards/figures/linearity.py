"""Linearity figures: example curves (Fig. 4, 9-11), error CDFs (Fig. 12), T-effect CDFs (Fig. 6).

From ``evals/linearity`` rows (one per image, self pairs): ``response`` is
f(x + a e*) - f(x) and ``alone`` is f(a e*) for each ``a`` in ``alphas``, on the
true class's pre-softmax score. The paper's yellow line is the interpolation
between a = 0 and a = 2; the linear hypothesis says the response should sit on
it at a = 1 (the e* point).
"""

from __future__ import annotations

import numpy as np
import polars as pl
from matplotlib.axes import Axes

from dashboards.figures import _style as st
from dashboards.figures.base import Figure, attacks_of, norm_for, safe
from pipeline.summary.report_data import ReportData

EXAMPLES = 3  # images per model in the example-curve figure


def _x_axis(data: ReportData, rows: pl.DataFrame, attack: str) -> tuple[pl.DataFrame, str]:
    """Add ``unit_norm`` (the native norm of e*) so curves plot against a norm, as in the paper."""
    norm = norm_for(attack)
    if data.attack_rows.is_empty() or norm not in data.attack_rows.columns:
        return rows.with_columns(pl.lit(None, dtype=pl.Float64).alias("unit_norm")), norm
    norms = data.attack_rows.filter(pl.col("attack") == attack).select(
        "image_id", pl.col("model").alias("source"), pl.col(norm).alias("unit_norm")
    )
    return rows.join(norms, on=["image_id", "source"], how="left"), norm


def _example_panel(ax: Axes, row: dict[str, object], norm: str) -> None:
    alphas = np.asarray(row["alphas"], dtype=float)
    response = np.asarray(row["response"], dtype=float)
    alone = np.asarray(row["alone"], dtype=float)
    unit = row.get("unit_norm")
    scale = float(unit) if isinstance(unit, float) and np.isfinite(unit) else 1.0
    x = alphas * scale
    ax.plot(x, response, "o-", color="tab:blue", markersize=3, label="f(x + a·e*) − f(x)")
    ax.plot(x, alone, "s-", color="tab:red", markersize=3, label="f(a·e*)")
    two = np.flatnonzero(np.isclose(alphas, 2.0))
    zero = np.flatnonzero(np.isclose(alphas, 0.0))
    if len(two) and len(zero):
        xs = np.array([x[zero[0]], x[two[0]]])
        ys = np.array([response[zero[0]], response[two[0]]])
        ax.plot(xs, ys, "--", color="goldenrod", label="linear interpolation a=0..2")
    one = np.flatnonzero(np.isclose(alphas, 1.0))
    if len(one):
        ax.axvline(x[one[0]], color="gray", linewidth=0.8, linestyle=":")
        ax.plot(x[one[0]], response[one[0]], "k*", markersize=10, label="e* (a = 1)")
    ax.axhline(0, color="black", linewidth=0.5)
    unit_label = st.NORM_LABEL.get(norm, norm) if scale != 1.0 else "a (multiple of e*)"
    ax.set_xlabel(unit_label)
    ax.set_ylabel("true-class score change (logit)")
    ax.set_title(f"{row['image_id']} on {st.short(str(row['source']))}", fontsize=10)
    ax.grid(alpha=0.3)


def linearity_examples(data: ReportData) -> list[Figure]:
    """Fig. 4, 9-11: the response along e* for a few images per model."""
    rows = data.linearity_rows
    if rows.is_empty():
        return []
    out = []
    for attack in attacks_of(rows):
        sub, norm = _x_axis(data, rows.filter(pl.col("attack") == attack), attack)
        models = sorted(sub["source"].unique().to_list())
        picked = [
            r
            for m in models
            for r in sub.filter(pl.col("source") == m).sort("image_id").head(EXAMPLES).to_dicts()
        ]
        cols = min(EXAMPLES, max(1, max(sum(r["source"] == m for r in picked) for m in models)))
        fig, axes = st.grid(len(picked), max_cols=cols)
        for ax, row in zip(axes, picked, strict=True):
            _example_panel(ax, row, norm)
        st.legend_below(fig, axes)
        out.append(
            Figure(
                name=f"linearity_examples_{safe(attack)}",
                section="Linearity",
                title=f"Local linearity along e*, {attack} (Fig. 4, 9-11)",
                caption=(
                    "True-class score change f(x + a·e*) − f(x) as e* is scaled, against the "
                    "score of the perturbation alone f(a·e*); the star is e* itself and the "
                    "dashed line the linear interpolation between a = 0 and a = 2."
                ),
                data=st.to_bytes(fig),
            )
        )
    return out


def _cdf(ax: Axes, values: np.ndarray, label: str, **style: object) -> None:
    v = np.sort(values[np.isfinite(values)])
    if len(v):
        ax.step(v, np.arange(1, len(v) + 1) / len(v), where="post", label=label, **style)  # type: ignore[arg-type]


def linearity_error_cdf(data: ReportData) -> list[Figure]:
    """Fig. 12: CDF of |interpolation error| vs |f(e*) error| at e*, per model."""
    rows = data.linearity_rows
    if rows.is_empty():
        return []
    models = sorted(rows["source"].unique().to_list())
    fig, axes = st.grid(len(models))
    for ax, model in zip(axes, models, strict=True):
        for i, attack in enumerate(attacks_of(rows)):
            sub = rows.filter((pl.col("source") == model) & (pl.col("attack") == attack))
            color = f"C{i}"
            _cdf(
                ax,
                np.abs(sub["err_interpolation"].to_numpy()),
                f"{attack}: linear interpolation",
                color=color,
            )
            _cdf(
                ax,
                np.abs(sub["err_alone"].to_numpy()),
                f"{attack}: f(e*)",
                color=color,
                linestyle="--",
            )
        ax.set_xscale("symlog", linthresh=0.1)
        st.share_axes(
            ax, "|error| of the linear estimate at e* (logit)", "share of images", st.short(model)
        )
    st.legend_below(fig, axes)
    return [
        Figure(
            name="linearity_error_cdf",
            section="Linearity",
            title="Linear-hypothesis errors (Fig. 12)",
            caption=(
                "Cumulative share of images whose error is below the x value: solid, the linear "
                "interpolation between f(x) and f(x + 2e*); dashed, f(e*) (the 'always linear' "
                "hypothesis); the paper finds solid far to the left of dashed."
            ),
            data=st.to_bytes(fig),
        )
    ]


FOV_SERIES = (
    ("fov_object_image", "f(x) − f(T_B(x))", "-"),
    ("fov_object_perturbation", "perturbation term, T_B", "--"),
    ("fov_one_crop_image", "f(x) − f(T_S(x))", "-"),
    ("fov_one_crop_perturbation", "perturbation term, T_S", "--"),
)


def foveation_effect_cdf(data: ReportData) -> list[Figure]:
    """Fig. 6: how much a foveation moves the image's score vs the perturbation's."""
    rows = data.linearity_rows
    present = [s for s in FOV_SERIES if s[0] in rows.columns and rows[s[0]].drop_nulls().len()]
    if rows.is_empty() or not present:
        return []
    keys = sorted({(m, a) for m, a in rows.select("source", "attack").iter_rows()})
    fig, axes = st.grid(len(keys))
    for ax, (model, attack) in zip(axes, keys, strict=True):
        sub = rows.filter((pl.col("source") == model) & (pl.col("attack") == attack))
        for i, (col, label, style) in enumerate(present):
            values = sub[col].drop_nulls().to_numpy().astype(float)
            _cdf(ax, values, label, color=f"C{i // 2 * 2 + 2}", linestyle=style)
        st.share_axes(
            ax,
            "change of the true-class score (logit)",
            "share of images",
            f"{st.short(model)}, {attack}",
        )
    st.legend_below(fig, axes)
    return [
        Figure(
            name="foveation_effect_cdf",
            section="Foveation",
            title="Effect of the foveation on the image vs on the perturbation (Fig. 6)",
            caption=(
                "Cumulative share of images by score change: solid, what the foveation T does to "
                "the clean image's score; dashed, what it does to the perturbation's contribution "
                "(T_B = Object Crop MP, T_S = 1 Crop MP-Object)."
            ),
            data=st.to_bytes(fig),
        )
    ]
