"""A committed shard piece damaged before a resume (issue 26): detected, moved to
``_quarantine/`` and computed again, instead of a compaction that fails on every rerun.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.results.partitions import (
    CommitIndex,
    compact,
    piece_name,
    quarantine_damaged_pieces,
    read_partition,
    write_committed,
)
from pipeline.results.storage import Location
from tests.test_partitions import PART, rows

pytestmark = pytest.mark.unit


def committed_and_truncated(tmp_path: Path) -> Location:
    """Shards 0 (intact) and 1 (committed, then cut in half) of one partition."""
    run_dir = Location(tmp_path)
    write_committed(tmp_path, PART, 0, rows(["a", "b"]))
    write_committed(tmp_path, PART, 1, rows(["c"]))
    piece = tmp_path / PART / piece_name(1)
    piece.write_bytes(piece.read_bytes()[: piece.stat().st_size // 2])
    return run_dir


def test_a_resume_quarantines_a_damaged_piece_so_its_shard_is_recomputed(
    tmp_path: Path,
) -> None:
    run_dir = committed_and_truncated(tmp_path)
    assert CommitIndex.load(run_dir).done(PART, 1, ["c"])  # the record alone says done
    (line,) = quarantine_damaged_pieces(run_dir)
    assert "is unreadable" in line and "computed again" in line and "_quarantine" in line
    index = CommitIndex.load(run_dir)
    assert index.done(PART, 0, ["a", "b"]) and not index.done(PART, 1, ["c"])
    assert (tmp_path / "_quarantine" / PART / piece_name(1)).is_file()
    assert not (tmp_path / PART / piece_name(1)).exists()
    assert quarantine_damaged_pieces(run_dir) == []  # nothing left to find


def test_compaction_quarantines_a_damaged_piece_instead_of_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = committed_and_truncated(tmp_path)
    assert compact(run_dir, PART) == 1
    table = read_partition(run_dir, PART)
    assert table is not None and table.column("image_id").to_pylist() == ["a", "b"]
    assert not CommitIndex.load(run_dir).done(PART, 1, ["c"])
    assert "computed again" in capsys.readouterr().err
