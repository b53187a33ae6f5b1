"""Result partitions: shard pieces while a stage runs, one compacted file after it.

A partition is one folder of a table, e.g. ``attacks/model=m/attack=a/``. While a
stage runs, actors write one piece per shard (``shard-<nnnnn>.parquet``) and then
the shard's commit record (``_commits/<partition>/shard-<nnnnn>.<ids>.ok``, ``ids``
a digest of the shard's image ids). A shard is done only when its record exists:
object stores have no rename, so a piece without a record (a worker killed between
writes) is simply computed again and overwritten with the same content.

After a stage, :func:`compact` folds every committed piece of a partition into
``data.parquet`` (rows sorted by ``image_id``, a ``_shard`` column, and the folded
shards' digests in its schema metadata, which makes the file its own commit record),
then deletes the pieces and their records. A 50k-image run thus ends with a few
files per partition instead of one per shard. Readers see the compacted rows plus
any committed piece not folded yet; both orders of a crash between the steps are
safe: the file is replaced whole, and pieces already in it are ignored.

A committed piece can still be damaged afterwards (a disk error, a truncating
copy). A resume checks every committed piece's footer, and compaction every piece
it reads: an unreadable one is moved to ``_quarantine/<partition>/``, its records
are deleted, and the shard is computed again, instead of a compaction that fails
the same way on every rerun.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from pipeline.results.rundir import COMMITS, QUARANTINE
from pipeline.results.storage import (
    Location,
    RunDir,
    location,
    parquet_writer,
    read_schema,
    read_table,
    write_table,
)

COMPACTED = "data.parquet"
SHARD_COLUMN = "_shard"
_META_KEY = b"foveabench.shards"  # {"<shard>": "<ids digest>"} of the folded pieces
ROW_GROUP = 8192  # rows per row group at most...
GROUP_BYTES = 16 << 20  # ...and about this many bytes (perturbation rows are ~100 KiB)


def ids_digest(image_ids: Iterable[str]) -> str:
    """A short digest of a shard's image ids: a changed manifest makes old records stale."""
    return hashlib.sha1("\n".join(sorted(image_ids)).encode()).hexdigest()[:12]


def piece_name(shard: int) -> str:
    return f"shard-{shard:05d}.parquet"


def _record(run_dir: Location, partition: str, shard: int, digest: str) -> Location:
    return run_dir / COMMITS / partition / f"shard-{shard:05d}.{digest}.ok"


def _parse_record(name: str) -> tuple[int, str] | None:
    """``shard-<nnnnn>.<digest>.ok`` -> (shard, digest); None for any other file."""
    parts = name.split(".")
    if len(parts) != 3 or parts[2] != "ok" or not parts[0].startswith("shard-"):
        return None
    number = parts[0].removeprefix("shard-")
    return (int(number), parts[1]) if number.isdigit() else None


def commit(run_dir: Location, partition: str, shard: int, image_ids: Sequence[str]) -> None:
    """Mark one shard of a partition done (after every file of its unit is written)."""
    record = _record(run_dir, partition, shard, ids_digest(image_ids))
    record.write_text(json.dumps({"rows_for": len(image_ids)}))


def write_committed(run_dir: RunDir, partition: str, shard: int, table: pa.Table) -> None:
    """One piece and its commit record (a unit of one table: benchmarks, tests)."""
    root = location(run_dir)
    write_table(table, root / partition / piece_name(shard))
    commit(root, partition, shard, table.column("image_id").to_pylist())


def _folded(data: Location) -> dict[int, str]:
    """Shard -> ids digest of the pieces folded into a compacted file."""
    try:
        meta = read_schema(data).metadata or {}
    except FileNotFoundError:
        return {}
    return {int(k): v for k, v in json.loads(meta.get(_META_KEY, b"{}")).items()}


