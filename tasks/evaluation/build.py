"""Every protocol condition of a batch, built from one description of the batch.

The pipeline loads a :class:`BatchData` (inputs in the target's frame, the
source's directions mapped into it, boxes, and for self pairs the MP-Object
set-up); :func:`build_conditions` turns it into one :class:`ConditionBatch` per
condition by reading the condition's registry entry: its set-up, whether it
needs a box, and its implementation in the mask / view registries. Nothing
here branches on a condition's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from tasks.evaluation.conditions import ConditionBatch, ObjectView
from tasks.foveation import MASKS, VIEWS, ViewInputs
from tasks.geometry import Box, box_mask
from tasks.protocol import MP, OBJECT, ConditionSpec


@dataclass
class ObjectSetup:
    """MP-Object on the images of a batch that have a box (Luo et al. sec. 4)."""

    rows: list[int]  # batch rows
    x: torch.Tensor  # (n, C, H, W) the object crops T(x), from the original image
    direction: torch.Tensor  # (n, C, H, W) MP-Object's direction (zero where none)
    has_direction: torch.Tensor  # (n,) clean-correct on the crop and fooled
    scale: torch.Tensor  # (n,) the attack's scale (nan where none)
    clean: torch.Tensor  # (n,) the crop classified correctly
    views: dict[str, list[list[ObjectView]]] = field(default_factory=dict)  # condition -> views


@dataclass
class BatchData:
    """One batch of a (source, target, attack) unit, in the frame the target sees."""

    x: torch.Tensor  # (B, C, H, W) clean inputs
    ids: list[str]  # image ids: views drawn at random are drawn per image
    labels: torch.Tensor
    direction: torch.Tensor  # the source's direction in this frame (zero where none)
    has_direction: torch.Tensor  # (B,) the source has a perturbation for the image
    scale: torch.Tensor  # (B,) the source attack's scale (nan where none)
    boxes: list[list[Box]]  # this frame's pixel edges
    self_pair: bool
    clean: torch.Tensor | None = None  # (B,) known correctness of x (the attack stage's)
    source_x: torch.Tensor | None = None  # cross pairs: the source's frame, for its norms
    source_direction: torch.Tensor | None = None
    dense: int = 0  # images of this batch in the dense sample
    seed: int = 0
    saliency: str = "spectral_residual"
    object: ObjectSetup | None = None


def build_conditions(data: BatchData, specs: list[ConditionSpec]) -> list[ConditionBatch]:
    """A :class:`ConditionBatch` per spec (images a spec cannot use are left out)."""
    return [c for c in (_build(data, s) for s in specs) if c is not None and c.rows]


def _build(b: BatchData, spec: ConditionSpec) -> ConditionBatch | None:
    if spec.setup == OBJECT:
        return _object_condition(b, spec)
    rows = [j for j in range(b.x.shape[0]) if b.boxes[j] or not spec.needs_box]
    sel = torch.tensor(rows, dtype=torch.long, device=b.x.device)
    x, d = b.x[sel], b.direction[sel]
    has = b.has_direction[sel.cpu()]
    scale = b.scale[sel.cpu()]
    common: dict[str, Any] = {
        "spec": spec,
        "frame": MP,
        "rows": rows,
        "labels": b.labels[sel],
        "has_direction": has,
        "dense": _dense(b.dense, rows),
    }
    if spec.name in MASKS:
        h, w = x.shape[-2:]
        m = torch.stack([box_mask(b.boxes[j], h, w) for j in rows]).to(x.device)
        masked = MASKS.get(spec.name)(m) * d
        has = has & (masked.flatten(1).abs().amax(1) > 0).cpu()  # nothing of it inside: none
        common["has_direction"] = has
        common["frame"] = spec.name
        return ConditionBatch(x=x, d=masked, guess=scale, clean=_sel(b.clean, rows), **common)
    if spec.views:
        inputs = ViewInputs(
            x, [b.boxes[j] for j in rows], [b.ids[j] for j in rows], b.seed, b.saliency
        )
        return ConditionBatch(x=x, d=d, crops=VIEWS.get(spec.name)(inputs), guess=scale, **common)
    if b.self_pair:  # the attack's scale seeds the search and is checked, never reused
        known = torch.where(has, scale, torch.full_like(scale, float("nan")))
        return ConditionBatch(
            x=x, d=d, guess=scale, attack_scale=known, clean=_sel(b.clean, rows), **common
        )
    return ConditionBatch(
        x=x,
        d=d,
        guess=scale,
        clean=_sel(b.clean, rows),
        source_x=None if b.source_x is None else b.source_x[sel],
        source_d=None if b.source_direction is None else b.source_direction[sel],
        **common,
    )


def _object_condition(b: BatchData, spec: ConditionSpec) -> ConditionBatch | None:
    o = b.object
    if o is None:
        return None
    sel = torch.tensor(o.rows, dtype=torch.long, device=o.x.device)
    common: dict[str, Any] = {
        "spec": spec,
        "frame": OBJECT,
        "rows": o.rows,
        "x": o.x,
        "d": o.direction,
        "labels": b.labels[sel],
        "has_direction": o.has_direction,
        "dense": _dense(b.dense, o.rows),
    }
    if spec.views:
        return ConditionBatch(object_views=o.views[spec.name], guess=o.scale, **common)
    known = torch.where(o.has_direction, o.scale, torch.full_like(o.scale, float("nan")))
    return ConditionBatch(guess=o.scale, attack_scale=known, clean=o.clean, **common)


def _sel(values: torch.Tensor | None, rows: list[int]) -> torch.Tensor | None:
    return None if values is None else values[rows]


def _dense(n: int, rows: list[int]) -> int:
    """How many of a condition's images (in order) are in the batch's dense sample."""
    return sum(1 for j in rows if j < n)
