"""View builders of the MP set-up's foveations: which crops of the input each one takes.

One builder per foveation condition of :mod:`tasks.protocol`, registered under
the condition's name (no if/elif on strings anywhere else). A builder gets
the clean inputs and their boxes and returns, per image, the crop windows in
input coordinates; :class:`tasks.views.CropView` turns them into scores.
The MP-Object set-up's views live in the object crop's own frame
(:mod:`tasks.mp_object`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tasks.geometry import Box, Window, image_rng, object_crops, ten_crop, three_crop, windows_at
from tasks.registry import Registry
from tasks.saliency import SALIENCY, top_peaks

#: The masks of the masks task, by condition name: object mask ``m`` -> the mask applied.
MASKS: Registry[Callable[[torch.Tensor], torch.Tensor]] = Registry("mask")
MASKS.add("object_mask", lambda m: m)
MASKS.add("background_mask", lambda m: 1 - m)


@dataclass(frozen=True)
class ViewInputs:
    """What a view builder may look at: clean inputs ``(B, 3, H, W)`` and their boxes."""

    x: torch.Tensor
    boxes: list[list[Box]]  # input pixel edges, per image (empty: no box)
    ids: list[str]  # image ids: random views are drawn per image (run seed, image id)
    seed: int = 0
    saliency: str = "spectral_residual"


ViewBuilder = Callable[[ViewInputs], list[list[Window]]]
VIEWS: Registry[ViewBuilder] = Registry("foveation view")


@VIEWS.register("object_crop")
def _object_crop(v: ViewInputs) -> list[list[Window]]:
    """One crop per ground-truth box (scores averaged over boxes); none without a box."""
    return [object_crops(b) for b in v.boxes]


@VIEWS.register("ten_crop")
def _ten_crop(v: ViewInputs) -> list[list[Window]]:
    h, w = v.x.shape[-2:]
    return [ten_crop(h, w)] * v.x.shape[0]


@VIEWS.register("three_crop")
def _three_crop(v: ViewInputs) -> list[list[Window]]:
    h, w = v.x.shape[-2:]
    return [three_crop(h, w, image_rng(v.seed, i)) for i in v.ids]


@VIEWS.register("saliency_crop")
def _saliency_crop(v: ViewInputs) -> list[list[Window]]:
    """3 ten-crop-sized crops at the saliency peaks of the *clean* image (T stays fixed)."""
    h, w = v.x.shape[-2:]
    maps = SALIENCY.get(v.saliency)(v.x)
    return [windows_at(c, h, w) for c in top_peaks(maps, k=3)]
