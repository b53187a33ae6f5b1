"""Protocol aggregation on planted critical-scale tables with known answers."""

from __future__ import annotations

import math

import polars as pl
import pytest

from dashboards.protocol import accuracy_curves, findings, table1, transfer_matrices

pytestmark = pytest.mark.unit


def rows(
    source: str, target: str, condition: str, crits: list[float], correct: list[bool] | None = None
) -> list[dict]:
    correct = correct or [c > 0 for c in crits]
    return [
        {"image_id": f"img{i}", "label": 1, "source": source, "target": target, "attack": "sign",
         "condition": condition, "clean_correct": ok, "critical_scale": c, "crit_l1pp": c, "crit_l2": c,
         "crit_linf": c, "n_forward": 10, "dense_mismatch": None, "error": None}
        for i, (c, ok) in enumerate(zip(crits, correct, strict=True))
    ]  # fmt: skip


def frame(*parts: list[dict]) -> pl.DataFrame:
    return pl.DataFrame([r for p in parts for r in p])


def test_accuracy_is_the_share_of_critical_norms_above_v() -> None:
    crit = frame(rows("a", "a", "mp", [0.0, 1.0, 2.0, 4.0]))
    curves = accuracy_curves(crit, [0.0, 1.5, 3.0], [0.0])
    acc = dict(
        zip(
            curves.filter(pl.col("norm") == "l1pp")["value"],
            curves.filter(pl.col("norm") == "l1pp")["accuracy"],
            strict=True,
        )
    )
    assert acc == {0.0: 0.75, 1.5: 0.5, 3.0: 0.25}


def test_transfer_matrix_has_every_pair_and_medians() -> None:
    crit = frame(rows("a", "a", "mp", [1.0, 2.0, 3.0]), rows("a", "b", "mp", [5.0, 6.0, 7.0]),
                 rows("b", "a", "mp", [4.0, 4.0, 4.0]), rows("b", "b", "mp", [0.5, 0.5, 0.5]))  # fmt: skip
    curves = accuracy_curves(crit, [2.5], [2.5])
    t = transfer_matrices(crit, curves).filter(pl.col("norm") == "l1pp")
    assert t.height == 4
    med = {(r["source"], r["target"]): r["median_crit_l1pp"] for r in t.to_dicts()}
    assert med == {("a", "a"): 2.0, ("a", "b"): 6.0, ("b", "a"): 4.0, ("b", "b"): 0.5}


def test_table1_ratio_only_over_images_correct_before_and_after() -> None:
    crit = frame(
        rows("m", "m", "mp", [1.0, 2.0, 1.0, 1.0]),
        rows("m", "m", "object_crop", [5.0, 10.0, 0.0, math.inf], [True, True, False, True]),
    )
    t = table1(crit, n_boot=200).filter(pl.col("ratio") == "object_crop / mp")
    (row,) = t.to_dicts()
    assert (
        row["n"] == 2 and row["mean"] == pytest.approx(5.0) and row["median"] == pytest.approx(5.0)
    )


def test_findings_verdicts_follow_the_planted_effect() -> None:
    n = 40
    crit = frame(
        rows("m", "m", "mp", [1.0, 3.0] * (n // 2)),  # median self critical norm: 2.0
        rows("o", "m", "mp", [100.0] * n),  # cross-model perturbations barely hurt
        rows("m", "m", "object_mask", [1.0] * n),
        rows("m", "m", "background_mask", [100.0] * n),
        rows("m", "m", "object_crop", [100.0] * n),
        rows("m", "m", "ten_crop", [0.5] * n),  # planted: ten crop worse than no foveation
    )
    verdicts = {
        (f.claim.split(" (")[0], f.value): f.verdict
        for f in findings(crit, pl.DataFrame(), n_boot=200)
    }
    assert verdicts[("cross-model accuracy > self-model accuracy", 5.3)] == "holds"
    assert verdicts[("background-masked accuracy > object-masked accuracy", 5.3)] == "holds"
    assert verdicts[("object crop accuracy > no foveation under perturbation", 5.3)] == "holds"
    assert verdicts[("ten crop accuracy > no foveation under perturbation", 2.0)] == "reversed"
