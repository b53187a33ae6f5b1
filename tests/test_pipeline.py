"""The spine end to end on real components: Ray, real weights, Parquet, MLflow SQLite."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config import AttackRef, BenchmarkConfig, DatasetCfg, ModelRef, load_config
from pipeline.partitions import read_partition
from pipeline.runner import run_benchmark
from pipeline.storage import Location

pytestmark = pytest.mark.integration

CONTRACT_COLUMNS = {
    "image_id", "label", "model", "attack", "criterion", "success", "scale", "l1pp", "l2",
    "linf", "adv_label", "clean_correct", "n_forward", "n_backward", "seconds", "schema_version",
}  # fmt: skip


def small_config(tmp_path: Path, **changes: object) -> BenchmarkConfig:
    cfg = BenchmarkConfig(
        name="spine",
        dataset=DatasetCfg(layout="sample", limit=3),
        models=(ModelRef("efficientnet_lite0"),),
        attacks=(AttackRef("sign"),),
        output_dir=str(tmp_path),
        shard_size=2,
        batch_size=2,
    )
    return dataclasses.replace(cfg, **changes)


def _forget_shard(data: Path, shard: int) -> None:
    """Drop one shard's rows and its entry in the compacted file's commit metadata."""
    table = pq.read_table(data)
    meta = dict(table.schema.metadata)
    folded = json.loads(meta[b"foveabench.shards"])
    del folded[str(shard)]
    meta[b"foveabench.shards"] = json.dumps(folded).encode()
    keep = pc.not_equal(table["_shard"], shard)
    pq.write_table(table.filter(keep).replace_schema_metadata(meta), data)


def test_run_writes_contract_shards_and_mlflow_then_resumes(
    local_ray: None, mlflow_store: Callable[[Path], str], tmp_path: Path
) -> None:
    mlflow_store(tmp_path)
    cfg = small_config(tmp_path)
    first = run_benchmark(cfg)
    run_dir = tmp_path / "spine"
    assert first.computed_units == 2 and first.skipped_units == 0 and not first.failed_units

    manifest = pq.read_table(run_dir / "manifest.parquet")
    assert manifest.num_rows == 3
    partition = "attacks/model=efficientnet_lite0/attack=sign"
    # compacted after the stage: one file per partition, no pieces or commit records left
    data = run_dir / partition / "data.parquet"
    assert sorted(p.name for p in (run_dir / partition).iterdir()) == ["data.parquet"]
    assert not list((run_dir / "_commits").rglob("*.ok"))
    table = pq.read_table(data)
    assert table.column("_shard").to_pylist() == [0, 0, 1], "rows keep their shard"
    rows = read_partition(Location(run_dir), partition).to_pylist()
    assert set(rows[0]) >= CONTRACT_COLUMNS
    assert sorted(r["image_id"] for r in rows) == sorted(manifest.column("image_id").to_pylist())
    for r in rows:
        assert r["error"] is None
        if r["clean_correct"]:
            assert r["success"], f"sign failed on {r['image_id']}"
            assert 0 < r["linf"] <= 255 and r["l1pp"] <= r["linf"]
            assert r["n_backward"] == 1 and r["n_forward"] >= 3
            assert r["criterion"] == "top5"

    client = MlflowClient(tracking_uri=first.tracking_uri)
    exp = client.get_experiment_by_name("foveabench")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    child = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id)
    assert len(parent.data.tags["git_sha"]) == 40
    assert parent.data.tags["version.torch"].startswith("2.14")
    logged = {f.path for f in client.list_artifacts(child.info.run_id, partition)}
    assert logged == {f"{partition}/data.parquet"}, "MLflow gets the compacted file only"
    assert "clean_top5" in child.data.metrics and "mp/sign/median_l1pp" in child.data.metrics

    mtime = data.stat().st_mtime_ns
    second = run_benchmark(cfg)
    assert second.computed_units == 0 and second.skipped_units == 2
    assert data.stat().st_mtime_ns == mtime, "a finished run's files were rewritten"
    assert len(client.search_runs([exp.experiment_id])) == len(runs), (
        "resume created new MLflow runs"
    )

    _forget_shard(data, 1)  # a shard whose rows and commit are lost is recomputed, only it
    third = run_benchmark(cfg)
    assert third.computed_units == 1
    assert pq.read_table(data).column("_shard").to_pylist() == [0, 0, 1]

    fresh = run_benchmark(cfg, fresh=True)
    assert fresh.computed_units == 2


def test_imagenet_sample_clean_accuracy_is_sane(
    local_ray: None, mlflow_store: Callable[[Path], str], tmp_path: Path, imagenet_sample: Path
) -> None:
    """Training photos: a far lower top-5 than ~0.9 would mean broken preprocessing."""
    cfg = dataclasses.replace(
        load_config(Path(__file__).resolve().parents[1] / "configs/imagenet-sample.yaml"),
        dataset=DatasetCfg(layout="ilsvrc", root=str(imagenet_sample)),
        models=(ModelRef("efficientnet_lite0"),),
        tasks=("clean",),
        output_dir=str(tmp_path),
        shard_size=50,
        batch_size=25,
    )
    mlflow_store(tmp_path)
    summary = run_benchmark(cfg)
    (row,) = summary.clean
    assert row["images"] == 100 and summary.n_bad_rows == 0
    assert row["top5"] >= 0.9, row


def test_cli_demo_runs_and_second_run_recomputes_nothing(
    mlflow_store: Callable[[Path], str], tmp_path: Path
) -> None:
    mlflow_store(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "pipeline.cli", "run", "--output-dir", str(tmp_path)]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (
        "clean accuracy" in first.stdout
        and "mlflow ui --backend-store-uri sqlite:///" in first.stdout
    )
    run_dir = tmp_path / "demo"
    for model in ("efficientnet_lite0", "efficientnet_lite1"):
        assert (run_dir / f"attacks/model={model}/attack=sign/data.parquet").is_file()
    assert "ray: started a local instance" in first.stderr
    second = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "nothing to compute" in second.stderr
    assert "ray:" not in second.stderr, "a run with nothing to compute or compact started Ray"
    assert "computed 0 model-shards" in second.stdout


def test_evaluation_stage_covers_every_pair_logs_transfer_and_resumes(
    local_ray: None, mlflow_store: Callable[[Path], str], tmp_path: Path
) -> None:
    mlflow_store(tmp_path)
    cfg = small_config(
        tmp_path,
        name="protocol",
        dataset=DatasetCfg(layout="sample", limit=1),
        models=(ModelRef("efficientnet_lite0"), ModelRef("efficientnet_lite1")),
        tasks=("clean", "min_perturbation", "norm_sweep", "masks", "transfer"),
    )
    first = run_benchmark(cfg)
    assert (
        not first.failed_units and first.computed_eval_units == 4
    )  # 2x2 pairs; masks ride with self
    run_dir = tmp_path / "protocol"
    models = ("efficientnet_lite0", "efficientnet_lite1")
    for source in models:
        for target in models:
            (shard,) = (
                run_dir / f"evals/norm_sweep/source={source}/target={target}/attack=sign"
            ).glob("*.parquet")
            assert shard.name == "data.parquet"
            (row,) = pq.read_table(shard).drop_columns(["_shard"]).to_pylist()
            assert row["error"] is None and row["condition"] == "mp" and row["crit_linf"] > 0
            stamped = json.loads(pq.read_schema(shard).metadata[b"foveabench.provenance"])
            assert stamped == json.loads((run_dir / "provenance.json").read_text())
        masks = pq.read_table(
            next((run_dir / f"evals/masks/source={source}/target={source}").rglob("*.parquet"))
        )
        assert sorted(masks.column("condition").to_pylist()) == ["background_mask", "object_mask"]
    transfer = pq.read_table(run_dir / "summary/transfer.parquet")
    assert {(r["source"], r["target"]) for r in transfer.to_pylist()} == {
        (s, t) for s in models for t in models
    }
    # Table 2's population is the paper's: MP at norm 0 is the clean top-5 accuracy
    clean = {
        r["model"]: r["top5"] for r in pq.read_table(run_dir / "summary/clean.parquet").to_pylist()
    }
    table2 = pq.read_table(run_dir / "summary/table2.parquet").to_pylist()
    at0 = {r["model"]: r["accuracy"] for r in table2 if r["condition"] == "mp" and r["value"] == 0}
    assert at0 == clean and all("accuracy_conditional" in r for r in table2)

    client = MlflowClient(tracking_uri=first.tracking_uri)
    parent = client.get_run(first.mlflow_run_id)
    key = "transfer/sign/efficientnet_lite0/efficientnet_lite1/acc_at_linf_5.3"
    assert key in parent.data.metrics and 0.0 <= parent.data.metrics[key] <= 1.0

    second = run_benchmark(cfg)
    assert second.computed_units == 0 and second.computed_eval_units == 0
