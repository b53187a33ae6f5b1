"""Out of disk (issue 26): a run whose MLflow mirror could not be written exits non-zero,
and ``sync`` catches up everything a complete run has, report/ included.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import run_exit_code
from pipeline.runner import RunSummary
from pipeline.storage import Location
from pipeline.sync import expected_artifacts

pytestmark = pytest.mark.unit


def test_sync_expects_the_report_among_the_parent_runs_artifacts(tmp_path: Path) -> None:
    for name in ("config.yaml", "manifest.parquet", "report/index.html", "report/figures/a.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    (tmp_path / "report" / ".index.html.tmp").write_text("a page being written")
    root = Location(tmp_path)
    parent = [f.relative_to(root).as_posix() for f in expected_artifacts(root, [])[None]]
    assert "report/index.html" in parent and "report/figures/a.png" in parent
    assert "report/.index.html.tmp" not in parent


def test_a_run_whose_mlflow_could_not_be_written_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = RunSummary(Location(tmp_path), 1, 0, 1, 0, 0, tracking_uri="sqlite:///full.db")
    assert run_exit_code(summary) == 0
    summary.mlflow_failed = True
    assert run_exit_code(summary) == 1
    err = capsys.readouterr().err
    assert "MLflow at sqlite:///full.db could not be written" in err
    assert f"foveabench sync {tmp_path}" in err
