"""Hostile dataset files that used to end the run with a traceback (issue 26): each is a
bad row naming the file (and line), what is wrong and the fix, or, for a file the whole
dataset depends on, one dataset error; the rest of the manifest goes on.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.data import build_manifest
from pipeline.data.classes import wnids
from pipeline.data.layouts import ManifestError
from tests.test_manifest import TENCH, bad, jpeg, xml

pytestmark = pytest.mark.unit


def test_an_xml_with_an_unknown_encoding_is_a_bad_row(tmp_path: Path) -> None:
    jpeg(tmp_path / "images" / "a.JPEG")
    xml(tmp_path / "bbox" / "a.xml", (TENCH, 1, 1, 40, 30))
    jpeg(tmp_path / "images" / "b.JPEG")
    (tmp_path / "bbox" / "b.xml").write_text('<?xml version="1.0" encoding="x-bogus"?><a/>')
    m = build_manifest("ilsvrc", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["a"]
    kind, reason = bad(m.bad_rows)["b"]
    assert kind == "bad_annotation" and "b.xml" in reason and "write it as UTF-8" in reason


def test_a_directory_named_like_an_annotation_is_a_bad_row(tmp_path: Path) -> None:
    jpeg(tmp_path / "images" / "a.JPEG")
    xml(tmp_path / "bbox" / "a.xml", (TENCH, 1, 1, 40, 30))
    jpeg(tmp_path / "images" / "b.JPEG")
    (tmp_path / "bbox" / "b.xml").mkdir()
    m = build_manifest("ilsvrc", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["a"]
    kind, reason = bad(m.bad_rows)["b"]
    assert kind == "not_a_file" and "is a directory, not a regular file" in reason


def test_junk_lines_of_the_devkit_ground_truth_are_bad_rows(tmp_path: Path) -> None:
    (tmp_path / "wnids.txt").write_text("\n".join(wnids()) + "\n")
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_bytes(b"1\nabc\n2.0\n\xff\n")
    for n in range(1, 5):
        jpeg(tmp_path / "images" / f"ILSVRC2012_val_{n:08d}.JPEG")
    m = build_manifest("ilsvrc", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["ILSVRC2012_val_00000001"]
    rows = {r["image_id"][-1]: r for r in m.bad_rows.to_pylist()}
    assert sorted(rows) == ["2", "3", "4"]
    assert {r["kind"] for r in rows.values()} == {"unknown_wnid"}
    assert [rows[k]["row"] for k in "234"] == [2, 3, 4]
    assert "abc (not an ILSVRC2012_ID)" in rows["2"]["reason"]
    assert "xff (not an ILSVRC2012_ID)" in rows["4"]["reason"]


def test_a_junk_meta_mat_is_one_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "meta.mat").write_bytes(b"not a MATLAB file at all" * 10)
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n")
    jpeg(tmp_path / "images" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(ManifestError, match="not the devkit's synsets table") as info:
        build_manifest("ilsvrc", tmp_path)
    assert "re-extract meta.mat" in str(info.value) and "\n" not in str(info.value)


def test_kaggle_csv_with_a_bom_and_a_field_over_csvs_limit_is_read(tmp_path: Path) -> None:
    val = tmp_path / "val"
    jpeg(val / "v1.JPEG")
    jpeg(val / "v2.JPEG")
    one = "1." + "0" * 30  # 1, written long: 1,000 boxes make a 140,000-character field
    with (tmp_path / "LOC_val_solution.csv").open("w", newline="", encoding="utf-8-sig") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        writer.writerow(["v1", f"{TENCH} 1 1 8 8"])
        writer.writerow(["v2", " ".join([f"{TENCH} {one} {one} 8 8"] * 1000)])
    m = build_manifest("kaggle", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["v1", "v2"]
    assert len(m.table.column("boxes").to_pylist()[1]) == 1000
