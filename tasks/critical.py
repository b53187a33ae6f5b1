"""Critical scales: the smallest scale of a direction at which the criterion holds.

For an image ``x``, a direction ``d`` and a view ``T`` (identity, a mask
applied to ``d`` beforehand, or a foveation), the critical scale is the
smallest ``s`` with ``T(clip(x + s d))`` misclassified, found with the same
batched bracket-and-bisect search as the attacks. The accuracy at any norm
``v`` of a norm sweep is then the fraction of images whose critical norm
``s * ||d||`` exceeds ``v`` (docs/protocol.md, "Critical scales"): exact when
misclassification is monotone along the ray, which :func:`dense_correct`
checks against a dense grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tasks import norms
from tasks.context import PIXEL_BOUNDS, Bounds, QueryContext
from tasks.criterion import TopK
from tasks.linesearch import LineSearch, search_scale
from tasks.views import View


@dataclass
class CriticalScales:
    """Per image: scale (0 if wrong at scale 0, inf if never fooled), and bookkeeping."""

    scale: torch.Tensor
    clean_correct: torch.Tensor  # correct under the view at scale 0
    n_forward: torch.Tensor

    def critical_norm(self, direction: torch.Tensor, norm: str) -> torch.Tensor:
        """Nominal norm ``s * ||d||`` at the critical scale (before clipping)."""
        return self.scale * norms.norm(direction, norm).to(self.scale.device)


def critical_scales(
    model: nn.Module,
    x: torch.Tensor,
    direction: torch.Tensor,
    labels: torch.Tensor,
    *,
    criterion: TopK | None = None,
    view: View | None = None,
    bounds: Bounds | None = PIXEL_BOUNDS,
    search: LineSearch | None = None,
    init_scale: torch.Tensor | None = None,
) -> CriticalScales:
    ctx = QueryContext.create(model, labels, criterion, bounds, view)
    wrong, _ = ctx.is_adversarial(x)
    scale = torch.zeros(x.shape[0], device=x.device)
    todo = (~wrong).nonzero().squeeze(1)
    if todo.numel():
        found = search_scale(
            ctx.subset(todo),
            x[todo],
            direction[todo],
            None if init_scale is None else init_scale[todo],
            search,
        )
        scale[todo] = torch.where(
            found.success, found.scale, torch.full_like(found.scale, float("inf"))
        )
    return CriticalScales(scale=scale, clean_correct=~wrong, n_forward=ctx.counts.forward.clone())


def dense_correct(
    model: nn.Module,
    x: torch.Tensor,
    direction: torch.Tensor,
    labels: torch.Tensor,
    grid: list[float],
    norm: str,
    *,
    criterion: TopK | None = None,
    view: View | None = None,
    bounds: Bounds | None = PIXEL_BOUNDS,
) -> torch.Tensor:
    """Correctness ``(B, len(grid))`` with ``d`` rescaled to each nominal norm of ``grid``."""
    ctx = QueryContext.create(model, labels, criterion, bounds, view)
    unit = norms.norm(direction, norm).clamp_min(1e-30)
    out = []
    for v in grid:
        s = (v / unit).view(-1, *[1] * (x.dim() - 1))
        adv, _ = ctx.is_adversarial(ctx.clip(x + s * direction))
        out.append(~adv)
    return torch.stack(out, dim=1)


def accuracy_at(critical_norm: torch.Tensor, grid: list[float]) -> torch.Tensor:
    """Accuracy at each norm of ``grid``: the share of images whose critical norm exceeds it."""
    v = torch.tensor(grid, dtype=critical_norm.dtype, device=critical_norm.device)
    return (critical_norm[:, None] > v[None, :]).float().mean(dim=0)
