"""Library log lines (Ray's token notice, MLflow's INFO) go to the run's log file, not to
the terminal, while errors still reach it (issue 27.3)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import pipeline.run.runner  # noqa: F401  (imports MLflow and Ray, as a run has by then)
from pipeline.results.storage import Location
from pipeline.run.library_logs import LIBRARIES, library_logs_to, log_path


@pytest.mark.unit
def test_library_lines_go_to_the_file_errors_also_to_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    before = {name: list(logging.getLogger(name).handlers) for name in LIBRARIES}
    path = log_path(Location(tmp_path / "run"))
    assert path == tmp_path / "run" / "logs" / "driver.log"
    with library_logs_to(path):
        logging.getLogger("mlflow.system_metrics").info("Started monitoring system metrics.")
        logging.getLogger("ray._private.authentication").warning("Token authentication is on")
        logging.getLogger("mlflow.store").error("the store is gone")
    err = capfd.readouterr().err
    assert "monitoring" not in err and "Token" not in err
    assert "the store is gone" in err
    lines = path.read_text().splitlines()
    assert len(lines) == 3 and "Token authentication is on" in lines[1]
    after = {name: list(logging.getLogger(name).handlers) for name in LIBRARIES}
    assert after == before, "the libraries' own handlers are back after the run"
