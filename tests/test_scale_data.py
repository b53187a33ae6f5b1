"""The scale benchmark's dataset (issue 11.7): many ids of a few real photos, a valid ilsvrc layout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.bench.scale_data import build_scaled
from pipeline.data import build_manifest
from pipeline.data.sample_set import SAMPLE_PHOTOS

pytestmark = pytest.mark.unit

XML = """<annotation><folder>x</folder><filename>{name}</filename>
<object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>
</annotation>"""


Truth = list[tuple[str, tuple[float, float, float, float]]]


def _source(tmp_path: Path, n_photos: int = 3) -> tuple[Path, Truth]:
    """An ilsvrc-layout source of the first sample photos (real files, boxes as ILSVRC writes them)."""
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    (src / "bbox").mkdir()
    truth = []
    for photo in SAMPLE_PHOTOS[:n_photos]:
        path = photo.path()
        (src / "images" / f"{photo.name}{path.suffix}").write_bytes(path.read_bytes())
        x0, y0, x1, y1 = photo.boxes[0]  # 0-based edges -> 1-based inclusive corners
        xml = XML.format(name=photo.name, wnid=photo.wnid, x0=x0 + 1, y0=y0 + 1, x1=x1, y1=y1)
        (src / "bbox" / f"{photo.name}.xml").write_text(xml)
        truth.append((photo.wnid, photo.boxes[0]))
    return src, truth


def test_scaled_dataset_is_a_clean_manifest_of_n_unique_ids(tmp_path: Path) -> None:
    src, truth = _source(tmp_path)
    ds = build_scaled(src, tmp_path / "cache", 30)
    assert (ds.n_images, ds.n_photos, ds.cached) == (30, 3, False)

    manifest = build_manifest("ilsvrc", ds.root)
    assert manifest.bad_rows.num_rows == 0
    rows = manifest.table.to_pylist()
    assert [r["image_id"] for r in rows] == [f"ILSVRC2012_val_{i:08d}" for i in range(1, 31)]
    for i, row in enumerate(rows):
        wnid, box = truth[i % 3]  # image i + 1 is photo i % 3, with that photo's label and box
        assert row["wnid"] == wnid
        assert [tuple(b.values()) for b in row["boxes"]] == [tuple(map(float, box))]
        # its own file, resolving inside the dataset root (links, not copies)
        assert Path(row["path"]).resolve().is_relative_to(ds.root)
    first, fourth = (Path(rows[k]["path"]) for k in (0, 3))
    assert first != fourth and os.path.samefile(first, fourth)


def test_scaled_dataset_is_reused_only_when_it_matches(tmp_path: Path) -> None:
    src, _ = _source(tmp_path, n_photos=2)
    built = build_scaled(src, tmp_path / "cache", 5)
    again = build_scaled(src, tmp_path / "cache", 5)
    assert again.cached and again.root == built.root
    other = build_scaled(src, tmp_path / "cache", 7)
    assert not other.cached and len(list((other.root / "bbox").iterdir())) == 7
    (src / "images" / f"{SAMPLE_PHOTOS[0].name}.png").unlink()  # the source changed
    (src / "bbox" / f"{SAMPLE_PHOTOS[0].name}.xml").unlink()
    rebuilt = build_scaled(src, tmp_path / "cache", 5)
    assert not rebuilt.cached and rebuilt.n_photos == 1
