"""A resumed run reuses its manifest only while the dataset is unchanged (pipeline.data.reuse).

Real JPEG files in an imagefolder layout; each way the dataset or the settings can change
must build the manifest again, and a run dir with a half-missing manifest must not reuse it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from pipeline.data.classes import wnids
from pipeline.data.reuse import load_or_build
from pipeline.results.storage import Location

pytestmark = pytest.mark.unit


def photo(path: Path, shade: int = 120) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), (shade, 80, 40)).save(path, quality=90)


def ids(manifest_table) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(manifest_table.column("image_id").to_pylist())


def test_the_manifest_is_reused_until_the_dataset_or_its_settings_change(tmp_path: Path) -> None:
    root, run = tmp_path / "data", Location(tmp_path / "run")
    for k in range(3):
        photo(root / wnids()[k] / f"img{k}.jpg")

    def load(limit: int | None = None) -> tuple[list[str], bool]:
        manifest, reused = load_or_build(run, "imagefolder", str(root), limit)
        return ids(manifest.table), reused

    assert load() == (["img0", "img1", "img2"], False)
    assert load() == (["img0", "img1", "img2"], True)
    assert load(limit=2) == (["img0", "img1"], False), "another limit"
    assert load(limit=2) == (["img0", "img1"], True)

    photo(root / wnids()[3] / "img3.jpg")  # a file added
    assert load(limit=2)[1] is False and load() == (["img0", "img1", "img2", "img3"], False)
    (root / wnids()[0] / "img0.jpg").unlink()  # a file removed
    assert load() == (["img1", "img2", "img3"], False)
    os.utime(root / wnids()[1] / "img1.jpg", ns=(1, 1))  # a file touched (same size)
    assert load()[1] is False
    (root / wnids()[2] / "img2.jpg").write_bytes(b"not a jpeg")  # a file replaced
    assert load() == (["img1", "img3"], False), "the broken file is a bad row again"
    assert load()[1] is True

    (tmp_path / "run" / "bad_rows.parquet").unlink()  # a run dir missing half the manifest
    manifest, reused = load_or_build(run, "imagefolder", str(root), None)
    assert not reused and manifest.bad_rows.num_rows == 1


def test_the_embedded_sample_has_no_root_and_is_always_built(tmp_path: Path) -> None:
    run = Location(tmp_path)
    assert load_or_build(run, "sample", None, 2)[1] is False
    assert load_or_build(run, "sample", None, 2)[1] is False
    assert not (tmp_path / "manifest.fingerprint").exists()
