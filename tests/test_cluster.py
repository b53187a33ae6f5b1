"""Fault tolerance on a real multi-node Ray cluster, and the cluster configs.

Faults are injected the xgboost_ray way, at chosen points: ``RunHooks.attack_unit``
runs in the driver after a shard lands and SIGKILLs the busy actor that
produced it (or removes its node). Outputs must hold every (image, model,
attack) row exactly once, and no shard may be delivered twice.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jsonschema
import pytest
import ray
import torch
import yaml
from mlflow.tracking import MlflowClient
from ray.cluster_utils import Cluster

from pipeline.config.benchmark import (
    AttackRef,
    BenchmarkConfig,
    DatasetCfg,
    ModelRef,
    RayCfg,
    load_config,
)
from pipeline.data import build_manifest
from pipeline.run.run_result import RunHooks
from pipeline.run.runner import run_benchmark
from pipeline.stages.attack_stage import ATTACK
from pipeline.stages.attack_unit import AttackOutput, AttackUnit
from pipeline.stages.worker import ModelWorker, WorkerSpec
from pipeline.summary.attacks import read_results
from tasks.attacks import ATTACK_SPECS, AttackSpec
from tasks.attacks.gradient import SignAttack
from tasks.attacks.params import GradientParams
from tests.ops_helpers import foveabench_here

ROOT = Path(__file__).resolve().parents[1]
N_IMAGES = 7  # the whole `sample` set
MODEL = "efficientnet_lite0"


def cluster_config(tmp_path: Path, actors: int = 2) -> BenchmarkConfig:
    """One image per shard, so a kill always lands on a busy actor with queued work."""
    return BenchmarkConfig(
        name="faults",
        dataset=DatasetCfg(layout="sample", limit=N_IMAGES),
        models=(ModelRef(MODEL),),
        attacks=(AttackRef("sign"),),
        output_dir=str(tmp_path),
        shard_size=1,
        batch_size=1,
        ray=RayCfg(actors_per_model=actors, cpus_per_actor=1, max_restarts=3),
    )


def assert_rows_exactly_once(run_dir: Path) -> None:
    ids = sorted(build_manifest("sample", None, N_IMAGES).table.column("image_id").to_pylist())
    assert not list(run_dir.rglob("shard-*.parquet")), "pieces left after compaction"
    for sub in ("attacks", "clean"):
        table = read_results(run_dir, sub)
        assert table is not None, sub
        rows = table.to_dicts()
        keys = [(r["image_id"], r["model"], r.get("attack")) for r in rows]
        assert len(keys) == len(set(keys)), f"{sub}: duplicated rows"
        assert sorted(k[0] for k in keys) == ids, f"{sub}: lost rows"
        assert all(r["error"] is None for r in rows), [r["error"] for r in rows if r["error"]]
    assert not list(run_dir.rglob("*.tmp")), "a partial file was left behind"


@pytest.fixture(scope="module")
def three_node_cluster() -> Iterator[Cluster]:
    """A head without CPUs + 3 workers of 1 CPU: 2 model actors and one spare slot for a
    restart. No actor can land on the head (which cannot be removed), so the actor that
    delivers a run's first shard is always on a removable node, with more work in flight.

    Shared by the kill test and then the node-removal test (which must come after it)."""
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    for _ in range(3):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def _driver_env() -> dict[str, str]:
    """The CLI as a separate driver process, on the session's Ray (RAY_ADDRESS): the signals
    go to the driver, and actors it leaves behind would hold the session's CPUs."""
    address = ray.get_runtime_context().gcs_address
    return {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ADDRESS": address}


def _interrupt_after_next_shard(cmd: list[str], shards: Path, sig: int) -> str:
    """Start the CLI, send ``sig`` once a new attack shard has landed; return its stderr."""
    before = len(list(shards.glob("shard-*.parquet")))
    env = _driver_env()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while len(list(shards.glob("shard-*.parquet"))) <= before:
        assert proc.poll() is None and time.monotonic() < deadline, "no shard landed"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "MLflow run marked KILLED" in err
    return err


@pytest.mark.integration
def test_interrupted_driver_resumes_without_recomputing(
    local_ray: None,
    mlflow_store: Callable[[Path], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Ctrl-C, then SIGTERM (a scheduler stopping the job), then a run to the end."""
    cfg = dataclasses.replace(cluster_config(tmp_path, actors=1), name="interrupted")
    config = tmp_path / "interrupted.yaml"
    config.write_text(yaml.safe_dump(cfg.as_dict()))
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(config)]
    run_dir = tmp_path / "interrupted"
    shards = run_dir / "attacks" / f"model={MODEL}" / "attack=sign"
    client = MlflowClient(mlflow_store(tmp_path))

    def finished_state() -> tuple[dict[Path, int], int, int]:
        """mtimes of every committed shard piece, how many the planner counts, and how many
        partial files the interrupt left (an actor killed mid-write leaves its hidden
        ``.<name>.<uuid>.tmp``; readers never see it and the next run removes it)."""
        records = sorted((run_dir / "_commits").rglob("*.ok"))
        partial = list(run_dir.rglob("*.tmp"))
        assert all(p.name.startswith(".") for p in partial), partial
        counted = sum(1 for p in records if "perturbations" not in p.parts)
        pieces = [
            run_dir / r.parent.relative_to(run_dir / "_commits") / f"{r.name.split('.')[0]}.parquet"
            for r in records
        ]
        return {p: p.stat().st_mtime_ns for p in pieces}, counted, len(partial)

    def removed_line(partial: int) -> str:
        return f"removed {partial} partial file(s) left by an interrupted run"

    _interrupt_after_next_shard(cmd, shards, signal.SIGINT)
    assert 1 <= len(list(shards.glob("shard-*.parquet"))) < N_IMAGES, "not interrupted mid-way"
    parent = json.loads((run_dir / "mlflow.json").read_text())["parent"]
    assert client.get_run(parent).info.status == "KILLED"
    mtimes, counted, partial = finished_state()

    err = _interrupt_after_next_shard(cmd, shards, signal.SIGTERM)
    assert f"resume: {counted} shard files already complete" in err
    assert (removed_line(partial) in err) == (partial > 0), err[-3000:]
    assert client.get_run(parent).info.status == "KILLED"
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items()), "a shard was rewritten"
    mtimes, counted, partial = finished_state()
    assert len(list(shards.glob("shard-*.parquet"))) < N_IMAGES, "not interrupted mid-way"

    # the run to the end gets no signal: in this process, on the session's Ray
    rerun = foveabench_here(capsys, "run", str(config))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resume: {counted} shard files already complete" in rerun.stderr
    assert (removed_line(partial) in rerun.stderr) == (partial > 0), rerun.stderr[-3000:]
    assert_rows_exactly_once(run_dir)
    assert client.get_run(parent).info.status == "FINISHED"


# -- a failing image becomes an error row (plain ModelWorker, no Ray) -------------------------


class _OomAboveOne(SignAttack):
    """Runs out of memory on any batch of 2+, and always on the coffee photo (label 967)."""

    def __call__(self, model, x, labels):
        if x.shape[0] > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if int(labels[0]) == 967:
            raise torch.OutOfMemoryError("CUDA out of memory (even one image)")
        return super().__call__(model, x, labels)


@pytest.fixture
def oom_attack() -> Iterator[str]:
    """``test_oom_above_one`` in the catalogue for one test only (the README lists the rest)."""
    name = "test_oom_above_one"
    ATTACK_SPECS.add(
        name, AttackSpec(name, "linf", False, GradientParams, f"{__name__}:_OomAboveOne")
    )
    yield name
    ATTACK_SPECS.remove(name)


@pytest.mark.integration
def test_oom_halves_the_batch_and_a_hopeless_image_becomes_an_error_row(
    tmp_path: Path, oom_attack: str
) -> None:
    table = build_manifest("sample", None, 4).table
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = [*table.column("path").to_pylist()[:3], str(broken)]
    unit = AttackUnit(
        model=MODEL,
        shard=0,
        image_ids=tuple(table.column("image_id").to_pylist()),
        paths=tuple(paths),
        labels=tuple(table.column("label").to_pylist()),
        attacks=("test_oom_above_one",),
        clean=True,
    )
    spec = WorkerSpec(MODEL, {}, {"test_oom_above_one": GradientParams()}, batch_size=4)
    worker = ModelWorker(spec)
    out = ATTACK.compute(worker, unit, None)

    rows = {r["image_id"]: r for r in out.attacks["test_oom_above_one"][0].to_pylist()}
    assert sorted(rows) == sorted(unit.image_ids) and out.halvings >= 2
    labels = dict(zip(unit.image_ids, unit.labels, strict=True))
    for image_id, row in rows.items():
        if image_id == unit.image_ids[3]:
            assert "could not load image" in row["error"]
        elif labels[image_id] == 967:
            assert "out of memory with a batch of 1" in row["error"]
        else:
            assert row["error"] is None and row["n_backward"] == 1
    clean = {r["image_id"]: r for r in (out.clean.to_pylist() if out.clean is not None else [])}
    assert sorted(clean) == sorted(unit.image_ids), "clean rows lost or duplicated"
    assert [i for i, r in clean.items() if r["error"]] == [unit.image_ids[3]]  # the broken file
    # the actor's later batches stay below the size that ran out of memory: no split again
    assert worker.batch_size == 1
    again = ATTACK.compute(worker, dataclasses.replace(unit, clean=False), None)
    assert again.halvings == 0 and len(again.attacks["test_oom_above_one"][0]) == 4


# -- cluster configs --------------------------------------------------------------------------


@pytest.mark.unit
def test_ray_cluster_yaml_validates_against_rays_schema() -> None:
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cfg, schema)
    validate_config(prepare_config(cfg))  # Ray's own checks after filling its defaults
    nodes = cfg["available_node_types"]
    assert nodes[cfg["head_node_type"]]["resources"].get("GPU", 0) == 0
    gpu = [n for n in nodes.values() if n["resources"].get("GPU") == 1]
    assert gpu and all(0 <= n["min_workers"] <= n["max_workers"] for n in gpu)
    assert cfg["idle_timeout_minutes"] > 0
    setup = " ".join(cfg["setup_commands"])
    assert "torch==2.14.1" in setup and "torchvision==0.29.1" in setup
    assert "CHANGE ME" in (ROOT / "ray_cluster.yaml").read_text()
    # Every node reaches the bucket: the actors on the workers read and write it themselves.
    if cfg["provider"]["type"] == "aws":
        for name, node in nodes.items():
            if name != cfg["head_node_type"]:  # the head gets Ray's default profile
                assert "IamInstanceProfile" in node["node_config"], f"{name}: no IAM profile"
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        (start,) = [c for c in cfg[key] if "ray start" in c]
        assert ENV_FILE in start.split("ray start")[0], f"{key}: env file not exported first"


ENV_FILE = "foveabench-s3.env"  # ray_cluster.yaml's env file on every node
SECRET = "foveabench-s3"  # the Secret every KubeRay container reads
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
OBJECT_STORE = ("s3://", "gs://")


def _gets_the_secret(container: dict) -> bool:
    """All of ``SECRET`` via envFrom, or at least the credentials via secretKeyRef."""
    if any(e.get("secretRef", {}).get("name") == SECRET for e in container.get("envFrom", [])):
        return True
    refs = {
        e["name"]
        for e in container.get("env", [])
        if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == SECRET
    }
    return set(CREDENTIALS) <= refs


def _storage_ok(spec: dict) -> None:
    """Data and results reachable from every pod; credentials only from the Secret."""
    cluster = spec["rayClusterSpec"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]]
    pods += [g["template"]["spec"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        for c in pod["containers"]:
            assert _gets_the_secret(c), f"{c['name']}: does not get the Secret {SECRET}"
            plain = [e["name"] for e in c.get("env", []) if "value" in e]
            assert not set(plain) & set(CREDENTIALS), f"{c['name']}: credentials in plain text"
    assert not any(k in spec["runtimeEnvYAML"] for k in CREDENTIALS), "credentials in the job"
    # A volume is either on every pod at the same path or on none (the head alone is useless).
    mounts = [
        {(m["name"], m["mountPath"]) for c in pod["containers"] for m in c.get("volumeMounts", [])}
        for pod in pods
    ]
    volumes = [sorted(yaml.safe_dump(v) for v in pod.get("volumes", [])) for pod in pods]
    assert all(m == mounts[0] for m in mounts), f"volume mounts differ between pods: {mounts}"
    assert all(v == volumes[0] for v in volumes), "volumes differ between pods"
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    assert env["MLFLOW_TRACKING_URI"].startswith(("http://", "https://")), "no MLflow server"
    # The config the entrypoint runs is this repo's, with data and results on object storage.
    (path,) = [w for w in spec["entrypoint"].split() if w.endswith(".yaml")]
    cfg = load_config(ROOT / path.removeprefix("/opt/foveabench/"))
    assert str(cfg.dataset.root).startswith(OBJECT_STORE) and cfg.dataset.layout == "ilsvrc"
    assert cfg.output_dir.startswith(OBJECT_STORE) and cfg.mlflow.tracking_uri is None


def _ray_job_spec_ok(spec: dict) -> None:
    assert spec["entrypoint"].startswith("foveabench ")
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] > 0
    cluster = spec["rayClusterSpec"]
    head = cluster["headGroupSpec"]
    assert "rayStartParams" in head and head["template"]["spec"]["containers"][0]["image"]
    (gpu,) = cluster["workerGroupSpecs"]
    assert gpu["groupName"] and 0 <= gpu["minReplicas"] <= gpu["replicas"] <= gpu["maxReplicas"]
    (container,) = gpu["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    _storage_ok(spec)


@pytest.mark.unit
def test_kuberay_manifests_have_the_required_fields() -> None:
    job = yaml.safe_load((ROOT / "configs/k8s/rayjob.yaml").read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob" and job["metadata"]["name"]
    _ray_job_spec_ok(job["spec"])

    cron = yaml.safe_load((ROOT / "configs/k8s/raycronjob.yaml").read_text())
    assert cron["apiVersion"] == "ray.io/v1" and cron["kind"] == "RayCronJob"
    assert len(cron["spec"]["schedule"].split()) == 5
    _ray_job_spec_ok(cron["spec"]["jobTemplate"])
    assert "foveabench nightly" in cron["spec"]["jobTemplate"]["entrypoint"]

    secret = yaml.safe_load((ROOT / "configs/k8s/s3-secret.example.yaml").read_text())
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == SECRET
    assert secret["metadata"]["namespace"] == job["metadata"]["namespace"]
    data = secret["stringData"]
    assert {*CREDENTIALS, "AWS_REGION", "AWS_ENDPOINT_URL"} <= set(data)
    assert all(data[k] == "CHANGE-ME" for k in CREDENTIALS), "the example holds real keys?"


# -- a real 3-node cluster (module-scoped: these two run in this order) ----------------------
# Their own cluster (own_ray, not the session's Ray): a SIGKILLed actor needs a spare slot
# to restart in, and removing a node needs a cluster of several nodes.


@pytest.mark.integration
@pytest.mark.own_ray
def test_sigkill_busy_actor_requeues_its_shards_exactly_once(
    three_node_cluster: Cluster, mlflow_store: Callable[[Path], str], tmp_path: Path
) -> None:
    mlflow_store(tmp_path)
    delivered: collections.Counter[tuple[str, int]] = collections.Counter()
    killed: list[int] = []

    def kill_first_producer(out: AttackOutput) -> None:
        delivered[(out.unit.model, out.unit.shard)] += 1
        if not killed:  # the actor that produced this already runs its next shard
            os.kill(out.pid, signal.SIGKILL)
            killed.append(out.pid)

    summary = run_benchmark(
        cluster_config(tmp_path), hooks=RunHooks(attack_unit=kill_first_producer)
    )

    assert killed and summary.requeued_units >= 1, "the kill did not hit a busy actor"
    assert not summary.failed_units and summary.computed_units == N_IMAGES
    assert sorted(delivered) == [(MODEL, s) for s in range(N_IMAGES)]
    assert set(delivered.values()) == {1}, f"a shard was delivered twice: {delivered}"
    assert_rows_exactly_once(tmp_path / "faults")


@pytest.mark.integration
@pytest.mark.own_ray
def test_removing_a_worker_node_mid_run_loses_nothing(
    three_node_cluster: Cluster, mlflow_store: Callable[[Path], str], tmp_path: Path
) -> None:
    mlflow_store(tmp_path)
    workers = {node.node_id: node for node in three_node_cluster.worker_nodes}
    removed: list[str] = []
    delivered: collections.Counter[int] = collections.Counter()

    def remove_node_of_busy_actor(out: AttackOutput) -> None:
        # The first shard: 6 are left and at most 4 in flight, so the scheduler has just
        # refilled its producer (before this callback) and the node dies with work on it.
        delivered[out.unit.shard] += 1
        if not removed:
            assert out.node_id in workers, "an actor ran on the head, which has no CPUs"
            three_node_cluster.remove_node(workers[out.node_id], allow_graceful=False)
            removed.append(out.node_id)

    summary = run_benchmark(
        cluster_config(tmp_path), hooks=RunHooks(attack_unit=remove_node_of_busy_actor)
    )

    assert removed, "no actor ran on a worker node"
    assert not summary.failed_units and summary.requeued_units >= 1
    assert sorted(delivered) == list(range(N_IMAGES)) and set(delivered.values()) == {1}
    assert_rows_exactly_once(tmp_path / "faults")
