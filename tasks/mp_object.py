"""The MP-Object set-up (Luo et al. sec. 4), in the object crop's own frame.

MP-Object is the minimum perturbation ``e_obj`` of the object crop ``T(x)``
(the largest ground-truth box, cropped from the original image and resized
to the network's input). Its foveations (``10 Crop MP-Object``, ``1 Crop
MP-Object``) are windows the size of the box, shifted into the background by
a fraction ``f`` of the box (``(1 - f)^2 = 1 - 0.21``: each takes ~21%
background), plus mirrors. Every view is built in the crop's frame:

- the clean content is the shifted window cut from the *original* image at
  the crop's scale (so it is exactly ``T(x)`` for the unshifted window);
- the perturbation is ``e_obj`` shifted by a whole number of crop pixels,
  zero where the shifted window leaves the box.

Shifts are whole crop pixels so the perturbation is moved, never resampled:
pasting ``e_obj`` back into the full image and re-enlarging it (the old way)
kept only 10-40% of a high-frequency perturbation's energy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tasks.geometry import Box
from tasks.registry import Registry

#: Share of each shifted window that is background (Luo et al.: ~21%).
BACKGROUND = 0.21


@dataclass(frozen=True)
class ObjectWindow:
    """A view of the object crop: content from ``box`` (original pixels), ``e_obj`` shifted."""

    box: Box  # window in original-image pixel edges (same size as the object's box)
    shift: tuple[int, int]  # (dx, dy) in crop pixels: the view's pixel u shows e_obj[u + shift]
    flip: bool = False


def _axis_shift(lo: float, hi: float, limit: float, step: float, want: int) -> int:
    """Largest whole-pixel shift towards ``want``'s sign, at most ``|want|``, staying inside."""
    sign = 1 if want > 0 else -1
    for k in range(abs(want), 0, -1):
        if 0.0 <= lo + sign * k * step and hi + sign * k * step <= limit + 1e-9:
            return sign * k
    return 0


def object_windows(
    box: Box,
    image_size: tuple[int, int],
    crop_size: tuple[int, int],
    background: float = BACKGROUND,
) -> list[ObjectWindow]:
    """``10 Crop MP-Object``: 4 diagonal shifts + the box itself, and their mirrors.

    ``image_size`` is the original ``(width, height)``, ``crop_size`` the input
    ``(height, width)``. A corner view is shifted by ``round(f * crop side)`` crop
    pixels on each axis, ``(1 - f)^2 = 1 - background``. Where the image border stops
    one axis short, the other axis shifts further so the view still takes
    ``background`` (``(1 - fx)(1 - fy) = 1 - background``), as far as the image
    allows; a box that fills the image on both axes cannot shift at all. The centre
    view is the box itself (Caffe's centre crop in the object's frame: the crops keep
    the object's scale, so no window of the box's size is more central than the box).
    """
    x0, y0, x1, y1 = box
    width, height = image_size
    h, w = crop_size
    step_x, step_y = (x1 - x0) / w, (y1 - y0) / h
    keep = 1 - background

    def shift_x(sx: int, share: float) -> int:
        return _axis_shift(x0, x1, width, step_x, sx * round(share * w))

    def shift_y(sy: int, share: float) -> int:
        return _axis_shift(y0, y1, height, step_y, sy * round(share * h))

    def top_up(kept: float) -> float:  # the other axis's share that keeps ``background``
        return min(1.0, max(0.0, 1 - keep / max(kept, 1e-9)))

    f = 1 - math.sqrt(keep)
    views = [ObjectWindow(box, (0, 0))]
    for sx, sy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
        dx, dy = shift_x(sx, f), shift_y(sy, f)
        if abs(dx) < round(f * w):  # the border stopped x: y takes the rest
            dy = shift_y(sy, top_up(1 - abs(dx) / w))
        elif abs(dy) < round(f * h):  # the border stopped y: x takes the rest
            dx = shift_x(sx, top_up(1 - abs(dy) / h))
        shifted = (x0 + dx * step_x, y0 + dy * step_y, x1 + dx * step_x, y1 + dy * step_y)
        views.insert(len(views) - 1, ObjectWindow(shifted, (dx, dy)))
    return views + [ObjectWindow(v.box, v.shift, flip=True) for v in views]


def background_share(shift: tuple[int, int], crop_size: tuple[int, int]) -> float:
    """Share of a view of the object crop (``(h, w)``) that lies outside the box."""
    h, w = crop_size
    return 1 - (1 - abs(shift[0]) / w) * (1 - abs(shift[1]) / h)


def one_object_window(
    box: Box, image_size: tuple[int, int], crop_size: tuple[int, int], rng: random.Random
) -> list[ObjectWindow]:
    """``1 Crop MP-Object``: one of the ten, drawn at random per image (as the paper)."""
    views = object_windows(box, image_size, crop_size)
    return [views[rng.randrange(len(views))]]


def shift_perturbation(e: torch.Tensor, shift: tuple[int, int], flip: bool = False) -> torch.Tensor:
    """``e`` (..., h, w) moved so that pixel u shows ``e[u + shift]``; zero outside the box."""
    dx, dy = shift
    h, w = e.shape[-2:]
    out = torch.zeros_like(e)
    src_x, dst_x = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    src_y, dst_y = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    out[..., dst_y, dst_x] = e[..., src_y, src_x]
    return out.flip(-1) if flip else out


#: The MP-Object foveations, by condition name: (box, image size, crop size, the image's
#: random draws) -> windows.
ObjectViewFn = Callable[[Box, tuple[int, int], tuple[int, int], random.Random], list[ObjectWindow]]
OBJECT_VIEWS: Registry[ObjectViewFn] = Registry("MP-Object view")
OBJECT_VIEWS.add("ten_crop_object", lambda box, image, crop, rng: object_windows(box, image, crop))
OBJECT_VIEWS.add("one_crop_object", one_object_window)
