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


def test_the_limits_are_set_in_the_config_and_a_change_rebuilds_the_manifest(
    tmp_path: Path,
) -> None:
    """Configurable (issue 26.4): a dataset of dense annotations raises dataset.max_boxes,
    a strict one lowers dataset.max_aspect; a reused manifest is rebuilt for new limits."""
    from pipeline.config.benchmark import parse_config
    from pipeline.data.reuse import load_or_build
    from pipeline.results.storage import Location

    root = tmp_path / "d"
    jpeg(root / "images" / "a.JPEG")  # 40x30: aspect 1.33
    xml(root / "bbox" / "a.xml", *[(TENCH, 1, 1, 8, 8)] * 1001)
    dense = parse_config({"dataset": {"layout": "ilsvrc", "root": str(root), "max_boxes": 2000}})
    assert build_manifest("ilsvrc", root).table.num_rows == 0  # the default: 1000
    assert build_manifest("ilsvrc", root, None, dense.dataset.limits()).table.num_rows == 1
    strict = parse_config({"dataset": {"layout": "ilsvrc", "root": str(root), "max_boxes": 2000,
                                       "max_aspect": 1.2}})  # fmt: skip
    run = Location(tmp_path / "run")
    (tmp_path / "run").mkdir()
    first, _ = load_or_build(run, "ilsvrc", str(root), None, dense.dataset.limits())
    again, reused = load_or_build(run, "ilsvrc", str(root), None, strict.dataset.limits())
    assert first.table.num_rows == 1 and not reused and again.table.num_rows == 0
    kind, reason = bad(again.bad_rows)["a"]
    assert kind == "oversized_image" and "more than 1.2:1" in reason and "max_aspect" in reason
    with pytest.raises(Exception, match="max_boxes"):
        parse_config({"dataset": {"layout": "ilsvrc", "root": str(root), "max_boxes": 0}})
