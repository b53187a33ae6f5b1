"""Arrow schemas and row types of ``manifest.parquet`` and ``bad_rows.parquet``.

The manifest is a contract (docs/architecture.md): other stages read these exact columns,
so they are declared once here and every table is built against them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

SCHEMA_VERSION = 1

BOX_TYPE = pa.struct(
    [
        ("xmin", pa.float64()),
        ("ymin", pa.float64()),
        ("xmax", pa.float64()),
        ("ymax", pa.float64()),
    ]
)

MANIFEST_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("label", pa.int64()),
        ("wnid", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("boxes", pa.list_(BOX_TYPE)),
        ("schema_version", pa.int32()),
    ]
)

BAD_ROWS_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("source", pa.string()),  # the file that is wrong
        ("row", pa.int64()),  # line number in ``source``, null for whole files
        ("kind", pa.string()),  # machine-readable category, see KINDS
        ("reason", pa.string()),  # what is wrong and how to fix it
        ("schema_version", pa.int32()),
    ]
)

# kind -> (singular, plural) for the one-line summary.
KINDS: dict[str, tuple[str, str]] = {
    "missing_image": ("missing image file", "missing image files"),
    "unreadable_image": ("unreadable image", "unreadable images"),
    "box_outside_image": ("box outside image", "boxes outside image"),
    "unknown_wnid": ("unknown wnid", "unknown wnids"),
    "missing_annotation": ("missing annotation", "missing annotations"),
    "bad_annotation": ("malformed annotation", "malformed annotations"),
    "duplicate_image_id": ("duplicate image_id", "duplicate image_ids"),
    "oversized_image": ("oversized image", "oversized images"),
    "outside_root": ("file outside the dataset root", "files outside the dataset root"),
    "bad_file_name": ("file name that is not UTF-8", "file names that are not UTF-8"),
    "not_a_file": ("entry that is not a regular file", "entries that are not regular files"),
}


def printable(text: str) -> str:
    """``text`` with bytes that are not UTF-8 (from a file name) shown as ``\\xNN``.

    Python keeps such bytes as lone surrogates, which Arrow and strict stdout
    refuse; every string of a bad row passes through here.
    """
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def is_utf8(text: str) -> bool:
    """Whether ``text`` (a file name, an id) is valid UTF-8 (holds no escaped bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Box:
    """An object box in 0-based pixel-edge coordinates of the original image.

    Pixel column ``i`` (covering ``[i, i + 1)``) is inside iff ``xmin <= i < xmax``.
    ``raw`` says how the box was written in its source file, for error messages.
    """

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    raw: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, float]:
        return {"xmin": self.xmin, "ymin": self.ymin, "xmax": self.xmax, "ymax": self.ymax}


@dataclass(frozen=True)
class Candidate:
    """An image a layout found, before its file, label and boxes are checked."""

    image_id: str
    path: Path
    wnid: str
    boxes: tuple[Box, ...] = ()
    annotation: Path | None = None  # where wnid/boxes came from (None: the folder name)
    row: int | None = None  # line in ``annotation``


@dataclass(frozen=True)
class BadRow:
    """One reason an image is excluded from the manifest."""

    image_id: str
    source: Path
    kind: str
    reason: str
    row: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown bad-row kind {self.kind!r}; known: {sorted(KINDS)}")

    def as_dict(self) -> dict[str, object]:
        return {
            "image_id": printable(self.image_id),
            "source": printable(str(self.source)),
            "row": self.row,
            "kind": self.kind,
            "reason": printable(self.reason),
            "schema_version": SCHEMA_VERSION,
        }
