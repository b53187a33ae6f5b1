"""Balda's measures and Peck's bounds through the pipeline: shards, summary/, MLflow, report.

The golden run (tests/golden.py): real Ray, real lite0 weights and the sample photos;
the untrained AlexNet (seeded random weights) is the sequential network Peck's bounds
apply to, lite0 the one they must refuse, naming the layer.
"""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest
import torch
from mlflow.tracking import MlflowClient

from pipeline.data import build_manifest
from pipeline.models.images import load_batch
from pipeline.models.networks import load_model
from pipeline.results.partitions import write_committed
from pipeline.summary.measures import bounds_summary
from tasks import measures
from tests.golden import ALEX, IMAGES, Golden
from tests.golden import LITE0 as LITE


@pytest.mark.integration
def test_measures_and_bounds_reach_summary_mlflow_and_report(golden: Golden) -> None:
    summary, run_dir = golden.summary, golden.run_dir  # the run the CLI composes with report
    assert not summary.failed_units

    bounds = pl.read_parquet(run_dir / "summary" / "bounds.parquet")
    alex = bounds.filter(pl.col("model") == ALEX).row(0, named=True)
    lite = bounds.filter(pl.col("model") == LITE).row(0, named=True)
    assert alex["bounded"] == IMAGES and alex["bound_l2_median"] > 0
    assert lite["bounded"] == 0 and "cannot bound" in lite["first_error"]

    # rho2 from the clean shards == rho2 recomputed here from the same photos.
    table = pl.read_parquet(run_dir / "summary" / "measures.parquet")
    row = table.filter(pl.col("model") == LITE).row(0, named=True)
    model = load_model(LITE)
    manifest = build_manifest("sample", None).table.slice(0, IMAGES)
    x = load_batch(manifest.column("path").to_pylist(), model.cfg)
    y = torch.tensor(manifest.column("label").to_pylist())
    expected = measures.rho2(measures.first_order_distance(model, x, y, p="linf"))
    assert row["rho2_linf"] == pytest.approx(expected, rel=1e-3)
    assert 0 < row["rho1_linf"] < 1 and math.isfinite(row["eps99_linf"])
    attacks = pl.read_parquet(next((run_dir / "attacks" / f"model={LITE}").rglob("*.parquet")))
    mine = attacks.filter(pl.col("clean_correct"))
    linf = torch.tensor(
        [v if ok else math.inf for v, ok in zip(mine["linf"], mine["success"], strict=True)]
    )
    assert row["eps99_linf"] == pytest.approx(measures.eps_fooling(linf))

    client = MlflowClient(summary.tracking_uri)
    child = next(
        r
        for r in client.search_runs([client.get_run(summary.mlflow_run_id).info.experiment_id])
        if r.data.tags.get("model") == LITE
    )
    logged = child.data.metrics
    assert logged["measures/sign/rho1_linf"] == pytest.approx(row["rho1_linf"])
    assert logged["measures/rho2_linf"] == pytest.approx(row["rho2_linf"])
    page = (run_dir / "report" / "index.html").read_text()
    assert "Robustness measures (Balda et al., Table I)" in page
    assert "Certified lower bounds (Peck)" in page and 'data-name="fooling_ratio"' in page


@pytest.mark.unit
def test_bound_violations_are_counted_against_top1_changes(tmp_path: Path) -> None:
    """A found perturbation below the bound is a violation only if it changed the top-1 class."""
    write_committed(
        tmp_path,
        "bounds/model=m",
        0,
        pl.DataFrame(
            {
                "image_id": ["i1", "i2", "i3"],
                "model": ["m"] * 3,
                "bound_l2": [1.0, 2.0, None],
                "error": [None, None, "bounds: m: cannot bound layer 'x'"],
            }
        ).to_arrow(),
    )
    write_committed(
        tmp_path,
        "attacks/model=m/attack=a",
        0,
        pl.DataFrame(
            {
                "image_id": ["i1", "i2", "i2", "i3"],
                "model": ["m"] * 4,
                "success": [True, True, True, True],
                "l2": [3.0, 1.5, 0.5, 0.1],
                "clean_label": [7, 7, 7, 7],
                "adv_label": [8, 9, 7, 8],  # i2's 0.5 kept the top-1 class: top-5 only
                "error": [None] * 4,
            }
        ).to_arrow(),
    )
    row = bounds_summary(tmp_path).row(0, named=True)
    assert row["images"] == 3 and row["bounded"] == 2 and row["checked"] == 2
    assert row["violations"] == 1  # i2: 1.5 < 2.0
    assert row["first_error"].startswith("bounds: m: cannot bound")