@dataclass
class CommitIndex:
    """Which shards of which partitions are done: one listing of the commit records plus
    the compacted files' metadata (read once per partition, on demand)."""

    run_dir: Location
    records: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    _compacted: dict[str, dict[int, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Location) -> CommitIndex:
        index = cls(run_dir)
        root = run_dir / COMMITS
        for loc in root.files("*.ok"):
            rel = loc.relative_to(root)
            if (parsed := _parse_record(rel.name)) is not None:
                part = index.records.setdefault(rel.parent.as_posix(), {})
                part.setdefault(parsed[0], set()).add(parsed[1])
        return index

    def compacted(self, partition: str) -> dict[int, str]:
        if partition not in self._compacted:
            self._compacted[partition] = _folded(self.run_dir / partition / COMPACTED)
        return self._compacted[partition]

    def done(self, partition: str, shard: int, image_ids: Sequence[str]) -> bool:
        digest = ids_digest(image_ids)
        if digest in self.records.get(partition, {}).get(shard, set()):
            return True
        return self.compacted(partition).get(shard) == digest

    def shards(self, partition: str) -> set[int]:
        return set(self.records.get(partition, {})) | set(self.compacted(partition))


def _records(run_dir: Location, partition: str) -> dict[int, list[str]]:
    """Shard -> digests of its commit records, oldest first. A shard recomputed after its
    manifest changed can hold an old record beside the new one: the newest (last) wins."""
    found: dict[int, list[tuple[float, str]]] = {}
    root = run_dir / COMMITS / partition
    selector = pafs.FileSelector(root.path, allow_not_found=True, recursive=False)
    for info in root.fs.get_file_info(selector):
        parsed = _parse_record(info.base_name) if info.type == pafs.FileType.File else None
        if parsed is not None:
            stamp = info.mtime.timestamp() if info.mtime is not None else 0.0
            found.setdefault(parsed[0], []).append((stamp, parsed[1]))
    return {shard: [d for _, d in sorted(stamped)] for shard, stamped in found.items()}


def _committed_pieces(run_dir: Location, partition: str) -> dict[int, str]:
    """Shard -> digest of the pieces whose commit record exists (the newest record)."""
    return {shard: digests[-1] for shard, digests in _records(run_dir, partition).items()}


def read_partition(
    run_dir: Location,
    partition: str,
    columns: list[str] | None = None,
    image_ids: Sequence[str] | None = None,
    shard: int | None = None,
    with_shard: bool = False,
) -> pa.Table | None:
    """Committed rows of a partition (compacted rows + pieces not folded yet), or None.

    ``shard`` and ``image_ids`` narrow it to one shard's rows (the evaluation stage
    reading the perturbations of its unit); ``with_shard`` keeps a ``_shard`` column.
    """
    folder = run_dir / partition
    pieces = _committed_pieces(run_dir, partition)
    if shard is not None:
        pieces = {k: v for k, v in pieces.items() if k == shard}
    tables, read = [], []
    wanted = None if columns is None else [c for c in columns if c != SHARD_COLUMN]
    for k in sorted(pieces):
        try:
            piece = read_table(folder / piece_name(k), wanted)
        except FileNotFoundError:
            continue  # folded meanwhile: its rows are in the compacted file
        if image_ids is not None:
            piece = piece.filter(pc.is_in(piece["image_id"], pa.array(list(image_ids))))
        if with_shard:
            piece = piece.append_column(SHARD_COLUMN, pa.array([k] * len(piece), pa.int32()))
        tables.append(piece)
        read.append(k)
    data = folder / COMPACTED
    if not (shard is not None and shard in read) and data.is_file():
        narrow = None if shard is None else [(SHARD_COLUMN, "=", shard)]
        table = read_table(data, None if wanted is None else [*wanted, SHARD_COLUMN], narrow)
        keep = pc.invert(pc.is_in(table[SHARD_COLUMN], pa.array(read, pa.int32())))
        if image_ids is not None:
            keep = pc.and_(keep, pc.is_in(table["image_id"], pa.array(list(image_ids))))
        table = table.filter(keep)
        tables.append(table if with_shard else table.drop_columns([SHARD_COLUMN]))
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


def partitions(run_dir: Location, table_root: str) -> list[str]:
    """Partition folders (relative to the run) of a table such as ``attacks`` or ``evals``:
    every folder with a committed piece or a compacted file."""
    found = {
        f"{table_root}/{loc.relative_to(run_dir / COMMITS / table_root).parent.as_posix()}"
        for loc in (run_dir / COMMITS / table_root).files("*.ok")
    }
    found |= {
        f"{table_root}/{loc.relative_to(run_dir / table_root).parent.as_posix()}"
        for loc in (run_dir / table_root).files("*" + COMPACTED)
        if loc.name == COMPACTED
    }
    return sorted(found)


def _damage(piece: Location) -> str | None:
    """Why a piece's Parquet footer cannot be read, or None (also when it is gone)."""
    try:
        read_schema(piece)
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def quarantine(run_dir: Location, partition: str, shard: int, why: str) -> str:
    """Move a damaged committed piece to ``_quarantine/`` and delete its records, so that
    the shard counts as not done and is computed again; return the line that says so."""
    piece = run_dir / partition / piece_name(shard)
    kept = run_dir / QUARANTINE / partition / piece_name(shard)
    try:
        kept.write_bytes(piece.read_bytes())
        piece.delete()
    except FileNotFoundError:
        pass
    for digest in _records(run_dir, partition).get(shard, []):
        _record(run_dir, partition, shard, digest).delete()
    return (
        f"{piece} was committed but is unreadable ({why}); moved to {kept} and the shard "
        "is computed again (delete the copy once you have looked at it)"
    )


def quarantine_damaged_pieces(run_dir: Location) -> list[str]:
    """At a resume: every committed piece whose footer does not read is quarantined."""
    lines = []
    for partition, shards in CommitIndex.load(run_dir).records.items():
        for shard in sorted(shards):
            why = _damage(run_dir / partition / piece_name(shard))
            if why is not None:
                lines.append(quarantine(run_dir, partition, shard, why))
    return lines


def compact(run_dir: Location, partition: str) -> int:
    """Fold the partition's committed pieces into ``data.parquet``; return pieces folded."""
    folder = run_dir / partition
    records = _records(run_dir, partition)
    pieces = {shard: digests[-1] for shard, digests in records.items()}
    if not pieces:
        return 0
    data = folder / COMPACTED
    folded = _folded(data)
    tables, read = [], []
    for k, digest in sorted(pieces.items()):
        try:
            table = read_table(folder / piece_name(k))
        except FileNotFoundError:  # folded by an earlier compaction that died before the record
            if folded.get(k) == digest:
                continue
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:  # damaged after its commit
            line = quarantine(run_dir, partition, k, f"{type(exc).__name__}: {exc}")
            print(f"compaction: {line} by the next run", file=sys.stderr)
            del records[k]
            continue
        tables.append(table.append_column(SHARD_COLUMN, pa.array([k] * len(table), pa.int32())))
        folded[k] = digest
        read.append(k)
    if not tables and not data.is_file():
        return 0  # every piece was quarantined: nothing to fold
    if data.is_file():
        old = read_table(data)
        stale = pc.is_in(old[SHARD_COLUMN], pa.array(read, pa.int32()))
        tables.append(old.filter(pc.invert(stale)))
    merged = pa.concat_tables(tables, promote_options="permissive")
    merged = merged.sort_by([("image_id", "ascending"), (SHARD_COLUMN, "ascending")])
    meta = {**(tables[0].schema.metadata or {}), _META_KEY: json.dumps(folded).encode()}
    merged = merged.replace_schema_metadata(meta)
    rows = max(64, min(ROW_GROUP, GROUP_BYTES * merged.num_rows // max(merged.nbytes, 1)))
    with parquet_writer(data, merged.schema) as writer:
        writer.write_table(merged, row_group_size=rows)
    for k, digests in records.items():  # records first: a piece left behind is never read
        for digest in digests:  # stale records of an older manifest go with the newest
            _record(run_dir, partition, k, digest).delete()
        (folder / piece_name(k)).delete()
    return len(records)  # the quarantined ones were taken out
