"""Hostile datasets (issue 13): every bad file is one bad row with a reason and a fix,
the rest of the manifest goes on, and nothing outside the dataset root is ever opened.

Each file is built on the fly. Every ``open()`` of the process is recorded with
an audit hook (``sys.addaudithook``) while a manifest is built, and every folder
listed, so "never read" and "never listed" are checked, not assumed.
"""

from __future__ import annotations

import csv
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.data import build_manifest
from pipeline.data.layouts import ManifestError
from tests.ops_helpers import foveabench_here
from tests.test_manifest import TENCH, bad, jpeg, xml

pytestmark = pytest.mark.unit

_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _OPENED is not None and event in _READS and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(os.fsdecode(args[0]))


_READS = ("open", "os.listdir", "os.scandir")  # a file opened, a folder listed


sys.addaudithook(_audit)


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """Every path opened or listed (by any thread) inside the block."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def assert_never_opened(opened: list[str], outside: Path) -> None:
    read = [p for p in opened if Path(p).resolve().is_relative_to(outside.resolve())]
    assert not read, f"files outside the dataset root were opened or listed: {read}"
    assert opened, "the audit hook recorded nothing: the check would be vacuous"


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A real 8x8 PNG whose IHDR says ``width`` x ``height`` (CRC fixed, so it parses)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    data = bytearray(path.read_bytes())
    struct.pack_into(">II", data, 16, width, height)  # IHDR data starts at byte 16
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A real 8x8 JPEG whose SOF0 header says ``width`` x ``height``."""
    jpeg(path, (8, 8))
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    path.write_bytes(bytes(data))
    return path


