"""The protocol's tables from the evaluation shards (polars): curves, transfer, Tables 1-2.

Populations (Luo et al., as in their Table 2): every evaluated image. An image
the network gets wrong clean is wrong at every norm (critical norm 0), one
never fooled up to the largest grid norm is right at every grid norm
(critical norm inf), and an image without the source's perturbation is
evaluated unperturbed, so a foveation's clean gain shows at every norm. The
conditional view, over images the source classified correctly and fooled
(``has_perturbation``), is kept beside it as ``accuracy_conditional``.

Norms are those of the perturbation actually added, in the frame the target
sees: for a cross-model pair the norm the target *receives* (``crit_*``), with
the source's own norm at the same scale beside it (``src_*``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import polars as pl

from pipeline.results.storage import RunDir
from pipeline.results.tables import CRITICAL_SCHEMA
from pipeline.summary.attacks import read_results
from pipeline.summary.axes import native_norm
from pipeline.summary.points import Points, point_list
from pipeline.summary.stats import ratio_test, tie_tolerance
from tasks.protocol import CONDITIONS, MP, table1_ratios

KEYS = ["source", "target", "attack", "setup", "condition"]
CRITICAL_TASKS = tuple(dict.fromkeys(c.task for c in CONDITIONS.in_order()))


def load_critical(run_dir: RunDir) -> pl.DataFrame:
    """Every measured (image, condition) row of the run (error rows left out)."""
    frames = [f for t in CRITICAL_TASKS if (f := read_results(run_dir, f"evals/{t}")) is not None]
    if not frames:
        return pl.DataFrame()
    crit = pl.concat(frames, how="diagonal_relaxed")
    # a run resumed across a schema addition: columns its older shards never had are null
    empty = pl.from_arrow(CRITICAL_SCHEMA.empty_table())
    assert isinstance(empty, pl.DataFrame)
    missing = [name for name in empty.columns if name not in crit.columns]
    crit = crit.with_columns(pl.lit(None, dtype=empty.schema[n]).alias(n) for n in missing)
    return crit.filter(pl.col("error").is_null())


def load_linearity(run_dir: RunDir) -> pl.DataFrame:
    df = read_results(run_dir, "evals/linearity")
    return pl.DataFrame() if df is None else df.filter(pl.col("error").is_null())


def reported_axes(condition: str, attack: str, grids: Mapping[str, Sequence[float]]) -> list[str]:
    """Axes a condition's curve is exact on: every grid where its crossing is continuous
    (refined, or the attack's own), only the searched axis where it is a grid point."""
    spec = CONDITIONS.get(condition)
    return list(grids) if spec.refine else [native_norm(attack)]


def curve_grids(
    grids: Mapping[str, Sequence[float]], points: Points | None = None
) -> dict[str, tuple[float, ...]]:
    """The curves' norms: every grid value and every evaluation point on its axis (the
    evaluation searched each point exactly, so the curves are exact there too)."""
    out = {axis: set(values) for axis, values in grids.items()}
    for norm, value in point_list(points or {}):
        out.setdefault(norm, set()).add(value)
    return {axis: tuple(sorted(values)) for axis, values in out.items()}


def accuracy_curves(crit: pl.DataFrame, grids: Mapping[str, Sequence[float]]) -> pl.DataFrame:
    """(keys, norm, value) -> accuracy over all images, and over the conditional population
    (the images the source perturbed: clean-correct and fooled)."""
    if crit.is_empty():
        return pl.DataFrame()
    parts = []
    for (condition, attack), group in crit.group_by("condition", "attack"):
        for norm in reported_axes(str(condition), str(attack), grids):
            for v in grids[norm]:
                ok = pl.col(f"crit_{norm}") > v
                parts.append(
                    group.group_by(KEYS).agg(
                        ok.mean().alias("accuracy"),
                        pl.len().alias("n"),
                        ok.filter(pl.col("has_perturbation")).mean().alias("accuracy_conditional"),
                        pl.col("has_perturbation").sum().alias("n_conditional"),
                        pl.lit(norm).alias("norm"),
                        pl.lit(float(v)).alias("value"),
                    )
                )
    return pl.concat(parts).sort([*KEYS, "norm", "value"])


def transfer_matrices(crit: pl.DataFrame, curves: pl.DataFrame) -> pl.DataFrame:
    """Per attack, (source, target): accuracy at each received grid norm, median norms.

    ``accuracy`` is over the images the source perturbed (an image it never perturbed
    says nothing about transfer: it would count as "never fooled" on every target);
    the paper's all-image accuracy is kept beside it as ``accuracy_all_images``.
    Medians are over the images the source perturbed *and* the target classifies
    correctly clean (a target's wrong-clean image has critical norm 0 and would pull
    the median down; inf when more than half are never fooled); ``median_src_*`` are
    the same perturbations' norms in the source's frame.
    """
    if crit.is_empty() or curves.is_empty():
        return pl.DataFrame()
    mp = crit.filter(pl.col("condition") == MP)
    counted = pl.col("has_perturbation") & pl.col("clean_correct")
    medians = mp.group_by("source", "target", "attack").agg(
        *[
            pl.col(f"{kind}_{n}").filter(counted).median().alias(f"median_{kind}_{n}")
            for kind in ("crit", "src")
            for n in ("l1pp", "l2", "linf")
        ],
        counted.sum().alias("n_median"),
        pl.col("dense_mismatch").drop_nulls().sum().alias("dense_mismatches"),
        pl.col("dense_mismatch").drop_nulls().len().alias("dense_checked"),
        pl.col("n_image_forwards").mean().alias("image_forwards_per_image"),
    )
    acc = (
        curves.filter(pl.col("condition") == MP)
        .drop("condition", "setup")
        .rename({"accuracy": "accuracy_all_images", "n": "n_all_images"})
        .with_columns(
            pl.col("accuracy_conditional").alias("accuracy"),
            pl.col("n_conditional").alias("n"),
        )
    )
    return acc.join(medians, on=["source", "target", "attack"], how="left").sort(
        "attack", "source", "target", "norm", "value"
    )


def table1(
    crit: pl.DataFrame, rtol: float = 0.0, norm_of: Callable[[str], str] = native_norm
) -> pl.DataFrame:
    """Critical norm after / before each foveation (self pairs, the attack's norm).

    Over images correct before and after the foveation and perturbed in both; both
    sides come from the same refined search. An image never fooled after it is
    right-censored, not dropped: its ratio is only known to be at least (largest norm
    tried / the reference's), so the median is reported as a number only when no
    censored ratio can move it; otherwise ``median`` is a lower bound
    (``median_lower_bound``, with ``median_high`` the value with censored ratios at
    inf). The 95% interval is from order statistics (its lower end from the bounds),
    beside the share censored, the paper's mean over the uncensored ratios and the
    sign test of ``ratio > 1`` (a pair within the search's precision is a tie).
    ``norm_of``: the norm an attack's rows are read on (its own, by default).
    """
    if crit.is_empty():
        return pl.DataFrame()
    selfs = crit.filter(pl.col("source") == pl.col("target"))
    out = []
    for num, den in table1_ratios():
        for (model, attack), group in selfs.group_by("source", "attack"):
            norm = norm_of(str(attack))
            pairs = ratio_pairs(group, num, den, norm)
            if pairs.is_empty():
                continue
            after, before = pairs["a"].to_numpy(), pairs["b"].to_numpy()
            ratio = after / before
            test = ratio_test(
                after,
                before,
                tie_tolerance(rtol),
                pairs["floor_a"].to_numpy(),
                pairs["floor_b"].to_numpy(),
            )
            finite = ratio[np.isfinite(ratio)]
            high = test.effect if test.effect_high is None else test.effect_high
            out.append(
                {
                    "model": model,
                    "attack": attack,
                    "norm": norm,
                    "ratio": f"{num} / {den}",
                    "n": len(ratio),
                    "median": test.effect,
                    "median_high": high,
                    "median_lower_bound": high != test.effect,
                    "ci_low": test.ci_low,
                    "ci_high": test.ci_high,
                    "share_censored": float(np.isinf(ratio).mean()),
                    "mean_uncensored": float(finite.mean()) if len(finite) else None,
                    "p_value": test.p_value,
                }
            )
    return pl.DataFrame(out).sort("attack", "model", "ratio") if out else pl.DataFrame()


def ratio_pairs(selfs: pl.DataFrame, after: str, before: str, norm: str) -> pl.DataFrame:
    """Images correct before and after, perturbed in both: critical norms ``a`` / ``b`` on
    ``norm`` and, for censored ones, their floors (the largest norm tried)."""
    pairs = paired(selfs, after, before, f"crit_{norm}", floor=f"max_tried_{norm}")
    return pairs.filter(
        pl.col("ok_a") & pl.col("ok_b") & pl.col("p_a") & pl.col("p_b") & (pl.col("b") > 0)
    )


def paired(df: pl.DataFrame, a: str, b: str, col: str, floor: str | None = None) -> pl.DataFrame:
    """Conditions ``a`` and ``b`` of the same images side by side: ``col`` as columns
    ``a``/``b``, clean-correct as ``ok_a``/``ok_b``, has-perturbation as ``p_a``/``p_b``
    (and ``floor`` as ``floor_a``/``floor_b`` when named)."""

    def side(condition: str, tag: str) -> pl.DataFrame:
        extra = [] if floor is None else [pl.col(floor).alias(f"floor_{tag}")]
        return df.filter(pl.col("condition") == condition).select(
            "image_id",
            pl.col(col).alias(tag),
            pl.col("clean_correct").alias(f"ok_{tag}"),
            pl.col("has_perturbation").alias(f"p_{tag}"),
            *extra,
        )

    return side(a, "a").join(side(b, "b"), on="image_id")


def table2(curves: pl.DataFrame, points: Points) -> pl.DataFrame:
    """Top-k accuracy at norm 0 and at each (model, attack)'s evaluation points, self
    pairs, the attack's norm; ``point`` says how a value was chosen (``clean``, ``config``,
    ``matched``: where MP accuracy matches the paper's Table 2, ``median``).

    ``accuracy`` is the paper's population (all images: MP at 0 is the clean
    accuracy); ``accuracy_conditional`` the images the attack fooled.
    """
    if curves.is_empty():
        return pl.DataFrame()
    chosen = [
        {"model": model, "attack": attack, "value": float(v), "point": _point_kind(how)}
        for model, attacks in points.items()
        for attack, where in attacks.items()
        for v, how in [("0.0", "clean"), *where.get("how", {}).items()]  # type: ignore[attr-defined]
    ]
    if not chosen:
        return pl.DataFrame()
    selfs = curves.filter(pl.col("source") == pl.col("target"))
    selfs = selfs.filter(
        pl.col("norm") == pl.col("attack").map_elements(native_norm, return_dtype=pl.String)
    )
    picked = pl.DataFrame(chosen).unique(["model", "attack", "value"], keep="first")
    return (
        selfs.rename({"source": "model"})
        .join(picked, on=["model", "attack", "value"])
        .select(
            "model",
            "attack",
            "setup",
            "condition",
            "norm",
            "value",
            "point",
            "accuracy",
            "n",
            "accuracy_conditional",
            "n_conditional",
        )
        .sort("attack", "value", "model", "setup", "condition")
    )


def _point_kind(how: str) -> str:
    for kind in ("clean", "config", "matched"):
        if how.startswith(kind):
            return kind
    return "median"


def linearity_summary(lin: pl.DataFrame) -> pl.DataFrame:
    if lin.is_empty():
        return pl.DataFrame()
    abs_median = [
        pl.col(c).abs().median().alias(f"median_abs_{c}")
        for c in (
            "fov_object_image",
            "fov_object_perturbation",
            "fov_one_crop_image",
            "fov_one_crop_perturbation",
        )
    ]
    return (
        lin.group_by(pl.col("source").alias("model"), "attack")
        .agg(
            pl.len().alias("n"),
            pl.col("err_interpolation").median().alias("median_err_interpolation"),
            pl.col("err_alone").median().alias("median_err_alone"),
            (pl.col("err_interpolation") < pl.col("err_alone"))
            .mean()
            .alias("share_interpolation_smaller"),
            *abs_median,
        )
        .sort("attack", "model")
    )


def dense_check(crit: pl.DataFrame) -> pl.DataFrame:
    """How often the critical-scale search disagrees with a denser grid, per condition.

    ``mismatch_rate``: sampled images with any point of the dense grid (4x the search
    grid on the searched axis) where the search's bracket is wrong (correct at or below
    its last correct point, fooled from its crossing on); ``earlier``: the dense grid
    fooled the image below the reported crossing. The attack stage's own line search is
    checked on every perturbed image of a set-up's base condition by every grid point
    below its scale (``condition``: ``attack_line_search`` for MP, and
    ``attack_line_search_object`` for the MP-Object attack on the object crop).
    """
    if crit.is_empty():
        return pl.DataFrame()
    sampled = crit.filter(pl.col("dense_mismatch").is_not_null())
    out = sampled.group_by("source", "target", "attack", "condition").agg(
        pl.len().alias("n_checked"),
        (pl.col("dense_mismatch") > 0).sum().alias("n_mismatch"),
        pl.col("dense_mismatch").sum().alias("points_mismatch"),
        pl.col("dense_earlier").sum().alias("n_earlier"),
    )
    own = crit.filter(pl.col("line_search_earlier").is_not_null())
    if own.height:
        earlier = pl.col("line_search_earlier")
        out = pl.concat(
            [
                out,
                own.with_columns(
                    pl.when(pl.col("condition") == MP)
                    .then(pl.lit("attack_line_search"))
                    .otherwise(pl.lit("attack_line_search_object"))
                    .alias("check")
                )
                .group_by("source", "target", "attack", "check")
                .agg(
                    pl.len().cast(pl.UInt32).alias("n_checked"),
                    earlier.sum().cast(pl.UInt32).alias("n_mismatch"),
                    earlier.sum().cast(pl.Int64).alias("points_mismatch"),
                    earlier.sum().cast(pl.UInt32).alias("n_earlier"),
                )
                .rename({"check": "condition"}),
            ],
            how="diagonal_relaxed",
        )
    return out.with_columns(
        (pl.col("n_mismatch") / pl.col("n_checked")).alias("mismatch_rate")
    ).sort("attack", "source", "target", "condition")


def condition_forwards(crit: pl.DataFrame) -> pl.DataFrame:
    """The evaluation's cost per condition: image-forwards per image, and per image and view
    (every crop is one network input; views asked twice are sent once)."""
    if crit.is_empty():
        return pl.DataFrame()
    return (
        crit.with_columns(pl.col("source").eq(pl.col("target")).alias("self_pair"))
        .group_by("attack", "self_pair", "condition")
        .agg(
            pl.col("n_image_forwards").mean().alias("per_image"),
            (pl.col("n_image_forwards") / pl.col("n_views").clip(1)).mean().alias("per_view"),
            pl.col("n_views").mean().alias("views"),
            pl.len().alias("rows"),
        )
        .sort("attack", "self_pair", "condition")
    )
