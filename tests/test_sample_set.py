"""The embedded ``sample`` dataset: every photo ships offline, loads, and is labelled sanely."""

from __future__ import annotations

import pytest
from PIL import Image

from pipeline.data import SAMPLE_PHOTOS, SamplePhoto, build_manifest
from pipeline.data.classes import wnid_to_index
from pipeline.models.images import load_input
from pipeline.models.networks import PreprocessCfg

pytestmark = pytest.mark.unit

IDS = [p.name for p in SAMPLE_PHOTOS]


def test_names_are_unique_and_enough() -> None:
    assert len(set(IDS)) == len(IDS) >= 6


@pytest.mark.parametrize("photo", SAMPLE_PHOTOS, ids=IDS)
def test_photo_exists_loads_and_has_valid_label_and_boxes(photo: SamplePhoto) -> None:
    path = photo.path()
    assert path.is_file(), f"{photo.package} no longer ships {photo.filename}"
    with Image.open(path) as im:
        width, height = im.size
        im.load()
    assert photo.wnid in wnid_to_index(), f"{photo.wnid} is not an ILSVRC-2012 class"
    assert photo.boxes
    for xmin, ymin, xmax, ymax in photo.boxes:
        assert 0 <= xmin < xmax <= width and 0 <= ymin < ymax <= height
    x = load_input(path, PreprocessCfg((224, 224), (0.5,) * 3, (0.5,) * 3))
    assert x.shape == (3, 224, 224) and x.min() >= 0 and x.max() <= 255 and x.std() > 5


def test_sample_manifest_has_every_photo_and_no_bad_rows() -> None:
    m = build_manifest("sample", None)
    assert m.bad_rows.num_rows == 0, m.bad_rows.to_pylist()
    assert m.table.column("image_id").to_pylist() == sorted(IDS)
    assert m.summary_line() == f"manifest: {len(IDS)} images, 0 bad rows"
