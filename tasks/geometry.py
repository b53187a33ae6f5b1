"""Foveation geometry in model-input coordinates (Luo et al. sec. 4).

Boxes are ``(x0, y0, x1, y1)`` in pixel-edge coordinates of the model input
(pixel column ``j`` spans ``[j, j + 1)``). A foveation ``T`` is a crop followed
by a linear (bilinear) resize back to the input size, optionally mirrored;
:func:`crop_resize` does every crop of a batch in one ``roi_align`` call, so
``T`` is exactly linear in the image, as the paper's argument assumes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torchvision.ops import roi_align

Box = tuple[float, float, float, float]

#: Caffe's 10-crop side: 227 of 256, so each crop drops ~21% of the image area.
TEN_CROP_SIDE = 227 / 256


@dataclass(frozen=True)
class Window:
    """One crop of one image: a box in input coordinates, mirrored or not."""

    box: Box
    flip: bool = False

    def describe(self) -> str:
        """``x0,y0,x1,y1`` in input pixels (``,flip`` when mirrored), for result rows."""
        return ",".join(f"{v:.1f}" for v in self.box) + (",flip" if self.flip else "")


def crop_resize(
    x: torch.Tensor, windows: list[list[Window]], size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """All windows of all images, bilinearly resized to ``size`` (H, W).

    Returns the crops ``(N, C, H, W)`` and, for each crop, the index of its image.
    Sampling is one bilinear sample per output pixel at its centre (no
    anti-aliasing), which keeps ``T`` linear and matches a plain linear resize.
    """
    rois, owner, flips = [], [], []
    for i, image_windows in enumerate(windows):
        for w in image_windows:
            rois.append([float(i), *w.box])
            owner.append(i)
            flips.append(w.flip)
    if not rois:
        return x.new_zeros((0, x.shape[1], *size)), torch.zeros(0, dtype=torch.long)
    boxes = torch.tensor(rois, dtype=x.dtype, device=x.device)
    crops = roi_align(x, boxes, output_size=size, spatial_scale=1.0, sampling_ratio=1, aligned=True)
    flip = torch.tensor(flips, device=x.device)
    crops = torch.where(flip.view(-1, 1, 1, 1), crops.flip(-1), crops)
    return crops, torch.tensor(owner, device=x.device)


def clamp_box(box: Box, height: int, width: int) -> Box:
    """Shift a box (keeping its size where possible) so it lies inside the image."""
    x0, y0, x1, y1 = box
    w, h = min(x1 - x0, width), min(y1 - y0, height)
    x0 = min(max(x0, 0.0), width - w)
    y0 = min(max(y0, 0.0), height - h)
    return (x0, y0, x0 + w, y0 + h)


def five_boxes(region: Box, side: tuple[float, float]) -> list[Box]:
    """Four corners and the centre of ``region`` for crops of size ``side`` (w, h)."""
    x0, y0, x1, y1 = region
    w, h = side
    cx, cy = (x0 + x1 - w) / 2, (y0 + y1 - h) / 2
    corners = [(x0, y0), (x1 - w, y0), (x0, y1 - h), (x1 - w, y1 - h), (cx, cy)]
    return [(a, b, a + w, b + h) for a, b in corners]


def with_flips(boxes: list[Box]) -> list[Window]:
    return [Window(b) for b in boxes] + [Window(b, flip=True) for b in boxes]


def ten_crop(height: int, width: int, side: float = TEN_CROP_SIDE) -> list[Window]:
    """Caffe's 10 crops: 4 corners + centre of side ``side`` of the image, and mirrors."""
    full: Box = (0.0, 0.0, float(width), float(height))
    return with_flips(five_boxes(full, (side * width, side * height)))


def image_rng(seed: int, image_id: str) -> random.Random:
    """The random draws of one image in one run: seeded by the run's seed and the image id,
    so a rerun (or a resumed shard) draws the same views, and each image its own."""
    return random.Random(f"{seed}:{image_id}")  # str seeds hash with SHA-512: stable anywhere


def three_crop(
    height: int, width: int, rng: random.Random, side: float = TEN_CROP_SIDE
) -> list[Window]:
    """3 of the 10 crops, drawn at random per image (the paper's control for saliency)."""
    crops = ten_crop(height, width, side)
    return [crops[i] for i in sorted(rng.sample(range(len(crops)), 3))]


def object_crops(boxes: list[Box]) -> list[Window]:
    """One crop per ground-truth box (``Object Crop MP``: scores averaged over boxes)."""
    return [Window(b) for b in boxes]


def windows_at(
    centres: list[tuple[float, float]], height: int, width: int, side: float = TEN_CROP_SIDE
) -> list[Window]:
    """Crops of the ten-crop size centred on ``centres`` (x, y), kept inside the image."""
    w, h = side * width, side * height
    return [
        Window(clamp_box((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), height, width))
        for cx, cy in centres
    ]


def largest_box(boxes: list[Box]) -> Box:
    """The MP-Object crop when an image has several boxes: the largest object."""
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def box_mask(boxes: list[Box], height: int, width: int) -> torch.Tensor:
    """``(1, H, W)`` float32: 1 where a pixel's centre lies in any box, else 0.

    Rule: pixel ``(row i, column j)`` has centre ``(j + 0.5, i + 0.5)`` and is inside
    a box iff ``xmin <= j + 0.5 < xmax`` and ``ymin <= i + 0.5 < ymax`` (half-open,
    so two boxes sharing an edge never both claim a pixel, and integer boxes cover
    exactly columns ``xmin .. xmax - 1``). Background is ``1 - box_mask``.
    """
    cx = torch.arange(width, dtype=torch.float64) + 0.5
    cy = torch.arange(height, dtype=torch.float64) + 0.5
    mask = torch.zeros((height, width), dtype=torch.bool)
    for xmin, ymin, xmax, ymax in boxes:
        cols = (cx >= xmin) & (cx < xmax)
        rows = (cy >= ymin) & (cy < ymax)
        mask |= rows[:, None] & cols[None, :]
    return mask.to(torch.float32).unsqueeze(0)
