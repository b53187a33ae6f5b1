"""Protocol aggregation on planted critical-scale tables with known answers."""

from __future__ import annotations

import math

import polars as pl
import pytest

from pipeline.summary.best_reference import best_reference_rows, table1_best
from pipeline.summary.protocol import accuracy_curves, table1, table2, transfer_matrices

pytestmark = pytest.mark.unit

GRIDS = {"l1pp": (0.0, 1.5, 3.0), "l2": (0.0, 100.0), "linf": (0.0, 1.5, 3.0)}


def rows(
    source: str,
    target: str,
    condition: str,
    crits: list[float],
    perturbed: list[bool] | None = None,
    src: list[float] | None = None,
) -> list[dict]:
    perturbed = perturbed or [True] * len(crits)
    src = src or crits
    setup = (
        "object"
        if "object" in condition and "mask" not in condition and condition != "object_crop"
        else "mp"
    )
    return [
        {"image_id": f"img{i}", "label": 1, "source": source, "target": target, "attack": "sign",
         "setup": setup, "condition": condition, "has_perturbation": p, "clean_correct": c > 0,
         "critical_scale": c, "crit_l1pp": c, "crit_l2": c, "crit_linf": c,
         "src_l1pp": s, "src_l2": s, "src_linf": s, "n_image_forwards": 10, "n_views": 1,
         "max_tried_l1pp": None, "max_tried_l2": None, "max_tried_linf": None,
         "dense_mismatch": None, "dense_earlier": None, "error": None}
        for i, (c, p, s) in enumerate(zip(crits, perturbed, src, strict=True))
    ]  # fmt: skip


def frame(*parts: list[dict]) -> pl.DataFrame:
    return pl.DataFrame([r for p in parts for r in p])


def test_accuracy_is_over_all_images_with_the_conditional_view_beside_it() -> None:
    # img0 wrong clean (crit 0, no perturbation), img3 right clean without a perturbation (inf)
    crit = frame(rows("a", "a", "mp", [0.0, 1.0, 2.0, math.inf], [False, True, True, False]))
    curves = accuracy_curves(crit, GRIDS).filter(pl.col("norm") == "linf")
    acc = dict(zip(curves["value"], curves["accuracy"], strict=True))
    cond = dict(zip(curves["value"], curves["accuracy_conditional"], strict=True))
    assert acc == {0.0: 0.75, 1.5: 0.5, 3.0: 0.25}  # norm 0: the clean accuracy
    assert cond == {0.0: 1.0, 1.5: 0.5, 3.0: 0.0}  # images the attack fooled only


def test_transfer_is_keyed_by_the_received_norm_with_the_source_norm_beside() -> None:
    crit = frame(
        rows("a", "a", "mp", [1.0, 2.0, 3.0]),
        rows("a", "b", "mp", [2.0, 2.0, 2.0], src=[4.0, 4.0, 4.0]),  # b receives half the norm
    )
    t = transfer_matrices(crit, accuracy_curves(crit, GRIDS)).filter(pl.col("norm") == "linf")
    ab = t.filter((pl.col("source") == "a") & (pl.col("target") == "b"))
    assert dict(zip(ab["value"], ab["accuracy"], strict=True)) == {0.0: 1.0, 1.5: 1.0, 3.0: 0.0}
    assert ab["median_crit_linf"][0] == 2.0 and ab["median_src_linf"][0] == 4.0


def test_table1_keeps_censored_images_and_reports_the_share() -> None:
    crit = frame(
        rows("m", "m", "mp", [1.0, 2.0, 1.0, 1.0, 2.0]),
        rows("m", "m", "object_crop", [5.0, 10.0, 0.0, math.inf, math.inf]),
    ).with_columns(  # the censored ones were tried up to 20 without being fooled
        pl.when(pl.col("crit_linf").is_infinite()).then(20.0).alias("max_tried_linf")
    )
    (row,) = table1(crit).filter(pl.col("ratio") == "object_crop / mp").to_dicts()
    # img2 is wrong after the foveation (excluded); img3 and img4 never fooled (censored)
    assert row["n"] == 4 and row["share_censored"] == pytest.approx(0.5)
    # ratios 5, 5, >= 20, >= 10: the median is at least 7.5, and only a bound
    assert row["median"] == pytest.approx(7.5) and row["median_lower_bound"]
    assert math.isinf(row["median_high"])
    assert row["mean_uncensored"] == pytest.approx(5.0)


def test_table2_mp_at_norm_zero_is_the_clean_accuracy() -> None:
    crit = frame(
        rows("m", "m", "mp", [0.0, 1.0, 2.0, 0.0], [False, True, True, False]),
        rows("m", "m", "object_crop", [3.0, 4.0, 6.0, math.inf], [False, True, True, False]),
    )
    points = {"m": {"sign": {"norm": "linf", "values": [1.5], "how": {"1.5": "config"}}}}
    t2 = table2(accuracy_curves(crit, GRIDS), points)
    at0 = {r["condition"]: r for r in t2.filter(pl.col("value") == 0.0).to_dicts()}
    assert at0["mp"]["accuracy"] == 0.5 and at0["object_crop"]["accuracy"] == 1.0  # clean gain
    assert at0["mp"]["accuracy_conditional"] == 1.0 and at0["mp"]["n_conditional"] == 2


def test_table1_on_the_best_reference_reads_each_image_along_its_smallest_mp() -> None:
    """Issue 23.5: bfgs's MP is large on three images (a weak attack: gain 5x), sign's is
    smaller there (gain 1.5x); the random baseline is smallest but never a reference."""

    def attack(name: str, mp: list[float], fov: list[float]) -> pl.DataFrame:
        return frame(rows("m", "m", "mp", mp), rows("m", "m", "object_crop", fov)).with_columns(
            pl.lit(name).alias("attack")
        )

    crit = pl.concat(
        [
            attack("bfgs", [0.5, 2.0, 2.0, 2.0], [5.0, 10.0, 10.0, 10.0]),
            attack("sign", [1.0, 1.0, 1.0, 1.0], [1.5, 1.5, 1.5, 1.5]),
            attack("random", [0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]),
        ]
    )
    chosen = best_reference_rows(crit, "linf").filter(pl.col("condition") == "mp")
    assert dict(zip(chosen["image_id"], chosen["chosen"], strict=True)) == {
        "img0": "bfgs", "img1": "sign", "img2": "sign", "img3": "sign"
    }  # fmt: skip
    paper = table1(crit).filter(pl.col("ratio") == "object_crop / mp")
    assert dict(zip(paper["attack"], paper["median"], strict=True))["bfgs"] == pytest.approx(5.0)
    best = table1_best(crit, rtol=0.0).filter(pl.col("ratio") == "object_crop / mp")
    assert set(best["attack"]) == {"best_l1pp", "best_linf"}  # the norms bfgs and sign minimise
    row = best.filter(pl.col("attack") == "best_linf").to_dicts()[0]
    assert row["n"] == 4 and row["median"] == pytest.approx(1.5)  # ratios 10, 1.5, 1.5, 1.5
    assert row["from_attacks"] == "bfgs 1, sign 3"
    assert table1_best(crit.filter(pl.col("attack") != "sign"), 0.0).is_empty(), "one attack"
