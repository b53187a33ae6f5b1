"""The parent MLflow run carries the headline (issue 27.2): clean accuracy per model, the
median minimum perturbation per (model, attack) on the norm the attack minimises, and
how many findings reached each verdict."""

from __future__ import annotations

import math

import polars as pl
import pytest

from pipeline.summary.metrics import final_metrics, finding_counts
from pipeline.summary.write import Summaries

pytestmark = pytest.mark.unit


def test_the_parent_run_gets_each_models_headline_numbers() -> None:
    clean = pl.DataFrame(
        {"model": ["a", "b"], "top1": [0.7, 0.6], "top5": [0.9, 0.8], "images": [10, 10]}
    )
    attacks = pl.DataFrame(
        {
            "model": ["a", "a"],
            "attack": ["bfgs", "sign"],
            "l1pp_median": [0.5, 9.0],
            "linf_median": [20.0, 3.0],
            "l2_median": [100.0, 200.0],
            "success_rate": [1.0, 1.0],
        }
    )
    empty = pl.DataFrame()
    by_run = final_metrics(Summaries(clean, attacks, empty, empty, empty))
    assert by_run[None] == {
        "headline/clean_top5/a": 0.9,
        "headline/clean_top5/b": 0.8,
        "headline/median_l1pp/bfgs/a": 0.5,  # bfgs minimises l1pp
        "headline/median_linf/sign/a": 3.0,  # sign L-infinity
    }
    assert by_run["a"]["clean_top5"] == 0.9, "the child runs keep their metrics"


def test_finding_counts_per_family_and_verdict() -> None:
    findings = pl.DataFrame(
        {
            "family": ["primary", "primary", "primary", "exploratory"],
            "verdict": ["holds", "inconclusive", "holds", "reversed"],
            "effect": [1.0, math.nan, 2.0, 0.5],
        }
    )
    assert finding_counts(findings) == {
        "findings/primary/holds": 2.0,
        "findings/primary/inconclusive": 1.0,
        "findings/exploratory/reversed": 1.0,
    }
    assert finding_counts(pl.DataFrame()) == {}