def test_decompression_bombs_are_bad_rows_and_the_rest_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / TENCH
    jpeg(folder / "good.JPEG")
    png_claiming(folder / "png_400mpx.png", 20000, 20000)  # over PIL's hard limit (179 Mpx)
    png_claiming(folder / "png_144mpx.png", 12000, 12000)  # over its warning limit (89 Mpx)
    jpeg_claiming(folder / "jpeg_4gpx.JPEG", 65000, 65000)
    m = build_manifest("imagefolder", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["good"]
    rows = bad(m.bad_rows)
    assert {k: kind for k, (kind, _) in rows.items()} == {
        "png_400mpx": "oversized_image",
        "png_144mpx": "oversized_image",
        "jpeg_4gpx": "oversized_image",
    }
    for _, reason in rows.values():
        assert "claims too many pixels" in reason and "downscale it or remove it" in reason
    assert "Image size (400000000 pixels) exceeds limit" in rows["png_400mpx"][1]
    assert "12000x12000 = 144000000 pixels" in rows["png_144mpx"][1]


def test_a_file_name_that_is_not_utf8_is_one_bad_row(tmp_path: Path) -> None:
    folder = tmp_path / TENCH
    jpeg(folder / "good.JPEG")
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.JPEG")  # Latin-1 e-acute
    jpeg(Path(os.fsdecode(raw)))
    m = build_manifest("imagefolder", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["good"]
    (row,) = m.bad_rows.to_pylist()
    assert row["kind"] == "bad_file_name" and row["image_id"] == "caf\\xe9"
    assert "caf\\xe9.JPEG is not valid UTF-8" in row["reason"] and "rename" in row["reason"]
    pq.write_table(m.bad_rows, tmp_path / "bad_rows.parquet")  # Arrow takes every string
    assert pq.read_table(tmp_path / "bad_rows.parquet").num_rows == 1


def test_kaggle_image_ids_that_are_paths_are_bad_rows_and_never_read(tmp_path: Path) -> None:
    root, outside = tmp_path / "kaggle", tmp_path / "outside"
    val = root / "ILSVRC/Data/CLS-LOC/val"
    jpeg(val / "v1.JPEG")
    jpeg(outside / "x.JPEG")  # a valid image: reading it would make a manifest row
    absolute = str(outside / "x")
    with (root / "LOC_val_solution.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        for image_id in ("v1", "../../../outside/x", absolute):
            writer.writerow([image_id, f"{TENCH} 1 1 8 8"])
    with opened_files() as opened:
        m = build_manifest("kaggle", root)
    assert m.table.column("image_id").to_pylist() == ["v1"]
    rows = {r["image_id"]: r for r in m.bad_rows.to_pylist()}
    assert set(rows) == {"../../../outside/x", absolute}
    for row in rows.values():
        assert row["kind"] == "bad_annotation" and row["source"].endswith("LOC_val_solution.csv")
        assert "is a path, not a file name" in row["reason"] and "fix the row" in row["reason"]
    assert rows["../../../outside/x"]["row"] == 3 and rows[absolute]["row"] == 4
    assert_never_opened(opened, outside)


def test_links_out_of_the_root_are_bad_rows_and_never_read(tmp_path: Path) -> None:
    root, outside = tmp_path / "data", tmp_path / "outside"
    jpeg(outside / "secret.JPEG")
    xml(outside / "secret.xml", (TENCH, 1, 1, 8, 8))
    # imagefolder: an image that is a link to a file outside the root
    folder = root / "folder" / TENCH
    jpeg(folder / "good.JPEG")
    (folder / "linked.JPEG").symlink_to(outside / "secret.JPEG")
    # ilsvrc: a bbox XML that is a link outside, and an image that is one
    ilsvrc = root / "ilsvrc"
    for name in ("good", "xml_linked"):
        jpeg(ilsvrc / "images" / f"{name}.JPEG")
    xml(ilsvrc / "bbox" / "good.xml", (TENCH, 1, 1, 8, 8))
    (ilsvrc / "bbox" / "xml_linked.xml").symlink_to(outside / "secret.xml")
    (ilsvrc / "images" / "img_linked.JPEG").symlink_to(outside / "secret.JPEG")
    xml(ilsvrc / "bbox" / "img_linked.xml", (TENCH, 1, 1, 8, 8))

    with opened_files() as opened:
        folder_m = build_manifest("imagefolder", root / "folder")
        ilsvrc_m = build_manifest("ilsvrc", ilsvrc)
    assert folder_m.table.column("image_id").to_pylist() == ["good"]
    assert ilsvrc_m.table.column("image_id").to_pylist() == ["good"]
    rows = {**bad(folder_m.bad_rows), **bad(ilsvrc_m.bad_rows)}
    assert {k: kind for k, (kind, _) in rows.items()} == {
        "linked": "outside_root",
        "xml_linked": "outside_root",
        "img_linked": "outside_root",
    }
    for _, reason in rows.values():
        assert str(outside / "secret") in reason and "outside the dataset root" in reason
        assert "copy" in reason
    assert_never_opened(opened, outside)


def test_folders_linked_out_of_the_root_are_never_listed(tmp_path: Path) -> None:
    """images/, bbox/, a Kaggle image folder (a link deep in ILSVRC/Data/CLS-LOC/val), an
    imagefolder class folder and a devkit folder, each a link out of the root: a dataset
    error or a bad row naming the folder, and nothing behind the link is listed or read."""
    outside = tmp_path / "outside"
    jpeg(outside / "Data" / "CLS-LOC" / "val" / "v1.JPEG")
    xml(outside / "data" / "v1.xml", (TENCH, 1, 1, 8, 8))
    (outside / "data" / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n")
    roots = {name: tmp_path / name for name in ("images", "bbox", "kaggle", "folder", "devkit")}
    jpeg(roots["bbox"] / "images" / "v1.JPEG")
    xml(roots["images"] / "bbox" / "v1.xml", (TENCH, 1, 1, 8, 8))
    (roots["images"] / "images").symlink_to(outside / "Data" / "CLS-LOC" / "val")
    (roots["bbox"] / "bbox").symlink_to(outside / "data")
    (roots["kaggle"] / "LOC_val_solution.csv").parent.mkdir()
    (roots["kaggle"] / "LOC_val_solution.csv").write_text(
        f"ImageId,PredictionString\nv1,{TENCH} 1 1 8 8\n"
    )
    (roots["kaggle"] / "ILSVRC").symlink_to(outside)
    jpeg(roots["folder"] / TENCH / "good.JPEG")
    (roots["folder"] / "n01443537").symlink_to(outside / "Data" / "CLS-LOC" / "val")
    jpeg(roots["devkit"] / "ILSVRC2012_val_00000001.JPEG")
    (roots["devkit"] / "devkit").symlink_to(outside)
    with opened_files() as opened:
        for layout, name in [("ilsvrc", "images"), ("ilsvrc", "bbox"), ("kaggle", "kaggle")]:
            with pytest.raises(ManifestError, match="outside the dataset root") as info:
                build_manifest(layout, roots[name])
            assert "lists nothing outside dataset.root" in str(info.value)
        folder_m = build_manifest("imagefolder", roots["folder"])
        with pytest.raises(ManifestError, match="no bbox/ folder and no ILSVRC2012_validation"):
            build_manifest("ilsvrc", roots["devkit"])
    assert folder_m.table.column("image_id").to_pylist() == ["good"]
    kind, reason = bad(folder_m.bad_rows)["n01443537"]
    assert kind == "outside_root" and "the class folder resolves to" in reason
    assert_never_opened(opened, outside)


def test_prepare_writes_the_bad_rows_and_keeps_the_good_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command on a dataset with every hostile file at once: exit 0, both files."""
    root, out = tmp_path / "data", tmp_path / "out"
    folder = root / TENCH
    jpeg(folder / "good.JPEG")
    png_claiming(folder / "bomb.png", 20000, 20000)
    jpeg(Path(os.fsdecode(os.path.join(os.fsencode(folder), b"\xff\xfe.JPEG"))))
    jpeg(tmp_path / "elsewhere.JPEG")
    (folder / "link.JPEG").symlink_to(tmp_path / "elsewhere.JPEG")
    args = ["prepare", "--layout", "imagefolder", "--root", str(root), "--out", str(out)]
    done = foveabench_here(capsys, *args)
    assert done.returncode == 0, done.stderr
    assert "1 images, 3 bad rows" in done.stderr
    assert pq.read_table(out / "manifest.parquet").column("image_id").to_pylist() == ["good"]
    kinds = sorted(pq.read_table(out / "bad_rows.parquet").column("kind").to_pylist())
    assert kinds == ["bad_file_name", "outside_root", "oversized_image"]
