"""The report as people see it: a real MLflow server, a real run, headless Chromium.

The run is the golden run (tests/golden.py), logged to the session's ``mlflow server``
(SQLite backend, local artifact root) on loopback with its report, as ``foveabench run``
logs it. The test fetches the report artifact through the server's artifact REST API and
opens it in the session's Chromium via Selenium: every image must have loaded, the
provenance block must show the run's git sha, and a full-page screenshot is kept
(``test-artifacts/report.png``, gitignored). Skips with the reason when Chromium,
chromedriver or Selenium is absent (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser import keep_artifact, screenshot
from tests.golden import Golden

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _get_artifact(url: str, run_id: str, path: str) -> bytes:
    query = urllib.parse.urlencode({"path": path, "run_uuid": run_id})
    with urllib.request.urlopen(f"{url}/get-artifact?{query}", timeout=60) as resp:
        return bytes(resp.read())


def _check_report_logged(url: str, run_id: str, golden: Golden) -> None:
    """The runner logged ``report/``; ``foveabench report RUN_ID`` rebuilds it by id, in
    the run dir the run's tag names."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    assert any(a.path == "report" for a in client.list_artifacts(run_id)), (
        "run did not log its report"
    )
    from pipeline.cli.main import main

    with golden.preserved("report") as report:
        (report / "index.html").unlink()
        assert main(["report", run_id, "--tracking-uri", url]) == 0
        assert (report / "index.html").is_file()


def test_report_renders_in_chromium(golden: Golden, chromium: Any, tmp_path: Path) -> None:
    server, run_dir = golden.tracking_uri, golden.run_dir
    run_id = json.loads((run_dir / "mlflow.json").read_text())["parent"]
    _check_report_logged(server, run_id, golden)

    from mlflow.tracking import MlflowClient

    sha = MlflowClient(tracking_uri=server).get_run(run_id).data.tags["git_sha"]
    page = tmp_path / "fetched" / "index.html"
    page.parent.mkdir()
    page.write_bytes(_get_artifact(server, run_id, "report/index.html"))
    assert page.stat().st_size < 5_000_000

    chromium.get(page.as_uri())
    images = chromium.execute_script(
        "return Array.from(document.images).map(i => [i.dataset.name, i.complete, i.naturalWidth]);"
    )
    assert len(images) >= 3, images  # norm distributions + perceptibility grids at least
    broken = [name for name, complete, width in images if not complete or width == 0]
    assert not broken, f"images that did not load: {broken}"
    shown = chromium.find_element("id", "git-sha").text
    assert shown == sha and len(sha) == 40
    # wide tables scroll inside themselves; the page never grows past the window (issue 27.7)
    widths = chromium.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth, "
        "Math.max(...Array.from(document.querySelectorAll('table')).map("
        "t => t.scrollWidth - t.clientWidth))];"
    )
    page_width, window, table_overflow = widths
    assert page_width <= window, widths
    assert table_overflow > 0, "no table wider than its box: the check says nothing"

    with golden.moved_away():  # the run dir is not on this machine
        _rebuild_from_artifacts_only(server, run_id, tmp_path / "downloaded")

    keep_artifact(screenshot(chromium, tmp_path / "report.png"))


def _rebuild_from_artifacts_only(url: str, run_id: str, dest: Path) -> None:
    """A run computed elsewhere: ``foveabench report RUN_ID`` downloads its Parquet."""
    from pipeline.cli.main import main

    assert main(["report", run_id, "--tracking-uri", url, "--download-dir", str(dest)]) == 0
    page = (dest / "report" / "index.html").read_text()
    assert 'data-name="norm_distributions"' in page  # from the child runs' attack shards
    assert "perturbations/ store" in page  # not logged to MLflow: the grids say so and skip
