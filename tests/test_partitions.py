"""Shard pieces, commit records and compaction on a real (local) filesystem.

The same code runs against S3 in tests/test_object_store.py; here each rule is
pinned on its own: a piece counts only once committed, compaction folds pieces
into one file that is its own commit record, a crash between its steps loses
and duplicates nothing, and a changed manifest makes a shard's record stale.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.results.compaction import compact_stage
from pipeline.results.partitions import (
    COMPACTED,
    CommitIndex,
    commit,
    compact,
    piece_name,
    read_partition,
    write_committed,
)
from pipeline.results.storage import Location, write_table

PART = "attacks/model=m/attack=a"


def rows(ids: list[str], value: float = 1.0) -> pa.Table:
    return pa.table({"image_id": ids, "l1pp": [value] * len(ids)})


def ids_of(table: pa.Table | None) -> list[str]:
    return [] if table is None else sorted(table.column("image_id").to_pylist())


@pytest.mark.unit
def test_a_piece_counts_only_once_its_commit_record_exists(tmp_path: Path) -> None:
    run = Location(tmp_path)
    write_table(rows(["a", "b"]), run / PART / piece_name(0))  # a writer killed before commit
    assert read_partition(run, PART) is None
    assert not CommitIndex.load(run).done(PART, 0, ["a", "b"])
    commit(run, PART, 0, ["a", "b"])
    assert ids_of(read_partition(run, PART)) == ["a", "b"]
    assert CommitIndex.load(run).done(PART, 0, ["b", "a"])
    assert not CommitIndex.load(run).done(PART, 0, ["a", "c"]), "another manifest: stale"


@pytest.mark.unit
def test_compaction_folds_pieces_into_one_file_that_is_its_own_commit_record(
    tmp_path: Path,
) -> None:
    run = Location(tmp_path)
    write_committed(tmp_path, PART, 1, rows(["c"]))
    write_committed(tmp_path, PART, 0, rows(["a", "b"]))
    assert compact(run, PART) == 2
    assert sorted(p.name for p in (tmp_path / PART).iterdir()) == [COMPACTED]
    assert not list((tmp_path / "_commits").rglob("*.ok"))
    index = CommitIndex.load(run)
    assert index.done(PART, 0, ["a", "b"]) and index.done(PART, 1, ["c"])
    assert ids_of(read_partition(run, PART)) == ["a", "b", "c"]
    assert ids_of(read_partition(run, PART, shard=1)) == ["c"]
    # a later stage adds a shard and replaces one: the file is rewritten with both
    write_committed(tmp_path, PART, 2, rows(["d"]))
    write_committed(tmp_path, PART, 1, rows(["c"], value=7.0))
    assert ids_of(read_partition(run, PART)) == ["a", "b", "c", "d"], "no duplicate before"
    assert compact(run, PART) == 2
    table = read_partition(run, PART, with_shard=True)
    assert table is not None and ids_of(table) == ["a", "b", "c", "d"]
    assert (
        dict(zip(table["image_id"].to_pylist(), table["l1pp"].to_pylist(), strict=True))["c"] == 7.0
    )
    assert compact(run, PART) == 0, "nothing left to fold"


@pytest.mark.unit
def test_a_compaction_that_died_before_removing_a_record_neither_fails_nor_duplicates(
    tmp_path: Path,
) -> None:
    run = Location(tmp_path)
    write_committed(tmp_path, PART, 0, rows(["a", "b"]))
    compact(run, PART)
    commit(run, PART, 0, ["a", "b"])  # the record came back: its piece is already gone
    assert ids_of(read_partition(run, PART)) == ["a", "b"]
    assert compact(run, PART) == 1
    assert ids_of(read_partition(run, PART)) == ["a", "b"]


@pytest.mark.unit
def test_a_shard_recomputed_for_a_new_manifest_reads_its_newest_record_and_compaction_drops_both(
    tmp_path: Path,
) -> None:
    run = Location(tmp_path)
    write_committed(tmp_path, PART, 0, rows(["a", "b"]))
    records = tmp_path / "_commits" / PART
    (old,) = records.iterdir()
    os.utime(old, (1.0, 1.0))  # written long before the recomputed shard
    write_committed(tmp_path, PART, 0, rows(["a", "c"]))  # the same shard, another manifest
    (records / "README").write_text("not a record")  # foreign files are ignored
    (records / "shard-x.1.ok").write_text("")
    assert ids_of(read_partition(run, PART)) == ["a", "c"]
    index = CommitIndex.load(run)
    assert index.done(PART, 0, ["a", "c"]) and index.shards(PART) == {0}
    assert compact(run, PART) == 1
    assert sorted(p.name for p in records.iterdir()) == ["README", "shard-x.1.ok"]
    assert CommitIndex.load(run).done(PART, 0, ["a", "c"])
    assert not CommitIndex.load(run).done(PART, 0, ["a", "b"]), "the stale record is gone"


def test_compaction_folds_every_partition_with_pieces_and_logs_each_once(
    tmp_path: Path,
) -> None:
    """In this process, with no Ray (pipeline/results/compaction.py): one file a partition,
    every record gone; a second compaction with nothing left to fold changes nothing and
    logs the same files."""
    run_dir = Location(tmp_path)
    write_committed(tmp_path, PART, 0, rows(["a", "b"]))
    write_committed(tmp_path, PART, 1, rows(["c"]))
    write_committed(tmp_path, "clean/model=m", 0, rows(["a", "b"]))

    logged = compact_stage(run_dir, ("attacks", "clean"))
    assert logged == [(PART, "m"), ("clean/model=m", "m")]
    assert sorted(p.name for p in (tmp_path / PART).iterdir()) == [COMPACTED]
    assert ids_of(read_partition(run_dir, PART)) == ["a", "b", "c"]
    assert not CommitIndex.load(run_dir).records, "records left after compaction"
    folded = (tmp_path / PART / COMPACTED).stat().st_mtime_ns
    again = compact_stage(run_dir, ("attacks", "clean"))
    assert again == logged, "the compacted files are still logged"
    assert (tmp_path / PART / COMPACTED).stat().st_mtime_ns == folded, "folded again"


def test_partitions_folded_at_once_each_hold_their_own_rows_and_shards(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three times more partitions than folding threads, each with its own rows in three
    pieces: every compacted file holds exactly its partition's rows and shards (the
    threads share nothing but the run's folder), and every record is gone."""
    from pipeline.results import compaction

    monkeypatch.setattr(compaction, "FOLD_THREADS", 4)
    run_dir = Location(tmp_path)
    parts = {f"attacks/model=m{i}/attack=a": [f"m{i}-{k}" for k in range(5)] for i in range(12)}
    for part, ids in parts.items():
        for shard, some in enumerate((ids[:2], ids[2:4], ids[4:])):
            write_committed(tmp_path, part, shard, rows(some))

    logged = compact_stage(run_dir, ("attacks",))
    assert sorted(p for p, _ in logged) == sorted(parts)
    assert not CommitIndex.load(run_dir).records, "records left after compaction"
    for part, ids in parts.items():
        assert sorted(p.name for p in (tmp_path / part).iterdir()) == [COMPACTED], part
        table = read_partition(run_dir, part, with_shard=True)
        assert table is not None and ids_of(table) == ids, part
        assert sorted(set(table.column("_shard").to_pylist())) == [0, 1, 2], part


def test_every_partitioned_table_builds_and_parses_its_paths_by_its_declared_keys() -> None:
    """Partition paths come from the catalogue's keys (issue 25.2), not from splitting
    strings by hand: each table's path parses back to the values that built it, and a
    path that is not of its table's shape is refused with what the shape is."""
    from pipeline.results.catalogue import RESULT_DIRS, partition_keys

    partitioned = [d for d in RESULT_DIRS if d.keys]
    assert {d.name for d in partitioned} >= {"attacks", "clean", "bounds", "evals", "perturbations"}
    for d in partitioned:
        values = {k.strip("{}"): f"v_{k.strip('{}')}-1.a" for k in d.keys}
        path = d.partition(**values)
        assert path.startswith(f"{d.name}/") and partition_keys(path) == values
    with pytest.raises(ValueError, match="attacks partitions are model/attack"):
        partition_keys("attacks/model=m")
    with pytest.raises(ValueError, match="expected model="):
        partition_keys("clean/target=m")
    with pytest.raises(ValueError, match="partition keys are"):
        RESULT_DIRS[0].partition(model="m")
