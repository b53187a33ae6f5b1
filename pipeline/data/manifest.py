"""Build the manifest: one checked row per image, and a reason for every image left out.

Layouts only find images; every check that can exclude an image (label, file,
boxes, duplicates) happens here, once, so all layouts report problems alike.
A hostile dataset costs rows, never the run: a file name that is not UTF-8, a
path that leads outside the dataset root and a decompression bomb are bad rows
like a truncated JPEG.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path

import pyarrow as pa

from pipeline.data.annotations import box_problem
from pipeline.data.classes import wnid_to_index
from pipeline.data.layouts import LAYOUTS
from pipeline.data.limits import DataLimits, limits_in_force
from pipeline.data.probe import IMAGE_SUFFIXES, ImageProblem, probe_image
from pipeline.data.remote import Shadow, probe_remote, shadow_tree
from pipeline.data.schema import (
    BAD_ROWS_SCHEMA,
    KINDS,
    MANIFEST_SCHEMA,
    SCHEMA_VERSION,
    BadRow,
    Candidate,
    is_utf8,
    printable,
)
from pipeline.results.storage import Location, is_uri

_CHUNK = 64  # images probed per batch; PIL decodes without the GIL, so threads help


@dataclass(frozen=True)
class Manifest:
    """The checked images (``table``) and the excluded ones with reasons (``bad_rows``)."""

    table: pa.Table
    bad_rows: pa.Table

    def summary_line(self) -> str:
        """E.g. ``manifest: 98 images, 2 bad rows (1 unreadable image, ...); see bad_rows.parquet``."""
        n_bad = self.bad_rows.num_rows
        line = f"manifest: {self.table.num_rows} images, {self._bad()}"
        return f"{line}; see bad_rows.parquet" if n_bad else line

    def _bad(self) -> str:
        """``2 bad rows (1 unreadable image, 1 missing annotation)``."""
        n_bad = self.bad_rows.num_rows
        text = f"{n_bad} bad row{'s' * (n_bad != 1)}"
        if not n_bad:
            return text
        counts = Counter(self.bad_rows.column("kind").to_pylist())
        parts = [
            f"{n} {KINDS[k][n != 1]}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])
        ]
        return f"{text} ({', '.join(parts)})"

    def nothing_usable(self, dataset: str, limit: int | None, bad_rows: object) -> str:
        """Why a manifest without rows cannot run, in one line: a limit of 0, no file named
        like an image at all, or every file found bad (``bad_rows``: where they are listed)."""
        if limit == 0:
            return f"no usable image in dataset {dataset}: dataset.limit is 0; raise it or leave it out"
        if not self.bad_rows.num_rows:
            suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
            return (
                f"no usable image in dataset {dataset}: 0 files found (named {suffixes}); "
                "point dataset.root at the folder that holds the images"
            )
        return (
            f"no usable image in dataset {dataset}: every file found is bad, {self._bad()}: "
            f"see {bad_rows}, each row names the file and its fix"
        )


def build_manifest(
    layout: str,
    root: str | Path | None,
    limit: int | None = None,
    limits: DataLimits | None = None,
) -> Manifest:
    """Manifest of ``root`` read with ``layout``, sorted by image_id, first ``limit`` rows.

    With a limit, images are checked in image_id order only until ``limit`` good
    rows exist, so ``limit: 100`` on the 50,000 val images is fast; bad rows then
    cover the images examined.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0 or None, got {limit}")
    with limits_in_force(limits):  # per-image bounds (pipeline/data/limits.py)
        if root is not None and is_uri(root):
            with shadow_tree(Location(root)) as shadow:
                return _build(layout, shadow.root, limit, shadow)
        return _build(layout, Path(root).resolve() if root is not None else None, limit, None)


def _build(
    layout: str, root_path: Path | None, limit: int | None, shadow: Shadow | None
) -> Manifest:
    found = LAYOUTS.get(layout)(root_path)
    items = sorted(
        _flag_duplicates(found), key=lambda item: (item.image_id, isinstance(item, Candidate))
    )
    rows: list[dict[str, object]] = []
    bad: list[BadRow] = []
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for chunk in _chunks(items, _CHUNK):
            if limit is not None and len(rows) >= limit:
                break
            for checked in pool.map(partial(_check, root=root_path, shadow=shadow), chunk):
                if limit is not None and len(rows) >= limit:
                    break
                if isinstance(checked, dict):
                    rows.append(checked)
                else:
                    bad.extend(checked)
    return Manifest(
        table=pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA),
        bad_rows=pa.Table.from_pylist([b.as_dict() for b in bad], schema=BAD_ROWS_SCHEMA),
    )


def _chunks(items: list[Candidate | BadRow], size: int) -> Iterator[list[Candidate | BadRow]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _flag_duplicates(found: Iterable[Candidate | BadRow]) -> Iterator[Candidate | BadRow]:
    """Keep the first candidate of each image_id; later ones become bad rows."""
    first: dict[str, Path] = {}
    for item in found:
        if isinstance(item, Candidate):
            if item.image_id in first:
                yield BadRow(
                    item.image_id,
                    item.path,
                    "duplicate_image_id",
                    f"image_id {item.image_id!r} is also {first[item.image_id]}; image_id is the "
                    "file stem and must be unique, rename or remove one of them",
                )
                continue
            first[item.image_id] = item.path
        yield item


def _check(
    item: Candidate | BadRow, root: Path | None, shadow: Shadow | None = None
) -> dict[str, object] | list[BadRow]:
    """The manifest row of a candidate, or every reason it is excluded.

    Files are only opened inside ``root`` (None: the embedded sample set).
    """
    if isinstance(item, BadRow):
        return [item]
    c = item
    source = c.annotation or c.path
    if not is_utf8(str(c.path)) or not is_utf8(c.image_id):
        name = printable(str(c.path))
        why = (
            f"file name {name} is not valid UTF-8 (its bytes are shown as \\xNN); the manifest "
            "stores UTF-8 paths, so rename the file (e.g. convmv -f latin1 -t utf8)"
        )
        return [BadRow(c.image_id, c.path, "bad_file_name", why)]
    problems: list[BadRow] = []
    label = wnid_to_index().get(c.wnid)
    if label is None:
        problems.append(
            BadRow(
                c.image_id,
                source,
                "unknown_wnid",
                f"wnid {c.wnid!r} is not one of the 1000 ILSVRC-2012 classes; fix the label",
                c.row,
            )
        )
    remote = shadow.uri(Path(c.path)) if shadow is not None else None
    try:
        width, height = probe_remote(remote) if remote else probe_image(c.path, root)
    except ImageProblem as exc:
        # A missing file is the annotation's fault (it names the file); a broken one is the image's.
        where = (source, c.row) if exc.kind == "missing_image" else (c.path, None)
        problems.append(BadRow(c.image_id, where[0], exc.kind, exc.reason, where[1]))
        return problems
    for k, box in enumerate(c.boxes, start=1):
        reason = box_problem(box, width, height)
        if reason:
            problems.append(
                BadRow(c.image_id, source, "box_outside_image", f"box {k}: {reason}", c.row)
            )
    if problems:
        return problems
    return {
        "image_id": c.image_id,
        "path": remote or str(c.path),
        "label": label,
        "wnid": c.wnid,
        "width": width,
        "height": height,
        "boxes": [b.as_dict() for b in c.boxes],
        "schema_version": SCHEMA_VERSION,
    }
