"""Out of disk (issue 26): a result that cannot be written (a full disk, a read-only folder) is
one line naming the file, exit 1, with every committed piece kept; a run whose MLflow mirror
could not be written exits non-zero, and ``sync`` catches up everything a complete run has,
report/ included.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.cli.run import run_exit_code
from pipeline.ops.sync import expected_artifacts
from pipeline.results.storage import Location
from pipeline.run.run_result import RunResult

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
    summary = RunResult(Location(tmp_path), 1, 0, 1, 0, 0, tracking_uri="sqlite:///full.db")
    assert run_exit_code(summary) == 0
    assert run_exit_code(dataclasses.replace(summary, mlflow_failed=True)) == 1
    err = capsys.readouterr().err
    assert "MLflow at sqlite:///full.db could not be written" in err
    assert f"foveabench sync {tmp_path}" in err


#: Runs the CLI with files limited to a few KB (RLIMIT_FSIZE: a write past it fails with
#: EFBIG, as a full disk fails with ENOSPC; unlike a read-only folder it binds root too).
LIMITED = """
import json, resource, sys
from pipeline.cli.main import main
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
print(json.dumps({"rc": main(sys.argv[1:])}))
"""


def test_a_report_that_cannot_be_written_is_one_line_naming_the_file(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    from tests.test_report import make_run

    run = make_run(tmp_path / "run", protocol_stage=False)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    done = subprocess.run(
        [sys.executable, "-c", LIMITED, "report", str(run)],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"rc": 1}
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"write error: {run / 'report'}/") and "File too large" in last
    assert "rerun the same command" in last
    assert sorted(p.relative_to(run) for p in run.rglob("*") if "report" not in p.parts) == [
        p for p in before if "report" not in p.parts
    ]


def test_a_compaction_that_cannot_be_written_keeps_every_committed_piece(
    tmp_path: Path,
) -> None:
    """The merged file fails (a child with files limited to 1 byte): a one-line error
    naming it, the pieces and their commit records untouched, and the next compaction
    folds them all."""
    import subprocess
    import sys

    from pipeline.results.partitions import CommitIndex, compact, read_partition, write_committed
    from tests.test_partitions import PART, rows

    write_committed(tmp_path, PART, 0, rows(["a", "b"]))
    write_committed(tmp_path, PART, 1, rows(["c"]))
    script = (
        "import resource, sys\n"
        "from pipeline.results.partitions import compact\n"
        "from pipeline.results.storage import Location\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "try:\n"
        "    compact(Location(sys.argv[1]), sys.argv[2])\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path), PART],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120,
    )  # fmt: skip
    data = tmp_path / PART / "data.parquet"
    assert done.stdout.startswith(f"ResultWriteError {data}: cannot write (File too large)"), (
        done.stdout + done.stderr[-2000:]
    )
    assert not data.exists() and [p.name for p in (tmp_path / PART).glob(".*")] == []
    index = CommitIndex.load(Location(tmp_path))
    assert index.done(PART, 0, ["a", "b"]) and index.done(PART, 1, ["c"])
    assert compact(Location(tmp_path), PART) == 2
    table = read_partition(Location(tmp_path), PART)
    assert table is not None and table.column("image_id").to_pylist() == ["a", "b", "c"]


def test_a_result_written_under_a_file_names_it(tmp_path: Path) -> None:
    """Any OSError of a write (here a folder on the way that is a file) is a
    ResultWriteError naming the result and the obstacle, for both writers."""
    import pyarrow as pa

    from pipeline.results.storage import write_table
    from pipeline.results.write_error import ResultWriteError

    (tmp_path / "summary").write_text("a file where a folder should be")
    for write in (
        lambda: (Location(tmp_path) / "summary" / "x.json").write_text("{}"),
        lambda: write_table(pa.table({"a": [1]}), tmp_path / "summary" / "x.parquet"),
    ):
        with pytest.raises(ResultWriteError, match=r"summary/x\.\w+: cannot write \(") as info:
            write()
        assert str(tmp_path / "summary") in str(info.value)


def test_a_store_that_cannot_be_created_leaves_the_run_without_tracking(tmp_path: Path) -> None:
    """A store on a full disk fails when MLflow creates it (a child whose files are limited
    to 1 byte): a warning of one bounded line naming the store, and the run goes on
    untracked (it then exits 1, above), not SQLAlchemy's traceback."""
    import json
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = (
        "import json, resource, sys, warnings\n"
        "from pipeline.tracking.tracker import Tracker\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    tracker = Tracker(sys.argv[1], 'e', sys.argv[2], sys.argv[2])\n"
        "    tracker.start('r', {}, {}, ['m'])\n"
        "print(json.dumps([tracker.available, tracker.run_id(), [str(w.message) for w in caught]]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, uri, str(tmp_path / "run")],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120,
    )  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    available, run_id, caught = json.loads(done.stdout.strip().splitlines()[-1])
    assert available is False and run_id is None
    (warning,) = [w for w in caught if uri in w]
    assert "OperationalError" in warning and "without tracking" in warning
    assert "\n" not in warning and len(warning) < 600
