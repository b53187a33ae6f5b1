"""``foveabench submit`` against a real local Ray head (job server on loopback)."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline.ops.submit import WORKING_DIR_EXCLUDES, checkout_root, connect
from tests.ops_helpers import foveabench, free_port, ray_head

pytestmark = pytest.mark.integration


@pytest.mark.own_ray  # a `ray start --head` of its own, with its job server
def test_submit_runs_the_demo_on_the_cluster_and_never_twice(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = ("submit", "configs/demo.yaml", "--limit", "1", "--output-dir", str(out))
    with ray_head() as address:
        first = foveabench(*args, "--address", address)
        assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
        assert "clean accuracy" in first.stdout, "the job's logs were not followed"
        assert "SUCCEEDED" in first.stderr

        again = foveabench(*args, "--address", address, "--no-wait")
        assert again.returncode == 0, again.stderr[-3000:]
        assert "already succeeded" in again.stderr
        jobs = connect(address).list_jobs()  # with the head's token, like the CLI
        assert len(jobs) == 1, "an identical submission started a second job"
        (job,) = jobs
        assert again.stdout.strip() == job.submission_id
        assert job.submission_id.startswith("foveabench-demo-")
        assert job.metadata["config_name"] == "demo" and len(job.metadata["git_sha"]) == 40

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("foveabench")
    assert exp is not None, "the job logged nothing to MLflow"
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert {r.data.tags["model"] for r in children} == {"efficientnet_lite0", "efficientnet_lite1"}
    assert all("clean_top5" in r.data.metrics for r in children)
    assert all(r.info.status == "FINISHED" for r in runs)


@pytest.mark.unit
def test_the_jobs_working_dir_holds_every_module_and_no_results(tmp_path: Path) -> None:
    """Packaged by Ray's own packager with the excludes a submission sends: every tracked
    module is in the job's working dir (a bare "results" once left out pipeline/results/,
    hidden here by the editable install), and the checkout's own results/ folder is not."""
    from ray._private.runtime_env.packaging import create_package

    root = checkout_root()
    made = not (root / "results").exists()
    (root / "results").mkdir(exist_ok=True)
    marker = root / "results" / "planted-by-test_submit.txt"
    marker.write_text("a result: never uploaded")
    try:
        zipped = tmp_path / "pkg.zip"
        create_package(str(root), zipped, include_gitignore=True, excludes=WORKING_DIR_EXCLUDES)
    finally:
        marker.unlink()
        if made:
            (root / "results").rmdir()
    packed = set(zipfile.ZipFile(zipped).namelist())
    tracked = subprocess.run(
        ["git", "ls-files", "pipeline", "tasks", "dashboards"],
        cwd=root, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    missing = [f for f in tracked if f.endswith(".py") and f not in packed]
    assert not missing, f"left out of the job's working dir: {missing}"
    assert "pyproject.toml" in packed
    assert not [f for f in packed if f.startswith(("results/", ".git/", ".venv/"))]


def test_submit_to_an_unreachable_cluster_says_how_to_fix_it() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    result = foveabench("submit", "configs/demo.yaml", "--address", address, timeout=120)
    assert result.returncode == 2
    assert address in result.stderr and "ray start --head" in result.stderr
    assert "8265" in result.stderr
