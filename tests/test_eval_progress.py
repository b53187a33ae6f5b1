"""Evaluation-stage progress, transfer-matrix artifacts and MLflow UI links, with known answers.

Tables are real CRITICAL_SCHEMA Arrow tables and real shard files; the
tracker tests log into a real MLflow SQLite store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient

from dashboards.transfer_artifacts import transfer_matrix_artifacts
from pipeline.results.partitions import write_committed
from pipeline.results.storage import write_table
from pipeline.results.tables import CRITICAL_SCHEMA, eval_partition, table_from_rows
from pipeline.stages.eval_progress import EvalProgress, check_points, metric_prefix
from pipeline.summary.metrics import transfer_metrics
from pipeline.summary.protocol import accuracy_curves, transfer_matrices
from pipeline.tracking.tracker import Tracker
from pipeline.tracking.urls import compare_url, experiment_url, run_url

PREFIX = "eval/sign/a/b"


@pytest.fixture(scope="module")
def store(mlflow_store: Callable[[Path], str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (a copy of the session's migrated one)."""
    return mlflow_store(tmp_path_factory.mktemp("mlflow"))


def crit_table(
    crits: list[float], source: str = "a", target: str = "b", condition: str = "mp", start: int = 0
) -> pa.Table:
    """One row per critical norm (the same in every norm); NaN marks an error row."""
    rows = [
        {"image_id": f"img{start + i}", "label": 1, "source": source, "target": target,
         "attack": "sign", "setup": "mp", "condition": condition, "has_perturbation": True,
         "clean_correct": c > 0, "critical_scale": c,
         **{f"{k}_{n}": None if math.isnan(c) else c for k in ("crit", "src") for n in ("l1pp", "l2", "linf")},
         "n_image_forwards": 8, "dense_mismatch": None,
         "error": "unreadable image" if math.isnan(c) else None}
        for i, c in enumerate(crits)
    ]  # fmt: skip
    return table_from_rows(rows, CRITICAL_SCHEMA)


@pytest.mark.unit
def test_running_accuracy_is_the_share_above_each_point_over_finished_units() -> None:
    progress = EvalProgress([("l1pp", 5.3), ("linf", 2.0)])
    (first,) = progress.update([crit_table([6.0, 4.0, math.inf, math.nan])])
    assert first.step == 3 and first.target == "b"
    assert first.metrics == {
        f"{PREFIX}/images_done": 3.0,
        f"{PREFIX}/errors": 1.0,
        f"{PREFIX}/acc_at_l1pp_5.3": 2 / 3,  # 6 and inf exceed 5.3; the error row is left out
        f"{PREFIX}/acc_at_linf_2": 1.0,
    }
    masks = crit_table([9.0], condition="object_mask", start=10)  # another condition: not counted
    (second,) = progress.update([crit_table([0.0], start=4), masks])
    assert second.step == 4 and second.metrics[f"{PREFIX}/acc_at_l1pp_5.3"] == 2 / 4
    assert second.metrics[f"{PREFIX}/acc_at_linf_2"] == 3 / 4


@pytest.mark.unit
def test_each_pair_gets_its_own_step_and_tables_without_critical_norms_add_nothing() -> None:
    progress = EvalProgress()
    linearity = pa.table({"image_id": ["x"], "source": ["a"], "target": ["a"], "attack": ["sign"]})
    steps = progress.update([crit_table([1.0, 9.0]), crit_table([9.0], "b", "b"), linearity])
    assert [(p.source, p.target, p.step) for p in steps] == [("a", "b", 2), ("b", "b", 1)]
    assert progress.update([linearity]) == []


@pytest.mark.unit
def test_metric_names_are_valid_mlflow_names_and_bad_points_say_how_to_fix() -> None:
    assert metric_prefix("sign", "timm:resnet50", "efficientnet_lite0") == (
        "eval/sign/timm:resnet50/efficientnet_lite0"
    )
    assert metric_prefix("sign", "a@b", "c") == "eval/sign/a_b/c"
    with pytest.raises(ValueError, match=r"\('l3', 5.3\).*one of \('l1pp', 'l2', 'linf'\)"):
        check_points([("l3", 5.3)])


@dataclass(frozen=True)
class Unit:
    source: str
    target: str
    attack: str
    shard: int
    tasks: tuple[str, ...]


@pytest.mark.unit
def test_a_resumed_stage_counts_finished_shards_on_disk_but_not_the_pending_ones(
    tmp_path: Path,
) -> None:
    partition = eval_partition("norm_sweep", "a", "b", "sign")
    write_committed(tmp_path, partition, 0, crit_table([9.0, 1.0]))
    # a piece without its commit record (a killed writer): never counted
    write_table(crit_table([1.0], start=4), tmp_path / partition / "shard-00002.parquet")
    # committed, but this session recomputes it: not counted now
    write_committed(tmp_path, partition, 1, crit_table([9.0], start=2))
    progress = EvalProgress.for_units(tmp_path, [Unit("a", "b", "sign", 1, ("norm_sweep",))])
    (step,) = progress.update([crit_table([9.0, 9.0], start=2)])
    assert step.step == 4 and step.metrics[f"{PREFIX}/acc_at_l1pp_5.3"] == 3 / 4


