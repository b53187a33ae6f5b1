"""Reuse a run's manifest when the dataset has not changed since it was built.

Checking every image is the slow part of a start (about 70 s for the 50,000
validation images on two cores), and a resumed run used to pay it again before
its first shard. The manifest is kept beside its *fingerprint*: a digest of the
dataset settings, of the manifest code, and of one listing of the dataset root
(every file's relative path, size and modification time). Any added, removed,
replaced or touched file, another limit or layout, or a new version of the checks
gives another fingerprint, and the manifest is built again.

A local root is listed without following links (a link is listed by its own
target text): a link to ``..`` or ``/usr`` inside the root must not make a start
hang or walk the machine. Names that are not UTF-8 are hashed as their bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs

from pipeline.data.limits import DEFAULT, DataLimits
from pipeline.data.manifest import Manifest, build_manifest
from pipeline.data.schema import SCHEMA_VERSION
from pipeline.results.catalogue import BAD_ROWS, MANIFEST, MANIFEST_FINGERPRINT
from pipeline.results.storage import Location, is_uri, read_table, write_table


def _code_digest() -> str:
    """The manifest code itself: a changed check must not reuse an old verdict."""
    digest = hashlib.sha1()
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def dataset_fingerprint(layout: str, root: str | None, limit: int | None) -> str | None:
    """Digest of what the manifest depends on; None for the embedded sample (no root)."""
    if root is None:
        return None
    where = Location(root if is_uri(root) else Path(root).resolve())
    listing = sorted(_local_listing(where.local_path) if where.is_local else _listing(where))
    digest = hashlib.sha1()
    header = [layout, str(where), limit, SCHEMA_VERSION, _code_digest()]
    digest.update(json.dumps(header).encode())
    for entry in listing:
        digest.update(b"\0".join(entry) + b"\n")
    return digest.hexdigest()


def _listing(where: Location) -> Iterator[tuple[bytes, ...]]:
    """(path, size, mtime) of every file under an object-store root (no links there)."""
    selector = pafs.FileSelector(where.path, allow_not_found=True, recursive=True)
    for info in where.fs.get_file_info(selector):
        if info.type == pafs.FileType.File:
            yield info.path.encode(), str(info.size).encode(), str(info.mtime_ns).encode()


def _local_listing(root: Path) -> Iterator[tuple[bytes, ...]]:
    """(path, size, mtime[, link target]) of every entry under ``root`` that is not a
    directory, links included as links: nothing outside the root is listed or followed."""
    if not root.is_dir():
        return
    for parent, dirs, files in os.walk(root):  # followlinks=False: a linked dir is a file here
        for name in (*files, *(d for d in dirs if os.path.islink(os.path.join(parent, d)))):
            path = os.path.join(parent, name)
            try:
                info = os.lstat(path)
                target = os.readlink(path) if os.path.islink(path) else ""
            except OSError:  # gone while listing: the next start lists it again
                continue
            yield (
                os.fsencode(path), str(info.st_size).encode(), str(info.st_mtime_ns).encode(),
                os.fsencode(target),
            )  # fmt: skip


def load_or_build(
    run_dir: Location,
    layout: str,
    root: str | None,
    limit: int | None,
    limits: DataLimits | None = None,
) -> tuple[Manifest, bool]:
    """The run's manifest (and whether it was reused), written to ``run_dir``; other
    ``limits`` than the manifest was built with build it again."""
    key = dataset_fingerprint(layout, root, limit)
    if key is not None and limits not in (None, DEFAULT):
        key += f"-{limits}"
    stamp = run_dir / MANIFEST_FINGERPRINT
    if key is not None and stamp.is_file() and stamp.read_text().strip() == key:
        try:
            return Manifest(read_table(run_dir / MANIFEST), read_table(run_dir / BAD_ROWS)), True
        except (FileNotFoundError, OSError):
            pass  # a file is missing or unreadable: build it again
    manifest = build_manifest(layout, root, limit, limits)
    if stamp.is_file():
        stamp.delete()  # never a fingerprint beside a manifest it does not describe
    write_table(manifest.table, run_dir / MANIFEST)
    write_table(manifest.bad_rows, run_dir / BAD_ROWS)
    if key is not None:
        stamp.write_text(key + "\n")
    return manifest, False
