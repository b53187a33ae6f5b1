"""pipeline.data: every layout on small real files, and every bad-row case."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pytest
from PIL import Image

from pipeline.data import LAYOUTS, MANIFEST_SCHEMA, SCHEMA_VERSION, ManifestError, build_manifest
from pipeline.data.classes import wnids
from tasks.registry import RegistryError

TENCH, GOLDFISH = wnids()[0], wnids()[1]
UNKNOWN = "n99999999"
XML_OBJECT = "<object><name>{}</name><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"


def jpeg(path: Path, size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 80, 40)).save(path, quality=90)
    return path


def truncated_jpeg(path: Path) -> Path:
    jpeg(path, (64, 48))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def garbage(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(range(256)) * 4)
    return path


def xml(path: Path, *objects: tuple[str, int, int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(XML_OBJECT.format(*o) for o in objects)
    path.write_text(
        f"<annotation><size><width>40</width><height>30</height></size>{body}</annotation>"
    )


def bad(manifest_bad: pa.Table) -> dict[str, tuple[str, str]]:
    """image_id -> (kind, reason)."""
    return {r["image_id"]: (r["kind"], r["reason"]) for r in manifest_bad.to_pylist()}


@pytest.mark.unit
def test_layout_registry_lists_and_suggests() -> None:
    assert LAYOUTS.names() == ["ilsvrc", "imagefolder", "kaggle", "sample"]
    with pytest.raises(RegistryError, match="did you mean 'ilsvrc'"):
        build_manifest("ilsvr", None)


@pytest.mark.unit
def test_ilsvrc_xml_layout_good_and_bad_rows(tmp_path: Path) -> None:
    images, bbox = tmp_path / "images", tmp_path / "bbox"
    jpeg(images / "a_good.JPEG")
    xml(bbox / "a_good.xml", (TENCH, 1, 1, 40, 30), (TENCH, 5, 6, 10, 12))  # full image + one
    jpeg(images / "b_two.JPEG")
    xml(bbox / "b_two.xml", (GOLDFISH, 2, 2, 20, 20))
    truncated_jpeg(images / "c_truncated.JPEG")
    xml(bbox / "c_truncated.xml", (TENCH, 1, 1, 10, 10))
    garbage(images / "d_garbage.JPEG")
    xml(bbox / "d_garbage.xml", (TENCH, 1, 1, 10, 10))
    jpeg(images / "e_outside.JPEG")
    xml(bbox / "e_outside.xml", (TENCH, 1, 1, 41, 30))
    jpeg(images / "f_unknown.JPEG")
    xml(bbox / "f_unknown.xml", (UNKNOWN, 1, 1, 10, 10))
    jpeg(images / "g_no_xml.JPEG")
    xml(bbox / "h_no_image.xml", (TENCH, 1, 1, 10, 10))
    (bbox / "i_broken.xml").write_text("<annotation><object>")
    jpeg(images / "i_broken.JPEG")

    m = build_manifest("ilsvrc", tmp_path)

    assert m.table.schema == MANIFEST_SCHEMA
    rows = m.table.to_pylist()
    assert [r["image_id"] for r in rows] == ["a_good", "b_two"]
    assert rows[0]["label"] == 0 and rows[1]["label"] == 1 and rows[1]["wnid"] == GOLDFISH
    assert (rows[0]["width"], rows[0]["height"]) == (40, 30)
    # 1-based inclusive (1,1,40,30) is the whole 40x30 image in 0-based edges.
    assert rows[0]["boxes"] == [
        {"xmin": 0.0, "ymin": 0.0, "xmax": 40.0, "ymax": 30.0},
        {"xmin": 4.0, "ymin": 5.0, "xmax": 10.0, "ymax": 12.0},
    ]
    assert set(m.table.column("schema_version").to_pylist()) == {SCHEMA_VERSION}

    b = bad(m.bad_rows)
    assert b["c_truncated"][0] == "unreadable_image" and "truncated" in b["c_truncated"][1]
    assert b["d_garbage"][0] == "unreadable_image"
    assert b["e_outside"][0] == "box_outside_image"
    assert "xmax=41 > width 40" in b["e_outside"][1] and "fix the annotation" in b["e_outside"][1]
    assert b["f_unknown"][0] == "unknown_wnid" and UNKNOWN in b["f_unknown"][1]
    assert b["g_no_xml"][0] == "missing_annotation" and "g_no_xml.xml" in b["g_no_xml"][1]
    assert b["h_no_image"][0] == "missing_image"
    assert b["i_broken"][0] == "bad_annotation"
    sources = {r["image_id"]: r["source"] for r in m.bad_rows.to_pylist()}
    assert sources["e_outside"].endswith("bbox/e_outside.xml")
    assert sources["c_truncated"].endswith("images/c_truncated.JPEG")
    assert m.summary_line() == (
        "manifest: 2 images, 7 bad rows (2 unreadable images, 1 box outside image, 1 unknown wnid, "
        "1 missing annotation, 1 missing image file, 1 malformed annotation); see bad_rows.parquet"
    )


@pytest.mark.unit
def test_ilsvrc_ground_truth_with_wnids_txt(tmp_path: Path) -> None:
    # Devkit IDs are not sorted-wnid order: ID 1 -> GOLDFISH here, ID 2 -> TENCH.
    (tmp_path / "wnids.txt").write_text(f"{GOLDFISH}\n{TENCH}\n")
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("2\n1\n")
    for n in (1, 2, 3):
        jpeg(tmp_path / f"ILSVRC2012_val_{n:08d}.JPEG")
    m = build_manifest("ilsvrc", tmp_path)
    assert m.table.column("wnid").to_pylist() == [TENCH, GOLDFISH]
    assert m.table.column("boxes").to_pylist() == [[], []]
    assert {k: v[0] for k, v in bad(m.bad_rows).items()} == {
        "ILSVRC2012_val_00000003": "missing_annotation"
    }


@pytest.mark.unit
def test_ilsvrc_ground_truth_without_id_table_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ILSVRC2012_validation_ground_truth.txt").write_text("1\n")
    jpeg(tmp_path / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(ManifestError, match=r"meta\.mat or a wnids\.txt"):
        build_manifest("ilsvrc", tmp_path)


@pytest.mark.unit
def test_kaggle_layout_good_and_bad_rows(tmp_path: Path) -> None:
    val = tmp_path / "ILSVRC/Data/CLS-LOC/val"
    for name in ("v1", "v2", "v4", "v5", "v6"):
        jpeg(val / f"{name}.JPEG")
    truncated_jpeg(val / "v7.JPEG")
    rows = [
        ("v1", f"{TENCH} 1 1 40 30 {TENCH} 2 3 4 5"),
        ("v2", f"{GOLDFISH} 1 1 10 10"),
        ("v3", f"{TENCH} 1 1 10 10"),  # image missing
        ("v4", f"{TENCH} 0 1 10 10"),  # xmin 0 in a 1-based file -> -1
        ("v5", f"{UNKNOWN} 1 1 10 10"),
        ("v6", f"{TENCH} 1 1 10"),  # malformed
        ("v7", f"{TENCH} 1 1 10 10"),
    ]
    with (tmp_path / "LOC_val_solution.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ImageId", "PredictionString"])
        writer.writerows(rows)
    jpeg(val / "v8.JPEG")  # no CSV row

    m = build_manifest("kaggle", tmp_path)
    assert m.table.column("image_id").to_pylist() == ["v1", "v2"]
    assert m.table.column("boxes").to_pylist()[0][1] == {
        "xmin": 1.0,
        "ymin": 2.0,
        "xmax": 4.0,
        "ymax": 5.0,
    }
    b = bad(m.bad_rows)
    assert {k: v[0] for k, v in b.items()} == {
        "v3": "missing_image",
        "v4": "box_outside_image",
        "v5": "unknown_wnid",
        "v6": "bad_annotation",
        "v7": "unreadable_image",
        "v8": "missing_annotation",
    }
    assert "xmin=-1 < 0" in b["v4"][1] and "xmin=0" in b["v4"][1]  # both conventions named
    by_id = {r["image_id"]: r for r in m.bad_rows.to_pylist()}
    assert by_id["v3"]["source"].endswith("LOC_val_solution.csv") and by_id["v3"]["row"] == 4
    assert by_id["v6"]["row"] == 7


@pytest.mark.unit
def test_kaggle_accepts_val_folder(tmp_path: Path) -> None:
    jpeg(tmp_path / "val/x.JPEG")
    (tmp_path / "LOC_val_solution.csv").write_text(f"ImageId,PredictionString\nx,{TENCH} 1 1 5 5\n")
    assert build_manifest("kaggle", tmp_path).table.column("image_id").to_pylist() == ["x"]


@pytest.mark.unit
def test_imagefolder_layout(tmp_path: Path) -> None:
    jpeg(tmp_path / TENCH / "b.jpg")
    jpeg(tmp_path / GOLDFISH / "a.png")
    jpeg(tmp_path / UNKNOWN / "c.jpg")
    garbage(tmp_path / TENCH / "d.jpg")
    (tmp_path / TENCH / "notes.txt").write_text("not an image")
    m = build_manifest("imagefolder", tmp_path)
    assert m.table.to_pylist()[0]["image_id"] == "a"
    assert m.table.column("label").to_pylist() == [1, 0]
    assert m.table.column("boxes").to_pylist() == [[], []]
    assert {k: v[0] for k, v in bad(m.bad_rows).items()} == {
        "c": "unknown_wnid",
        "d": "unreadable_image",
    }


@pytest.mark.unit
def test_duplicate_image_ids_are_bad_rows(tmp_path: Path) -> None:
    jpeg(tmp_path / TENCH / "same.jpg")
    jpeg(tmp_path / GOLDFISH / "same.jpg")
    m = build_manifest("imagefolder", tmp_path)
    assert m.table.num_rows == 1 and bad(m.bad_rows)["same"][0] == "duplicate_image_id"


@pytest.mark.unit
def test_limit_takes_first_rows_by_image_id(tmp_path: Path) -> None:
    for name in ("c", "a", "d", "b"):
        jpeg(tmp_path / TENCH / f"{name}.jpg")
    m = build_manifest("imagefolder", tmp_path, limit=2)
    assert m.table.column("image_id").to_pylist() == ["a", "b"]


IMAGENET_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/imagenet-sample"


@pytest.mark.integration
@pytest.mark.skipif(not IMAGENET_SAMPLE.is_dir(), reason=f"{IMAGENET_SAMPLE} is absent")
def test_imagenet_sample_labels_match_labels_csv() -> None:
    m = build_manifest("ilsvrc", IMAGENET_SAMPLE)
    assert m.bad_rows.num_rows == 0, m.bad_rows.to_pylist()
    with (IMAGENET_SAMPLE / "labels.csv").open() as f:
        expected = {
            Path(r["file"]).stem: (int(r["class_index"]), int(r["n_boxes"]))
            for r in csv.DictReader(f)
        }
    got = {r["image_id"]: (r["label"], len(r["boxes"])) for r in m.table.to_pylist()}
    assert got == expected
