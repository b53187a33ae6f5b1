"""Resource limits before work (issue 26): a file that would make the run allocate
gigabytes is a bad row before it is decoded or parsed in full.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipeline.data import build_manifest
from tests.test_hostile_data import png_claiming
from tests.test_manifest import TENCH, XML_OBJECT, bad, jpeg, xml

pytestmark = pytest.mark.unit


def test_a_strip_whose_resize_would_be_huge_is_a_bad_row(tmp_path: Path) -> None:
    folder = tmp_path / TENCH
    jpeg(folder / "good.JPEG")
    png_claiming(folder / "strip.png", 1, 60_000)  # center_crop: a 256 x 15,360,000 resize
    m = build_manifest("imagefolder", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["good"]
    kind, reason = bad(m.bad_rows)["strip"]
    assert kind == "oversized_image" and "1x60000, more than 30:1" in reason


def test_too_many_boxes_for_one_image_are_a_bad_row(tmp_path: Path) -> None:
    jpeg(tmp_path / "images" / "a.JPEG")
    xml(tmp_path / "bbox" / "a.xml", (TENCH, 1, 1, 40, 30))
    jpeg(tmp_path / "images" / "b.JPEG")
    xml(tmp_path / "bbox" / "b.xml", *[(TENCH, 1, 1, 8, 8)] * 1001)
    jpeg(tmp_path / "images" / "c.JPEG")
    big = XML_OBJECT.format(TENCH, 1, 1, 8, 8) * 12_000  # 1.3 MB
    (tmp_path / "bbox" / "c.xml").write_text(f"<annotation>{big}</annotation>")
    m = build_manifest("ilsvrc", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["a"]
    rows = bad(m.bad_rows)
    assert rows["b"][0] == "bad_annotation" and "more than 1000 boxes" in rows["b"][1]
    assert rows["c"][0] == "bad_annotation" and "it is not parsed" in rows["c"][1]


def test_too_many_kaggle_boxes_for_one_image_are_a_bad_row(tmp_path: Path) -> None:
    jpeg(tmp_path / "val" / "v1.JPEG")
    with (tmp_path / "LOC_val_solution.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        writer.writerow(["v1", f"{TENCH} 1 1 8 8 " * 1001])
    m = build_manifest("kaggle", tmp_path)
    assert m.table.num_rows == 0
    kind, reason = bad(m.bad_rows)["v1"]
    assert kind == "bad_annotation" and "more than 1000 boxes" in reason and ":2:" in reason
