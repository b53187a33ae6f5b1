"""Image file -> model input, and original-pixel boxes -> input-pixel boxes and masks.

Both directions go through one :class:`Geometry` (resize to ``resized``, then
crop ``crop`` out of it), so a box and the pixels it covers always agree.
Coordinates are pixel *edges*: pixel column ``j`` covers ``[j, j + 1)``, and
PIL's resize maps edges linearly (output edge ``x`` = input edge ``x * w / W``),
so scaling a box by the same factors is exact. Values stay in 0..255 units
(docs/protocol.md, "Pixel space"); normalization happens inside the model.

EXIF orientation is not applied (as in timm and the ILSVRC annotations, which
refer to the stored pixel grid).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pipeline.models.networks import PreprocessCfg
from pipeline.results.storage import Location, is_uri
from tasks.geometry import box_mask

BoxTuple = tuple[float, float, float, float]
BoxLike = BoxTuple | Sequence[float] | Mapping[str, float]

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
}


@dataclass(frozen=True)
class Geometry:
    """Resize the original to ``resized`` (width, height), then crop at ``left, top``."""

    resized: tuple[int, int]
    left: int
    top: int
    size: tuple[int, int]  # output (width, height)


def input_geometry(width: int, height: int, cfg: PreprocessCfg) -> Geometry:
    """Where a ``width`` x ``height`` image lands in the model input.

    ``whole``: resize straight to the input size (the paper's preprocessing).
    ``center_crop``: timm's eval transform. The scale size is
    ``floor(size / crop_pct)`` (timm floors; rounded to 6 decimals first so that
    ``224 / (224 / 232)`` gives 232, not 231); for a square input the short side
    goes to it and the long side to ``int(scale * long / short)`` (torchvision's
    ``Resize``); then torchvision's centre crop, offset ``round((resized - out) / 2)``.
    """
    out_h, out_w = cfg.input_size
    if cfg.mode == "whole":
        return Geometry((out_w, out_h), 0, 0, (out_w, out_h))
    scale_h, scale_w = (math.floor(round(s / cfg.crop_pct, 6)) for s in cfg.input_size)
    if scale_h == scale_w:
        short, long = sorted((width, height))
        long_new = int(scale_h * long / short)
        resized = (scale_h, long_new) if width <= height else (long_new, scale_h)
    else:
        resized = (scale_w, scale_h)
    left = round((resized[0] - out_w) / 2.0)
    top = round((resized[1] - out_h) / 2.0)
    return Geometry(resized, left, top, (out_w, out_h))


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB for any PIL mode (L, P, RGBA, CMYK, I;16...); alpha is dropped, as in timm."""
    if im.mode == "RGB":
        return im
    if im.mode.startswith("I"):  # 16/32-bit grayscale: scale to 8 bits first
        im = Image.fromarray(
            np.clip(np.asarray(im, dtype=np.float64) / 256.0, 0, 255).astype(np.uint8)
        )
    return im.convert("RGB")


def open_rgb(path: str | Path) -> Image.Image:
    """The decoded image, RGB, fully loaded (the file is closed)."""
    source = io.BytesIO(Location(path).read_bytes()) if is_uri(path) else path
    with Image.open(source) as raw:
        im = _to_rgb(raw)
        im.load()
    return im


def input_from(im: Image.Image, cfg: PreprocessCfg) -> torch.Tensor:
    """``(3, H, W)`` uint8 RGB: a decoded image resized (and cropped) per ``cfg``."""
    geo = input_geometry(im.width, im.height, cfg)
    im = im.resize(geo.resized, _RESAMPLE[cfg.interpolation])
    if geo.resized != geo.size:
        im = im.crop((geo.left, geo.top, geo.left + geo.size[0], geo.top + geo.size[1]))
    return _tensor(im)


def window_from(im: Image.Image, box: BoxTuple, cfg: PreprocessCfg) -> torch.Tensor:
    """``(3, H, W)`` uint8: the window ``box`` (original pixel edges, sub-pixel allowed)
    resized to the input size with the model's interpolation (the MP-Object frame)."""
    h, w = cfg.input_size
    return _tensor(im.resize((w, h), _RESAMPLE[cfg.interpolation], box=box))


def _tensor(im: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(im, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def load_input(path: str | Path, cfg: PreprocessCfg) -> torch.Tensor:
    """``(3, H, W)`` float32 RGB in 0..255, resized (and cropped) per ``cfg``."""
    return input_from(open_rgb(path), cfg).float()


def load_batch(paths: Iterable[str | Path], cfg: PreprocessCfg) -> torch.Tensor:
    """``(B, 3, H, W)`` stack of :func:`load_input`."""
    tensors = [load_input(p, cfg) for p in paths]
    if not tensors:
        h, w = cfg.input_size
        return torch.empty((0, 3, h, w), dtype=torch.float32)
    return torch.stack(tensors)


def _as_tuple(box: BoxLike) -> BoxTuple:
    if isinstance(box, Mapping):
        return (float(box["xmin"]), float(box["ymin"]), float(box["xmax"]), float(box["ymax"]))
    xmin, ymin, xmax, ymax = box
    return (float(xmin), float(ymin), float(xmax), float(ymax))


def map_boxes(
    boxes: Iterable[BoxLike], width: int, height: int, cfg: PreprocessCfg
) -> list[BoxTuple]:
    """Boxes in original pixel edges -> input pixel edges, clipped to the input.

    Accepts ``(xmin, ymin, xmax, ymax)`` tuples or the manifest's box dicts.
    Boxes that end up empty (entirely cropped away) are dropped.
    """
    geo = input_geometry(width, height, cfg)
    sx, sy = geo.resized[0] / width, geo.resized[1] / height
    out_w, out_h = geo.size
    mapped = []
    for box in boxes:
        xmin, ymin, xmax, ymax = _as_tuple(box)
        x0 = min(max(xmin * sx - geo.left, 0.0), out_w)
        x1 = min(max(xmax * sx - geo.left, 0.0), out_w)
        y0 = min(max(ymin * sy - geo.top, 0.0), out_h)
        y1 = min(max(ymax * sy - geo.top, 0.0), out_h)
        if x1 > x0 and y1 > y0:
            mapped.append((x0, y0, x1, y1))
    return mapped


def object_mask(boxes: Iterable[BoxLike], cfg: PreprocessCfg) -> torch.Tensor:
    """``(1, H, W)`` float32: 1 where a pixel's centre lies in any box (:func:`box_mask`)."""
    return box_mask([_as_tuple(b) for b in boxes], *cfg.input_size)
