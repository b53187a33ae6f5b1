"""``sync`` and ``report`` on a run directory whose files are junk (issue 26): one line
naming the file and what to do, exit code 2, no traceback (the CLI's ``main`` in this
process, :func:`tests.ops_helpers.foveabench_here`: these errors come after the heavy
imports, so a fresh interpreter would add only its start-up).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.results.storage import Location
from tests.ops_helpers import foveabench_here

pytestmark = pytest.mark.unit


def junk_run(tmp_path: Path, config: str) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(config)
    (run / "manifest.parquet").write_text("junk, not Parquet")
    return run


def test_sync_on_a_junk_config_yaml_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = junk_run(tmp_path, "name: [unclosed\n")
    done = foveabench_here(capsys, "sync", str(run))
    rc, err = done.returncode, done.stderr
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    (line,) = err.strip().splitlines()
    assert f"{run / 'config.yaml'}: not valid YAML at line 2" in line


def test_report_on_a_junk_table_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = junk_run(tmp_path, "name: run\n")
    done = foveabench_here(capsys, "report", str(run))
    rc, err = done.returncode, done.stderr
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"report: {run}: a result table cannot be read")
    assert "rerun `foveabench run`" in last


def test_a_damaged_mlflow_db_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.data import build_manifest
    from pipeline.results.storage import write_table

    run = junk_run(tmp_path, "name: run\n")
    write_table(build_manifest("sample", None, 1).table, Location(run / "manifest.parquet"))
    store = tmp_path / "mlflow.db"
    store.write_bytes(b"\x00junk that is not SQLite" * 100)
    done = foveabench_here(capsys, "sync", str(run))
    rc, err = done.returncode, done.stderr
    assert rc == 2 and "Traceback" not in err, err[-3000:]
    (line,) = err.strip().splitlines()
    assert line.startswith(f"mlflow error: {store}: the MLflow store is not an SQLite database")
    assert f"mv {store} {store}.broken" in line
