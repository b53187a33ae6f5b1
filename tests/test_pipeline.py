"""The spine end to end on real components: Ray, real weights, Parquet, MLflow.

The output checks read the golden run (tests/golden.py); resume, a forgotten shard and
``--fresh`` rerun a copy of it; the sample's clean accuracy and the CLI smoke run make
runs of their own."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from pipeline.config.benchmark import DatasetCfg, ModelRef, load_config
from pipeline.ops.sync import sync_run
from pipeline.results.partitions import read_partition
from pipeline.results.storage import Location
from pipeline.run.runner import run_benchmark
from tasks.protocol import TASKS, eval_tasks
from tests.golden import EXPERIMENT, IMAGES, LITE0, LITE1, MODELS, SHARD_SIZE, Golden
from tests.ops_helpers import foveabench_here

pytestmark = pytest.mark.integration

CONTRACT_COLUMNS = {
    "image_id", "label", "model", "attack", "criterion", "success", "scale", "l1pp", "l2",
    "linf", "adv_label", "clean_correct", "n_forward", "n_backward", "seconds", "schema_version",
}  # fmt: skip


def _forget_shard(data: Path, shard: int) -> None:
    """Drop one shard's rows and its entry in the compacted file's commit metadata."""
    table = pq.read_table(data)
    meta = dict(table.schema.metadata)
    folded = json.loads(meta[b"foveabench.shards"])
    del folded[str(shard)]
    meta[b"foveabench.shards"] = json.dumps(folded).encode()
    keep = pc.not_equal(table["_shard"], shard)
    pq.write_table(table.filter(keep).replace_schema_metadata(meta), data)


SHARDS = [i // SHARD_SIZE for i in range(IMAGES)]  # each row's shard, rows sorted by image_id
PARTITION = f"attacks/model={LITE0}/attack=sign"


def test_run_writes_contract_shards_and_mlflow(golden: Golden) -> None:
    first, run_dir = golden.summary, golden.run_dir
    units = len(MODELS) * golden.n_shards  # model-shards
    assert first.computed_units == units and first.skipped_units == 0 and not first.failed_units

    manifest = pq.read_table(run_dir / "manifest.parquet")
    assert manifest.num_rows == IMAGES
    partition = PARTITION
    # compacted after the stage: one file per partition, no pieces or commit records left
    data = run_dir / partition / "data.parquet"
    assert sorted(p.name for p in (run_dir / partition).iterdir()) == ["data.parquet"]
    assert not list((run_dir / "_commits").rglob("*.ok"))
    table = pq.read_table(data)
    assert table.column("_shard").to_pylist() == SHARDS, "rows keep their shard"
    rows = read_partition(Location(run_dir), partition).to_pylist()
    assert set(rows[0]) >= CONTRACT_COLUMNS
    assert sorted(r["image_id"] for r in rows) == sorted(manifest.column("image_id").to_pylist())
    assert any(r["clean_correct"] for r in rows), "no photo to attack: the checks below are void"
    for r in rows:
        assert r["error"] is None
        if r["clean_correct"]:
            assert r["success"], f"sign failed on {r['image_id']}"
            assert 0 < r["linf"] <= 255 and r["l1pp"] <= r["linf"]
            assert r["n_backward"] == 1 and r["n_forward"] >= 3
            assert r["criterion"] == "top5"

    client = MlflowClient(tracking_uri=golden.tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    child = next(
        r
        for r in runs
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        and r.data.tags["model"] == LITE0
    )
    assert len(parent.data.tags["git_sha"]) == 40
    assert parent.data.tags["version.torch"].startswith("2.14")
    logged = {f.path for f in client.list_artifacts(child.info.run_id, partition)}
    assert logged == {f"{partition}/data.parquet"}, "MLflow gets the compacted file only"
    assert "clean_top5" in child.data.metrics and "mp/sign/median_l1pp" in child.data.metrics


def test_the_golden_run_holds_every_tasks_tables(golden: Golden) -> None:
    """The golden config runs every task: the tests that read it check something real."""
    run_dir = golden.run_dir
    assert set(golden.cfg.tasks) == set(TASKS.names())
    for task in eval_tasks():
        rows = pl.read_parquet(run_dir / "evals" / task / "*" / "*" / "*" / "data.parquet")
        assert rows.height and rows["error"].is_null().all(), task
    for name in ("bounds", "measures", "table1", "linearity", "findings", "dense_check"):
        assert pl.read_parquet(run_dir / "summary" / f"{name}.parquet").height, name
    adaptive = pl.read_parquet(run_dir / "summary" / "adaptive.parquet")
    assert adaptive.height and set(adaptive["model"]) >= {LITE0, LITE1}
    # cross pairs: the other networks' MP through each MP-set-up foveation (black box)
    rows = pl.read_parquet(run_dir / "evals" / "adaptive" / "*" / "*" / "*" / "data.parquet")
    black = rows.filter(pl.col("source") != pl.col("target"))
    assert set(black["condition"]) == {"object_crop", "random_resized_crop"}
    assert black.filter(pl.col("success")).height, "no black-box transfer fooled anything"
    assert black.filter(pl.col("random_views"))["holdout_fooled"].is_not_null().all()
    assert black["noise_fooled"].is_null().all() and black["eot_draws"].is_null().all()
    lite = adaptive.filter(
        pl.col("condition").is_in(["object_crop", "random_resized_crop"])
        & pl.col("model").is_in([LITE0, LITE1])
    )
    assert lite["check_black_box_stronger"].is_not_null().all()


def test_a_copy_of_the_golden_run_resumes_recomputes_a_forgotten_shard_and_starts_fresh(
    golden: Golden,
    local_ray: None,
    mlflow_store: Callable[[Path], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = golden.copy(tmp_path, mlflow_store)
    run_dir = tmp_path / golden.run_dir.name
    data = run_dir / PARTITION / "data.parquet"
    mtime = data.stat().st_mtime_ns

    # the copy's first start makes its MLflow runs in its own store, and computes nothing
    first = run_benchmark(cfg)
    units = len(MODELS) * golden.n_shards
    assert first.computed_units == 0 and first.skipped_units == units
    assert first.computed_eval_units == 0 and not first.failed_units
    assert data.stat().st_mtime_ns == mtime, "a finished run's files were rewritten"
    client = MlflowClient(tracking_uri=first.tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 + len(MODELS)

    second = run_benchmark(cfg)
    assert second.computed_units == 0 and second.computed_eval_units == 0
    assert data.stat().st_mtime_ns == mtime, "a finished run's files were rewritten"
    assert len(client.search_runs([exp.experiment_id])) == len(runs), (
        "resume created new MLflow runs"
    )

    # sync calls the run complete only while no stage has work left: an evaluation shard
    # lost (rows and commit) makes it incomplete, with every attack shard still there
    evals = next((run_dir / "evals").rglob("data.parquet"))
    kept = evals.read_bytes()
    _forget_shard(evals, 1)
    assert not sync_run(run_dir).complete
    evals.write_bytes(kept)
    assert sync_run(run_dir).complete

    _forget_shard(data, 1)  # a shard whose rows and commit are lost is recomputed, only it
    capsys.readouterr()
    third = run_benchmark(cfg)
    assert third.computed_units == 1
    started = [line for line in capsys.readouterr().err.splitlines() if "actor(s)" in line]
    assert started == [f"ray: started 1 {LITE0}'s actor(s)"], "actors of models with no work"
    assert pq.read_table(data).column("_shard").to_pylist() == SHARDS

    # --fresh starts over: the run dir is emptied and every unit of the config is computed
    # (one network and the attack stage: recomputing the whole golden run would add nothing)
    narrow = dataclasses.replace(
        cfg, models=(ModelRef(LITE0),), tasks=("clean", "min_perturbation")
    )
    fresh = run_benchmark(narrow, fresh=True)
    assert fresh.computed_units == golden.n_shards
    assert not (run_dir / "evals").exists(), "--fresh kept the evaluation results"


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
    mlflow_store: Callable[[Path], str],
    no_ray: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mlflow_store(tmp_path)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # the demo (no config argument) on 2 of its 7 photos: one shard per network, which is
    # all a smoke run of the command and its resume needs (the attacks' quality on the
    # sample is the golden run's and test_attacks_contract's)
    args = ("run", "--limit", "2", "--output-dir", str(tmp_path))
    cmd = [sys.executable, "-m", "pipeline.cli", *args]
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
    # the resume in this process (one fresh interpreter is the smoke run's point), with no
    # Ray initialised here (the no_ray fixture): one started would stay up after the call
    import ray

    # what an actor killed mid-write leaves (tests/test_cluster.py's interrupts only
    # sometimes catch one): the resume removes it and says so
    torn = run_dir / "attacks/model=efficientnet_lite0/attack=sign/.shard-00000.parquet.0f.tmp"
    torn.write_bytes(b"PAR1 torn off")
    second = foveabench_here(capsys, *args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "removed 1 partial file(s) left by an interrupted run" in second.stderr
    assert not torn.exists()
    assert "nothing to compute" in second.stderr
    assert "ray:" not in second.stderr, "a run with nothing to compute or compact started Ray"
    assert not ray.is_initialized(), "a run with nothing to compute or compact started Ray"
    assert "computed 0 model-shards" in second.stdout


def test_evaluation_stage_covers_every_pair_and_logs_transfer(golden: Golden) -> None:
    first, run_dir = golden.summary, golden.run_dir
    # every (source, target) pair per shard; masks, foveation, linearity and adaptive ride
    # with the self pairs
    assert not first.failed_units
    assert first.computed_eval_units == len(MODELS) ** 2 * golden.n_shards
    models = MODELS
    swept = 0
    for source in models:
        for target in models:
            (shard,) = (
                run_dir / f"evals/norm_sweep/source={source}/target={target}/attack=sign"
            ).glob("*.parquet")
            assert shard.name == "data.parquet"
            rows = pq.read_table(shard).drop_columns(["_shard"]).to_pylist()
            assert len(rows) == IMAGES
            for row in rows:
                assert row["error"] is None and row["condition"] == "mp"
                if row["has_perturbation"] and row["clean_correct"]:
                    assert row["crit_linf"] > 0
                    swept += 1
            stamped = json.loads(pq.read_schema(shard).metadata[b"foveabench.provenance"])
            assert stamped == json.loads((run_dir / "provenance.json").read_text())
        masks = pq.read_table(
            next((run_dir / f"evals/masks/source={source}/target={source}").rglob("*.parquet"))
        )
        assert set(masks.column("condition").to_pylist()) == {"background_mask", "object_mask"}
        assert masks.num_rows == 2 * IMAGES
    assert swept, "no swept direction: the critical-norm check above is void"
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

    client = MlflowClient(tracking_uri=golden.tracking_uri)
    parent = client.get_run(first.mlflow_run_id)
    key = f"transfer/sign/{LITE0}/{LITE1}/acc_at_linf_5.3"
    assert key in parent.data.metrics and 0.0 <= parent.data.metrics[key] <= 1.0