@pytest.mark.integration
def test_progress_is_logged_step_indexed_to_the_targets_child_run(
    store: str, tmp_path: Path
) -> None:
    uri = store
    tracker = Tracker(uri, "progress", tmp_path, tmp_path / "artifacts")
    tracker.start("run", {}, {}, ["a", "b"])
    progress = EvalProgress([("l1pp", 5.3)])
    progress.record([crit_table([9.0, 1.0])], tracker)
    progress.record([crit_table([9.0], start=2)], tracker)
    client = MlflowClient(uri)
    history = client.get_metric_history(tracker.children["b"], f"{PREFIX}/acc_at_l1pp_5.3")
    assert [(m.step, m.value) for m in history] == [(2, 0.5), (3, 2 / 3)]
    assert not client.get_run(tracker.children["a"]).data.metrics
    exp = client.get_experiment_by_name("progress")
    assert exp is not None and exp.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.integration
def test_transfer_matrix_artifacts_hold_each_attack_and_point(store: str, tmp_path: Path) -> None:
    crit = pl.from_arrow(
        pa.concat_tables(
            [crit_table([1.0, 9.0], "a", "a"), crit_table([9.0, 9.0], "a", "b"),
             crit_table([1.0, 1.0], "b", "a"), crit_table([9.0, math.inf], "b", "b")]
        )
    ).filter(pl.col("error").is_null())  # fmt: skip
    assert isinstance(crit, pl.DataFrame)
    transfer = transfer_matrices(crit, accuracy_curves(crit, {"l1pp": [5.3], "linf": [5.3]}))
    made, missing = transfer_matrix_artifacts(transfer, [("l1pp", 5.3), ("linf", 7.0)])
    assert missing == [("linf", 7.0)]  # not on the grid: no matrix, the caller says so
    (matrix,) = made
    assert matrix.stem == "transfer_matrices/sign/acc_at_l1pp_5.3"
    assert matrix.png.startswith(b"\x89PNG")
    table = matrix.table
    pairs = list(zip(table["source"], table["target"], table["accuracy"], strict=True))
    assert pairs == [("a", "a", 0.5), ("a", "b", 1.0), ("b", "a", 0.0), ("b", "b", 1.0)]
    assert table["images"] == [2, 2, 2, 2] and table["median_crit_l1pp"][0] == 5.0

    uri = store
    tracker = Tracker(uri, "tables", tmp_path, tmp_path / "artifacts")
    tracker.start("run", {}, {}, [])
    assert tracker.parent_id is not None
    tracker.log_table(table, f"{matrix.stem}.json")
    tracker.log_table({**table, "accuracy": [0.0] * 4}, f"{matrix.stem}.json")  # a rerun
    client = MlflowClient(uri)
    local = client.download_artifacts(tracker.parent_id, f"{matrix.stem}.json", str(tmp_path))
    logged = json.loads(Path(local).read_text())
    assert len(logged["data"]) == 4, "the rerun appended to the table instead of replacing it"
    assert [row[2] for row in logged["data"]] == [0.0] * 4
    kinds = json.loads(client.get_run(tracker.parent_id).data.tags["mlflow.loggedArtifacts"])
    assert kinds == [{"path": f"{matrix.stem}.json", "type": "table"}]


@pytest.mark.unit
def test_a_source_that_perturbed_no_image_logs_no_transfer_accuracy() -> None:
    """An untrained source gets no image right, so it has no perturbation to transfer: its
    row's accuracy is null, and the run must log nothing for it rather than crash."""
    crit = pl.from_arrow(
        pa.concat_tables([crit_table([1.0, 9.0], "a", "b"), crit_table([0.0, 0.0], "c", "b")])
    ).with_columns(
        has_perturbation=pl.col("source") == "a"  # c perturbed nothing
    )
    assert isinstance(crit, pl.DataFrame)
    transfer = transfer_matrices(crit, accuracy_curves(crit, {"linf": [5.3]}))
    metrics = transfer_metrics(transfer)
    assert metrics["transfer/sign/a/b/acc_at_linf_5.3"] == 0.5
    assert not [k for k in metrics if k.startswith("transfer/sign/c/b/acc_at")]


@pytest.mark.unit
def test_ui_links_open_the_model_training_pages_of_an_http_server_only() -> None:
    uri = "http://127.0.0.1:5000/"
    assert experiment_url(uri, "3") == (
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    )
    assert run_url(uri, "3", "r1", "model-metrics") == (
        "http://127.0.0.1:5000/#/experiments/3/runs/r1/model-metrics?workflowType=machine_learning"
    )
    assert compare_url(uri, ["r1", "r2"], ["3", "3"]) == (
        "http://127.0.0.1:5000/#/compare-runs?runs=%5B%22r1%22%2C%20%22r2%22%5D"
        "&experiments=%5B%223%22%5D&workflowType=machine_learning"
    )
    assert experiment_url("sqlite:///x.db", "3") is None and compare_url(uri, ["r1"], ["3"]) is None
