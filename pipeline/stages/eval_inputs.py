"""Load one batch of an evaluation unit: images, stored directions, boxes, MP-Object set-up.

Everything the science in :mod:`tasks.evaluation` needs, in the frame the
target network sees:

- ``eval.transfer_resolution: target`` (default): the target's own input; a
  source direction of another size is resized to it (bilinear, antialiased
  when shrinking) and every norm is measured on what the target receives;
- ``common``: the target network takes the source's input size, so the
  source's direction is added as stored (received norm = source norm).

For self pairs it also runs the MP-Object attack on the object crops (the
largest box cut from the original image at the crop's scale).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from pipeline.config.benchmark import EvalCfg
from pipeline.models.image_cache import ImageCache
from pipeline.models.images import map_boxes
from pipeline.models.networks import PixelModel, PreprocessCfg
from pipeline.results.codec import Encoded, decode
from pipeline.stages.eval_unit import EvalUnit
from tasks.attacks.base import Attack, AttackResult
from tasks.evaluation.build import BatchData, ObjectSetup
from tasks.evaluation.conditions import ObjectView
from tasks.geometry import image_rng
from tasks.mp_object import OBJECT_VIEWS

Stored = dict[str, tuple[Encoded, float]]


def resize_direction(d: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A batch of directions mapped onto another input size (linear in ``d``)."""
    if tuple(d.shape[-2:]) == tuple(size):
        return d
    shrink = size[0] < d.shape[-2] or size[1] < d.shape[-1]
    return F.interpolate(d, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def frame_cfg(unit: EvalUnit, target: PreprocessCfg, settings: EvalCfg) -> PreprocessCfg:
    """The preprocessing of the frame the target sees (its own, or the source's size)."""
    if settings.transfer_resolution == "common" and unit.source != unit.target:
        return dataclasses.replace(target, input_size=unit.source_cfg.input_size)
    return target


def load_batch(
    unit: EvalUnit,
    idx: list[int],
    model: PixelModel,
    images: ImageCache,
    stored: Stored,
    clean: dict[str, bool],
    settings: EvalCfg,
    dense: int,
) -> BatchData:
    """The batch ``idx`` of ``unit`` as :class:`BatchData` (no object set-up yet)."""
    device = model.shift.device
    cfg = frame_cfg(unit, model.cfg, settings)
    paths = [unit.paths[i] for i in idx]
    x = images.inputs(paths, cfg).to(device)
    src_shape = (3, *unit.source_cfg.input_size)
    d_src = torch.stack(
        [
            decode(stored[unit.image_ids[i]][0])
            if unit.image_ids[i] in stored
            else torch.zeros(src_shape)
            for i in idx
        ]
    ).to(device)
    has = torch.tensor([unit.image_ids[i] in stored for i in idx], dtype=torch.bool)
    scale = torch.tensor(
        [stored[unit.image_ids[i]][1] if unit.image_ids[i] in stored else float("nan") for i in idx]
    )
    self_pair = unit.source == unit.target
    known = [clean.get(unit.image_ids[i]) for i in idx]
    data = BatchData(
        x=x,
        ids=[unit.image_ids[i] for i in idx],
        labels=torch.tensor([unit.labels[i] for i in idx], device=device),
        direction=resize_direction(d_src, cfg.input_size),
        has_direction=has,
        scale=scale,
        boxes=[map_boxes(unit.boxes[i], *unit.sizes[i], cfg) for i in idx],
        self_pair=self_pair,
        clean=None if None in known or cfg != model.cfg else torch.tensor(known, dtype=torch.bool),
        dense=dense,
        seed=settings.seed,
        saliency=settings.saliency,
    )
    if not self_pair and _geometry(cfg) != _geometry(unit.source_cfg):
        data.source_x = images.inputs(paths, unit.source_cfg).to(device)
        data.source_direction = d_src
    return data


def object_setup(
    unit: EvalUnit,
    idx: list[int],
    data: BatchData,
    model: PixelModel,
    images: ImageCache,
    attack: Attack,
    view_names: list[str],
    seed: int,
) -> tuple[ObjectSetup | None, AttackResult | None]:
    """MP-Object on the batch's images with a box: crops, the attack on them, the views."""
    rows = [j for j, b in enumerate(data.boxes) if b]
    if not rows:
        return None, None
    cfg, device = model.cfg, model.shift.device
    crops: list[torch.Tensor] = []
    views: dict[str, list[list[ObjectView]]] = {name: [] for name in view_names}
    for j in rows:
        i = idx[j]
        mapped = data.boxes[j]
        # the largest object as the network sees it, cut from the original image
        k = max(
            range(len(mapped)),
            key=lambda n: (mapped[n][2] - mapped[n][0]) * (mapped[n][3] - mapped[n][1]),
        )
        box = unit.boxes[i][k] if len(unit.boxes[i]) == len(mapped) else _largest(unit.boxes[i])
        rng = image_rng(seed, unit.image_ids[i])
        chosen = {
            name: OBJECT_VIEWS.get(name)(box, unit.sizes[i], cfg.input_size, rng)
            for name in view_names
        }
        windows = sorted({w.box for ws in chosen.values() for w in ws} | {box})
        content = dict(zip(windows, images.windows(unit.paths[i], windows, cfg), strict=True))
        crops.append(content[box])
        for name, ws in chosen.items():
            views[name].append([ObjectView(content[w.box].to(device), w.shift, w.flip) for w in ws])
    x = torch.stack(crops).to(device)
    labels = data.labels[rows]
    result = attack(model, x, labels)
    has = (result.success & result.clean_correct).cpu()
    direction = torch.where(has.to(device).view(-1, 1, 1, 1), result.direction, torch.zeros_like(x))
    scale = torch.where(
        has, result.scale.cpu(), torch.full_like(has, float("nan"), dtype=torch.float32)
    )
    setup = ObjectSetup(
        rows=rows,
        x=x,
        direction=direction,
        has_direction=has,
        scale=scale,
        clean=result.clean_correct.cpu(),
        views=views,
    )
    return setup, result


def _geometry(cfg: PreprocessCfg) -> tuple[object, ...]:
    """What decides the pixels of an input (not the normalisation)."""
    return (cfg.input_size, cfg.interpolation, cfg.mode, cfg.crop_pct)


def _largest(
    boxes: tuple[tuple[float, float, float, float], ...],
) -> tuple[float, float, float, float]:
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


AttackFactory = Callable[[str], Attack]
