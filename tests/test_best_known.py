"""Best-known distances across runs and AttackBench optimality against them (issue 23.1-2),
on real Parquet run directories (the attack stage's rows, written as the actors write them)."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from pipeline.data import build_manifest
from pipeline.results.partitions import write_committed
from pipeline.results.storage import write_table
from pipeline.results.tables import ATTACK_SCHEMA, attack_partition, table_from_rows
from pipeline.summary.best_known import merge_best, model_key, update_best_known

pytestmark = pytest.mark.unit

MODEL = "efficientnet_lite0"
KEYS = {MODEL: model_key("weights A", {"input_size": [224, 224]})}


def run_dir(root: Path, name: str, linf: dict[str, dict[str, float | None]]) -> Path:
    """A run with the sample's photos and, per attack, each image's minimum Linf (None:
    the attack failed); the first image is wrong clean."""
    manifest = build_manifest("sample", None).table.slice(0, 4)
    out = root / name
    write_table(manifest, out / "manifest.parquet")
    ids = manifest.column("image_id").to_pylist()
    for attack, found in linf.items():
        rows = [
            {"image_id": i, "label": 1, "model": MODEL, "attack": attack, "criterion": "top5",
             "clean_correct": k > 0, "success": k > 0 and found[i] is not None,
             "l1pp": found[i], "l2": found[i], "linf": found[i], "error": None}
            for k, i in enumerate(ids)
        ]  # fmt: skip
        write_committed(
            out, attack_partition(MODEL, attack), 0, table_from_rows(rows, ATTACK_SCHEMA)
        )
    return out


def test_two_runs_merge_into_the_smaller_distance_per_image_and_score_against_it(
    tmp_path: Path,
) -> None:
    ids = build_manifest("sample", None).table.slice(0, 4).column("image_id").to_pylist()
    store = str(tmp_path / "store")
    a = run_dir(tmp_path, "a", {"sign": {ids[0]: None, ids[1]: 8.0, ids[2]: 4.0, ids[3]: 6.0}})
    best_a, opt_a = update_best_known(a, "a", KEYS, store)
    linf_a = best_a.filter(pl.col("norm") == "linf").sort("distance")
    assert linf_a["distance"].to_list() == [0.0, 4.0, 6.0, 8.0]  # wrong clean: 0
    (sign,) = opt_a.filter(pl.col("norm") == "linf").to_dicts()
    assert sign["optimality"] == pytest.approx(1.0)  # it is the best known itself
    # another day, the same bytes: a better attack on images 1 and 3, a failure on image 2
    b = run_dir(tmp_path, "b", {"ddn": {ids[0]: None, ids[1]: 1.0, ids[2]: None, ids[3]: 5.0}})
    best_b, opt_b = update_best_known(b, "b", KEYS, store)
    linf_b = best_b.filter(pl.col("norm") == "linf").sort("distance")
    assert linf_b["distance"].to_list() == [0.0, 1.0, 4.0, 5.0]
    assert linf_b["attack"].to_list()[1:] == ["ddn", "sign", "ddn"]
    stored = pl.read_parquet(Path(store) / "best_known.parquet").filter(pl.col("norm") == "linf")
    assert sorted(stored["distance"].to_list()) == [0.0, 1.0, 4.0, 5.0]  # the store: minima
    (ddn,) = opt_b.filter(pl.col("norm") == "linf").to_dicts()
    assert 0.0 < ddn["optimality"] < 1.0  # best on two images, never fooled the third
    assert (b / "summary" / "optimality.parquet").is_file()


def test_distances_of_other_weights_or_preprocessing_never_merge() -> None:
    row = {"image_key": "x", "norm": "linf", "attack": "sign", "run": "a"}
    one = pl.DataFrame([{**row, "model_key": model_key("weights A", {"s": 224}), "distance": 1.0}])
    two = pl.DataFrame([{**row, "model_key": model_key("weights A", {"s": 240}), "distance": 9.0}])
    merged = merge_best(one, two)
    assert merged.height == 2 and set(merged["distance"]) == {1.0, 9.0}
    same = merge_best(
        one, one.with_columns(pl.lit(0.5).alias("distance"), pl.lit("b").alias("run"))
    )
    assert same["distance"].to_list() == [0.5] and same["run"].to_list() == ["b"]
    assert math.isinf(
        merge_best(one.with_columns(pl.lit(math.inf).alias("distance")))["distance"][0]
    )


def test_an_attack_that_never_succeeds_scores_0_not_an_error() -> None:
    """Issue 23.2's closed form, through the table: every distance inf."""
    from pipeline.summary.optimality import optimality

    assert optimality([math.inf, math.inf], [1.0, 2.0], [True, True]) == pytest.approx(0.0)
    assert math.isnan(optimality([math.inf], [1.0], [True]))  # one distance: no area to gain
