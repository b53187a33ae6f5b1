"""Hostile run directories and dataset roots (issue 26): nothing is written outside the run
directory and nothing outside the dataset root is listed or followed.

Each test builds the hostile tree on the fly and drives the real component.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import main as cli_main
from pipeline.config.benchmark import ConfigError
from pipeline.results import rundir
from tests.test_report import make_run

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]


def test_report_never_writes_through_a_report_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path / "run", protocol_stage=False)
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "figures").mkdir(parents=True)
    (elsewhere / "index.html").write_text("someone's page")
    (elsewhere / "figures" / "keep.png").write_text("someone's figure")
    (run / "report").symlink_to(elsewhere, target_is_directory=True)
    assert cli_main(["report", str(run)]) == 0
    assert (elsewhere / "index.html").read_text() == "someone's page"
    assert sorted(p.name for p in elsewhere.rglob("*")) == ["figures", "index.html", "keep.png"]
    assert not (run / "report").is_symlink() and (run / "report" / "index.html").is_file()
    assert "removed the link" in capsys.readouterr().err


def test_a_plain_run_refuses_a_directory_foveabench_did_not_create(tmp_path: Path) -> None:
    theirs = tmp_path / "out" / "notours"
    (theirs / "attacks").mkdir(parents=True)
    (theirs / "manifest.parquet").write_text("precious")
    with pytest.raises(ConfigError, match="not created by foveabench") as info:
        rundir.prepare(str(tmp_path / "out"), "notours", fresh=False)
    assert "choose another run name" in str(info.value) and rundir.MARKER in str(info.value)
    assert (theirs / "manifest.parquet").read_text() == "precious"
    assert not (theirs / rundir.MARKER).exists()


#: Fingerprints a root whose links loop (l1, l2 -> ..) and lead out (x -> outside), twice,
#: with the outside file changed in between: the fingerprint must not see it.
FINGERPRINT = """
import sys
from pathlib import Path
from pipeline.data.reuse import dataset_fingerprint
root, outside = Path(sys.argv[1]), Path(sys.argv[2])
before = dataset_fingerprint("ilsvrc", str(root), None)
(outside / "big.bin").write_bytes(b"changed, and longer than before")
print(before == dataset_fingerprint("ilsvrc", str(root), None))
"""


def test_the_dataset_fingerprint_follows_no_directory_link(tmp_path: Path) -> None:
    root, outside = tmp_path / "d", tmp_path / "outside"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.JPEG").write_bytes(b"x")
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"y")
    for name in ("l1", "l2"):
        (root / "images" / name).symlink_to("..", target_is_directory=True)
    (root / "x").symlink_to(outside, target_is_directory=True)
    done = subprocess.run(
        [sys.executable, "-c", FINGERPRINT, str(root), str(outside)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True", "the fingerprint listed a file outside the root"


def test_the_dataset_fingerprint_takes_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    from pipeline.data.reuse import dataset_fingerprint

    (tmp_path / "images").mkdir()
    before = dataset_fingerprint("ilsvrc", str(tmp_path), None)
    raw = os.path.join(os.fsencode(tmp_path / "images"), b"caf\xe9.JPEG")  # Latin-1 e-acute
    Path(os.fsdecode(raw)).write_bytes(b"x")
    assert dataset_fingerprint("ilsvrc", str(tmp_path), None) not in (None, before)


def test_a_resume_removes_result_links_instead_of_writing_through_them(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.parquet").write_text("someone's table")
    (tmp_path / "theirs.json").write_text("someone's file")
    run_dir = rundir.prepare(str(tmp_path / "out"), "ours", fresh=False).local_path
    (run_dir / "summary").symlink_to(outside, target_is_directory=True)
    (run_dir / "mlflow.json").symlink_to(tmp_path / "theirs.json")
    rundir.prepare(str(tmp_path / "out"), "ours", fresh=False)
    assert not (run_dir / "summary").exists() and not (run_dir / "mlflow.json").exists()
    assert (outside / "keep.parquet").read_text() == "someone's table"
    assert (tmp_path / "theirs.json").read_text() == "someone's file"


def test_a_resume_removes_links_at_any_depth_of_the_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.parquet").write_text("someone's table")
    (tmp_path / "theirs.log").write_text("someone's log")
    run_dir = rundir.prepare(str(tmp_path / "out"), "ours", fresh=False).local_path
    (run_dir / "attacks" / "model=m").mkdir(parents=True)
    (run_dir / "attacks" / "model=m" / "attack=sign").symlink_to(outside)
    (run_dir / "logs").mkdir()
    (run_dir / "logs" / "driver.log").symlink_to(tmp_path / "theirs.log")
    (run_dir / "report").mkdir()
    (run_dir / "report" / "figures").symlink_to(outside)
    rundir.prepare(str(tmp_path / "out"), "ours", fresh=False)
    assert [p for p in run_dir.rglob("*") if p.is_symlink()] == []
    assert (run_dir / "attacks" / "model=m").is_dir() and (run_dir / "report").is_dir()
    assert (outside / "data.parquet").read_text() == "someone's table"
    assert (tmp_path / "theirs.log").read_text() == "someone's log"
    assert capsys.readouterr().err.count("run: removed the link") == 3


def test_a_plain_run_refuses_any_unmarked_directory_that_holds_files(tmp_path: Path) -> None:
    """Not only result names count: a folder of someone's notes is not ours either, and a
    marker that is a link to some file proves nothing."""
    theirs = tmp_path / "out" / "notes"
    theirs.mkdir(parents=True)
    (theirs / "precious.txt").write_text("precious")
    (tmp_path / "any.txt").write_text("x")
    (theirs / rundir.MARKER).symlink_to(tmp_path / "any.txt")
    with pytest.raises(ConfigError, match="not created by foveabench"):
        rundir.prepare(str(tmp_path / "out"), "notes", fresh=False)
    assert sorted(p.name for p in theirs.iterdir()) == [rundir.MARKER, "precious.txt"]
    rundir.prepare(str(tmp_path / "out"), "empty", fresh=False)  # an empty folder is fine
    assert (tmp_path / "out" / "empty" / rundir.MARKER).is_file()


def test_sync_removes_links_in_its_run_directory_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.ops_helpers import foveabench_here

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "clean.parquet").write_text("someone's table")
    run_dir = rundir.prepare(str(tmp_path / "out"), "ours", fresh=False).local_path
    (run_dir / "config.yaml").write_text("name: [unclosed\n")
    (run_dir / "manifest.parquet").write_text("x")
    (run_dir / "summary").symlink_to(outside)
    done = foveabench_here(capsys, "sync", str(run_dir))
    rc, err = done.returncode, done.stderr
    assert rc == 2 and f"sync: removed the link {run_dir / 'summary'}" in err, err[-3000:]
    assert not (run_dir / "summary").exists()
    assert (outside / "clean.parquet").read_text() == "someone's table"
