"""Findings a statistician would sign: exact paired tests, Holm, and honest verdicts."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from pipeline.summary.findings import findings
from pipeline.summary.stats import binomial_p, holm, mcnemar, ratio_test
from tests.test_protocol_summary import frame, rows

pytestmark = pytest.mark.unit

POINTS = {"m": {"sign": {"norm": "linf", "values": [5.3]}}}


def test_exact_tests_on_known_numbers() -> None:
    assert binomial_p(4, 4) == pytest.approx(0.125)  # 4 discordant pairs against 0
    t = mcnemar(np.array([True] * 4 + [False] * 8), np.array([False] * 4 + [False] * 8))
    assert (t.n, t.n_discordant, t.p_value) == (12, 4, pytest.approx(0.125))
    assert t.effect == pytest.approx(4 / 12) and t.ci_low < 0.0 < t.ci_high
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    r = ratio_test(
        np.array([2.0, 4.0, np.inf, 3.0]),
        np.array([1.0, 2.0, 1.0, 1.0]),
        after_floor=np.array([np.nan, np.nan, 5.0, np.nan]),  # never fooled up to 5
    )
    assert (r.n_discordant, r.direction) == (4, 1)
    assert r.effect == r.effect_high == pytest.approx(2.5)  # 2, 2, 3, >= 5: the median is 2.5


def test_two_images_are_insufficient() -> None:
    """Both differences +1 at n=2: a percentile bootstrap said "holds"; an exact test cannot."""
    crit = frame(rows("m", "m", "mp", [1.0, 1.0]), rows("m", "m", "object_crop", [100.0, 100.0]))
    f = findings(crit, pl.DataFrame(), POINTS, alpha=0.05)
    claims = ["object_crop_clean_gain", "object_crop_vs_mp", "object_crop_ratio"]
    mine = f.filter(pl.col("claim_id").is_in(claims))
    assert mine.height == 3 and set(mine["verdict"]) == {"insufficient"}  # 0, 5.3, and the ratio


def test_a_strong_effect_on_60_images_holds_and_a_reversed_one_is_reversed() -> None:
    n = 60
    crit = frame(
        rows("m", "m", "mp", [1.0, 3.0] * (n // 2)),
        rows("m", "m", "object_crop", [100.0] * n),  # foveation recovers every image
        rows("m", "m", "ten_crop", [0.5] * n),  # planted: worse than no foveation
        rows("m", "m", "object_mask", [1.0] * n),
        rows("m", "m", "background_mask", [100.0] * n),
    )
    f = findings(crit, pl.DataFrame(), POINTS, alpha=0.05)
    got = {(r["claim_id"], r["value"]): (r["verdict"], r["family"]) for r in f.to_dicts()}
    assert got[("background_mask_vs_object_mask", 5.3)] == ("holds", "primary")
    # the accuracy form of a foveation claim is exploratory: its ratio is the test
    assert got[("object_crop_vs_mp", 5.3)] == ("inconclusive", "exploratory")
    assert got[("ten_crop_vs_mp", 5.3)][0] == "insufficient"  # both wrong at 5.3: no pair
    ratios = {r["claim_id"]: r for r in f.filter(pl.col("test") == "sign_exact").to_dicts()}
    assert ratios["object_crop_ratio"]["verdict"] == "holds"
    assert ratios["ten_crop_ratio"]["verdict"] == "reversed"
    assert set(f.columns) >= {
        "claim", "model", "attack", "norm", "value", "n", "n_discordant", "effect",
        "ci_low", "ci_high", "p_value", "p_adjusted", "verdict", "family",
    }  # fmt: skip


def test_under_the_null_fewer_than_5_percent_of_runs_claim_anything() -> None:
    rng = np.random.default_rng(0)
    n, runs, any_holds = 40, 400, 0
    for _ in range(runs):
        parts = [
            rows("m", "m", c, [float(v) for v in rng.exponential(5.0, n)])
            for c in (
                "mp",
                "object_crop",
                "ten_crop",
                "three_crop",
                "saliency_crop",
                "object_mask",
                "background_mask",
            )
        ]  # every condition drawn from the same distribution: no effect anywhere
        f = findings(frame(*parts), pl.DataFrame(), POINTS, alpha=0.05)
        any_holds += int((f["verdict"] == "holds").any())
    assert any_holds / runs < 0.05
