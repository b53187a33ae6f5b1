"""pipeline.models.images: exact box mapping, exact masks, and crops where timm puts them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.models.images import input_geometry, load_batch, load_input, map_boxes, object_mask
from pipeline.models.networks import PreprocessCfg

pytestmark = pytest.mark.unit

HALF = (0.5, 0.5, 0.5)


def cfg(
    size: int = 100, mode: str = "whole", crop_pct: float = 0.875, interp: str = "bilinear"
) -> PreprocessCfg:
    return PreprocessCfg(
        (size, size), HALF, HALF, interpolation=interp, mode=mode, crop_pct=crop_pct
    )  # type: ignore[arg-type]


def write(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode=mode).save(path)
    return path


def test_whole_mode_maps_boxes_by_plain_scaling() -> None:
    # 400x200 -> 100x100: x scales by 1/4, y by 1/2.
    assert map_boxes([(40, 20, 200, 180)], 400, 200, cfg()) == [(10.0, 10.0, 50.0, 90.0)]
    assert map_boxes([{"xmin": 0, "ymin": 0, "xmax": 400, "ymax": 200}], 400, 200, cfg()) == [
        (0.0, 0.0, 100.0, 100.0)
    ]


def test_center_crop_geometry_and_box_mapping() -> None:
    # Short side 200 -> floor(100 / 0.5) = 200, long 400 stays; crop 100 centred: left 150, top 50.
    c = cfg(mode="center_crop", crop_pct=0.5)
    geo = input_geometry(400, 200, c)
    assert (geo.resized, geo.left, geo.top, geo.size) == ((400, 200), 150, 50, (100, 100))
    boxes = [(160, 60, 170, 80), (0, 0, 155, 200), (0, 0, 100, 100)]
    # First: shifted; second: clipped to x in [0, 5]; third: entirely outside -> dropped.
    assert map_boxes(boxes, 400, 200, c) == [(10.0, 10.0, 20.0, 30.0), (0.0, 0.0, 5.0, 100.0)]


def test_center_crop_scale_size_is_timm_floor_without_float_noise() -> None:
    # torchvision-style crop_pct = 224 / 232 must give scale 232 (224 / crop_pct = 231.99999...).
    geo = input_geometry(500, 375, cfg(224, "center_crop", crop_pct=224 / 232))
    assert geo.resized == (int(232 * 500 / 375), 232)


@pytest.mark.parametrize("mode", ["whole", "center_crop"])
def test_load_input_matches_timm_eval_transform(tmp_path: Path, mode: str) -> None:
    from timm.data import create_transform

    rng = np.random.default_rng(0)
    path = write(tmp_path / "x.png", rng.integers(0, 256, (150, 230, 3), dtype=np.uint8))
    c = cfg(64, mode, crop_pct=0.8 if mode == "center_crop" else 1.0)
    pil_steps = create_transform(
        input_size=64,
        crop_pct=c.crop_pct,
        interpolation="bilinear",
        crop_mode="squash" if mode == "whole" else "center",
    ).transforms[:-2]  # drop ToTensor/Normalize: compare uint8 pixels
    expected = Image.open(path).convert("RGB")
    for step in pil_steps:
        expected = step(expected)
    got = load_input(path, c)
    assert got.shape == (3, 64, 64) and got.dtype == torch.float32
    assert torch.equal(
        got, torch.from_numpy(np.asarray(expected, dtype=np.float32)).permute(2, 0, 1)
    )


def test_crop_centre_lands_at_input_centre(tmp_path: Path) -> None:
    # A 2x2 white square at the centre of a 300x200 image stays centred after center_crop.
    array = np.zeros((200, 300), dtype=np.uint8)
    array[99:101, 149:151] = 255
    x = load_input(
        write(tmp_path / "dot.png", array), cfg(100, "center_crop", crop_pct=0.5, interp="nearest")
    )
    ys, xs = torch.nonzero(x[0] == 255, as_tuple=True)
    assert (ys.float().mean().item(), xs.float().mean().item()) == (49.5, 49.5)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_mode_becomes_rgb(tmp_path: Path, mode: str) -> None:
    im = Image.new("RGB", (40, 30), (10, 200, 30)).convert(mode)
    im.save(tmp_path / "im.png" if mode != "CMYK" else tmp_path / "im.jpg")
    path = next(tmp_path.iterdir())
    x = load_input(path, cfg(20))
    assert x.shape == (3, 20, 20) and x.min() >= 0 and x.max() <= 255


def test_load_batch_stacks(tmp_path: Path) -> None:
    paths = [
        write(tmp_path / f"{i}.png", np.full((10 + i, 20, 3), i, dtype=np.uint8)) for i in range(3)
    ]
    batch = load_batch(paths, cfg(16))
    assert batch.shape == (3, 3, 16, 16)
    assert [int(b.max()) for b in batch] == [0, 1, 2]


def test_object_mask_is_exact() -> None:
    mask = object_mask([(2, 3, 5, 4)], cfg(8))
    expected = torch.zeros(1, 8, 8)
    expected[0, 3:4, 2:5] = 1  # rows 3, columns 2..4
    assert torch.equal(mask, expected)


def test_object_mask_uses_pixel_centres_half_open() -> None:
    # Edges through pixel centres: 1.5 includes column 1, 3.5 excludes column 3.
    mask = object_mask([(1.5, 0, 3.5, 1)], cfg(5))[0]
    assert mask[0].tolist() == [0, 1, 1, 0, 0]
    # Two boxes sharing an edge cover a contiguous run with no gap.
    mask2 = object_mask([(0, 0, 2.5, 1), (2.5, 0, 5, 1)], cfg(5))[0]
    assert mask2[0].tolist() == [1, 1, 1, 1, 1] and mask2[1:].sum() == 0


def test_mask_of_mapped_box_covers_the_mapped_pixels() -> None:
    # 200x200 box (50,50)-(150,150) whole-resized to 100: exactly pixels 25..74.
    c = cfg(100)
    mask = object_mask(map_boxes([(50, 50, 150, 150)], 200, 200, c), c)[0]
    assert mask.sum() == 50 * 50 and mask[25:75, 25:75].all() and mask[:25].sum() == 0
