"""The report as people see it: a real MLflow server, a real run, headless Chromium.

Starts ``mlflow server`` (SQLite backend, local artifact root) on loopback,
runs the demo config against it (``foveabench run`` in-process, two images), fetches the
report artifact through the server's artifact REST API and opens it in
Debian's Chromium via Selenium: every image must have loaded, the provenance
block must show the run's git sha, and a full-page screenshot is kept
(``test-artifacts/report.png``, gitignored). Skips with the reason when
Chromium, chromedriver or Selenium is absent (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.browser import chrome, keep_artifact, screenshot
from tests.ops_helpers import foveabench_here, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"mlflow server at {url} not healthy after {timeout} s")


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    artifacts = tmp_path / "server-artifacts"
    artifacts.mkdir()
    log = (tmp_path / "mlflow-server.log").open("wb")
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
        "--default-artifact-root", str(artifacts),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _get_artifact(url: str, run_id: str, path: str) -> bytes:
    query = urllib.parse.urlencode({"path": path, "run_uuid": run_id})
    with urllib.request.urlopen(f"{url}/get-artifact?{query}", timeout=60) as resp:
        return bytes(resp.read())


def _run_demo(tmp_path: Path, tracking_uri: str, capsys: pytest.CaptureFixture[str]) -> Path:
    cfg = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    cfg["dataset"]["limit"] = 2
    cfg["output_dir"] = str(tmp_path / "results")
    cfg["mlflow"] = {"tracking_uri": tracking_uri, "experiment": "report-browser"}
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(cfg))
    done = foveabench_here(capsys, "run", str(path))  # on the session's Ray
    assert done.returncode == 0, done.stderr[-3000:]
    return Path(cfg["output_dir"]) / cfg["name"]


def _check_report_logged(url: str, run_id: str, run_dir: Path) -> None:
    """The runner logged ``report/``; ``foveabench report RUN_ID`` rebuilds it by id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    assert any(a.path == "report" for a in client.list_artifacts(run_id)), (
        "run did not log its report"
    )
    from pipeline.cli import main

    assert main(["report", run_id, "--tracking-uri", url]) == 0


def test_report_renders_in_chromium(
    tmp_path: Path, mlflow_server: str, local_ray: None, capsys: pytest.CaptureFixture[str]
) -> None:
    driver = chrome(tmp_path)  # skip before the minutes of a run when there is no browser
    try:
        run_dir = _run_demo(tmp_path, mlflow_server, capsys)
        state = json.loads((run_dir / "mlflow.json").read_text())
        run_id = state["parent"]
        _check_report_logged(mlflow_server, run_id, run_dir)

        from mlflow.tracking import MlflowClient

        sha = MlflowClient(tracking_uri=mlflow_server).get_run(run_id).data.tags["git_sha"]
        page = tmp_path / "fetched" / "index.html"
        page.parent.mkdir()
        page.write_bytes(_get_artifact(mlflow_server, run_id, "report/index.html"))
        assert page.stat().st_size < 5_000_000

        driver.get(page.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.dataset.name, i.complete, i.naturalWidth]);"
        )
        assert len(images) >= 3, images  # norm distributions + perceptibility grids at least
        broken = [name for name, complete, width in images if not complete or width == 0]
        assert not broken, f"images that did not load: {broken}"
        shown = driver.find_element("id", "git-sha").text
        assert shown == sha and len(sha) == 40

        _rebuild_from_artifacts_only(mlflow_server, run_id, run_dir, tmp_path / "downloaded")

        keep_artifact(screenshot(driver, tmp_path / "report.png"))
    finally:
        driver.quit()


def _rebuild_from_artifacts_only(url: str, run_id: str, run_dir: Path, dest: Path) -> None:
    """A run computed elsewhere: ``foveabench report RUN_ID`` downloads its Parquet."""
    from pipeline.cli import main

    run_dir.rename(run_dir.with_name("moved-away"))  # the run dir is not on this machine
    assert main(["report", run_id, "--tracking-uri", url, "--download-dir", str(dest)]) == 0
    page = (dest / "report" / "index.html").read_text()
    assert 'data-name="norm_distributions"' in page  # from the child runs' attack shards
    assert "perturbations/ store" in page  # not logged to MLflow: the grids say so and skip
