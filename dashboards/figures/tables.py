"""HTML tables of the report: Table 1 and 2 in the paper's shape, and the run's statistics.

Plain ``html.escape``-d markup (no template engine: nothing here needs one)
with numbers formatted for reading; the Parquet in ``summary/`` keeps the
full precision.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence

import polars as pl

from dashboards.figures._style import CONDITION_LABEL, short
from pipeline.summary.axes import native_norm
from pipeline.summary.stats import signed
from tasks.protocol import table1_ratios

VERDICT_CLASS = {
    "holds": "ok",
    "reversed": "bad",
    "inconclusive": "meh",
    "insufficient": "meh",
}


def fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞"
        return f"{value:.{digits}g}" if abs(value) >= 1000 else f"{value:.{digits}f}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def render(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    classes: Sequence[str] | None = None,
    digits: int = 3,
) -> str:
    """A table; ``classes`` gives each row a CSS class (verdict colours)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        cells = "".join(
            f'<td class="n">{html.escape(fmt(v, digits))}</td>'
            if isinstance(v, int | float) and not isinstance(v, bool)
            else f"<td>{html.escape(fmt(v, digits))}</td>"
            for v in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def frame(df: pl.DataFrame, columns: Mapping[str, str], digits: int = 3) -> str:
    """Selected columns of ``df`` under readable headers (missing columns are left out)."""
    if df.is_empty():
        return ""
    present = {c: h for c, h in columns.items() if c in df.columns}
    rows = df.select(list(present)).rows()
    return render(list(present.values()), rows, digits=digits)


def clean_table(clean: pl.DataFrame) -> str:
    return frame(
        clean,
        {
            "model": "model",
            "images": "images",
            "errors": "errors",
            "top1": "top-1",
            "top5": "top-5",
        },
    )


def norm_stats_table(attacks: pl.DataFrame, names: Sequence[str]) -> str:
    """Per (model, attack): success rate and every norm's min / median / mean / max / std;
    label changes named by ``names`` (ImageNet's class names, ``ReportData.class_names``)."""
    cols: dict[str, str] = {
        "model": "model",
        "attack": "attack",
        "attacked": "n",
        "success_rate": "success",
    }
    for norm in ("l1pp", "l2", "linf"):
        for stat in ("min", "median", "median_ci", "mean", "max", "std"):
            cols[f"{norm}_{stat}"] = f"{norm} {stat}".replace("median_ci", "median 95% CI")
    cols["mean_forward"] = "fwd/img"
    cols["top_pairs"] = "frequent label → adversarial label (count)"
    attacks = attacks.with_columns(
        pl.format("[{}, {}]", fmt_col(f"{n}_median_ci_low"), fmt_col(f"{n}_median_ci_high")).alias(
            f"{n}_median_ci"
        )
        for n in ("l1pp", "l2", "linf")
        if f"{n}_median_ci_low" in attacks.columns
    )
    if "top_pairs" in attacks.columns:
        named = attacks["top_pairs"].map_elements(
            lambda pairs: named_pairs(pairs, names), return_dtype=pl.List(pl.String)
        )
        attacks = attacks.with_columns(named.alias("top_pairs"))
    return frame(attacks, cols)


def fmt_col(name: str) -> pl.Expr:
    """A float column as the tables print a number (three significant digits, inf: ∞)."""
    return pl.col(name).map_elements(fmt_3g, return_dtype=pl.String)


def fmt_3g(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:.3g}"


_PAIR = re.compile(r"^(\d+)->(\d+) (\(\d+\))$")


def class_label(index: int, names: Sequence[str]) -> str:
    """``0 tench``: an ImageNet class index with its name's first spelling (``names``,
    ``ReportData.class_names``), the index alone outside 0..999."""
    if not 0 <= index < len(names):
        return str(index)
    return f"{index} {names[index]}"


def named_pairs(pairs: Sequence[str] | None, names: Sequence[str]) -> list[str] | None:
    """``'0->1 (3)'`` (summary/attacks.parquet's spelling) as ``'0 tench → 1 goldfish (3)'``."""
    if pairs is None:
        return None
    out = []
    for pair in pairs:
        m = _PAIR.match(pair)
        label = f"{class_label(int(m[1]), names)} → {class_label(int(m[2]), names)}" if m else ""
        out.append(f"{label} {m[3]}" if m else pair)
    return out


def measures_table(measures: pl.DataFrame) -> str:
    """Balda's Table I columns per (model, attack)."""
    return frame(
        measures,
        {
            "model": "model",
            "attack": "attack",
            "attacked": "n",
            "rho1_l2": "rho1 (l2)",
            "rho1_linf": "rho1 (linf)",
            "rho2_l2": "rho2 (l2)",
            "rho2_linf": "rho2 (linf)",
            "eps99_l1pp": "eps >99% (l1pp)",
            "eps99_l2": "eps >99% (L2)",
            "eps99_linf": "eps >99% (linf)",
        },
        digits=4,
    )


def bounds_table(bounds: pl.DataFrame) -> str:
    """Peck's certified bound per model next to the smallest perturbation found."""
    return frame(
        bounds,
        {
            "model": "model",
            "images": "images",
            "bounded": "bounded",
            "bound_l2_median": "median bound (L2)",
            "found_l2_median": "median found (L2)",
            "gap_median": "median found / bound",
            "checked": "checked",
            "violations": "violations",
            "first_error": "why not bounded",
        },
        digits=4,
    )


def table1_html(t1: pl.DataFrame) -> str:
    """Rows: the ratio; columns: model x attack; cells: median [95% CI] (n, share censored);
    "≥" where censored ratios decide the median (it is then only a lower bound)."""
    if t1.is_empty():
        return ""
    keys = sorted({(m, a) for m, a in t1.select("model", "attack").iter_rows()})
    present = set(t1["ratio"].to_list())
    paper_order = [f"{num} / {den}" for num, den in table1_ratios()]
    ratios = [r for r in paper_order if r in present] + sorted(present - set(paper_order))
    cells = {(r["ratio"], r["model"], r["attack"]): r for r in t1.to_dicts()}
    rows = []
    for ratio in ratios:
        row: list[object] = [_ratio_label(ratio)]
        for model, attack in keys:
            c = cells.get((ratio, model, attack))
            row.append(
                f"{'≥ ' if c.get('median_lower_bound') else ''}{c['median']:.2f} "
                f"[{c['ci_low']:.2f}, {c['ci_high']:.2f}] "
                f"(n={c['n']}, {c['share_censored']:.0%} censored)"
                if c
                else None
            )
        rows.append(row)
    header = ["ratio", *(f"{short(m)} {a}" for m, a in keys)]
    return render(header, rows)


def _ratio_label(ratio: str) -> str:
    num, _, den = ratio.partition(" / ")
    return f"{CONDITION_LABEL.get(num, num)} / {CONDITION_LABEL.get(den, den)}"


def table2_html(t2: pl.DataFrame) -> str:
    """One block per (attack, norm value): rows are models, columns the conditions."""
    if t2.is_empty():
        return ""
    blocks = []
    kind = "point" if "point" in t2.columns else "value"
    for (attack, point), block in t2.sort("attack", kind, "value").group_by(
        "attack", kind, maintain_order=True
    ):
        norm = native_norm(str(attack))
        label = norm
        values = sorted(block["value"].unique().to_list())
        at = ", ".join(f"{v:g}" for v in values)
        title = (
            f"No perturbation (norm 0), images of the {attack} set"
            if values == [0.0]
            else f"{attack} perturbation ({label} = {at}; {POINT_TEXT.get(str(point), point)})"
        )
        order = [c for c in CONDITION_LABEL if c in set(block["condition"].to_list())]
        models = sorted(block["model"].unique().to_list())
        acc = {
            (r["model"], r["condition"]): _acc(r["accuracy"], r["accuracy_conditional"])
            for r in block.to_dicts()
        }
        value_of = {r["model"]: r["value"] for r in block.to_dicts()}
        rows = [[short(m), f"{value_of[m]:g}", *(acc.get((m, c)) for c in order)] for m in models]
        header = ["model", label, *(CONDITION_LABEL[c] for c in order)]
        blocks.append(f"<h4>{html.escape(title)}</h4>{render(header, rows)}")
    return "".join(blocks)


#: How an evaluation point was chosen (summary/table2.parquet ``point``).
POINT_TEXT = {
    "clean": "no perturbation",
    "config": "the config's point: the paper's 5.3, the same norm for every network",
    "matched": "each network's point where its MP accuracy matches the paper's Table 2",
    "median": "each network's grid point nearest its median minimum norm",
}


def _acc(all_images: float | None, conditional: float | None) -> str | None:
    """The paper's population first, the images the attack fooled in brackets."""
    if all_images is None:
        return None
    cond = "–" if conditional is None else f"{conditional:.3f}"
    return f"{all_images:.3f} ({cond})"


def findings_html(findings: pl.DataFrame) -> str:
    if findings.is_empty():
        return ""
    family = "family" in findings.columns
    df = findings.sort(*(["family"] if family else []), "verdict", "claim", "model", "attack")
    header = [
        "family", "verdict", "claim", "model", "perturbation of", "attack", "at norm", "effect",
        "95% CI", "n", "discordant", "p", "p (Holm, in its family)",
    ]  # fmt: skip
    rows, classes = [], []
    for f in df.to_dicts():
        at = "–" if not f["norm"] or f["value"] != f["value"] else f"{f['norm']} = {f['value']:.3g}"
        ci = f"[{signed(f['ci_low'])}, {signed(f['ci_high'])}]"
        bound = "≥ " if f.get("effect_lower_bound") else ""
        rows.append(
            [
                f.get("family", "primary"),
                f["verdict"],
                f["claim"],
                short(f["model"]),
                short(f["source"]),
                f["attack"],
                at,
                f"{bound}{f['effect']:.3g}",
                ci,
                f["n"],
                f["n_discordant"],
                f"{f['p_value']:.3g}",
                f"{f['p_adjusted']:.3g}",
            ]
        )
        classes.append(VERDICT_CLASS.get(f["verdict"], ""))
    return render(header, rows, classes=classes)


def optimality_table(optimality: pl.DataFrame) -> str:
    """Attacks ranked by optimality per (model, norm)."""
    if optimality.is_empty():
        return ""
    ranked = optimality.sort("model", "norm", "optimality", descending=[False, False, True])
    return frame(
        ranked,
        {
            "model": "model",
            "norm": "norm",
            "attack": "attack",
            "optimality": "optimality",
            "median_distance": "median distance",
            "median_best": "median best-known",
            "n": "images",
        },
    )


def adaptive_table(adaptive: pl.DataFrame) -> str:
    """The adaptive gain beside the transferred one, with the masking checks."""
    if adaptive.is_empty():
        return ""
    shown = adaptive.with_columns(
        pl.when(pl.col("adaptive_gain_lower_bound"))
        .then(pl.lit("≥ "))
        .otherwise(pl.lit(""))
        .add(pl.col("adaptive_gain_median").round(3).cast(pl.String))
        .alias("adaptive_gain")
    )
    return frame(
        shown,
        {
            "model": "model",
            "attack": "attack",
            "condition": "foveation",
            "n": "n",
            "adaptive_gain": "adaptive gain (median)",
            "adaptive_gain_ci_low": "95% CI low",
            "adaptive_gain_ci_high": "95% CI high",
            "transferred_gain_median": "transferred gain (median)",
            "success_rate": "adaptive success",
            "fresh_fooled_mean": "fooled share of fresh draws",
            "holdout_fooled_mean": "fooled share of holdout draws",
            "check_unreached": "never fooled",
            "check_weaker_than_transfer": "weaker than transfer",
            "check_noise_not_weaker": "noise of its norm fools too",
            "check_black_box_stronger": "another network's MP fools more cheaply",
            "image_forwards_per_image": "forwards / image",
        },
    )


def linearity_table(lin: pl.DataFrame) -> str:
    return frame(
        lin,
        {
            "model": "model",
            "attack": "attack",
            "n": "n",
            "median_err_interpolation": "median |err| interpolation",
            "median_err_alone": "median |err| f(e*)",
            "share_interpolation_smaller": "share interp. < f(e*)",
            "median_abs_fov_object_image": "median |f(x)−f(T_B x)|",
            "median_abs_fov_object_perturbation": "median |pert. term T_B|",
            "median_abs_fov_one_crop_image": "median |f(x)−f(T_S x)|",
            "median_abs_fov_one_crop_perturbation": "median |pert. term T_S|",
        },
    )


def transfer_table(transfer: pl.DataFrame, point: float) -> str:
    """Accuracy at the reference norm and the median critical norms (received), long form."""
    if transfer.is_empty():
        return ""
    at = transfer.filter(pl.col("value") == point).pivot(
        on="norm", index=["attack", "source", "target"], values="accuracy"
    )
    med = transfer.unique(subset=["attack", "source", "target"]).select(
        "attack",
        "source",
        "target",
        "median_crit_l1pp",
        "median_crit_linf",
        "median_src_linf",
        "dense_mismatches",
        "dense_checked",
    )
    df = med.join(at, on=["attack", "source", "target"], how="left").sort(
        "attack", "source", "target"
    )
    cols = {
        "attack": "attack",
        "source": "source",
        "target": "target",
        "l1pp": f"acc @ received l1pp {point:g}",
        "linf": f"acc @ received linf {point:g}",
        "median_crit_l1pp": "median critical l1pp (received)",
        "median_crit_linf": "median critical linf (received)",
        "median_src_linf": "median critical linf (source's frame)",
        "dense_mismatches": "dense-grid mismatches",
        "dense_checked": "dense-checked",
    }
    return frame(df, cols)


def bad_rows_table(bad: pl.DataFrame, limit: int = 20) -> str:
    if bad.is_empty():
        return "<p>No bad rows: every manifest row was usable.</p>"
    cols = [c for c in bad.columns if c != "schema_version"]
    more = (
        f"<p>… and {bad.height - limit} more (bad_rows.parquet).</p>" if bad.height > limit else ""
    )
    return render(cols, bad.select(cols).head(limit).rows()) + more
